"""Mutants: seeded first-order AST mutations, kept only when the task's own tests prove them wrong."""

from __future__ import annotations

import pytest

from codegym.sandbox import CallTest
from codegym.tasks import Task
from codegym.tasks.synthetic import SyntheticTasks
from codegym.tcg import OracleTCG, judge_mutants, known_wrong_mutants, mutate_program

PROGRAM = '''def helper(x):
    return x * 2


def unused(x):
    return x - 100


def total_small(values, limit):
    """Sum the values below limit; 1 stays 1."""
    total = 0
    for value in values[1:]:
        if value < limit and not value == 7:
            total += helper(value)
        else:
            break
    return max(total, 0)
'''


@pytest.fixture
def local(sandbox_factory):
    return sandbox_factory("local")


def test_mutants_cover_the_operators_compile_and_differ():
    mutants = mutate_program(PROGRAM, entry_point="total_small")
    sources = [m.program for m in mutants]
    assert len(set(sources)) == len(sources)
    for source in sources:
        compile(source, "<mutant>", "exec")
        assert source != PROGRAM
    operators = {m.operator for m in mutants}
    assert operators == {
        "compare",
        "constant",
        "arithmetic",
        "boolean",
        "negation",
        "slice",
        "builtin",
        "statement",
        "return_early",
    }
    descriptions = {m.description for m in mutants}
    assert {"line 13: Lt -> LtE", "line 16: break -> continue", "line 17: max -> min"} <= descriptions
    assert "line 13: Not dropped" in descriptions
    assert any("value <= limit" in source for source in sources)


def test_only_reachable_functions_are_mutated_and_docstrings_are_kept():
    mutants = mutate_program(PROGRAM, entry_point="total_small")
    assert any("x / 2" in m.program or "x + 2" in m.program for m in mutants)  # helper is called
    assert all("x - 100" in m.program for m in mutants)  # unused is never mutated
    assert all("1 stays 1" in m.program for m in mutants)


def test_mutation_order_is_seeded():
    first = mutate_program(PROGRAM, entry_point="total_small", seed=3)
    assert first == mutate_program(PROGRAM, entry_point="total_small", seed=3)
    assert first != mutate_program(PROGRAM, entry_point="total_small", seed=4)
    assert sorted(m.program for m in first) == sorted(
        m.program for m in mutate_program(PROGRAM, entry_point="total_small", seed=4)
    )
    assert mutate_program(PROGRAM, entry_point="total_small", seed=3, limit=5) == first[:5]


def test_bad_programs_are_refused():
    with pytest.raises(ValueError, match="does not parse"):
        mutate_program("def f(:\n")
    with pytest.raises(ValueError, match="no top-level function 'g'"):
        mutate_program("def f():\n    return 1\n", entry_point="g")


def test_known_wrong_mutants_fail_the_hidden_tests_and_oracle_tests_catch_them(local):
    tasks = SyntheticTasks("test", max_ops=2).tasks(3, seed=5)
    wrong = known_wrong_mutants(tasks, local, per_task=5, seed=0)
    assert all(1 <= len(mutants) <= 5 for mutants in wrong)
    for task, mutants in zip(tasks, wrong, strict=True):
        assert local.run(task.reference_solution, task.hidden_tests).all_passed
        reports = local.run_batch([(m.program, task.hidden_tests) for m in mutants])
        assert not any(report.all_passed for report in reports), task.task_id
    with OracleTCG(sandbox=local) as tcg:
        generated = [g.tests for g in tcg.generate_reports(tasks, 10)]
    verdicts = judge_mutants(wrong, [{"oracle": tests} for tests in generated], local)
    caught = [v.caught["oracle"] for task_verdicts in verdicts for v in task_verdicts if not v.timed_out]
    assert caught and sum(caught) / len(caught) >= 0.8


def test_judge_mutants_names_the_catching_set_and_drops_hangs(local):
    task = Task(
        "toy/countdown",
        "count down",
        "steps",
        (CallTest("steps", (3,), expected=3), CallTest("steps", (0,), expected=0)),
        reference_solution=(
            "def steps(n):\n    count = 0\n    while n > 0:\n        n -= 1\n        count += 1\n    return count\n"
        ),
    )
    mutants = mutate_program(task.reference_solution, entry_point="steps")
    hang = next(m for m in mutants if m.description == "line 4: Sub -> Add")  # n += 1 never ends
    off = next(m for m in mutants if m.description == "line 2: 0 -> 1")  # count starts at 1
    sets = {"weak": (CallTest("steps", (5,), expected=5),), "zero": (CallTest("steps", (0,), expected=0),)}
    [[hung, judged]] = judge_mutants([[hang, off]], [sets], local, timeout_s=0.3)
    assert hung.timed_out and hung.caught == {}
    assert not judged.timed_out and judged.caught == {"weak": True, "zero": True}
    assert known_wrong_mutants([task], local, per_task=50, timeout_s=0.3) != ()
    assert hang not in known_wrong_mutants([task], local, per_task=50, timeout_s=0.3)[0]
