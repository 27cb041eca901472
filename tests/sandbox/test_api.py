"""The sandbox's public behaviour on well-behaved programs, on every backend."""

from __future__ import annotations

import pytest

from codegym.sandbox import AssertTest, CallTest, ExecutionReport, StdioTest, TestStatus, make_sandbox

ADD = "def add(a, b):\n    return a + b\n"


def test_call_tests_are_judged_on_the_host(sandbox):
    report = sandbox.run(ADD, [CallTest("add", (2, 3), expected=5), CallTest("add", (2, 2), expected=5)])
    assert isinstance(report, ExecutionReport)
    assert report.compiled
    assert [t.status for t in report.tests] == [TestStatus.PASSED, TestStatus.FAILED]
    assert (report.passed, report.total, report.pass_rate) == (1, 2, 0.5)
    assert "returned 4, expected 5" in report.tests[1].message
    assert report.backend == sandbox.name
    # the value each call returned comes back with the verdict, whatever the verdict
    assert [t.returned for t in report.tests] == [5, 4]


def test_a_call_that_did_not_return_reports_no_value(sandbox):
    program = "def f(x):\n    raise ValueError(x)\n"
    report = sandbox.run(program, [CallTest("f", (1,), expected=None)])
    assert report.tests[0].status is TestStatus.ERROR
    assert report.tests[0].returned is None


def test_plain_data_types_survive_the_round_trip(sandbox):
    program = "def echo(x):\n    return x\n"
    values = [(1, 2), [1, (2, 3)], {"a": {1, 2}}, b"\x00\xff", float("inf"), 1 + 2j, frozenset({1}), None]
    report = sandbox.run(program, [CallTest("echo", (v,), expected=v) for v in values])
    assert report.passed == len(values), [t.message for t in report.tests]


def test_comparison_tells_list_from_tuple_and_bool_from_int_but_tolerates_float_noise(sandbox):
    program = "def f(kind):\n    return {'tuple': [1, 2], 'bool': 1, 'float': 0.1 + 0.2}[kind]\n"
    report = sandbox.run(
        program,
        [
            CallTest("f", ("tuple",), expected=(1, 2)),
            CallTest("f", ("bool",), expected=True),
            CallTest("f", ("float",), expected=0.3),
        ],
    )
    assert [t.status for t in report.tests] == [TestStatus.FAILED, TestStatus.FAILED, TestStatus.PASSED]


def test_assert_tests_humaneval_style(sandbox):
    check = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"
    passing = sandbox.run(ADD, [AssertTest(check + "check(add)", entry_point="add")])
    failing = sandbox.run(
        ADD.replace("a + b", "a - b"), [AssertTest(check + "check(add)", entry_point="add")]
    )
    assert passing.tests[0].status is TestStatus.PASSED
    assert failing.tests[0].status is TestStatus.FAILED
    assert failing.tests[0].error_type == "AssertionError"


def test_stdio_tests_compare_tokens_with_float_tolerance(sandbox):
    program = "import sys\nnums = list(map(float, sys.stdin.read().split()))\nprint(sum(nums) / len(nums))\n"
    report = sandbox.run(
        program,
        [StdioTest("1 2\n", "1.5"), StdioTest("1 2 3\n", "2.0000000001"), StdioTest("1\n", "2")],
    )
    assert [t.status for t in report.tests] == [TestStatus.PASSED, TestStatus.PASSED, TestStatus.FAILED]


def test_stdio_program_may_exit_zero_but_not_nonzero(sandbox):
    report = sandbox.run(
        "import sys\nprint(input())\nsys.exit(int(input()))\n",
        [StdioTest("hi\n0\n", "hi"), StdioTest("hi\n3\n", "hi")],
    )
    assert [t.status for t in report.tests] == [TestStatus.PASSED, TestStatus.ERROR]
    assert "status 3" in report.tests[1].message


