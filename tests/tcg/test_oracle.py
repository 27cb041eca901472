"""OracleTCG and the signature reader: inputs from types and examples, outputs from the reference."""

from __future__ import annotations

import ast

import pytest

from codegym.sandbox import AssertTest, CallTest
from codegym.tasks import Task
from codegym.tasks.humaneval import load_humaneval
from codegym.tasks.synthetic import SyntheticTasks
from codegym.tcg import OracleTCG, UnsupportedTask, arguments_key
from codegym.tcg.signature import (
    ArgType,
    example_calls,
    hidden_calls,
    infer_type,
    named_values,
    parse_annotation,
    read_signature,
    refine,
)


@pytest.fixture
def local(sandbox_factory):
    return sandbox_factory("local")


def _task(signature: str, body: str, problem: str = "", hidden=None, name: str = "f") -> Task:
    source = f"def {signature}:\n    {body}\n"
    return Task(
        f"toy/{name}",
        problem or f"Write `{signature}`.",
        name,
        hidden or (CallTest(name, (0,), expected=None),),
        reference_solution=source,
    )


def test_humaneval_0_gets_ten_valid_tests_disjoint_from_the_hidden_ones(sandbox):
    task = load_humaneval()[0]
    with OracleTCG(sandbox=sandbox) as tcg:
        report = tcg.generate_report(task, n=10)
    assert len(report.tests) == 10 and report.validity_rate > 0.9
    assert len({arguments_key(t.args) for t in report.tests}) == 10
    hidden = {arguments_key(t.args) for t in task.hidden_tests}
    assert not hidden & {arguments_key(t.args) for t in report.tests}
    assert {t.expected for t in report.tests} == {True, False}  # select spreads over both answers
    for test in report.tests:
        numbers, threshold = test.args
        assert isinstance(numbers, list) and all(isinstance(x, float) for x in numbers)
        assert isinstance(threshold, float)
    rerun = sandbox.run(task.reference_solution, report.tests)
    assert rerun.all_passed


def test_same_seed_same_tests_other_seed_other_tests(local):
    tasks = [load_humaneval()[i] for i in (1, 12, 53)]
    with OracleTCG(sandbox=local) as first, OracleTCG(sandbox=local) as again:
        assert first.generate_reports(tasks, 8) == again.generate_reports(tasks, 8)
    with OracleTCG(sandbox=local, seed=1) as other:
        assert [g.tests for g in other.generate_reports(tasks, 8)] != [
            g.tests for g in first.generate_reports(tasks, 8)
        ]


def test_synthetic_tasks_get_valid_typed_tests(local):
    tasks = SyntheticTasks("test", max_ops=3).tasks(6, seed=3)
    with OracleTCG(sandbox=local) as tcg:
        reports = tcg.generate_reports(tasks, 10)
    reruns = local.run_batch(
        [(task.reference_solution, r.tests) for task, r in zip(tasks, reports, strict=True)]
    )
    for task, report, rerun in zip(tasks, reports, reruns, strict=True):
        assert len(report.tests) == 10 and rerun.all_passed, task.task_id
        kind = list if task.metadata["input_type"] == "list[int]" else str
        for test in report.tests:
            (value,) = test.args
            assert type(value) is kind
            if kind is list:
                assert all(type(x) is int and abs(x) <= 100 for x in value)


def test_examples_domain_keeps_to_the_examples_and_wide_steps_out(local):
    task = _task(
        "count_ones(bits: str) -> int",
        "return bits.count('1')",
        problem="Count the ones.\n>>> count_ones('0110')\n2\n>>> count_ones('1')\n1\n",
        hidden=(CallTest("count_ones", ("111",), expected=3),),
        name="count_ones",
    )
    with OracleTCG(sandbox=local) as tcg:
        narrow = tcg.generate(task, n=15)
    assert all(set(t.args[0]) <= {"0", "1"} for t in narrow)
    with OracleTCG(sandbox=local, domain="wide") as tcg:
        wide = tcg.generate(task, n=15)
    assert any(set(t.args[0]) - {"0", "1"} for t in wide)

    positive = _task(
        "halve(x: int) -> int", "return x // 2", problem=">>> halve(8)\n4\n>>> halve(3)\n1", name="halve"
    )
    with OracleTCG(sandbox=local, use_task_tests=False) as tcg:
        assert all(t.args[0] >= 0 for t in tcg.generate(positive, n=10))
    with OracleTCG(sandbox=local, domain="wide", use_task_tests=False) as tcg:
        assert any(t.args[0] < 0 for t in tcg.generate(positive, n=10))


def test_untyped_parameters_are_inferred_from_examples_or_refused(local):
    typed_by_example = _task("twice(x)", "return 2 * x", problem="twice(3) -> 6", name="twice")
    with OracleTCG(sandbox=local, use_task_tests=False) as tcg:
        tests = tcg.generate(typed_by_example, n=5)
        assert len(tests) == 5 and all(type(t.args[0]) is int and t.expected == 2 * t.args[0] for t in tests)
        untyped = _task("twice(x)", "return 2 * x", problem="Double it.", name="twice")
        with pytest.raises(UnsupportedTask, match="parameter 'x' of twice has no type annotation"):
            tcg.generate(untyped, n=5)


