"""LM policy gradient: fine-tune the policy itself on the env's per-step rewards (GRPO or REINFORCE).

Each iteration draws ``tasks_per_iteration`` tasks (seeded by ``(seed, iteration)``), plays
``group_size`` episodes of each (the group) with :func:`codegym.agents.rollout` at ``temperature``
(the agents' engine, as evaluation uses it), and takes one AdamW step on

    loss = -(1/N) * sum over the N steps taken of  A_t * log pi(step_t | prompt_t)

where ``prompt_t`` is exactly what the policy was shown (``policy_prompt(render_state(problem,
steps[:t]), t)`` through the policy's own formatting and tokenizer) and ``log pi`` sums the step's token
log-probs, the token that ended the step included (where the stop string starts, or EOS: where a step
ends is a choice too), under the distribution the step was sampled from, ``softmax(logits / temperature)``: the
update is on-policy at any temperature. Sampling below 1 keeps a small policy's episodes near its greedy
path, where the mistakes that greedy decoding makes are (at 1, a 1M-parameter policy's samples are mostly
noise its greedy decoding would never write). ``G_t`` is the discounted return-to-go of the env's rewards, so the reward scheme (O1-Coder's,
dense PRM rewards, potential shaping, terminal-only, the PRM-gated outcome or your own callable) is one
argument: ``reward``.

Advantages:

- ``"grpo"`` (Shao et al. 2024, arXiv 2402.03300): group-relative. ``A_t = (G_t - mean) / (std + eps)``
  over the episodes of the same task that took a step t (TRL's unbiased std). At t = 0 with the outcome
  alone this is GRPO's outcome supervision; comparing later steps with the group's steps at the same
  depth keeps the baseline for a late step from being the whole episode's return.
- ``"dr_grpo"`` (Liu et al. 2025, "Understanding R1-Zero-Like Training", arXiv 2503.20783): the same
  group mean as the baseline, without the division by the std, which weights groups whose returns
  barely differ (nearly all solved or all failed) as much as the informative ones.
- ``"reinforce"``: ``A_t = G_t - b``, b a running mean of returns from earlier iterations (the first
  iteration uses its own mean).

``skip_uniform_groups`` (DAPO's dynamic-sampling filter, Yu et al. 2025, arXiv 2503.14476): a group
whose episodes all got the same returns at every depth has only zero group-relative advantages, so it
adds nothing to the policy gradient but its steps to the loss's denominator (and to the KL term).
Dropped, the update is the mean over the steps that carry a signal; the metrics count the groups dropped.

``negative_weight`` scales every negative advantage. At 0 only the steps that did better than their
baseline are reinforced: Zhu et al. 2025's positive sample reinforcement ("The Surprising Effectiveness
of Negative Reinforcement in LLM Reasoning", arXiv 2506.01347), which sharpens the policy towards its
successes and raises greedy pass@1, where pushing down a failed sample's tokens (most of which a passing
sample shares) spreads probability over tokens greedy decoding never chose. It is RAFT's filtered
fine-tuning with a group baseline; at 1 (the default) the update is the plain policy gradient.

Two optional terms keep the policy near where it started: ``kl_coef`` (a penalty towards the starting
policy on its own samples) and ``replay`` (supervised episodes whose mean negative log-likelihood per
step, times ``replay_coef``, joins the loss: InstructGPT's PPO-ptx).

Why not TRL's ``GRPOTrainer``: it scores one completion per prompt with a reward function, while an
episode here is several steps, each its own prompt, with the env's reward after each one and the code
run in a sandbox between them; a loop of our own keeps those rewards and the env's prompts exact.

Every ``checkpoint_every`` iterations (and after the last) ``out_dir/checkpoint-N`` gets the model and
tokenizer (``save_pretrained``, so ``load_policy(path)`` loads it) and ``trainer_state.pt`` (optimizer,
RNG, baseline, metrics); ``out_dir/metrics.json`` gets the metrics so far. A checkpoint is written to a
temporary folder and renamed, so a crash loses at most the iterations since the last one. Calling
again with the same ``out_dir`` resumes from the latest checkpoint: finished iterations never rerun.

Example:
    >>> from codegym.training.policy_gradient import train_policy_gradient
    >>> result = train_policy_gradient("/tmp/pg", iterations=8, reward="dense", process_reward="tiny")  # doctest: +SKIP
    >>> [round(m.mean_reward, 3) for m in result.metrics]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from codegym.agents import rollout
from codegym.errors import UserError
from codegym.steps import policy_prompt, render_state
from codegym.training.pg_checkpoints import latest_checkpoint, resume, save_checkpoint
from codegym.training.pg_scoring import row_token_ids, rowwise_log_probs, step_log_probs
from codegym.training.run import run_folder, seed_everything

if TYPE_CHECKING:
    import torch

    from codegym.agents.base import Episode
    from codegym.models import HFPolicy
    from codegym.rewards import ProcessRewardModel, RewardFn, RewardScheme
    from codegym.sandbox import Sandbox
    from codegym.tasks import Task, TaskSource

ADVANTAGES = ("grpo", "dr_grpo", "reinforce")
GROUP_ADVANTAGES = ("grpo", "dr_grpo")  # advantages that compare the episodes of a group
BASELINE_MOMENTUM = 0.9  # the REINFORCE baseline's running mean keeps 90% of its past each iteration


@dataclass(frozen=True)
class IterationMetrics:
    """One iteration of :func:`train_policy_gradient`, measured on the episodes it trained on.

    Attributes:
        iteration: 0-based.
        mean_reward: mean over episodes of the sum of the env's rewards.
        hidden_pass_rate: mean share of hidden tests passed.
        solve_rate: share of episodes whose code passed every hidden test.
        code_rate: share of episodes that ended with a code action.
        mean_steps: mean steps per episode.
        loss: the policy-gradient loss of the update.
        grad_norm: the gradient norm before clipping.
        seconds: wall time of the iteration.
        kl: the mean of ``log pi(step) - log pi_ref(step)`` over the steps taken (an estimate of the
            KL divergence from the reference policy, per step); 0.0 without a reference (``kl_coef=0``).
        skipped_groups: groups left out of the update because their returns were all equal
            (``skip_uniform_groups``); 0 without that option.
    """

    iteration: int
    mean_reward: float
    hidden_pass_rate: float
    solve_rate: float
    code_rate: float
    mean_steps: float
    loss: float
    grad_norm: float
    seconds: float
    kl: float = 0.0
    skipped_groups: int = 0


@dataclass(frozen=True)
class PolicyGradientResult:
    """What :func:`train_policy_gradient` did.

    Attributes:
        out_dir: the run's folder.
        checkpoint: the latest checkpoint (``load_policy(checkpoint)`` loads the trained policy).
        iterations: iterations finished in all, earlier runs included.
        resumed_from: iterations already finished when this call started (0 for a fresh run).
        metrics: every finished iteration's metrics, in order.
    """

    out_dir: str
    checkpoint: str
    iterations: int
    resumed_from: int
    metrics: tuple[IterationMetrics, ...]


def returns_to_go(rewards: Sequence[float], gamma: float = 1.0) -> list[float]:
    """``G_t = sum_{k >= t} gamma^(k - t) r_k`` for every step t.

    Example:
        >>> returns_to_go([0.0, 0.5, 1.0], gamma=0.5)
        [0.5, 1.0, 1.0]
    """
    returns, running = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def group_relative_advantages(
    returns: Sequence[Sequence[float]], eps: float = 1e-6, *, scale: bool = True
) -> list[list[float]]:
    """GRPO advantages of one task's episodes: at each depth t, ``(G_t - mean) / (std + eps)`` over the
    episodes that took a step t; a step no other episode of the group reached gets 0. ``scale=False``
    leaves out the division (Dr. GRPO): ``G_t - mean``.

    Example:
        >>> [[round(a, 3) for a in episode] for episode in group_relative_advantages([[1.0, 1.0], [0.0]])]
        [[0.707, 0.0], [-0.707]]
        >>> group_relative_advantages([[1.0, 1.0], [0.0]], scale=False)
        [[0.5, 0.0], [-0.5]]
    """
    advantages = [[0.0] * len(episode) for episode in returns]
    for t in range(max((len(episode) for episode in returns), default=0)):
        members = [i for i, episode in enumerate(returns) if len(episode) > t]
        if len(members) < 2:
            continue
        values = np.array([returns[i][t] for i in members])
        mean = values.mean()
        spread = values.std(ddof=1) + eps if scale else 1.0
        for i, value in zip(members, values, strict=True):
            advantages[i][t] = float((value - mean) / spread)
    return advantages


def weigh_negatives(advantages: Sequence[Sequence[float]], weight: float) -> list[list[float]]:
    """Every negative advantage times ``weight`` (0: only the steps that beat their baseline train).

    Example:
        >>> weigh_negatives([[0.5, -0.5], [-1.0]], 0.0)
        [[0.5, 0.0], [0.0]]
        >>> weigh_negatives([[0.5, -0.5]], 0.5)
        [[0.5, -0.25]]
    """
    return [[value if value > 0 else (weight * value or 0.0) for value in values] for values in advantages]


def uniform_group(returns: Sequence[Sequence[float]]) -> bool:
    """Whether every episode of a group got the same returns at every depth it reached as every other
    episode that reached it: then each group-relative advantage is 0 and the group teaches nothing.

    Example:
        >>> uniform_group([[1.0, 1.0], [1.0]]), uniform_group([[1.0], [0.0]])
        (True, False)
    """
    for t in range(max((len(episode) for episode in returns), default=0)):
        if len({episode[t] for episode in returns if len(episode) > t}) > 1:
            return False
    return True


def continuation_log_probs(
    policy: HFPolicy,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    model: Any = None,
    token_ids: Sequence[Sequence[int] | None] | None = None,
) -> torch.Tensor:
    """``log pi(continuation | prompt)`` summed over the continuation's tokens, differentiably: ``(B,)``.

    The prompt is formatted and tokenized exactly as :class:`~codegym.models.HFPolicy` does when it
    samples. The continuation's tokens are ``token_ids[i]`` when given (the ids the policy sampled,
    :attr:`~codegym.models.Sample.token_ids`: exactly on-policy); otherwise the continuation is
    tokenized on its own (no special tokens), which can split a text differently than sampling did. Only
    those tokens are scored: append :attr:`~codegym.models.Sample.end_token_id` to a sample's ids to
    score its choice to end there too (the policy-gradient update does). ``model`` scores instead of the policy's own
    (a frozen reference copy, for the KL penalty).
    """
    prompt_ids, continuation_ids = row_token_ids(policy, prompts, continuations, token_ids)
    return rowwise_log_probs(policy, model or policy.model, prompt_ids, continuation_ids, len(prompts))


def train_policy_gradient(
    out_dir: str | os.PathLike[str],
    *,
    policy: str | HFPolicy = "tiny",
    tasks: str | TaskSource | Sequence[Task] = "synthetic",
    split: str | None = "train",
    task_options: dict[str, Any] | None = None,
    iterations: int = 20,
    tasks_per_iteration: int = 8,
    group_size: int = 4,
    reward: str | RewardScheme | RewardFn = "o1coder",
    reward_options: dict[str, Any] | None = None,
    process_reward: str | ProcessRewardModel | None = None,
    env_options: dict[str, Any] | None = None,
    advantage: str = "grpo",
    skip_uniform_groups: bool = False,
    negative_weight: float = 1.0,
    learning_rate: float = 1e-4,
    weight_decay: float = 0.0,
    kl_coef: float = 0.0,
    replay: Sequence[tuple[str, Sequence[str]]] = (),
    replay_coef: float = 1.0,
    max_grad_norm: float = 1.0,
    gamma: float = 1.0,
    max_steps: int = 4,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    checkpoint_every: int = 1,
    keep_checkpoints: int = 2,
    seed: int = 0,
    sandbox: str | Sandbox = "auto",
    progress: bool = True,
    protocol: str | None = None,
    lora_r: int = 0,
    device: str | None = None,
    dtype: str = "float32",
) -> PolicyGradientResult:
    """Train ``policy`` by policy gradient on CodeReason episodes; see the module docstring.

    Args:
        out_dir: the run's folder; an existing run there is resumed.
        policy: a spec for :func:`codegym.models.load_policy` (``"tiny"``, a path, a hub id) or an
            :class:`~codegym.models.HFPolicy`, whose model is trained in place.
        tasks: the task source (a name for :func:`codegym.tasks.load_tasks`, a source or a list).
        split: the source's split, for a source given by name (None for its default).
        task_options: the source's options, e.g. ``{"max_ops": 2}`` for synthetic.
        iterations: the total to reach, counting those an earlier run in ``out_dir`` finished.
        tasks_per_iteration: distinct tasks per iteration.
        group_size: episodes per task (the GRPO group); at least 2 for ``"grpo"``.
        reward: the env's reward scheme: a name, a RewardScheme or ``fn(context, **kwargs)``.
        reward_options: options of a scheme given by name.
        process_reward: a PRM, a spec for :func:`codegym.models.load_prm` (``"tiny"``) or None.
        env_options: more :class:`~codegym.env.CodeReasonEnv` options (``outcome``, ``visible_tests``...).
        advantage: ``"grpo"`` (group mean and std), ``"dr_grpo"`` (group mean, no std) or
            ``"reinforce"`` (running-mean baseline).
        skip_uniform_groups: leave out of the update every group whose episodes all got the same
            returns (DAPO's filter; ``"grpo"`` and ``"dr_grpo"`` only): the loss becomes the mean over
            the other groups' steps, and an iteration with no other group takes no step.
        negative_weight: the weight of negative advantages, in [0, 1]: 1 is the policy gradient, 0
            reinforces only the steps that beat their baseline (see the module docstring).
        learning_rate, weight_decay: AdamW's.
        kl_coef: weight of a KL penalty towards the starting policy (a frozen copy, the reference):
            ``kl_coef * 0.5 * (log pi(step) - log pi_ref(step))^2`` per step taken, whose gradient is
            that of KL(pi || pi_ref) on the policy's own samples. 0 (the default) keeps no reference.
        replay: supervised episodes, ``(problem, steps)`` pairs (e.g. the reference episodes the policy
            was fine-tuned on, :func:`codegym.training.policy_sft.synthetic_episodes`). Each iteration
            draws as many of them as it plays episodes, and the update adds ``replay_coef`` times
            their mean negative log-likelihood per step (InstructGPT's "PPO-ptx", Ouyang et al. 2022,
            arXiv 2203.02155: it keeps the policy on the data it was fine-tuned on). Empty: pure RL.
        replay_coef: the weight of the replay's log-likelihood beside the policy-gradient term.
        max_grad_norm: gradients are clipped to this norm.
        gamma: discount of the returns-to-go.
        max_steps: steps per episode, the code step included.
        max_new_tokens: the longest step, in tokens.
        temperature: the sampling temperature of the episodes; the loss, the KL penalty and the replay's
            log-likelihood score ``softmax(logits / temperature)``, the distribution sampled from.
        checkpoint_every: iterations between checkpoints; the last iteration is always saved.
        keep_checkpoints: how many of the latest checkpoints stay on disk.
        seed: seeds the tasks and the sampling of every iteration: the same seed repeats a run.
        sandbox: a sandbox name (started once, closed at the end) or a running sandbox you own.
        progress: show a progress bar over iterations.
        protocol: the prompt protocol for a policy given by spec (``native``, ``think``, ``direct``;
            None: the model's own, e.g. ``think`` for ``smollm2-135m-instruct``).
        lora_r: train a LoRA adapter of this rank instead of every weight (0: the whole model); the
            checkpoints then hold the adapter alone, and ``load_policy(checkpoint)`` loads it on its base.
        device: where a policy given by spec runs (default: ``cuda`` when available, else ``cpu``).
        dtype: the weights' dtype for a policy given by spec: ``float32`` on a CPU (no bf16 units there:
            bf16 is several times slower), ``bfloat16`` on a GPU.
    """
    import torch

    from codegym.models import HFPolicy, load_policy
    from codegym.rewards import make_reward_scheme
    from codegym.sandbox import Sandbox, make_sandbox
    from codegym.tasks import check_task_options, load_tasks

    _check_arguments(
        iterations=iterations,
        tasks_per_iteration=tasks_per_iteration,
        group_size=group_size,
        max_steps=max_steps,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        advantage=advantage,
        skip_uniform_groups=skip_uniform_groups,
        negative_weight=negative_weight,
        gamma=gamma,
        learning_rate=learning_rate,
        max_grad_norm=max_grad_norm,
        weight_decay=weight_decay,
        kl_coef=kl_coef,
        env_options=env_options,
        lora_r=lora_r,
        replay=replay,
        replay_coef=replay_coef,
    )
    # The task and reward options are refused before the policy loads, not after.
    if isinstance(tasks, str):
        check_task_options(tasks, split=split, **(task_options or {}))
    if isinstance(reward, str):
        make_reward_scheme(reward, **(reward_options or {}))
    if isinstance(policy, str):
        options: dict[str, Any] = {"device": device, "dtype": None if dtype == "float32" else dtype}
        if protocol is not None:
            options["protocol"] = protocol
        policy = load_policy(policy, **options)
    elif protocol is not None or device is not None:
        raise UserError("protocol and device apply to a policy given by spec; set them on your HFPolicy")
    if not isinstance(policy, HFPolicy):
        raise TypeError(
            f"policy must be a model spec or an HFPolicy (a local transformers model to differentiate), got "
            f"{type(policy).__name__}; an OpenAI-server policy cannot be trained here"
        )
    source = (
        load_tasks(tasks, split=split, **(task_options or {}))
        if isinstance(tasks, str)
        else load_tasks(tasks)
    )
    env_options = with_reward(env_options, reward, reward_options, process_reward)
    # What must match for a resumed run to be the same run (iterations, progress and sandbox need not).
    settings = _describe(
        {
            "seed": seed,
            "tasks": tasks,
            "split": split,
            "task_options": task_options,
            "tasks_per_iteration": tasks_per_iteration,
            "group_size": group_size,
            "env_options": env_options,
            "advantage": advantage,
            **({"skip_uniform_groups": True} if skip_uniform_groups else {}),
            **({"negative_weight": negative_weight} if negative_weight != 1.0 else {}),
            "learning_rate": learning_rate,
            "weight_decay": weight_decay,
            **({"kl_coef": kl_coef} if kl_coef else {}),
            **({"replay": len(replay), "replay_coef": replay_coef} if replay else {}),
            "gamma": gamma,
            "max_steps": max_steps,
            "max_new_tokens": max_new_tokens,
            **({"temperature": temperature} if temperature != 1.0 else {}),
            **({"protocol": policy.protocol.name} if policy.protocol.name != "native" else {}),
            **({"lora_r": lora_r} if lora_r else {}),
        }
    )
    # The reference is the policy as given, copied before any adapter or resumed checkpoint changes it.
    reference = _frozen_copy(policy.model) if kl_coef else None
    if lora_r:
        from codegym.models.lora import add_lora

        policy.model = add_lora(policy.model, lora_r)

    out_path = run_folder(out_dir)
    trainable = [parameter for parameter in policy.model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=weight_decay)
    seed_everything(seed)
    metrics: list[IterationMetrics] = []
    baseline: float | None = None
    state = resume(out_path, policy, optimizer, settings, lora=bool(lora_r))
    if state is not None:
        baseline = state["baseline"]
        metrics = [IterationMetrics(**entry) for entry in state["metrics"]]
    resumed_from = len(metrics)

    from tqdm import tqdm

    box = sandbox if isinstance(sandbox, Sandbox) else make_sandbox(sandbox)
    bar = tqdm(
        total=iterations, initial=resumed_from, desc="policy gradient", unit="iter", disable=not progress
    )
    try:
        for iteration in range(resumed_from, iterations):
            started = time.perf_counter()
            batch = _draw_tasks(source, tasks_per_iteration, np.random.default_rng([seed, iteration]))
            episodes = rollout(
                policy,
                batch,
                samples_per_task=group_size,
                temperature=temperature,  # on-policy: the loss scores this temperature's distribution
                seed=int(np.random.SeedSequence([seed, iteration, 1]).generate_state(1)[0]),
                max_steps=max_steps,
                max_new_tokens=max_new_tokens,
                sandbox=box,
                env_options=env_options,
                training_step=iteration,
            )
            returns = [returns_to_go(episode.rewards, gamma) for episode in episodes]
            advantages, baseline = _advantages(returns, advantage, group_size, baseline)
            advantages = weigh_negatives(advantages, negative_weight)
            kept = _informative(returns, group_size) if skip_uniform_groups else [True] * len(episodes)
            problems = {task.task_id: task.problem for task in batch}
            supervised = _draw_replay(replay, len(episodes), np.random.default_rng([seed, iteration, 2]))
            loss, grad_norm, kl = _update(
                policy,
                optimizer,
                [episode for episode, keep in zip(episodes, kept, strict=True) if keep],
                problems,
                [values for values, keep in zip(advantages, kept, strict=True) if keep],
                max_grad_norm,
                reference,
                kl_coef,
                supervised,
                replay_coef,
                temperature,
            )
            skipped = (len(kept) - sum(kept)) // group_size
            metrics.append(
                _measure(iteration, episodes, loss, grad_norm, kl, time.perf_counter() - started, skipped)
            )
            finished = iteration + 1
            if finished % checkpoint_every == 0 or finished == iterations:
                state = {
                    "settings": settings,
                    "iteration": finished,
                    "optimizer": optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "baseline": baseline,
                    "metrics": [asdict(entry) for entry in metrics],
                }
                save_checkpoint(out_path, finished, policy, state, keep_checkpoints)
            bar.update(1)
            bar.set_postfix(reward=f"{metrics[-1].mean_reward:.3f}", solved=f"{metrics[-1].solve_rate:.2f}")
    finally:
        bar.close()
        if box is not sandbox:
            box.close()
    return PolicyGradientResult(
        out_dir=str(out_path),
        checkpoint=str(latest_checkpoint(out_path)),
        iterations=len(metrics),
        resumed_from=resumed_from,
        metrics=tuple(metrics),
    )


def _check_arguments(
    *,
    iterations: int,
    tasks_per_iteration: int,
    group_size: int,
    max_steps: int,
    max_new_tokens: int,
    temperature: float,
    checkpoint_every: int,
    keep_checkpoints: int,
    advantage: str,
    skip_uniform_groups: bool,
    negative_weight: float,
    gamma: float,
    learning_rate: float,
    max_grad_norm: float,
    weight_decay: float,
    kl_coef: float,
    env_options: dict[str, Any] | None,
    lora_r: int,
    replay: Sequence[tuple[str, Sequence[str]]],
    replay_coef: float,
) -> None:
    """Refuse a bad argument of :func:`train_policy_gradient` with a message that names the fix."""
    for name, value, low in (
        ("iterations", iterations, 1),
        ("tasks_per_iteration", tasks_per_iteration, 1),
        ("group_size", group_size, 2 if advantage in GROUP_ADVANTAGES else 1),
        ("max_steps", max_steps, 1),
        ("max_new_tokens", max_new_tokens, 1),
        ("checkpoint_every", checkpoint_every, 1),
        ("keep_checkpoints", keep_checkpoints, 1),
    ):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            hint = " (GRPO compares the episodes of a group)" if name == "group_size" else ""
            raise UserError(f"{name} must be an int >= {low}{hint}, got {value!r}")
    if advantage not in ADVANTAGES:
        raise UserError(f"advantage must be one of {ADVANTAGES}, got {advantage!r}")
    if skip_uniform_groups and advantage not in GROUP_ADVANTAGES:
        raise UserError(
            f"skip_uniform_groups needs a group-relative advantage {GROUP_ADVANTAGES}, got {advantage!r}: "
            "REINFORCE's baseline gives a uniform group nonzero advantages"
        )
    if not (isinstance(temperature, int | float) and temperature > 0):
        raise UserError(
            f"temperature must be a number > 0, got {temperature!r}: policy gradient samples its episodes "
            "(greedy episodes of a group would all be the same)"
        )
    if not (isinstance(negative_weight, int | float) and 0.0 <= negative_weight <= 1.0):
        raise UserError(
            f"negative_weight must be in [0, 1] (1: the plain policy gradient, 0: positive advantages "
            f"only), got {negative_weight!r}"
        )
    if not 0.0 < gamma <= 1.0:
        raise UserError(f"gamma must be in (0, 1], got {gamma!r}")
    if not (learning_rate > 0 and max_grad_norm > 0 and weight_decay >= 0 and kl_coef >= 0):
        raise UserError(
            "learning_rate and max_grad_norm must be > 0, weight_decay and kl_coef >= 0, got "
            f"{learning_rate!r}, {max_grad_norm!r}, {weight_decay!r}, {kl_coef!r}"
        )
    refuse_reward_keys(env_options, "train_policy_gradient")
    from codegym.env import CodeReasonEnv
    from codegym.options import check_keywords

    check_keywords(CodeReasonEnv, env_options or {}, "CodeReasonEnv (env_options)")

    if not (isinstance(lora_r, int) and lora_r >= 0):
        raise UserError(f"lora_r must be an int >= 0 (0: no LoRA), got {lora_r!r}")
    if not replay_coef >= 0:
        raise UserError(f"replay_coef must be >= 0, got {replay_coef!r}")
    for episode in replay:
        if not (
            isinstance(episode, tuple | list)
            and len(episode) == 2
            and isinstance(episode[0], str)
            and not isinstance(episode[1], str)
            and all(isinstance(step, str) for step in episode[1])
            and len(episode[1]) > 0
        ):
            raise UserError(
                "replay must hold (problem, steps) pairs: a problem string and a non-empty sequence of "
                f"step strings, as synthetic_episodes returns; got {episode!r:.200}"
            )


def _advantages(
    returns: list[list[float]], advantage: str, group_size: int, baseline: float | None
) -> tuple[list[list[float]], float | None]:
    """Each step's advantage, and the REINFORCE baseline for the next iteration."""
    if advantage in GROUP_ADVANTAGES:  # rollout returns each task's group in a row
        groups = [returns[start : start + group_size] for start in range(0, len(returns), group_size)]
        scale = advantage == "grpo"
        return [
            episode for group in groups for episode in group_relative_advantages(group, scale=scale)
        ], baseline
    flat = [value for episode in returns for value in episode]
    batch_mean = float(np.mean(flat)) if flat else 0.0
    # Last iteration's baseline: independent of this batch's actions, so the gradient stays unbiased.
    reference = batch_mean if baseline is None else baseline
    advantages = [[value - reference for value in episode] for episode in returns]
    return advantages, BASELINE_MOMENTUM * reference + (1 - BASELINE_MOMENTUM) * batch_mean


def _informative(returns: list[list[float]], group_size: int) -> list[bool]:
    """For each episode, whether its group (``group_size`` episodes in a row) is not uniform."""
    kept: list[bool] = []
    for start in range(0, len(returns), group_size):
        group = returns[start : start + group_size]
        kept.extend([not uniform_group(group)] * len(group))
    return kept


def refuse_reward_keys(env_options: dict[str, Any] | None, trainer: str) -> None:
    """Refuse ``env_options`` that set the reward, which a trainer takes as its own arguments.

    Raises:
        UserError: naming the keys and where they go instead.
    """
    clashing = sorted(set(env_options or {}) & {"reward", "reward_options", "process_reward"})
    if clashing:
        raise UserError(f"env_options must not set {clashing}: pass them as {trainer}'s arguments")


def with_reward(
    env_options: dict[str, Any] | None,
    reward: str | RewardScheme | RewardFn,
    reward_options: dict[str, Any] | None,
    process_reward: str | ProcessRewardModel | None,
) -> dict[str, Any]:
    """The env options a trainer's episodes are played with: ``env_options`` and the reward arguments, the
    PRM loaded when given by spec."""
    from codegym.models import load_prm

    prm = load_prm(process_reward) if isinstance(process_reward, str) else process_reward
    return {**(env_options or {}), "reward": reward, "reward_options": reward_options, "process_reward": prm}


def _describe(value: Any) -> Any:
    """``value`` as plain data, for the saved settings: an object by its name (a callable's, else its type's)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(key): _describe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_describe(item) for item in value]
    return getattr(value, "__qualname__", type(value).__name__)


def _draw_tasks(source: TaskSource, n: int, rng: np.random.Generator) -> list[Task]:
    # rollout plays one env over the batch, which needs distinct task ids.
    drawn: dict[str, Task] = {}
    for _ in range(100 * n):
        task = source.sample(rng)
        drawn.setdefault(task.task_id, task)
        if len(drawn) == n:
            return list(drawn.values())
    raise UserError(f"could not draw {n} distinct tasks from {source!r}; lower tasks_per_iteration")


def _draw_replay(
    replay: Sequence[tuple[str, Sequence[str]]], n: int, rng: np.random.Generator
) -> list[tuple[str, Sequence[str]]]:
    """``n`` of the replay's episodes (all of them when it holds fewer), drawn without replacement."""
    if not replay:
        return []
    chosen = rng.choice(len(replay), size=min(n, len(replay)), replace=False)
    return [replay[int(i)] for i in chosen]


def _update(
    policy: HFPolicy,
    optimizer: torch.optim.Optimizer,
    episodes: list[Episode],
    problems: dict[str, str],
    advantages: list[list[float]],
    max_grad_norm: float,
    reference: Any = None,
    kl_coef: float = 0.0,
    supervised: Sequence[tuple[str, Sequence[str]]] = (),
    supervised_coef: float = 0.0,
    temperature: float = 1.0,
) -> tuple[float, float, float]:
    """One AdamW step on ``-mean(A_t * log pi(step_t | prompt_t))`` plus the KL penalty towards
    ``reference`` (when given) plus ``supervised_coef`` times the mean negative log-likelihood of the
    ``supervised`` episodes' steps; returns (loss, grad norm, mean log-ratio to the reference). Steps
    whose weight is 0 are not scored (the same loss and gradient, less work)."""
    import torch

    taken = [
        (
            policy_prompt(render_state(problems[episode.task_id], episode.steps[:t]), t),
            step,
            episode_advantages[t],
            _sampled_ids(episode, t),
            True,  # sampled by the policy: the KL penalty applies
        )
        for episode, episode_advantages in zip(episodes, advantages, strict=True)
        for t, step in enumerate(episode.steps)
    ]
    imitated = [
        (policy_prompt(render_state(problem, tuple(steps[:t])), t), step, None, None, False)
        for problem, steps in supervised
        for t, step in enumerate(steps)
    ]
    # Each term is a mean over its own steps. The loss divides by the steps taken, as it did before the
    # replay term existed (a run without a replay computes the very same numbers); the replay's weights
    # make up the rest.
    scale = len(taken) or len(imitated)
    rows = taken + [(p, s, supervised_coef * scale / len(imitated), ids, on) for p, s, _, ids, on in imitated]
    if not rows:
        return 0.0, 0.0, 0.0
    # Each episode's steps in order: its rows ride on one sequence where their tokens allow (pg_scoring).
    # A step of weight 0 (a zero advantage, with no KL term to score) adds exactly 0 to the loss and its
    # gradient: it is not scored, and an episode with no other step is not run (a uniform group's).
    chains, row = [], 0
    for length in [len(e.steps) for e in episodes] + [len(steps) for _, steps in supervised]:
        chain = [
            i for i in range(row, row + length) if rows[i][2] != 0.0 or (reference is not None and rows[i][4])
        ]
        if chain:
            chains.append(chain)
        row += length
    prompt_ids, continuation_ids = row_token_ids(
        policy, [r[0] for r in rows], [r[1] for r in rows], [r[3] for r in rows]
    )
    # The model stays in eval mode (HFPolicy's): no dropout, so these are the log-probs it sampled from.
    optimizer.zero_grad(set_to_none=True)
    loss_total, log_ratio_total = 0.0, 0.0
    for first in range(0, len(chains), policy.batch_size):  # micro-batches of episodes, gradients accumulate
        chunk = chains[first : first + policy.batch_size]
        members = [index for chain in chunk for index in chain]
        logprobs = step_log_probs(policy, prompt_ids, continuation_ids, chunk, temperature=temperature)[
            members
        ]  # (B,)
        weights = torch.tensor([rows[i][2] for i in members], device=logprobs.device)
        loss = -(weights * logprobs).sum() / scale
        on_policy = torch.tensor([rows[i][4] for i in members], device=logprobs.device)
        if reference is not None and bool(on_policy.any()):
            with torch.no_grad():
                reference_logprobs = step_log_probs(
                    policy, prompt_ids, continuation_ids, chunk, model=reference, temperature=temperature
                )[members]
            log_ratio = (logprobs - reference_logprobs) * on_policy
            loss = loss + kl_coef * 0.5 * (log_ratio**2).sum() / len(taken)
            log_ratio_total += float(log_ratio.detach().sum())
        loss.backward()
        loss_total += loss.item()
    for parameter in policy.model.parameters():  # with every step skipped: the zero gradient it had
        if parameter.requires_grad and parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), max_grad_norm)
    optimizer.step()
    return loss_total, float(grad_norm), log_ratio_total / max(len(taken), 1)