def test_syntax_error_is_not_compiled_and_runs_nothing(sandbox):
    report = sandbox.run("def add(a, b)\n    return a + b\n", [CallTest("add", (1, 2), expected=3)])
    assert not report.compiled
    assert report.tests[0].status is TestStatus.ERROR
    assert report.tests[0].error_type == "SyntaxError"
    assert report.pass_rate == 0.0


def test_runtime_errors_name_the_exception(sandbox):
    report = sandbox.run(
        "def f():\n    return 1 / 0\n", [CallTest("f", expected=1), CallTest("g", expected=1)]
    )
    assert report.tests[0].status is TestStatus.ERROR
    assert report.tests[0].error_type == "ZeroDivisionError"
    assert report.tests[1].error_type == "NameError"


def test_load_error_fails_every_test_with_the_reason(sandbox):
    report = sandbox.run("import no_such_module_xyz\n", [CallTest("f", expected=1)] * 3)
    assert {t.error_type for t in report.tests} == {"ModuleNotFoundError"}
    assert all("while loading" in t.message for t in report.tests)


def test_a_crash_in_one_test_does_not_sink_the_others(sandbox):
    program = "import os\ndef f(x):\n    if x == 1:\n        os._exit(0)\n    return x\n"
    report = sandbox.run(
        program,
        [CallTest("f", (0,), expected=0), CallTest("f", (1,), expected=1), CallTest("f", (2,), expected=2)],
    )
    assert [t.status for t in report.tests] == [TestStatus.PASSED, TestStatus.CRASHED, TestStatus.PASSED]


def test_output_is_captured_and_capped(sandbox):
    report = sandbox.run(
        "print('hello from the candidate')\ndef f():\n    return 1\n", [CallTest("f", expected=1)]
    )
    assert report.stdout == "hello from the candidate\n"


def test_arguments_are_fresh_for_every_test(sandbox):
    program = "def grow(xs):\n    xs.append(1)\n    return len(xs)\n"
    shared = [0]
    report = sandbox.run(program, [CallTest("grow", (shared,), expected=2)] * 3)
    assert report.passed == 3


def test_run_batch_keeps_order_and_runs_in_parallel(sandbox):
    jobs = [
        (f"import time\ndef f():\n    time.sleep(0.3)\n    return {i}\n", [CallTest("f", expected=i)])
        for i in range(4)
    ]
    reports = sandbox.run_batch(jobs)
    assert [r.passed for r in reports] == [1, 1, 1, 1]
    # Two workers: four 0.3 s jobs take about 0.6 s, not 1.2 s. The sandbox measures its own time.
    assert sum(r.duration_s for r in reports) >= 1.2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda box: box.run(ADD, []), "no tests"),
        (lambda box: box.run(ADD, CallTest("add", (1, 2), expected=3)), "wrap the single test"),
        (lambda box: box.run(ADD, ["assert add(1, 2) == 3"]), "is not a test"),
        (lambda box: box.run(b"print(1)", [CallTest("f")]), "must be a str"),
        (lambda box: box.run(ADD, [CallTest("add")], timeout_s=0), "timeout_s"),
        (lambda box: box.run(ADD, [CallTest("add")], memory_mb=10), "memory_mb"),
    ],
)
def test_bad_input_gets_a_clear_error(sandbox_factory, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(sandbox_factory("local"))


def test_test_constructors_reject_bad_values():
    with pytest.raises(ValueError, match="plain data"):
        CallTest("f", (object(),), expected=1)
    with pytest.raises(ValueError, match="function name"):
        CallTest("not a name")
    with pytest.raises(ValueError, match="non-empty"):
        AssertTest("   ")
    with pytest.raises(ValueError, match="must be a str"):
        StdioTest(b"1", "1")


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="local, docker, auto"):
        make_sandbox("kubernetes")


def test_closed_sandbox_says_so():
    box = make_sandbox("local", workers=1)
    box.close()
    with pytest.raises(Exception, match="closed"):
        box.run(ADD, [CallTest("add", (1, 2), expected=3)])
