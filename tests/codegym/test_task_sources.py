"""Task sources from data: assertion conversion, HumanEval, JSON-lines files and ``datasets`` datasets."""

from __future__ import annotations

import ast
import gzip
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codegym.sandbox import AssertTest, CallTest, StdioTest
from codegym.tasks.assert_conversion import tests_from_asserts, tests_from_check, whole_check_test
from codegym.tasks.files import load_dataset_tasks, load_jsonl
from codegym.tasks.humaneval import broken_program, check_program_test, load_humaneval

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def call(entry_point, *args, expected, kwargs=None, equality="python"):
    return CallTest(entry_point, args, kwargs, expected=expected, equality=equality)


# ---------------------------------------------------------------------------------------------------
# Assertion conversion
# ---------------------------------------------------------------------------------------------------

CONVERTIBLE = '''
METADATA = {"author": "jt", "dataset": "test"}


def check(candidate):
    """Docstrings, pass, assert True and stray builtins have no effect."""
    assert candidate([1, -2.5], -3) == (-1, None), "a message is dropped"
    assert candidate(x={"a": [True]}, y=-4) == {"b": set()}
    assert "ab" * 2 == candidate(3 * 19, 0**0)
    assert candidate("c") is True
    assert True, "This prints if this assert fails"
    print
    pass
'''


def test_a_check_of_literal_assertions_becomes_one_call_test_each():
    assert tests_from_check(CONVERTIBLE, "f") == (
        call("f", [1, -2.5], -3, expected=(-1, None)),
        call("f", kwargs={"x": {"a": [True]}, "y": -4}, expected={"b": set()}),
        call("f", 57, 1, expected="abab"),
        call("f", "c", expected=True, equality="strict"),
    )


def test_the_check_parameter_may_have_any_name():
    assert tests_from_check("def check(fn):\n    assert fn(1) == 2\n", "g") == (call("g", 1, expected=2),)


@pytest.mark.parametrize(
    "statement",
    [
        "assert abs(candidate(1.33) - 0.33) < 1e-6",  # a tolerance
        "assert candidate(1)",  # truthiness is not == True
        "assert not candidate(2)",
        "assert tuple(candidate([1])) == (1,)",  # the result is converted first
        "assert candidate(1) == helper(1)",  # the expected value is computed
        "assert candidate(*[1]) == 1",
        "assert candidate(1) != 2",
        "assert candidate(1) == 9 ** 9 ** 9",  # folding this would hang the loader: it stays code
        "assert candidate('a' * 10**9) == 1",  # or eat a gigabyte
        "assert candidate(1 / 0) == 1",
        "x = 1",
        "for n in range(3):\n        assert candidate(n) == n",
    ],
)
def test_any_other_statement_keeps_the_whole_check_as_one_assert_test(statement):
    source = f"def check(candidate):\n    assert candidate(0) == 0\n    {statement}\n"
    started = time.perf_counter()
    assert tests_from_check(source, "f") == (AssertTest(f"{source}\ncheck(f)", entry_point="f"),)
    assert time.perf_counter() - started < 1.0
    assert whole_check_test(source, "f") == AssertTest(f"{source}\ncheck(f)", entry_point="f")


@pytest.mark.parametrize(
    "source",
    [
        "assert f(1) == 1\n",  # no check function
        "def check(candidate, other):\n    assert candidate(1) == 1\n",
        "def check(candidate):\n    assert True\n",  # nothing to convert
    ],
)
def test_sources_without_a_convertible_check_fall_back(source):
    assert tests_from_check(source, "f") == (AssertTest(f"{source}\ncheck(f)", entry_point="f"),)


def test_unparsable_check_sources_and_bad_entry_points_raise():
    with pytest.raises(ValueError, match="test source is not valid Python"):
        tests_from_check("def check(candidate):\n    assert candidate(1) ==\n", "f")
    with pytest.raises(ValueError, match="entry_point must be a function name"):
        tests_from_check(CONVERTIBLE, "not a name")


