"""The gain of one evaluation over another on the same tasks, with a 95% interval.

Two evaluations of one policy pair before and after on the same held-out tasks, so the gain is the mean
of per-task differences (each -1, 0 or 1) and its interval is the normal one over those differences
(paired: a task both policies solve, or both fail, adds no noise). Tasks of several seeds pool the same
way: each seed's tasks are its own pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


@dataclass(frozen=True)
class Gain:
    """``after - before`` pass@1 over paired tasks.

    Attributes:
        mean: the mean per-task difference (the gain in pass@1).
        low: the 95% interval's lower end.
        high: the 95% interval's upper end.
        tasks: how many task pairs.
    """

    mean: float
    low: float
    high: float
    tasks: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:+.3f} (95% interval {self.low:+.3f} to {self.high:+.3f}, {self.tasks} tasks)"


def paired_gain(before: Sequence[float], after: Sequence[float]) -> Gain:
    """The mean of ``after[i] - before[i]`` with its 95% normal interval.

    Example:
        >>> str(paired_gain([0, 0, 1, 0], [1, 0, 1, 1]))
        '+0.500 (95% interval -0.066 to +1.066, 4 tasks)'

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    if len(before) != len(after) or not before:
        raise ValueError(
            f"paired_gain needs two equally long, non-empty lists, got {len(before)} and {len(after)}"
        )
    differences = [float(a) - float(b) for b, a in zip(before, after, strict=True)]
    n = len(differences)
    mean = sum(differences) / n
    variance = sum((d - mean) ** 2 for d in differences) / (n - 1) if n > 1 else 0.0
    half = Z95 * math.sqrt(variance / n)
    return Gain(mean, mean - half, mean + half, n)


def pass_rate(passed: Sequence[int]) -> dict[str, float | int]:
    """pass@1 of per-task verdicts (1 or 0) with its 95% normal interval, as a JSON-ready dict.

    Example:
        >>> pass_rate([1, 0, 0, 0])["pass@1"]
        0.25

    Raises:
        ValueError: no verdicts.
    """
    if not passed:
        raise ValueError("pass_rate needs at least one verdict")
    n = len(passed)
    p = sum(passed) / n
    half = Z95 * math.sqrt(p * (1 - p) / n)
    return {"pass@1": p, "low": p - half, "high": p + half, "tasks": n}
