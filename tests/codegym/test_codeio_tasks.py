"""The codeio task source: real CodeIO problems from reasoning-gym's file, tests made in the real sandbox."""

from __future__ import annotations

import gzip
import json
import sys
from importlib import metadata

import pytest

from codegym.errors import UserError
from codegym.sandbox import CallTest
from codegym.tasks import load_tasks
from codegym.tasks.codeio import (
    codeio_data_file,
    excluded_rows,
    load_codeio,
    problem_text,
    read_problems,
    split_of,
)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test builds into its own cache folder."""
    monkeypatch.setenv("CODEGYM_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def installed():
    try:
        metadata.distribution("reasoning-gym")
    except metadata.PackageNotFoundError:
        pytest.skip("reasoning-gym is not installed; `make install` installs it (pip --no-deps)")
    return codeio_data_file()


@pytest.mark.slow
def test_the_shipped_file_holds_3002_problems_2213_on_the_standard_library(installed):
    assert installed.name == "codeio.jsonl.gz" and installed.parent.name == "data"
    problems = read_problems()
    assert len(problems) == 3002 and [p.row for p in problems[:3]] == [0, 1, 2]
    assert sum(p.stdlib_only for p in problems) == 2213
    first = problems[0]
    assert "def main_solution(V_ms, W_ms, V_ds, W_ds, g_s, g_w)" in first.reference
    assert first.modules == {"numpy"} and not first.stdlib_only  # imports numpy, never uses it
    assert first.description.startswith("Given the volume and weight of a moist sand specimen")


def test_splits_are_seeded_disjoint_and_about_a_fifth_test():
    rows = range(3002)
    test = {row for row in rows if split_of(row) == "test"}
    assert 0.17 < len(test) / 3002 < 0.23
    assert test == {row for row in rows if split_of(row, seed=0) == "test"}  # stable
    other = {row for row in rows if split_of(row, seed=1) == "test"}
    assert other != test and 0.17 < len(other) / 3002 < 0.23
    assert {row for row in rows if split_of(row, test_fraction=0.5) == "test"} > test


def test_real_tasks_have_hidden_tests_the_reference_passes_and_a_stub_fails(installed, sandbox_factory):
    box = sandbox_factory("local")
    tasks = load_codeio("test", limit=6, sandbox=box, progress=False)
    assert 1 <= len(tasks) <= 6 and tasks.name == "codeio/test"
    for task in tasks:
        assert task.task_id == f"codeio/{task.metadata['row']}"
        assert split_of(task.metadata["row"]) == "test" and task.metadata["split"] == "test"
        assert task.entry_point == "main_solution"
        assert all(isinstance(test, CallTest) and test.kwargs for test in task.hidden_tests)
        assert 2 <= len(task.hidden_tests) <= 5
        assert "Write a Python function `main_solution(" in task.problem
        assert set(task.metadata["modules"]) <= sys.stdlib_module_names
        reference = box.run(task.reference_solution, task.hidden_tests)
        assert reference.all_passed, (task.task_id, reference)
        stub = box.run("def main_solution(**inputs):\n    return None\n", task.hidden_tests)
        assert stub.passed < stub.total
    # Distinct inputs: no hidden test repeats another.
    assert all(len({repr(t.kwargs) for t in task.hidden_tests}) == len(task.hidden_tests) for task in tasks)


@pytest.mark.slow
def test_a_real_task_reads_as_its_row_and_repeats_from_the_cache(installed, sandbox_factory):
    problems = {p.row: p for p in read_problems()}
    tasks = load_codeio("test", limit=3, sandbox=sandbox_factory("local"), progress=False)
    task = tasks[0]
    row = problems[task.metadata["row"]]
    assert task.reference_solution == row.reference
    assert task.problem.startswith(row.description.strip() + "\n\n" + row.io_spec.strip())
    # Built once: a second load reads the cache and never starts the (here impossible) sandbox.
    again = load_codeio("test", limit=3, sandbox="no-such-backend", progress=False)
    assert [t.task_id for t in again] == [t.task_id for t in tasks]
    assert [t.hidden_tests for t in again] == [t.hidden_tests for t in tasks]
    assert [t.problem for t in again] == [t.problem for t in tasks]
    # Another seed makes other inputs.
    reseeded = load_codeio("test", limit=3, seed=1, sandbox=sandbox_factory("local"), progress=False)
    assert [t.hidden_tests for t in reseeded] != [t.hidden_tests for t in tasks]


@pytest.mark.slow
def test_load_tasks_names_codeio_with_its_splits(installed, sandbox_factory):
    source = load_tasks("codeio", split="train", limit=2, sandbox=sandbox_factory("local"), progress=False)
    assert source.name == "codeio/train" and all(t.metadata["split"] == "train" for t in source)
    with pytest.raises(UserError, match=r"codeio has splits \['train', 'test'\], got split='validation'"):
        load_tasks("codeio", split="validation")
    with pytest.raises(UserError, match="subset must be one of"):
        load_tasks("codeio", subset="numpy")
    with pytest.raises(UserError, match="tests_per_task"):
        load_tasks("codeio", tests_per_task=0)


# -- problems that must be left out, in a small file of our own ---------------------------------------

GOOD_REFERENCE = "def main_solution(a, b):\n    return {'sum': a + b, 'pair': [a, b]}\n"
GOOD_GENERATOR = (
    "def generate_inputs(rng: Random) -> dict:\n    return {'a': rng.randint(0, 10**6), 'b': rng.random()}\n"
)
ROWS = [
    ("good", GOOD_REFERENCE, GOOD_GENERATOR),
    (
        "random reference",
        "import random\ndef main_solution(a, b):\n    return random.random()\n",
        GOOD_GENERATOR,
    ),
    ("reference raises", "def main_solution(a, b):\n    raise ValueError('no')\n", GOOD_GENERATOR),
    (
        "lying generator",
        GOOD_REFERENCE,
        "class Liar(dict):\n    def __eq__(self, other):\n        return True\n"
        "def generate_inputs(rng: Random) -> dict:\n    return Liar(a=1, b=2)\n",
    ),
    ("list generator", GOOD_REFERENCE, "def generate_inputs(rng: Random) -> dict:\n    return [1, 2]\n"),
    (
        "constant generator",
        GOOD_REFERENCE,
        "def generate_inputs(rng: Random) -> dict:\n    return {'a': 1, 'b': 2}\n",
    ),
    (
        "unknown argument",
        GOOD_REFERENCE,
        "def generate_inputs(rng: Random) -> dict:\n    return {'c': rng.random()}\n",
    ),
    ("no main_solution", "def solve(a, b):\n    return a\n", GOOD_GENERATOR),
    (
        "escaping generator",
        "def main_solution(a, b):\n    return [a, b]\n",
        "import os\ndef generate_inputs(rng: Random) -> dict:\n"
        "    return {'a': os.environ.get('CODEGYM_TEST_SECRET', 'unset'), 'b': rng.random()}\n",
    ),
]


def write_codeio(path, rows) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for description, reference, generator in rows:
            record = {"task_description": f"Task: {description}.", "input_output_spec": "Input: a, b.",
                      "code_sample": reference, "input_generator": generator}  # fmt: skip
            handle.write(json.dumps(record) + "\n")


def test_bad_references_and_generators_are_left_out_with_the_reason(tmp_path, sandbox_factory):
    data = tmp_path / "codeio.jsonl.gz"
    write_codeio(data, ROWS)
    options = {"data_file": data, "sandbox": sandbox_factory("local"), "progress": False}
    tasks = list(load_codeio("test", test_fraction=0.99, **options))  # all nine rows are in "test"
    reasons = excluded_rows(data_file=data)
    assert sorted(t.metadata["row"] for t in tasks) == [0, 8]  # the good one, and the escape (see below)
    assert reasons[1] == "the reference answers differently on a second run"
    assert reasons[2].startswith("the reference failed: error ValueError")
    assert reasons[3].startswith("the input generator failed: error")  # Liar is not plain data
    assert reasons[4] == "the input generator returned list, not a dict of arguments"
    assert reasons[5] == "the input generator gave only 1 distinct inputs"
    assert reasons[6] == "the input generator names arguments ['c'] that main_solution lacks"
    assert reasons[7] == "the reference defines no top-level main_solution"
    good = next(t for t in tasks if t.metadata["row"] == 0)
    assert len(good.hidden_tests) == 5
    for test in good.hidden_tests:
        assert test.expected == {
            "sum": test.kwargs["a"] + test.kwargs["b"],
            "pair": [test.kwargs["a"], test.kwargs["b"]],
        }
    assert good.problem.startswith(
        "Task: good.\n\nInput: a, b.\n\nWrite a Python function `main_solution(a, b)`"
    )
    assert "\n\nExample: main_solution(a=" in good.problem
    # The generator ran in the sandbox: the host's environment (a planted secret) never reached it.
    escaped = next(t for t in tasks if t.metadata["row"] == 8)
    assert {test.kwargs["a"] for test in escaped.hidden_tests} == {"unset"}


def test_problem_text_names_the_signature_and_a_short_example():
    [problem] = [p for p in read_problems_from_rows(ROWS[:1])]
    text = problem_text(problem, ("a", "b"), ({"a": 1, "b": 0.5}, {"sum": 1.5, "pair": [1, 0.5]}))
    assert text.endswith("Example: main_solution(a=1, b=0.5) returns {'sum': 1.5, 'pair': [1, 0.5]}")
    assert "Example" not in problem_text(problem, ("a", "b"), None)


def read_problems_from_rows(rows):
    from codegym.tasks.codeio import CodeIOProblem

    return [CodeIOProblem(i, f"Task: {d}.", "Input: a, b.", r, g) for i, (d, r, g) in enumerate(rows)]


def test_a_missing_reasoning_gym_is_one_line_naming_the_install(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(tmp_path))  # nothing to find there; the real lookup still runs
    from codegym.errors import MissingInputError

    with pytest.raises(MissingInputError, match="no CodeIO data file at"):
        load_codeio("test", data_file=tmp_path / "absent.jsonl.gz")