def test_mbpp_asserts_become_call_tests_or_assert_tests_with_setup_code():
    tests = tests_from_asserts(
        [
            "assert f(-1, (2, 3)) == [-1, 2, 3]",
            'assert f(k="v")==-0.5 , "message"',
            "assert math.isclose(f(2), 4.0)",
            "assert f(1) is None",
        ],
        "f",
        setup_code="import math",
    )
    assert tests == (
        call("f", -1, (2, 3), expected=[-1, 2, 3]),
        call("f", kwargs={"k": "v"}, expected=-0.5),
        AssertTest("import math\nassert math.isclose(f(2), 4.0)", entry_point="f"),
        call("f", 1, expected=None, equality="strict"),
    )
    assert tests_from_asserts(["assert g(1) == f(1)"], "f") == (
        AssertTest("assert g(1) == f(1)", entry_point="f"),
    )


@pytest.mark.parametrize(
    ("asserts", "message"),
    [
        (["f(1) == 1"], "assertion 1 must be one assert statement"),
        (["assert f(1) == 1", "assert f(2) == 2; assert f(3) == 3"], "assertion 2 must be one assert"),
        (["assert f(1) =="], "assertion 1 is not valid Python"),
        ("assert f(1) == 1", "a single string"),
        ([], "no assertions"),
    ],
)
def test_malformed_assert_lists_raise(asserts, message):
    with pytest.raises(ValueError, match=message):
        tests_from_asserts(asserts, "f")


def test_converted_tests_keep_the_datasets_own_equality(sandbox_factory):
    box = sandbox_factory("local")
    (true_test,) = tests_from_check("def check(c):\n    assert c(0) == True\n", "f")
    (list_test,) = tests_from_check("def check(c):\n    assert c(0) == [1, 2]\n", "f")
    (float_test,) = tests_from_check("def check(c):\n    assert c(0) == 0.3\n", "f")
    (is_test,) = tests_from_check("def check(c):\n    assert c(0) is True\n", "f")
    programs = {
        "def f(x):\n    return 1\n": [True, False, False, False],  # 1 == True, but 1 is not True
        "def f(x):\n    return (1, 2)\n": [False, False, False, False],  # a tuple is not a list
        "def f(x):\n    return 0.1 + 0.2\n": [False, False, False, False],  # floats compare exactly
        "def f(x):\n    return [1, 2]\n": [False, True, False, False],
    }
    tests = [true_test, list_test, float_test, is_test]
    reports = box.run_batch([(program, tests) for program in programs])
    assert [[result.passed for result in report.tests] for report in reports] == list(programs.values())


# ---------------------------------------------------------------------------------------------------
# HumanEval
# ---------------------------------------------------------------------------------------------------


def test_humaneval_has_its_164_tasks_in_order():
    tasks = load_humaneval()
    assert tasks.name == "humaneval" and len(tasks) == 164
    assert [task.task_id for task in tasks] == [f"HumanEval/{n}" for n in range(164)]
    assert load_humaneval() is tasks  # cached per process
    first = tasks.get("HumanEval/0")
    assert first.entry_point == "has_close_elements"
    assert first.problem == first.starter_code and first.problem.startswith("from typing import List")
    assert first.reference_solution.startswith(first.problem)
    assert first.metadata["source"] == "humaneval"


