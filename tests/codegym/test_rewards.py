"""Each reward scheme's arithmetic against hand-computed values, and the PRM and outcome helpers."""

from __future__ import annotations

import math

import pytest

from codegym.rewards import (
    AllPass,
    CompiledPassRate,
    DenseReward,
    GatedOutcome,
    LinearAlpha,
    LogAlpha,
    O1CoderReward,
    PotentialShaping,
    RewardContext,
    TerminalReward,
    aggregate,
    checked_scores,
    make_outcome,
    make_reward_scheme,
)
from codegym.sandbox import CallTest, ExecutionReport, TestResult, TestStatus
from codegym.tasks import Task

TASK = Task("toy/one", "Return 1.", "one", (CallTest("one", (), expected=1),))


def context(rewards, outcome=None, *, terminated=False, truncated=False, training_step=0) -> RewardContext:
    return RewardContext(
        step_index=len(rewards),
        process_rewards=tuple(rewards),
        outcome=outcome,
        terminated=terminated,
        truncated=truncated,
        report=None,
        task=TASK,
        training_step=training_step,
    )


def report(statuses, compiled=True) -> ExecutionReport:
    return ExecutionReport(compiled=compiled, tests=tuple(TestResult(TestStatus(s)) for s in statuses))


def test_aggregations_by_hand():
    scores = [0.9, 0.5, 0.8]
    assert aggregate(scores, "min") == 0.5
    assert aggregate(scores, "prod") == pytest.approx(0.36)
    assert aggregate(scores, "last") == 0.8
    assert aggregate(scores, "mean") == pytest.approx(2.2 / 3)
    with pytest.raises(ValueError, match="unknown aggregation 'max'"):
        aggregate(scores, "max")
    with pytest.raises(ValueError, match="empty"):
        aggregate([], "min")


def test_outcomes_by_hand():
    half = report(["passed", "failed"])
    assert make_outcome("pass_rate")(half) == 0.5
    assert make_outcome("all_pass")(half) == 0.0
    assert AllPass(tau_pass=1.0, tau_fail=-1.0)(half) == -1.0
    assert AllPass()(report(["passed", "passed"])) == 1.0
    assert CompiledPassRate(alpha=0.2)(half) == pytest.approx(0.2 * 1 + 0.8 * 0.5)
    assert CompiledPassRate(alpha=0.2)(report([], compiled=False)) == 0.0
    with pytest.raises(ValueError, match="unknown outcome"):
        make_outcome("pass_at_k")
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        CompiledPassRate(alpha=1.5)


def test_alpha_schedules():
    linear = LinearAlpha()
    assert [linear(t) for t in (0, 10, 50, 89, 90, 1000)] == pytest.approx([1.0, 0.9, 0.5, 0.11, 0.1, 0.1])
    log = LogAlpha(rate=0.2)
    assert log(0) == 1.0
    assert log(10) == pytest.approx(1 - 0.2 * math.log(11))
    assert log(10**9) == 0.1


def test_o1coder_phi_by_hand():
    scheme = O1CoderReward()  # linear alpha, gamma 0.9
    assert scheme(context([0.5, 0.8])).value == 0.0  # nothing before the last step
    last = scheme(context([0.5, 0.8, 1.0], outcome=0.5, terminated=True, training_step=10))
    # alpha(10) = 0.9; process = (0.9*0.5 + 0.81*0.8 + 0.729*1.0) / 3 = 0.609
    assert last.terms["alpha"] == pytest.approx(0.9)
    assert last.terms["discounted_process_mean"] == pytest.approx(0.609)
    assert last.value == pytest.approx(0.9 * 0.5 + 0.1 * 0.609)
    assert last.terms["phi"] == last.value
    constant = O1CoderReward(alpha=0.25, gamma=1.0)(context([0.4, 0.8], outcome=1.0, terminated=True))
    assert constant.value == pytest.approx(0.25 * 1.0 + 0.75 * 0.6)
    no_prm = O1CoderReward(alpha="log")(context([], outcome=1.0, terminated=True, training_step=0))
    assert no_prm.value == 1.0


