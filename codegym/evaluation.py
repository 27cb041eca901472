"""Measuring a policy: episodes through the env in batches, and pass@k on the hidden tests.

:func:`rollout` plays ``samples_per_task`` episodes of every task with a :class:`~codegym.models.Policy`
through the agents' engine (:class:`~codegym.agents.SamplingAgent`): at each depth, every unfinished
episode's prompt goes into one ``Policy.sample`` call and every code action of that depth into one
sandbox batch. The verdict is the env's own: ``info["hidden_all_passed"]`` on the dataset's hidden tests.

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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from codegym.env_config import DEFAULTS
from codegym.errors import UserError
from codegym.models.policy import Policy
from codegym.sandbox import Sandbox, make_sandbox
from codegym.tasks.task import Task, TaskList

if TYPE_CHECKING:
    from codegym.agents.base import Episode


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of ``k`` samples drawn from ``n`` (``c`` of them correct) is correct.

    Raises:
        UserError: unless ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    if not (0 <= c <= n and 1 <= k <= n):
        raise UserError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def aspr(episodes: Sequence[object]) -> float | None:
    """O1-Coder's ASPR: of the episodes whose last step was a code action, the share that passed.

    Each episode needs ``code`` (None when it ended without code) and ``hidden_all_passed`` (an
    agent's :class:`~codegym.agents.Episode`, which :func:`rollout` returns too). Pass@1 counts an episode that never wrote code as
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


def summarize(results: Sequence[Episode], ks: Sequence[int] = (1,)) -> EpisodeSummary:
    """pass@k (for each k that the samples allow), ASPR, how often code was written, tokens per task.

    Raises:
        UserError: no results.
    """
    if not results:
        raise UserError("summarize needs at least one episode result")
    by_task: dict[str, list[Episode]] = {}
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


def __getattr__(name: str):
    # One episode type everywhere: what rollout returns is the agents' Episode. The agents import this
    # package, so the name resolves on first use.
    if name == "EpisodeResult":
        from codegym.agents.base import Episode

        return Episode
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ROLLOUT_OWN = ("tasks", "sandbox", "max_steps", "timeout_s")  # rollout's own arguments, not env_options


def rollout(
    policy: Policy,
    tasks: Sequence[Task],
    *,
    samples_per_task: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    max_steps: int = DEFAULTS.max_steps,
    max_new_tokens: int = 256,
    sandbox: str | Sandbox = "auto",
    timeout_s: float = DEFAULTS.timeout_s,
    progress: bool = False,
    env_options: dict | None = None,
    training_step: int | None = None,
) -> list[Episode]:
    """Play ``samples_per_task`` episodes per task; results come task by task, samples in order.

    This is :class:`~codegym.agents.SamplingAgent` (greedy at ``temperature=0``) solving every sample as
    one batch: the engine, the episode type (:class:`~codegym.agents.Episode`, with ``sample`` set) and
    the seeding rule are the agents', so ``codegym eval``, the loop's evaluation and policy gradient
    measure the same thing. Seeds: the agent's i-th policy call (here depth i, all unfinished episodes in
    one ``Policy.sample`` call) samples with ``(seed, i)`` mixed into one int, so a run repeats exactly;
    every task is reset with ``seed``. With ``temperature=0`` the samples of a task are identical (so use 1).
    ``sandbox`` is a name (started here and closed at the end) or a running sandbox the caller owns.
    ``env_options`` go to :class:`~codegym.env.CodeReasonEnv` (``reward``, ``process_reward``,
    ``visible_tests``, ...), so the episodes' rewards follow any scheme; ``training_step`` feeds reward
    schedules such as O1-Coder's alpha(t).
    """
    from codegym.agents.sampling import SamplingAgent
    from codegym.env import CodeReasonEnv

    if not tasks:
        raise UserError("rollout needs at least one task")
    if not (isinstance(samples_per_task, int) and samples_per_task >= 1):
        raise UserError(f"samples_per_task must be an int >= 1, got {samples_per_task!r}")
    env_options = dict(env_options or {})
    clashing = sorted(set(env_options) & set(_ROLLOUT_OWN))
    if clashing:
        raise UserError(f"env_options must not set {clashing}: they are rollout's own arguments")
    from codegym.options import check_keywords

    check_keywords(CodeReasonEnv, env_options, "CodeReasonEnv (env_options)", taken=_ROLLOUT_OWN)
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
        bar = _progress_bar(max_steps, progress)
        agent = SamplingAgent(
            _Counted(policy, bar), temperature=temperature, seed=seed, max_new_tokens=max_new_tokens
        )
        ids = [task.task_id for task in tasks for _ in range(samples_per_task)]
        episodes = agent.solve_many(env, ids, seed=seed)
        bar.close()
        return [replace(e, sample=i % samples_per_task) for i, e in enumerate(episodes)]
    finally:
        if owns_sandbox:
            box.close()


class _Counted:
    """The policy, ticking a progress bar at each ``sample`` call (one per depth)."""

    def __init__(self, policy: Policy, bar) -> None:
        self._policy, self._bar = policy, bar

    def sample(self, *args, **kwargs):
        samples = self._policy.sample(*args, **kwargs)
        self._bar.update(1)
        return samples

    def __getattr__(self, name: str):
        return getattr(self._policy, name)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="episodes, by depth", unit="depth", disable=not enabled)