def test_humaneval_0_has_one_call_test_per_assert():
    task = load_humaneval().get("HumanEval/0")
    module = ast.parse(task.metadata["check_program"])
    check = next(node for node in module.body if getattr(node, "name", None) == "check")
    asserts = [node for node in check.body if isinstance(node, ast.Assert)]
    assert len(asserts) == len(task.hidden_tests) == 7
    assert task.hidden_tests[0] == call(
        "has_close_elements", [1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3, expected=True
    )


def test_humaneval_conversion_figures():
    # 151 checks convert fully; 13 keep the whole check (tolerances, loops, truthiness, helpers).
    tasks = load_humaneval()
    converted = [task for task in tasks if all(isinstance(test, CallTest) for test in task.hidden_tests)]
    converted_ids = {task.task_id for task in converted}
    fallback = [task for task in tasks if task.task_id not in converted_ids]
    assert (len(converted), sum(len(task.hidden_tests) for task in converted)) == (151, 1064)
    assert all(
        len(task.hidden_tests) == 1 and isinstance(task.hidden_tests[0], AssertTest) for task in fallback
    )
    assert {task.task_id for task in fallback} == {
        f"HumanEval/{n}" for n in (2, 4, 32, 33, 37, 38, 44, 50, 52, 53, 56, 61, 151)
    }


@pytest.mark.slow
def test_humaneval_references_pass_and_broken_programs_fail(sandbox):
    # On every backend: the per-assertion tests and HumanEval's whole check(candidate), run by the judge.
    tasks = list(load_humaneval())
    reference = sandbox.run_batch([(task.reference_solution, task.hidden_tests) for task in tasks])
    whole = sandbox.run_batch([(task.reference_solution, [check_program_test(task)]) for task in tasks])
    broken = sandbox.run_batch([(broken_program(task), task.hidden_tests) for task in tasks])
    broken_whole = sandbox.run_batch([(broken_program(task), [check_program_test(task)]) for task in tasks])
    assert [
        task.task_id for task, report in zip(tasks, reference, strict=True) if not report.all_passed
    ] == []
    assert [task.task_id for task, report in zip(tasks, whole, strict=True) if not report.all_passed] == []
    assert [task.task_id for task, report in zip(tasks, broken, strict=True) if report.all_passed] == []
    assert [task.task_id for task, report in zip(tasks, broken_whole, strict=True) if report.all_passed] == []


def test_humaneval_loads_offline(tmp_path):
    # A fresh process with the Hub switched off and an empty datasets cache: only the package's file.
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path))
    script = "from codegym.tasks.humaneval import load_humaneval; print(len(load_humaneval()))"
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "164"


# ---------------------------------------------------------------------------------------------------
# JSON-lines files
# ---------------------------------------------------------------------------------------------------


def run_references(box, tasks):
    return [
        report.pass_rate for report in box.run_batch([(t.reference_solution, t.hidden_tests) for t in tasks])
    ]


def test_humaneval_schema_file(sandbox_factory):
    tasks = load_jsonl(FIXTURES / "humaneval_tiny.jsonl")
    assert [task.task_id for task in tasks] == ["Tiny/0", "Tiny/1"]
    add, mean = tasks
    assert add.hidden_tests == (
        call("add", 2, 3, expected=5),
        call("add", -1, kwargs={"b": 1}, expected=0),
        call("add", 6, 1, expected=7),
    )
    assert mean.hidden_tests == (whole_check_test(mean.metadata["check_program"], "mean"),)
    assert add.starter_code == add.problem and add.reference_solution == add.problem + "    return a + b\n"
    assert dict(add.metadata) == {
        "source": "humaneval",
        "origin": f"jsonl:{FIXTURES / 'humaneval_tiny.jsonl'}",
        "row": 1,
        "check_program": fixture_rows("humaneval_tiny.jsonl")[0]["test"],
    }
    assert run_references(sandbox_factory("local"), tasks) == [1.0, 1.0]


def test_mbpp_schema_file(sandbox_factory):
    tasks = load_jsonl(FIXTURES / "mbpp_tiny.jsonl")
    assert [task.task_id for task in tasks] == ["mbpp/1", "mbpp/2", "mbpp/3"]
    shared, not_prime, area = tasks
    # the entry point is the first call in the first assert that `code` defines (set() is not)
    assert [task.entry_point for task in tasks] == ["shared_elements", "is_not_prime", "circle_area"]
    assert not_prime.problem == (
        "Write a python function to identify non-prime numbers.\n"
        "Your code should define `is_not_prime(n)` and pass tests like this one:\n"
        "assert is_not_prime(2) == False"
    )
    assert not_prime.hidden_tests == tuple(
        call("is_not_prime", n, expected=value) for n, value in [(2, False), (10, True), (35, True)]
    )
    assert all(isinstance(test, AssertTest) for test in shared.hidden_tests)
    assert area.hidden_tests == (
        AssertTest("import math\nassert math.isclose(circle_area(2), 12.566, rel_tol=0.001)", "circle_area"),
        call("circle_area", 0, expected=0),
    )
    assert area.reference_solution == fixture_rows("mbpp_tiny.jsonl")[2]["code"]
    assert run_references(sandbox_factory("local"), tasks) == [1.0, 1.0, 1.0]


