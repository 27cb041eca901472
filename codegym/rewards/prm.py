"""The process reward model (PRM) protocol and how a path's step scores are aggregated."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from codegym.errors import UserError


@runtime_checkable
class ProcessRewardModel(Protocol):
    """Scores reasoning steps: P(step is good) given the problem and the steps before it.

    ``score(problem, steps)`` returns one float per step, in order; the score of step j may depend only
    on the problem and steps 1..j. The env calls it after every step and uses the last score as the
    process reward r_t. Any object with this method plugs in (a trained model, a heuristic, a stub).

    Example:
        >>> class LengthPRM:
        ...     def score(self, problem, steps):
        ...         return [min(1.0, len(step) / 100) for step in steps]
        >>> isinstance(LengthPRM(), ProcessRewardModel)
        True
    """

    def score(self, problem: str, steps: Sequence[str]) -> list[float]: ...


def _prod(scores: Sequence[float]) -> float:
    return math.prod(scores)


def _mean(scores: Sequence[float]) -> float:
    return sum(scores) / len(scores)


AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "min": min,
    "prod": _prod,
    "last": lambda scores: scores[-1],
    "mean": _mean,
}


def aggregate(scores: Sequence[float], how: str = "min") -> float:
    """One value for a path from its step scores: ``"min"``, ``"prod"``, ``"last"`` or ``"mean"``.

    Example:
        >>> aggregate([0.9, 0.5, 0.8], "min"), aggregate([0.5, 0.5], "prod")
        (0.5, 0.25)
    """
    if how not in AGGREGATIONS:
        raise UserError(f"unknown aggregation {how!r}: choose one of {', '.join(AGGREGATIONS)}")
    if len(scores) == 0:
        raise UserError("cannot aggregate an empty list of step scores (a path needs at least one step)")
    return float(AGGREGATIONS[how](scores))


def checked_scores(model: ProcessRewardModel, problem: str, steps: Sequence[str]) -> list[float]:
    """Call ``model.score`` and check it kept its contract: one finite float per step."""
    return _checked(model, model.score(problem, list(steps)), steps)


def checked_batch_scores(
    model: ProcessRewardModel, paths: Sequence[tuple[str, Sequence[str]]]
) -> list[list[float]]:
    """:func:`checked_scores` for many ``(problem, steps)`` paths: one ``model.score_batch`` call when the
    model has one (a transformers PRM scores them in a few batched passes), else ``score`` per path."""
    batch_score = getattr(model, "score_batch", None)
    if batch_score is None:
        return [checked_scores(model, problem, steps) for problem, steps in paths]
    results = list(batch_score([(problem, list(steps)) for problem, steps in paths]))
    if len(results) != len(paths):
        raise UserError(
            f"{type(model).__name__}.score_batch returned {len(results)} score lists for {len(paths)} "
            "paths; return one per path"
        )
    return [_checked(model, scores, steps) for scores, (_, steps) in zip(results, paths, strict=True)]


def _checked(model: ProcessRewardModel, scores: Any, steps: Sequence[str]) -> list[float]:
    name = type(model).__name__
    try:
        scores = [float(score) for score in scores]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}.score must return a list of floats, one per step: {exc}") from None
    if len(scores) != len(steps):
        raise UserError(
            f"{name}.score returned {len(scores)} scores for {len(steps)} steps; return one per step"
        )
    bad = [score for score in scores if not math.isfinite(score)]
    if bad:
        raise UserError(f"{name}.score returned a non-finite score {bad[0]!r}; scores must be finite floats")
    return scores
