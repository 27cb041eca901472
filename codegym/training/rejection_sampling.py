"""Rejection-sampling fine-tuning: the policy learns its own episodes that the reward kept.

Expert iteration (Anthony et al. 2017), STaR (Zelikman et al. 2022, arXiv 2203.14465), RFT (Yuan et al.
2023, arXiv 2308.01825) and ReST-EM (Singh et al. 2023, arXiv 2312.06585) share one loop, and each
round here is one turn of it:

1. draw ``tasks_per_round`` fresh tasks (seeded by ``(seed, round)``) and play ``samples_per_task``
   episodes of each with :func:`codegym.agents.rollout` at ``temperature``, rewarded by the env's
   ``reward`` scheme (the same argument as :func:`~codegym.training.train_policy_gradient`'s);
2. keep every episode whose return (the sum of its rewards) is at least ``min_return``, each distinct
   ``(task, steps)`` once: with ``reward="terminal"`` and ``min_return=1.0``, the episodes whose code
   passed every test that pays. With ``greedy_failures_only``, the policy also plays each task once
   greedily (temperature 0) and only the tasks whose greedy episode falls short of ``min_return`` keep
   their episodes: the solutions the policy can sample but does not yet choose, where the rest mostly
   repeat what its greedy decoding already writes (STaR's focus on the problems it fails);
3. fine-tune the policy on the kept episodes by supervised learning
   (:func:`codegym.training.policy_sft.train_policy`: ``epochs`` passes at ``learning_rate``, warm-up
   then cosine decay), starting from the last round's policy. With ``from_start``, each round instead
   fine-tunes the start policy on every episode kept so far, this round's and the earlier rounds': STaR
   and ReST-EM restart from the base model each iteration, so that one round's drift is not the next
   round's starting point.

It is outcome-reward RL whose update is maximum likelihood on the rewarded samples (ReST-EM's M-step),
so it takes the supervised learning rate and schedule, where a policy-gradient step must stay small.
The control that tells the reward's effect from "fine-tuning on one's own samples" is the same loop
with a reward that ignores the task (a hashed uniform number) and a ``min_return`` that keeps as many
episodes.

``out_dir/round-K/`` holds the policy after round K (``load_policy`` loads it) with its tokenizer,
``metrics.json`` from the fine-tuning and ``kept.json``, the episodes it learnt (``problem``, ``steps``); ``out_dir/rounds.json`` the run's settings and every finished
round's figures. A round's folder is written beside its final name and renamed, so a crash loses at most
the round under way; calling again with the same ``out_dir`` and settings resumes after the last
finished round.

Example:
    >>> from codegym.training.rejection_sampling import train_rejection_sampling
    >>> result = train_rejection_sampling("/tmp/rft", rounds=1, tasks_per_round=64)  # doctest: +SKIP
    >>> result.rounds[-1].kept  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codegym.agents import rollout
from codegym.errors import UserError
from codegym.training.run import check_same_settings, run_folder, write_metrics

if TYPE_CHECKING:
    from codegym.agents.base import Episode
    from codegym.rewards import ProcessRewardModel, RewardFn, RewardScheme
    from codegym.sandbox import Sandbox

ROUNDS_FILE = "rounds.json"
KEPT_FILE = "kept.json"
ROUND_PREFIX = "round-"
ROLLOUT_CHUNK = 64  # tasks per rollout batch: the episodes of one batch decode together


@dataclass(frozen=True)
class RoundMetrics:
    """One round of :func:`train_rejection_sampling`.

    Attributes:
        round: 1-based.
        episodes: episodes played.
        kept: distinct episodes whose return reached ``min_return``: the round's training data.
        tasks_kept: tasks with at least one kept episode.
        mean_return: mean episode return.
        solve_rate: share of the episodes played whose code passed every hidden test.
        trained_on: with ``from_start``, the distinct episodes kept so far, which the round fine-tuned
            on (None without it: the round's ``kept``).
        tasks_greedy_kept_out: with ``greedy_failures_only``, the tasks whose greedy episode reached
            ``min_return`` and so kept nothing (None without it).
        final_loss: the fine-tuning's mean loss over its last logged steps (None when nothing was kept or
            the fine-tuning was too short to log a loss).
        rollout_seconds, train_seconds: wall time of the two halves.
    """

    round: int
    episodes: int
    kept: int
    tasks_kept: int
    mean_return: float
    solve_rate: float
    final_loss: float | None
    rollout_seconds: float
    train_seconds: float
    tasks_greedy_kept_out: int | None = None
    trained_on: int | None = None


@dataclass(frozen=True)
class RejectionSamplingResult:
    """What :func:`train_rejection_sampling` did.

    Attributes:
        out_dir: the run's folder.
        policy: the folder of the latest round's policy (the start policy's folder when no round ran).
        resumed_from: rounds already finished when this call started.
        rounds: every finished round's metrics, in order.
    """

    out_dir: str
    policy: str
    resumed_from: int
    rounds: tuple[RoundMetrics, ...]


def kept_episodes(
    episodes: Sequence[Episode],
    problems: dict[str, str],
    min_return: float,
    skip_tasks: frozenset[str] = frozenset(),
) -> list[tuple[str, tuple[str, ...]]]:
    """The ``(problem, steps)`` of every episode whose return is at least ``min_return``, each distinct
    pair once, in the order played; none of a task in ``skip_tasks`` (task ids).

    Example:
        >>> from codegym.agents.base import Episode
        >>> def played(task, steps, reward):
        ...     return Episode(task, steps, "x", (reward,), None, 0.0, False, "code", None, "sampling")
        >>> episodes = [played("a", ("s",), 1.0), played("a", ("s",), 1.0), played("b", ("t",), 0.5)]
        >>> kept_episodes(episodes, {"a": "add", "b": "sub"}, 1.0)
        [('add', ('s',))]
        >>> kept_episodes(episodes, {"a": "add", "b": "sub"}, 0.5, skip_tasks=frozenset({"a"}))
        [('sub', ('t',))]
    """
    kept: dict[tuple[str, tuple[str, ...]], None] = {}
    for episode in episodes:
        if episode.total_reward >= min_return and episode.task_id not in skip_tasks:
            kept.setdefault((problems[episode.task_id], tuple(episode.steps)), None)
    return list(kept)


def train_rejection_sampling(
    out_dir: str | os.PathLike[str],
    *,
    policy: str = "tiny",
    tasks: str = "synthetic",
    split: str | None = "train",
    task_options: dict[str, Any] | None = None,
    rounds: int = 1,
    tasks_per_round: int = 1000,
    samples_per_task: int = 4,
    temperature: float = 0.5,
    reward: str | RewardScheme | RewardFn = "terminal",
    reward_options: dict[str, Any] | None = None,
    process_reward: str | ProcessRewardModel | None = None,
    env_options: dict[str, Any] | None = None,
    min_return: float = 1.0,
    greedy_failures_only: bool = False,
    from_start: bool = False,
    epochs: float = 1.0,
    learning_rate: float = 3e-4,
    batch_size: int = 16,
    max_steps: int = 4,
    max_new_tokens: int = 256,
    seed: int = 0,
    sandbox: str | Sandbox = "auto",
    progress: bool = True,
) -> RejectionSamplingResult:
    """Fine-tune ``policy`` on its own episodes that ``reward`` kept, ``rounds`` times; see the module
    docstring.

    Args:
        out_dir: the run's folder; a run there with the same settings is resumed.
        policy: a spec for :func:`codegym.models.load_policy`: ``"tiny"``, a built-in name or a folder
            (each round fine-tunes a copy; the start is never changed).
        tasks: the task source's name (:func:`codegym.tasks.load_tasks`).
        split: the source's split (None for its default).
        task_options: the source's options, e.g. ``{"min_ops": 1, "max_ops": 3}`` for synthetic.
        rounds: the total to reach, counting those an earlier run in ``out_dir`` finished.
        tasks_per_round: fresh tasks drawn each round.
        samples_per_task: episodes played per task.
        temperature: the sampling temperature (> 0: at 0 a task's samples are identical).
        reward: the env's reward scheme: a name, a RewardScheme or ``fn(context, **kwargs)``.
        reward_options: options of a scheme given by name.
        process_reward: a PRM, a spec for :func:`codegym.models.load_prm` or None (no PRM).
        env_options: more :class:`~codegym.env.CodeReasonEnv` options (``outcome``, ...).
        min_return: an episode is kept when the sum of its rewards is at least this.
        greedy_failures_only: keep episodes only of the tasks whose greedy episode's return falls short
            of ``min_return`` (each round plays every task once more, greedily, to find them).
        from_start: each round fine-tunes the start policy on all the episodes kept so far, instead of
            the last round's policy on this round's (sampling always uses the last round's policy).
        epochs, learning_rate, batch_size: the fine-tuning's (see ``train_policy``).
        max_steps: steps per episode, the code step included.
        max_new_tokens: the longest step, in tokens.
        seed: seeds each round's tasks, sampling and fine-tuning: the same seed repeats a run.
        sandbox: a sandbox name (started once, closed at the end) or a running sandbox you own.
        progress: show progress bars.

    Raises:
        UserError: a bad argument, or ``out_dir`` holds a run with other settings.
    """
    from codegym.models import load_policy
    from codegym.rewards import make_reward_scheme
    from codegym.sandbox import Sandbox, make_sandbox
    from codegym.tasks import check_task_options, load_tasks
    from codegym.training.policy_gradient import _describe, _draw_tasks, refuse_reward_keys, with_reward
    from codegym.training.policy_sft import train_policy

    for name, value in (
        ("rounds", rounds),
        ("tasks_per_round", tasks_per_round),
        ("samples_per_task", samples_per_task),
        ("batch_size", batch_size),
        ("max_steps", max_steps),
        ("max_new_tokens", max_new_tokens),
    ):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise UserError(f"{name} must be an int >= 1, got {value!r}")
    for name, value in (("temperature", temperature), ("epochs", epochs), ("learning_rate", learning_rate)):
        if not value > 0:
            raise UserError(f"{name} must be > 0, got {value!r}")
    if not isinstance(policy, str):
        raise UserError(
            f'policy must be a spec ("tiny", a built-in name or a folder), got {type(policy).__name__}: '
            "each round fine-tunes a saved copy; save your model with save_pretrained and pass its folder"
        )
    flags = {"greedy_failures_only": greedy_failures_only, "from_start": from_start}
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise UserError(f"{name} must be True or False, got {flag!r}")
    refuse_reward_keys(env_options, "train_rejection_sampling")
    check_task_options(tasks, split=split, **(task_options or {}))
    if isinstance(reward, str):
        make_reward_scheme(reward, **(reward_options or {}))
    start = str(_policy_folder(policy))
    source = load_tasks(tasks, split=split, **(task_options or {}))
    env_options = with_reward(env_options, reward, reward_options, process_reward)
    settings = _describe(
        {
            "policy": policy,
            "tasks": tasks,
            "split": split,
            "task_options": task_options,
            "tasks_per_round": tasks_per_round,
            "samples_per_task": samples_per_task,
            "temperature": temperature,
            "env_options": env_options,
            "min_return": min_return,
            # Named only when on, so runs saved before the options existed still resume.
            **{name: True for name, flag in flags.items() if flag},
            "epochs": epochs,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "max_steps": max_steps,
            "max_new_tokens": max_new_tokens,
            "seed": seed,
        }
    )
    out_path = run_folder(out_dir)
    finished: list[RoundMetrics] = []
    saved_file = out_path / ROUNDS_FILE
    if saved_file.is_file():
        saved = json.loads(saved_file.read_text())
        check_same_settings(out_path, saved["settings"], settings)
        finished = [RoundMetrics(**entry) for entry in saved["rounds"]]
        finished = [entry for entry in finished if (out_path / f"{ROUND_PREFIX}{entry.round}").is_dir()]
    resumed_from = len(finished)
    current = str(out_path / f"{ROUND_PREFIX}{resumed_from}") if resumed_from else start
    # With from_start, every distinct episode kept so far (the finished rounds' from their kept.json).
    pool: dict[tuple[str, tuple[str, ...]], None] = {}
    if from_start:
        for entry in finished:
            kept_file = out_path / f"{ROUND_PREFIX}{entry.round}" / KEPT_FILE
            pool.update(
                dict.fromkeys((e["problem"], tuple(e["steps"])) for e in json.loads(kept_file.read_text()))
            )

    box = sandbox if isinstance(sandbox, Sandbox) else make_sandbox(sandbox)
    try:
        for number in range(resumed_from + 1, rounds + 1):
            started = time.perf_counter()
            rng = np.random.default_rng([seed, number])
            batch = _draw_tasks(source, tasks_per_round, rng)
            learner = load_policy(current)
            protocol = learner.protocol.name
            play = functools.partial(
                _play,
                learner,
                batch,
                seed=seed,
                number=number,
                max_steps=max_steps,
                max_new_tokens=max_new_tokens,
                box=box,
                env_options=env_options,
                progress=progress,
            )
            episodes = play(samples_per_task=samples_per_task, temperature=temperature)
            solved_greedily: frozenset[str] = frozenset()
            if greedy_failures_only:
                greedy = play(samples_per_task=1, temperature=0.0)
                solved_greedily = frozenset(e.task_id for e in greedy if e.total_reward >= min_return)
            del learner
            problems = {task.task_id: task.problem for task in batch}
            data = kept_episodes(episodes, problems, min_return, solved_greedily)
            rollout_seconds = time.perf_counter() - started
            final = out_path / f"{ROUND_PREFIX}{number}"
            partial = out_path / f".{final.name}.partial"
            shutil.rmtree(partial, ignore_errors=True)  # left by a crash mid-round
            started = time.perf_counter()
            if from_start:
                pool.update(dict.fromkeys(data))
                training, base = list(pool), start
            else:
                training, base = data, current
            if training:
                trained = train_policy(
                    partial,
                    base=base,
                    episodes=training,
                    epochs=epochs,
                    learning_rate=learning_rate,
                    batch_size=batch_size,
                    seed=int(np.random.SeedSequence([seed, number, 2]).generate_state(1)[0]),
                    progress=progress,
                    protocol=protocol,
                )
                loss = None if np.isnan(trained.final_loss) else trained.final_loss
            else:  # nothing reached min_return: the round leaves the policy as it was
                shutil.copytree(base, partial)
                loss = None
            # What the round learnt, for reading: the kept episodes as {"problem", "steps"} records.
            kept_file = partial / KEPT_FILE
            kept_file.write_text(
                json.dumps([{"problem": p, "steps": list(steps)} for p, steps in data], indent=1)
            )
            os.replace(partial, final)
            finished.append(
                RoundMetrics(
                    round=number,
                    episodes=len(episodes),
                    kept=len(data),
                    tasks_kept=len({problem for problem, _ in data}),
                    mean_return=float(np.mean([episode.total_reward for episode in episodes])),
                    solve_rate=float(np.mean([episode.hidden_all_passed for episode in episodes])),
                    final_loss=loss,
                    rollout_seconds=round(rollout_seconds, 1),
                    train_seconds=round(time.perf_counter() - started, 1),
                    tasks_greedy_kept_out=len(solved_greedily) if greedy_failures_only else None,
                    trained_on=len(training) if from_start else None,
                )
            )
            write_metrics(
                out_path, {"settings": settings, "rounds": [asdict(e) for e in finished]}, ROUNDS_FILE
            )
            current = str(final)
    finally:
        if box is not sandbox:
            box.close()
    return RejectionSamplingResult(
        out_dir=str(out_path), policy=current, resumed_from=resumed_from, rounds=tuple(finished)
    )


def _play(
    policy: Any,
    batch: list,
    samples_per_task: int,
    temperature: float,
    seed: int,
    number: int,
    max_steps: int,
    max_new_tokens: int,
    box: Sandbox,
    env_options: dict[str, Any],
    progress: bool,
) -> list[Episode]:
    """Every task's episodes, ``ROLLOUT_CHUNK`` tasks at a time (each chunk seeded on its own)."""
    from tqdm import tqdm

    episodes: list[Episode] = []
    starts = range(0, len(batch), ROLLOUT_CHUNK)
    kind = "episodes" if temperature > 0 else "greedy episodes"
    for index, start in enumerate(
        tqdm(starts, desc=f"round {number} {kind}", unit="chunk", disable=not progress)
    ):
        episodes += rollout(
            policy,
            batch[start : start + ROLLOUT_CHUNK],
            samples_per_task=samples_per_task,
            temperature=temperature,
            seed=int(np.random.SeedSequence([seed, number, 1, index]).generate_state(1)[0]),
            max_steps=max_steps,
            max_new_tokens=max_new_tokens,
            sandbox=box,
            env_options=env_options,
        )
    return episodes


def _policy_folder(spec: str) -> Path:
    """The folder a policy spec loads from: the shipped tiny policy's, a built-in model's, or the folder
    itself (a hub id cannot be fine-tuned round after round here; download it to a folder first)."""
    from codegym.models.builtin import BUILTIN_MODELS, builtin_model_dir
    from codegym.models.tiny import tiny_checkpoint

    if spec == "tiny":
        return tiny_checkpoint("policy")
    if spec in BUILTIN_MODELS:
        return Path(builtin_model_dir(spec))
    if not (Path(spec) / "config.json").is_file():
        raise UserError(
            f'policy {spec!r} is not "tiny", a built-in model {list(BUILTIN_MODELS)} or a model folder; '
            "pass a folder saved with save_pretrained"
        )
    return Path(spec)
