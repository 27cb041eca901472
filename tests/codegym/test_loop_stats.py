"""The paired gain of one evaluation over another, with its 95% interval."""

from __future__ import annotations

import math

import pytest

from codegym.loop.stats import Z95, paired_gain, pass_rate


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


def test_copies_of_one_function_count_once_when_grouped():
    # Each of 40 tasks three times over: grouped, the interval is the one of the 40 distinct tasks.
    before = [0] * 20 + [1] * 5 + [0] * 15
    after = [1] * 12 + [0] * 8 + [1] * 5 + [0] * 15
    copies = 3
    distinct = paired_gain(before, after)
    tripled = paired_gain(before * copies, after * copies)
    grouped = paired_gain(before * copies, after * copies, groups=list(range(40)) * copies)
    assert grouped.mean == pytest.approx(distinct.mean) and grouped.groups == 40 and grouped.tasks == 120
    assert grouped.high - grouped.mean == pytest.approx(distinct.high - distinct.mean)
    assert tripled.high - tripled.mean < grouped.high - grouped.mean  # ungrouped copies look too sure


def test_pass_rate_with_groups_reports_them_and_widens():
    passed = [1, 1, 1, 0, 0, 0] * 10
    alike = [i // 6 for i in range(60)]  # ten groups, each with the same three passes and fails
    assert "groups" not in pass_rate(passed)
    flat, grouped = pass_rate(passed), pass_rate(passed, groups=[i // 3 for i in range(60)])
    assert grouped["groups"] == 20 and grouped["pass@1"] == flat["pass@1"] == 0.5
    assert grouped["high"] - 0.5 > flat["high"] - 0.5
    assert pass_rate(passed, groups=alike)["high"] == pytest.approx(0.5)  # every group at the mean: no spread
    with pytest.raises(ValueError, match="one label per task"):
        pass_rate(passed, groups=[0, 1])