def test_dense_by_hand():
    scheme = DenseReward(process_weight=0.5)
    assert scheme(context([0.8])).value == pytest.approx(0.4)
    last = scheme(context([0.8, 0.6], outcome=1.0, terminated=True))
    assert last.value == pytest.approx(0.3 + 1.0)
    assert dict(last.terms) == pytest.approx({"weighted_process": 0.3, "weighted_outcome": 1.0})
    assert scheme(context([0.8, 0.6, 0.2], outcome=0.0, truncated=True)).value == pytest.approx(0.1)


def test_potential_shaping_by_hand_and_telescopes():
    scheme = PotentialShaping(gamma=1.0, aggregation="last")
    process = [0.2, 0.6, 0.9]
    rewards = [
        scheme(context(process[:1])).value,
        scheme(context(process[:2])).value,
        scheme(context(process, outcome=0.75, terminated=True)).value,
    ]
    assert rewards == pytest.approx([0.2, 0.4, 0.75 - 0.6])  # Phi(terminal) = 0
    assert sum(rewards) == pytest.approx(0.75)  # shaping telescopes: the return is the outcome alone
    discounted = PotentialShaping(gamma=0.5, aggregation="min")(context([0.8, 0.4]))
    assert discounted.value == pytest.approx(0.5 * 0.4 - 0.8)
    truncated = PotentialShaping()(context([0.2, 0.6], outcome=0.0, truncated=True))
    assert truncated.terms["potential_after"] == 0.6  # a truncated state keeps its potential


def test_terminal_and_callable():
    assert TerminalReward()(context([0.9])).value == 0.0
    assert TerminalReward()(context([0.9], outcome=0.5, terminated=True)).value == 0.5

    def length_penalty(ctx, *, per_step=0.1, **kwargs):
        return (ctx.outcome or 0.0) - per_step * ctx.step_index

    scheme = make_reward_scheme(length_penalty, per_step=0.25)
    assert scheme(context([0.1, 0.1], 1.0, terminated=True)).value == 0.5
    assert scheme(context([0.1])).terms == {"custom": -0.25}
    with pytest.raises(TypeError, match="must return a float"):
        make_reward_scheme(lambda ctx, **kw: "good")(context([0.1]))
    with pytest.raises(ValueError, match="finite"):
        make_reward_scheme(lambda ctx, **kw: float("nan"))(context([0.1]))


def test_gated_outcome_pays_a_pass_by_the_weakest_step():
    gated = make_reward_scheme("gated")
    assert gated(context([0.9])).value == 0.0  # not the last step
    passed = gated(context([0.9, 0.2, 0.8], 1.0, terminated=True))
    assert passed.value == pytest.approx(0.2) and passed.terms == {"gate": 0.2}
    assert gated(context([0.9, 0.9], 0.0, terminated=True)).value == 0.0  # a PRM never rewards a failure
    assert gated(context([], 1.0, terminated=True)).value == 1.0  # no PRM: the outcome alone
    assert GatedOutcome("prod")(context([0.5, 0.5], 1.0, terminated=True)).value == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown aggregation 'max'"):
        GatedOutcome("max")


def test_scheme_lookup_errors():
    assert make_reward_scheme("dense").name == "dense"
    with pytest.raises(
        ValueError, match=r"unknown reward scheme 'sparse'.*o1coder, dense, potential, terminal, gated"
    ):
        make_reward_scheme("sparse")
    with pytest.raises(TypeError, match="scheme name"):
        make_reward_scheme(42)
    with pytest.raises(ValueError, match="gamma must be in"):
        make_reward_scheme("o1coder", gamma=0.0)
    with pytest.raises(ValueError, match="unknown alpha schedule"):
        make_reward_scheme("o1coder", alpha="cosine")


def test_checked_scores_enforces_the_prm_contract(stub_prm):
    assert checked_scores(stub_prm, "p", ["Outline: a", "x"]) == [0.8, 0.2]

    class Short:
        def score(self, problem, steps):
            return [0.5]

    class Infinite:
        def score(self, problem, steps):
            return [math.inf] * len(steps)

    with pytest.raises(ValueError, match="returned 1 scores for 2 steps"):
        checked_scores(Short(), "p", ["a", "b"])
    with pytest.raises(ValueError, match="non-finite"):
        checked_scores(Infinite(), "p", ["a"])