@pytest.mark.parametrize(
    ("signature", "match"),
    [
        ("f(key: Callable[[int], int])", "not a type this generator can draw"),
        ("f(*values: int)", r"\*args"),
        ("f(x: int, *, y: int)", "keyword-only"),
    ],
)
def test_unsupported_signatures_are_named(local, signature, match):
    with OracleTCG(sandbox=local) as tcg, pytest.raises(UnsupportedTask, match=match):
        tcg.generate(_task(signature, "return 0"), n=3)


def test_skip_unsupported_reports_the_reason(local):
    with OracleTCG(sandbox=local, skip_unsupported=True, use_task_tests=False) as tcg:
        (report,) = tcg.generate_reports([_task("f(x)", "return x", problem="no examples")], n=3)
    assert report.tests == () and "no type annotation" in report.skipped


def test_boolean_outputs_are_balanced(local):
    task = _task("is_big(x: int) -> bool", "return x > 95", problem=">>> is_big(3)\nFalse", name="is_big")
    with OracleTCG(sandbox=local, domain="wide") as tcg:
        tests = tcg.generate(task, n=6)
    # Most draws are small (False); select still keeps both answers when the reference gave both.
    outputs = [t.expected for t in tests]
    assert set(outputs) == {True, False} or outputs == [False] * 6


def test_parse_annotation_reads_typing_and_builtin_generics():
    def parsed(text):
        return str(parse_annotation(ast.parse(text, mode="eval").body))

    assert parsed("List[int]") == "list[int]"
    assert parsed("list[tuple[str, float]]") == "list[tuple[str, float]]"
    assert parsed("Tuple[int, ...]") == "tuple[int, ...]"
    assert parsed("Dict[str, List[int]]") == "dict[str, list[int]]"
    assert parsed("Optional[int]") == "union[int, none]"
    assert parsed("int | None") == "union[int, none]"
    assert parsed("typing.List[str]") == "list[str]"
    assert parsed("'List[int]'") == "list[int]"
    assert parsed("list") == "list[any]"
    with pytest.raises(UnsupportedTask, match="'Foo'"):
        parsed("Foo")


def test_infer_and_refine_fill_in_missing_types():
    assert str(infer_type([1, 2.5])) == "float"
    assert str(infer_type([[1], []])) == "list[int]"
    assert str(infer_type([{"a": 1}])) == "dict[str, int]"
    assert str(infer_type([(1, "x"), (2, "y")])) == "tuple[int, str]"
    assert str(infer_type(["a", None])) == "union[str, none]"
    assert infer_type([]) == ArgType("any")
    assert str(refine(ArgType("list", (ArgType("any"),)), [[1.5], [2.0]])) == "list[float]"


def test_example_calls_come_from_docstrings_prose_and_tests():
    task = Task(
        "toy/add",
        "Add them.\n>>> add(1, 2)\n3\nAlso add(x=0, y=-1) is -1; add(a, b) is not a literal call.",
        "add",
        (
            CallTest("add", (5, 6), expected=11),
            AssertTest("def check(candidate):\n    assert candidate(7, 8) == 15\ncheck(add)", "add"),
        ),
        reference_solution="def add(x: int, y: int = 4) -> int:\n    return x + y\n",
    )
    signature = read_signature(task)
    assert [p.name for p in signature.parameters] == ["x", "y"] and signature.parameters[1].default == 4
    assert example_calls(task, signature, use_tests=False) == [(1, 2), (0, -1)]
    assert example_calls(task, signature) == [(1, 2), (0, -1), (5, 6), (7, 8)]
    assert hidden_calls(task, signature) == [(5, 6), (7, 8)]


def test_humaneval_signatures_are_all_readable():
    # Every HumanEval task yields domains (types from annotations or from its examples).
    tcg = OracleTCG(sandbox="local")  # never started: domains() needs no sandbox
    for task in load_humaneval():
        signature, _, domains = tcg.domains(task)
        assert len(domains) == len(signature.parameters), task.task_id
    assert tcg._sandbox is None


def test_prose_examples_name_the_parameters():
    two = _task(
        "strip(s, c)",
        "return s",
        problem='For s = "abcde", c = "ae", the result is "bcd".\nc : "x"',
        name="strip",
    )
    signature = read_signature(two)
    assert example_calls(two, signature, use_tests=False) == [("abcde", "ae")]
    assert named_values(two, signature) == {"s": ["abcde"], "c": ["ae", "x"]}
    one = _task(
        "pluck(arr)", "return arr", problem="Example:\n    Input: [4, 2, 3]\n    Output: [2, 1]", name="pluck"
    )
    assert example_calls(one, read_signature(one), use_tests=False) == [([4, 2, 3],)]
