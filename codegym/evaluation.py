"""Measuring a policy: episodes through the env in batches, and pass@k on the hidden tests.

:func:`rollout` plays ``samples_per_task`` episodes of every task with a :class:`~codegym.models.Policy`,
one step at a time: at each depth, every unfinished episode's prompt goes into one ``Policy.sample`` call
and every code action of that depth into one sandbox batch (the env's ``begin_step`` / ``finish_step``).
The verdict is the env's own: ``info["hidden_all_passed"]`` on the dataset's hidden tests.

:func:`pass_at_k` is the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)``.
:func:`aspr` is O1-Coder's average sampling pass rate: of the reasoning paths that reached their code
step, the share whose code passes; report it beside pass@1 (a protocol that makes a model think can lower
pass@1 and still raise ASPR, as O1-Coder saw on MBPP).

Example:
    >>> from codegym.evaluation import pass_at_k
    >>> round(pass_at_k(n=10, c=3, k=1), 3)
    0.3
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codegym.models.policy import Policy
from codegym.sandbox import Sandbox, make_sandbox
from codegym.steps import policy_prompt
from codegym.tasks.task import Task, TaskList


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of ``k`` samples drawn from ``n`` (``c`` of them correct) is correct.

    Raises:
        ValueError: unless ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def aspr(episodes: Sequence[object]) -> float | None:
    """O1-Coder's ASPR: of the episodes whose last step was a code action, the share that passed.

    Each episode needs ``code`` (None when it ended without code) and ``hidden_all_passed`` (an
    :class:`EpisodeResult` or an agent's ``Episode``). Pass@1 counts an episode that never wrote code as
    a failure; ASPR asks only how often the last step of a finished reasoning path succeeds.

    Returns:
        The share, or None when no episode reached a code step (the rate is undefined, not zero).

    Example:
        >>> from types import SimpleNamespace as E
        >>> aspr([E(code="x", hidden_all_passed=True), E(code=None, hidden_all_passed=False)])
        1.0
    """
    finished = [episode for episode in episodes if getattr(episode, "code", None) is not None]
    if not finished:
        return None
    return sum(bool(getattr(episode, "hidden_all_passed", False)) for episode in finished) / len(finished)


@dataclass(frozen=True)
class EpisodeSummary:
    """pass@k and ASPR of a set of episodes, per task then averaged.

    Attributes:
        tasks: how many tasks.
        samples_per_task: episodes per task (the smallest count, when they differ).
        pass_at: ``{k: pass@k}`` for each k asked that is at most ``samples_per_task``.
        aspr: :func:`aspr` over every episode (None when none wrote code).
        code_rate: the share of episodes that ended with a code action.
        tokens_per_task: mean tokens the policy generated per task (all its samples).
    """

    tasks: int
    samples_per_task: int
    pass_at: dict[int, float]
    aspr: float | None
    code_rate: float
    tokens_per_task: float


def summarize(results: Sequence[EpisodeResult], ks: Sequence[int] = (1,)) -> EpisodeSummary:
    """pass@k (for each k that the samples allow), ASPR, how often code was written, tokens per task.

    Raises:
        ValueError: no results.
    """
    if not results:
        raise ValueError("summarize needs at least one episode result")
    by_task: dict[str, list[EpisodeResult]] = {}
    for result in results:
        by_task.setdefault(result.task_id, []).append(result)
    n = min(len(group) for group in by_task.values())
    pass_at = {
        k: sum(pass_at_k(len(g), sum(r.hidden_all_passed for r in g), k) for g in by_task.values())
        / len(by_task)
        for k in sorted(set(ks))
        if 1 <= k <= n
    }
    return EpisodeSummary(
        tasks=len(by_task),
        samples_per_task=n,
        pass_at=pass_at,
        aspr=aspr(results),
        code_rate=sum(r.code is not None for r in results) / len(results),
        tokens_per_task=sum(r.tokens for r in results) / len(by_task),
    )


@dataclass(frozen=True)
class EpisodeResult:
    """One finished episode.

    Attributes:
        task_id: the task.
        sample: which of the task's samples this is (0-based).
        steps: the steps the policy took.
        code: the code action's code; None if the episode ended without one.
        hidden_pass_rate: share of hidden tests passed (0.0 without code).
        hidden_all_passed: every hidden test passed: the episode solved the task.
        rewards: the env's reward after each step.
        total_reward: the sum of the env's rewards.
        end: "code", "max_steps" (truncated) or "empty_step" (the policy wrote nothing).
        tokens: tokens the policy generated in this episode.
    """

    task_id: str
    sample: int
    steps: tuple[str, ...]
    code: str | None
    hidden_pass_rate: float
    hidden_all_passed: bool
    rewards: tuple[float, ...]
    total_reward: float
    end: str
    tokens: int


def rollout(
    policy: Policy,
    tasks: Sequence[Task],
    *,
    samples_per_task: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    max_steps: int = 8,
    max_new_tokens: int = 256,
    sandbox: str | Sandbox = "auto",
    timeout_s: float = 3.0,
    progress: bool = False,
    env_options: dict | None = None,
    training_step: int | None = None,
) -> list[EpisodeResult]:
    """Play ``samples_per_task`` episodes per task; results come task by task, samples in order.

    With ``temperature=0`` the policy is greedy, and the samples of a task are identical (so use 1).
    Seeds: depth ``d`` samples with seed ``(seed, d)`` mixed into one int, so a run repeats exactly.
    ``sandbox`` is a name (started here and closed at the end) or a running sandbox the caller owns.
    ``env_options`` go to :class:`~codegym.env.CodeReasonEnv` (``reward``, ``process_reward``,
    ``visible_tests``, ...), so the episodes' rewards follow any scheme; ``training_step`` feeds reward
    schedules such as O1-Coder's alpha(t).
    """
    from codegym.env import CodeReasonEnv

    if not tasks:
        raise ValueError("rollout needs at least one task")
    if not (isinstance(samples_per_task, int) and samples_per_task >= 1):
        raise ValueError(f"samples_per_task must be an int >= 1, got {samples_per_task!r}")
    env_options = dict(env_options or {})
    clashing = sorted(set(env_options) & {"tasks", "sandbox", "max_steps", "timeout_s"})
    if clashing:
        raise ValueError(f"env_options must not set {clashing}: they are rollout's own arguments")
    owns_sandbox = not isinstance(sandbox, Sandbox)
    box = make_sandbox(sandbox) if owns_sandbox else sandbox
    try:
        # One env plays every episode from its snapshot (step_batch), so all episodes share one verdict
        # cache, each depth's code runs in one sandbox batch, and nothing is built per episode.
        env = CodeReasonEnv(
            tasks=TaskList(list(tasks)), sandbox=box, max_steps=max_steps, timeout_s=timeout_s, **env_options
        )
        if training_step is not None:
            env.set_training_step(training_step)
        episodes = []
        for task in tasks:
            for sample in range(samples_per_task):
                observation, _ = env.reset(seed=seed, options={"task_id": task.task_id})
                episodes.append(_Episode(task.task_id, sample, observation, env.get_state()))
        bar = _progress_bar(len(episodes), progress)
        for depth in range(max_steps):
            active = [episode for episode in episodes if episode.end is None]
            if not active:
                break
            prompts = [policy_prompt(e.observation, depth) for e in active]
            depth_seed = int(np.random.SeedSequence([seed, depth]).generate_state(1)[0])
            samples = policy.sample(
                prompts, n=1, max_new_tokens=max_new_tokens, temperature=temperature, seed=depth_seed
            )
            stepping = []
            for episode, [generated] in zip(active, samples, strict=True):
                episode.tokens += generated.num_tokens
                if generated.text.strip():
                    stepping.append((episode, generated.text))
                else:
                    episode.end = "empty_step"
                    bar.update(1)
            transitions = env.step_batch([e.state for e, _ in stepping], [text for _, text in stepping])
            for (episode, _), transition in zip(stepping, transitions, strict=True):
                episode.observation, episode.state = transition.observation, transition.state
                if transition.terminated or transition.truncated:
                    episode.end = "code" if transition.terminated else "max_steps"
                    episode.info = transition.info
                    bar.update(1)
        bar.close()
        return [episode.result() for episode in episodes]
    finally:
        if owns_sandbox:
            box.close()


class _Episode:
    def __init__(self, task_id: str, sample: int, observation: str, state) -> None:
        self.state = state
        self.task_id = task_id
        self.sample = sample
        self.observation = observation
        self.end: str | None = None
        self.tokens = 0
        self.info: dict = {}

    def result(self) -> EpisodeResult:
        info = self.info
        return EpisodeResult(
            task_id=self.task_id,
            sample=self.sample,
            steps=tuple(self.state.steps),
            code=info.get("code"),
            hidden_pass_rate=float(info.get("hidden_pass_rate", 0.0)),
            hidden_all_passed=bool(info.get("hidden_all_passed", False)),
            rewards=tuple(self.state.rewards),
            total_reward=float(sum(self.state.rewards)),
            end=self.end or "max_steps",
            tokens=self.tokens,
        )


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="episodes", unit="episode", disable=not enabled)
