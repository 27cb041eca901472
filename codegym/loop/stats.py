"""The gain of one evaluation over another on the same tasks, with a 95% interval.

Two evaluations of one policy pair before and after on the same held-out tasks, so the gain is the mean
of per-task differences (each -1, 0 or 1) and its interval is the normal one over those differences
(paired: a task both policies solve, or both fail, adds no noise). Tasks of several seeds pool the same
way: each seed's tasks are its own pairs.

Tasks are not always independent draws. The synthetic test split has about 200 distinct k = 2 functions
(a composition with its parameters), so 300 evaluation tasks hold about 100 of them, several times each
with other examples, and a policy solves the copies of one function alike. Pass ``groups`` (one label
per task, e.g. the composition) and the interval is the cluster-robust one: the variance is summed over
groups, not tasks, so 300 tasks of 100 functions count for about what 100 independent tasks would.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from codegym.errors import UserError

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


@dataclass(frozen=True)
class Gain:
    """``after - before`` pass@1 over paired tasks.

    Attributes:
        mean: the mean per-task difference (the gain in pass@1).
        low: the 95% interval's lower end.
        high: the 95% interval's upper end.
        tasks: how many task pairs.
        groups: how many independent groups the interval assumed (``tasks`` when no groups were given).
    """

    mean: float
    low: float
    high: float
    tasks: int
    groups: int | None = None

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        groups = f" of {self.groups} functions" if self.groups not in (None, self.tasks) else ""
        return (
            f"{self.mean:+.3f} (95% interval {self.low:+.3f} to {self.high:+.3f}, {self.tasks} tasks{groups})"
        )


def paired_gain(
    before: Sequence[float], after: Sequence[float], groups: Sequence[Hashable] | None = None
) -> Gain:
    """The mean of ``after[i] - before[i]`` with its 95% normal interval, cluster-robust with ``groups``.

    Example:
        >>> str(paired_gain([0, 0, 1, 0], [1, 0, 1, 1]))
        '+0.500 (95% interval -0.066 to +1.066, 4 tasks)'
        >>> str(paired_gain([0, 0, 0, 0], [1, 1, 0, 0], groups=["a", "a", "b", "b"]))
        '+0.500 (95% interval -0.480 to +1.480, 4 tasks of 2 functions)'

    Raises:
        UserError: the lists differ in length or are empty, or ``groups`` has another length.
    """
    if len(before) != len(after) or not before:
        raise UserError(
            f"paired_gain needs two equally long, non-empty lists, got {len(before)} and {len(after)}"
        )
    differences = [float(a) - float(b) for b, a in zip(before, after, strict=True)]
    mean, half, count = _mean_and_half_width(differences, groups)
    return Gain(mean, mean - half, mean + half, len(differences), count)


def pass_rate(passed: Sequence[int], groups: Sequence[Hashable] | None = None) -> dict[str, float | int]:
    """pass@1 of per-task verdicts (1 or 0) with its 95% normal interval (cluster-robust with
    ``groups``), as a JSON-ready dict.

    Example:
        >>> pass_rate([1, 0, 0, 0])["pass@1"]
        0.25

    Raises:
        UserError: no verdicts, or ``groups`` of another length.
    """
    if not passed:
        raise UserError("pass_rate needs at least one verdict")
    p, half, count = _mean_and_half_width([float(v) for v in passed], groups)
    rate: dict[str, float | int] = {"pass@1": p, "low": p - half, "high": p + half, "tasks": len(passed)}
    if groups is not None:
        rate["groups"] = count
    return rate


def _mean_and_half_width(values: list[float], groups: Sequence[Hashable] | None) -> tuple[float, float, int]:
    """The mean, its 95% half-width and the number of independent units (tasks, or groups)."""
    n = len(values)
    mean = sum(values) / n
    if groups is None:
        variance = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return mean, Z95 * math.sqrt(variance / n), n
    if len(groups) != n:
        raise UserError(f"groups needs one label per task: {len(groups)} labels for {n} tasks")
    # The cluster-robust variance of a mean: the groups' summed residuals are the independent units,
    # with the small-sample factor G / (G - 1).
    residuals: dict[Hashable, float] = {}
    for value, group in zip(values, groups, strict=True):
        residuals[group] = residuals.get(group, 0.0) + value - mean
    count = len(residuals)
    if count < 2:
        return mean, 0.0, count
    variance = count / (count - 1) * sum(r * r for r in residuals.values()) / n**2
    return mean, Z95 * math.sqrt(variance), count