def _sampled_ids(episode: Episode, t: int) -> tuple[int, ...] | None:
    """The ids the policy sampled for step t, the token that ended the step included (the choice to end
    it there is an action too: left out, the gradient would never teach where a step ends, and raising a
    step's other tokens would lower the end's probability alone); None when the episode did not keep
    them (the step is then tokenized from its text)."""
    if len(episode.step_token_ids) != len(episode.steps) or episode.step_token_ids[t] is None:
        return None
    ids = episode.step_token_ids[t]
    ends = episode.step_end_token_ids
    end = ends[t] if len(ends) == len(episode.steps) else None
    return ids if end is None else (*ids, end)


def _frozen_copy(model: Any) -> Any:
    import copy

    reference = copy.deepcopy(model)
    reference.eval()
    reference.requires_grad_(False)
    return reference


def _measure(
    iteration: int,
    episodes: list[Episode],
    loss: float,
    grad_norm: float,
    kl: float,
    seconds: float,
    skipped_groups: int = 0,
) -> IterationMetrics:
    return IterationMetrics(
        iteration=iteration,
        mean_reward=float(np.mean([e.total_reward for e in episodes])),
        hidden_pass_rate=float(np.mean([e.hidden_pass_rate for e in episodes])),
        solve_rate=float(np.mean([e.hidden_all_passed for e in episodes])),
        code_rate=float(np.mean([e.end == "code" for e in episodes])),
        mean_steps=float(np.mean([len(e.steps) for e in episodes])),
        loss=loss,
        grad_norm=grad_norm,
        seconds=seconds,
        kl=kl,
        skipped_groups=skipped_groups,
    )