def test_apps_schema_file(sandbox_factory):
    tasks = load_jsonl(FIXTURES / "apps_tiny.jsonl")
    assert [task.task_id for task in tasks] == ["apps/10", "apps/11", "apps/12", "apps/13"]
    plus, largest, vowels, two_sum = tasks
    assert plus.entry_point is None and largest.entry_point is None
    assert plus.hidden_tests == (StdioTest("1 2\n", "3\n"), StdioTest("-5 5\n", "0\n"))
    assert largest.hidden_tests == (StdioTest("3\n1\n7\n2", "7"), StdioTest("1\n-4", "-4"))  # lines joined
    assert vowels.entry_point == "count_vowels" and vowels.starter_code == "def count_vowels(s):\n\t"
    # APPS wraps a call's expected value in a one-element list; it is unwrapped
    assert vowels.hidden_tests == (
        call("count_vowels", "hello", expected=2),
        call("count_vowels", "xyz", expected=0),
    )
    assert two_sum.entry_point == "Solution"
    assert all(
        isinstance(test, AssertTest) and "Solution().twoSum(" in test.code for test in two_sum.hidden_tests
    )
    assert plus.problem.endswith(
        "Read the input from standard input and print the answer to standard output."
    )
    assert plus.metadata["difficulty"] == "introductory" and plus.metadata["source"] == "apps"
    assert plus.reference_solution == "a, b = map(int, input().split())\nprint(a + b)\n"
    box = sandbox_factory("local")
    assert run_references(box, tasks) == [1.0, 1.0, 1.0, 1.0]
    wrong = [
        "print(0)",
        "print(7)",
        "def count_vowels(s):\n    return 2",
        "class Solution:\n    def twoSum(self, n, t):\n        return [0, 1]",
    ]
    assert [
        r.pass_rate for r in box.run_batch(list(zip(wrong, [t.hidden_tests for t in tasks], strict=True)))
    ] == [0.5, 0.5, 0.5, 0.5]


def test_apps_rows_without_ids_or_solutions(tmp_path):
    row = {"question": "Print 1.", "input_output": {"inputs": [""], "outputs": ["1"]}, "solutions": ""}
    (task,) = load_jsonl(write_jsonl(tmp_path / "a.jsonl", ["", row]))  # a blank first line
    assert task.task_id == "apps/2" and task.reference_solution is None  # the line number names it


def test_gzipped_file_reads_like_the_plain_one(tmp_path):
    path = tmp_path / "mbpp.jsonl.gz"
    path.write_bytes(gzip.compress((FIXTURES / "mbpp_tiny.jsonl").read_bytes()))
    plain, packed = load_jsonl(FIXTURES / "mbpp_tiny.jsonl"), load_jsonl(path)
    assert [t.hidden_tests for t in packed] == [t.hidden_tests for t in plain]
    assert [t.problem for t in packed] == [t.problem for t in plain]


def test_schema_is_detected_or_must_be_named(tmp_path):
    assert load_jsonl(FIXTURES / "apps_tiny.jsonl", schema="apps")[0].task_id == "apps/10"
    with pytest.raises(ValueError, match="line 1: field 'text': missing"):
        load_jsonl(FIXTURES / "apps_tiny.jsonl", schema="mbpp")
    unknown = write_jsonl(tmp_path / "u.jsonl", [{"problem": "p", "answer": "a"}])
    with pytest.raises(ValueError) as error:
        load_jsonl(unknown)
    message = str(error.value)
    assert "['answer', 'problem']" in message and "matches no schema" in message
    assert "mbpp: text, code, test_list" in message and "apps: question, input_output" in message
    assert "columns=" in message
    both = {**fixture_rows("mbpp_tiny.jsonl")[1], **fixture_rows("apps_tiny.jsonl")[0]}
    with pytest.raises(ValueError, match="matches several schemas: mbpp, apps"):
        load_jsonl(write_jsonl(tmp_path / "b.jsonl", [both]))
    with pytest.raises(ValueError, match="unknown schema 'leetcode'"):
        load_jsonl(FIXTURES / "apps_tiny.jsonl", schema="leetcode")


