"""The TCG contract: only tests the reference passes are kept, duplicates dropped, at most n, seeded."""

from __future__ import annotations

import dataclasses

import pytest

from codegym.sandbox import CallTest, StdioTest
from codegym.tasks import Task
from codegym.tcg import (
    Proposal,
    TestCaseGenerator,
    UnsupportedTask,
    arguments_key,
    with_visible_tests,
)


class ScriptedTCG(TestCaseGenerator):
    """Proposes a fixed list; records the rng draws it was handed."""

    def __init__(self, proposals, **kwargs):
        super().__init__(**kwargs)
        self.proposals = list(proposals)
        self.draws = []

    def propose(self, task, n, rng):
        self.draws.append(int(rng.integers(1 << 30)))
        return list(self.proposals)


@pytest.fixture
def local(sandbox_factory):
    return sandbox_factory("local")


def test_kept_tests_are_exactly_those_the_reference_passes(sandbox, double_task):
    proposals = [
        Proposal((3,), expected=6),  # right claim
        Proposal((3,), expected=7),  # wrong claim: dropped
        Proposal((4,)),  # no claim: the reference supplies 8
        Proposal(("ab",)),  # "abab": plain data, kept with the reference's answer
        Proposal((None,)),  # the reference raises TypeError: dropped
    ]
    with ScriptedTCG(proposals, sandbox=sandbox) as tcg:
        report = tcg.generate_report(double_task, n=10)
    assert [(t.args, t.expected) for t in report.tests] == [((3,), 6), ((4,), 8), (("ab",), "abab")]
    assert (report.proposed, report.valid, report.duplicates) == (5, 3, 0)
    assert report.validity_rate == pytest.approx(3 / 5)
    assert len(report.rejected_reasons) == 2 and "7" in report.rejected_reasons[0]
    rerun = sandbox.run(double_task.reference_solution, report.tests)
    assert rerun.all_passed and rerun.total == 3


def test_duplicates_are_dropped_and_n_caps_the_kept_tests(local, double_task):
    proposals = [Proposal((1,)), Proposal((1,), expected=2), Proposal((2,)), Proposal((5,)), Proposal((6,))]
    with ScriptedTCG(proposals, sandbox=local) as tcg:
        report = tcg.generate_report(double_task, n=3)
    assert [t.args for t in report.tests] == [(1,), (2,), (5,)]
    assert (report.valid, report.duplicates) == (5, 1)


def test_a_reference_that_raises_assertion_error_gives_no_test(local):
    # AssertionError is reported as FAILED with no value; it must not become a test expecting None.
    task = Task(
        "toy/positive",
        "Write `half(x: int) -> int` for x > 0.",
        "half",
        (CallTest("half", (4,), expected=2),),
        reference_solution="def half(x):\n    assert x > 0\n    return x // 2\n",
    )
    with ScriptedTCG([Proposal((0,)), Proposal((6,))], sandbox=local) as tcg:
        report = tcg.generate_report(task, n=5)
    assert [(t.args, t.expected) for t in report.tests] == [((6,), 3)]
    assert report.rejected_reasons == ("AssertionError",)


def test_non_plain_results_and_timeouts_are_dropped(local):
    task = Task(
        "toy/odd",
        "odd",
        "f",
        (CallTest("f", (1,), expected=1),),
        reference_solution=(
            "def f(x):\n    if x == 0:\n        return object()\n    if x == 1:\n        return 1\n"
            "    while True:\n        pass\n"
        ),
    )
    with ScriptedTCG([Proposal((0,)), Proposal((1,)), Proposal((2,))], sandbox=local, timeout_s=0.3) as tcg:
        report = tcg.generate_report(task, n=5)
    assert [t.args for t in report.tests] == [(1,)]
    assert report.valid == 1 and report.proposed == 3


def test_generate_reports_batches_tasks_and_keeps_order(local, double_task):
    other = dataclasses.replace(double_task, task_id="toy/double2")
    with ScriptedTCG([Proposal((7,))], sandbox=local) as tcg:
        reports = tcg.generate_reports([double_task, other], n=2)
        assert tcg.generate(double_task, n=2) == reports[0].tests
    assert [r.task_id for r in reports] == ["toy/double", "toy/double2"]
    assert all(r.tests == (CallTest("double", (7,), expected=14),) for r in reports)


def test_rng_is_seeded_by_seed_and_task_id(local, double_task):
    other = dataclasses.replace(double_task, task_id="toy/other")
    runs = []
    for seed in (0, 0, 1):
        with ScriptedTCG([Proposal((1,))], sandbox=local, seed=seed) as tcg:
            tcg.generate_reports([double_task, other], n=1)
            runs.append(tcg.draws)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2] and runs[0][0] != runs[0][1]


def test_select_hook_chooses_what_is_kept(local, double_task):
    class LastFirst(ScriptedTCG):
        def select(self, candidates, n):
            return list(reversed(candidates))[:n]

    with LastFirst([Proposal((1,)), Proposal((2,)), Proposal((3,))], sandbox=local) as tcg:
        assert [t.args for t in tcg.generate(double_task, n=2)] == [(3,), (2,)]


def test_unsupported_tasks_raise_or_are_skipped_with_a_reason(local, double_task):
    stdio = Task("toy/stdio", "echo", None, (StdioTest("1", "1"),), reference_solution="print(input())")
    no_reference = dataclasses.replace(double_task, reference_solution=None)
    with ScriptedTCG([Proposal((1,))], sandbox=local) as tcg:
        with pytest.raises(UnsupportedTask, match="entry_point"):
            tcg.generate(stdio)
        with pytest.raises(UnsupportedTask, match="reference_solution"):
            tcg.generate(no_reference)
        with pytest.raises(ValueError, match="positive int"):
            tcg.generate(double_task, n=0)
    with ScriptedTCG([Proposal((1,))], sandbox=local, skip_unsupported=True) as tcg:
        skipped, served = tcg.generate_reports([stdio, double_task], n=2)
    assert skipped.tests == () and skipped.proposed == 0 and "entry_point" in skipped.skipped
    assert served.skipped is None and served.tests == (CallTest("double", (1,), expected=2),)


def test_with_visible_tests_records_the_source(double_task):
    tests = (CallTest("double", (9,), expected=18),)
    task = with_visible_tests(double_task, tests)
    assert task.visible_tests == tests and task.hidden_tests == double_task.hidden_tests
    assert task.visible_source == "tcg" and double_task.visible_source == "task"
    assert dataclasses.replace(double_task, visible_tests=None).visible_source == "hidden"
    assert "visible_source" not in double_task.metadata  # the original is untouched


def test_arguments_key_tells_types_apart():
    assert arguments_key((1,)) != arguments_key((True,))
    assert arguments_key(([1],)) != arguments_key(((1,),))
    assert arguments_key((1,), {"b": 2}) == arguments_key([1], {"b": 2})


def test_a_generator_owns_a_sandbox_it_starts(double_task):
    tcg = ScriptedTCG([Proposal((2,))], sandbox="local")
    assert tcg.generate(double_task, n=1)[0].expected == 4
    tcg.close()
    assert tcg._sandbox is None
