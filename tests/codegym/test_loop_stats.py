"""The paired gain of one evaluation over another, with its 95% interval."""

from __future__ import annotations

import math

import pytest

from codegym.loop.stats import Z95, paired_gain


def test_the_gain_is_the_mean_paired_difference_with_a_normal_interval():
    before, after = [0, 0, 1, 1, 0, 1], [1, 0, 1, 0, 1, 1]
    gain = paired_gain(before, after)
    differences = [1, 0, 0, -1, 1, 0]
    sd = math.sqrt(sum((d - 1 / 6) ** 2 for d in differences) / 5)
    assert gain.mean == pytest.approx(1 / 6) and gain.tasks == 6
    assert gain.high - gain.mean == pytest.approx(Z95 * sd / math.sqrt(6))
    assert gain.mean - gain.low == pytest.approx(gain.high - gain.mean)
    assert not gain.excludes_zero()


def test_a_task_both_solve_adds_no_noise():
    gain = paired_gain([0] * 50 + [1] * 50, [1] * 100)
    assert gain.mean == 0.5 and gain.excludes_zero()
    same = paired_gain([1, 0, 1], [1, 0, 1])
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)


def test_unpaired_lists_are_refused():
    with pytest.raises(ValueError, match="equally long"):
        paired_gain([1, 0], [1])
    with pytest.raises(ValueError, match="non-empty"):
        paired_gain([], [])