def test_column_mapping(tmp_path):
    renamed = [
        {
            "question_text": row["text"],
            "solution": row["code"],
            **{k: row[k] for k in ("task_id", "test_list")},
        }
        for row in fixture_rows("mbpp_tiny.jsonl")
    ]
    path = write_jsonl(tmp_path / "renamed.jsonl", renamed)
    tasks = load_jsonl(path, columns={"text": "question_text", "code": "solution"})  # detected as mbpp
    assert [t.problem for t in tasks] == [t.problem for t in load_jsonl(FIXTURES / "mbpp_tiny.jsonl")]
    with pytest.raises(ValueError, match=r"unknown field 'prompt'.*schema 'mbpp'"):
        load_jsonl(path, schema="mbpp", columns={"prompt": "question_text"})
    with pytest.raises(ValueError, match=r"maps 'code' to 'source', but .* has only"):
        load_jsonl(path, columns={"text": "question_text", "code": "source"})
    renamed[1]["question_text"] = 7
    with pytest.raises(
        ValueError, match="line 2: field 'text' \\(column 'question_text'\\): expected str, got int"
    ):
        load_jsonl(write_jsonl(path, renamed), columns={"text": "question_text", "code": "solution"})


MBPP_ROW = fixture_rows("mbpp_tiny.jsonl")[1]
APPS_ROW = fixture_rows("apps_tiny.jsonl")[0]
HUMANEVAL_ROW = fixture_rows("humaneval_tiny.jsonl")[0]


@pytest.mark.parametrize(
    ("bad_row", "schema", "message"),
    [
        ('{"text": "unterminated', "mbpp", "line 2: not valid JSON"),
        ("[1, 2]", "mbpp", "line 2: expected a JSON object, got list"),
        ({**MBPP_ROW, "code": None}, "mbpp", "line 2: field 'code': missing"),
        ({k: v for k, v in MBPP_ROW.items() if k != "code"}, "mbpp", "line 2: field 'code': missing"),
        ({**MBPP_ROW, "test_list": 3}, "mbpp", "line 2: field 'test_list': expected list or str, got int"),
        ({**MBPP_ROW, "test_list": []}, "mbpp", "line 2: field 'test_list': empty"),
        ({**MBPP_ROW, "test_list": ["x = 1"]}, "mbpp", "line 2: field 'test_list': assertion 1 must be"),
        (
            {**MBPP_ROW, "code": "def other(n):\n    return n\n"},
            "mbpp",
            "line 2: field 'test_list': the first "
            "assertion calls \\['is_not_prime'\\], none defined by `code`",
        ),
        ({**MBPP_ROW, "code": "def is_not_prime(n)\n"}, "mbpp", "line 2: field 'code': not valid Python"),
        ({**MBPP_ROW, "task_id": 1}, "mbpp", "line 2: duplicate task id 'mbpp/1', first seen at .* line 1"),
        ({**APPS_ROW, "input_output": "{inputs"}, "apps", "line 2: field 'input_output': not valid JSON"),
        (
            {**APPS_ROW, "input_output": '{"inputs": [], "outputs": []}'},
            "apps",
            "line 2: field 'input_output': has no tests",
        ),
        ({**APPS_ROW, "input_output": '{"inputs": ["1"]}'}, "apps", "line 2: field 'input_output': needs"),
        (
            {**APPS_ROW, "input_output": '{"inputs": [1], "outputs": ["1"]}'},
            "apps",
            "line 2: field 'input_output': stdin/stdout must be text",
        ),
        (
            {**APPS_ROW, "input_output": '{"fn_name": "f", "inputs": ["x"], "outputs": [1]}'},
            "apps",
            "line 2: field 'input_output': a call's inputs must be a list",
        ),
        ({**APPS_ROW, "solutions": "[not json"}, "apps", "line 2: field 'solutions': not valid JSON"),
        ({**APPS_ROW, "question": "  "}, "apps", "line 2: field 'question': empty"),
        (
            {**HUMANEVAL_ROW, "entry_point": "sub"},
            "humaneval",
            "line 2: field 'entry_point': 'sub' is not defined",
        ),
        (
            {**HUMANEVAL_ROW, "test": "def check(c):\n  assert c(1) =="},
            "humaneval",
            "line 2: field 'test': test source is not valid Python",
        ),
    ],
)
def test_malformed_rows_name_the_line_and_the_field(tmp_path, bad_row, schema, message):
    good = {"mbpp": fixture_rows("mbpp_tiny.jsonl")[0], "apps": APPS_ROW | {"problem_id": 1}}.get(schema)
    good = good or HUMANEVAL_ROW | {"task_id": "Tiny/other"}
    path = write_jsonl(tmp_path / "bad.jsonl", [good, bad_row])
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}.*{message}"):
        load_jsonl(path, schema=schema)


