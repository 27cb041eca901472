"""Scoring episodes: pass@k on the hidden tests, ASPR, and a summary of a set of episodes.

The episodes come from any agent, or from :func:`codegym.agents.rollout` (``samples_per_task`` episodes
of every task with a policy, through the agents' engine). The verdict is the env's own:
``info["hidden_all_passed"]`` on the dataset's hidden tests.

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
from typing import TYPE_CHECKING

from codegym.errors import UserError

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