def test_missing_empty_and_non_gzip_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no JSON-lines file"):
        load_jsonl(tmp_path / "absent.jsonl")
    with pytest.raises(ValueError, match="has no rows"):
        load_jsonl(write_jsonl(tmp_path / "empty.jsonl", [""]))
    (tmp_path / "fake.jsonl.gz").write_text("{}")
    with pytest.raises(ValueError, match="not a readable gzip file"):
        load_jsonl(tmp_path / "fake.jsonl.gz")


# ---------------------------------------------------------------------------------------------------
# datasets datasets, offline from local folders and files
# ---------------------------------------------------------------------------------------------------


def test_dataset_folder_of_parquet_files_in_mbpp_form(tmp_path):
    import datasets

    (tmp_path / "mbpp").mkdir()
    datasets.Dataset.from_list(fixture_rows("mbpp_tiny.jsonl")).to_parquet(tmp_path / "mbpp" / "test.parquet")
    tasks = load_dataset_tasks(tmp_path / "mbpp", split="test", cache_dir=str(tmp_path / "cache"))
    expected = load_jsonl(FIXTURES / "mbpp_tiny.jsonl")
    assert [t.task_id for t in tasks] == ["mbpp/1", "mbpp/2", "mbpp/3"]
    assert [t.hidden_tests for t in tasks] == [t.hidden_tests for t in expected]
    assert [t.problem for t in tasks] == [t.problem for t in expected]
    assert tasks[0].metadata["row"] == 0 and tasks[0].metadata["origin"] == f"{tmp_path / 'mbpp'}[test]"


def test_dataset_folder_of_json_files_in_apps_form_with_a_column_mapping(tmp_path, sandbox_factory):
    import datasets

    rows = [{"prompt": row.pop("question"), **row} for row in fixture_rows("apps_tiny.jsonl")]
    (tmp_path / "apps").mkdir()
    datasets.Dataset.from_list(rows).to_json(tmp_path / "apps" / "train.jsonl")
    tasks = load_dataset_tasks(tmp_path / "apps", columns={"question": "prompt"})
    expected = load_jsonl(FIXTURES / "apps_tiny.jsonl")
    assert [t.hidden_tests for t in tasks] == [t.hidden_tests for t in expected]
    assert [t.entry_point for t in tasks] == [None, None, "count_vowels", "Solution"]
    assert run_references(sandbox_factory("local"), tasks) == [1.0] * 4


def test_dataset_single_file_and_row_errors_use_the_split_index(tmp_path):
    import datasets

    rows = fixture_rows("mbpp_tiny.jsonl")
    rows[1]["test_list"] = ["assert is_not_prime(2) == False", "is_not_prime(3)"]
    path = tmp_path / "rows.parquet"
    datasets.Dataset.from_list(rows).to_parquet(path)
    with pytest.raises(
        ValueError, match=r"rows\.parquet\[train\] row 1: field 'test_list': assertion 2 must be"
    ):
        load_dataset_tasks(path)
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_dataset_tasks(write_jsonl(tmp_path / "rows.txt", rows))


@pytest.mark.parametrize("spec", ["synthetic", "codeio"])
def test_an_unknown_task_option_names_the_valid_ones(spec):
    from codegym.errors import UserError
    from codegym.tasks import load_tasks

    with pytest.raises(UserError, match=r"takes no option 'bogus': the valid ones are .*tests_per_task"):
        load_tasks(spec, bogus=1)
