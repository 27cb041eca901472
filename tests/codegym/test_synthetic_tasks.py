"""The synthetic task family: seeding, ids, held-out splits, texts, and references run in a real sandbox."""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pytest

from codegym.sandbox import CallTest
from codegym.steps import extract_code
from codegym.tasks.synthetic import MAX_OPS, SyntheticTasks, held_out_score
from codegym.tasks.synthetic_ops import OPS, Step, degenerate_reason, run


def composition_names(task) -> str:
    return ">".join(task.metadata["ops"])


def test_same_seed_gives_the_same_tasks_and_other_seeds_differ():
    source = SyntheticTasks()
    first = [source.sample(np.random.default_rng(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    assert source.tasks(20, seed=7) == source.tasks(20, seed=7)
    assert SyntheticTasks().tasks(20, seed=7) == source.tasks(20, seed=7)  # nothing hides in the instance
    ids = [task.task_id for task in source.tasks(20, seed=7)]
    other = [task.task_id for task in source.tasks(20, seed=8)]
    assert len(set(ids) & set(other)) == 0


def test_a_pinned_id_rebuilds_the_same_task():
    # Pins the texts, the inputs and the split hash: a change here changes every id's task (bump the salt).
    task = SyntheticTasks().get("synthetic/train/sort>take(3)>sum/42")
    assert task.problem == (
        "Write a Python function `solve(nums: list[int]) -> int`. Given a list of integers, it sorts the "
        "numbers in ascending order, then keeps only the first 3 numbers, and returns the sum of the numbers "
        "(0 if there are none).\n\nExamples:\nsolve([7, 6, -1]) -> 12\nsolve([3, -17, 11, 3, 6]) -> -11"
    )
    assert task.reference_solution == (
        "def solve(nums: list[int]) -> int:\n    nums = sorted(nums)\n    nums = nums[:3]\n    return sum(nums)"
    )
    assert [test.args[0] for test in task.hidden_tests[:4]] == [
        [],
        [15],
        [11, 11, 6],
        [11, 9, 12, 1, -15, 14, -2],
    ]
    assert [test.expected for test in task.hidden_tests] == [0, 15, 28, -16, -4, 21, -12, -2]
    assert held_out_score(["sort", "take", "sum"]) == pytest.approx(0.92662, abs=1e-5)


@pytest.mark.parametrize("split", ["train", "test"])
def test_get_rebuilds_every_sampled_task(split):
    source = SyntheticTasks(split, max_ops=MAX_OPS)
    for task in source.tasks(200, seed=1):
        assert source.get(task.task_id) == task


def test_ids_carry_non_default_input_knobs_so_any_source_rebuilds_them():
    custom = SyntheticTasks(tests_per_task=5, max_value=50, max_list_len=4)
    task = custom.sample(np.random.default_rng(0))
    assert task.task_id.endswith("/tests_per_task=5,max_list_len=4,max_value=50")
    assert len(task.hidden_tests) == 5
    assert SyntheticTasks().get(task.task_id) == task
    deep = SyntheticTasks(min_ops=5, max_ops=5).sample(np.random.default_rng(0))
    assert SyntheticTasks(max_ops=1).get(deep.task_id) == deep  # min_ops and max_ops only shape sampling
    assert "/" not in SyntheticTasks().sample(np.random.default_rng(0)).task_id.split("/", 4)[-1]


# A composition held out for "test" (score below the default 0.2) and one that trains.
HELD_OUT = "synthetic/test/keep_even>sum/5"
TRAINS = "synthetic/train/keep_odd>sum/5"


@pytest.mark.parametrize(
    ("task_id", "message"),
    [
        ("HumanEval/0", "not of the form"),
        ("synthetic/train/sort", "not of the form"),
        ("synthetic/train/sort/12x", "not of the form"),
        ("synthetic/dev/sort/1", "unknown split 'dev'"),
        ("synthetic/train/frobnicate/1", "unknown op 'frobnicate'"),
        ("synthetic/train/add(99)/1", r"needs a parameter in \(1, 2, 3"),
        ("synthetic/train/add/1", "needs a parameter"),
        ("synthetic/train/sort(3)/1", "takes no parameter"),
        ("synthetic/train/sum>sort/1", "sort takes a list, but sum gives a int"),
        ("synthetic/train/upper>upper>upper>upper>upper>upper>upper/1", "a composition has 1 to 6"),
        ("synthetic/train/sort>sum/1", r"degenerate \(leaving out sort changes nothing\)"),
        ("synthetic/train/sort/007", "did you mean 'synthetic/train/sort/7'"),
        ("synthetic/train/sort/7/tests_per_task=8", "did you mean 'synthetic/train/sort/7'"),
        ("synthetic/train/sort/7/tests_per_task=99", r"outside \[4, 32\]"),
        ("synthetic/train/sort/7/colour=3", "bad input knob 'colour=3'"),
        (HELD_OUT, "it is a 'test' task and this source serves 'train'"),
        (HELD_OUT.replace("/test/", "/train/"), "belongs to the 'test' split"),
    ],
)
def test_bad_ids_raise_key_error_saying_why(task_id, message):
    with pytest.raises(KeyError, match=message):
        SyntheticTasks("train").get(task_id)


def test_the_other_split_rejects_training_compositions():
    assert SyntheticTasks("train").get(TRAINS).metadata["split"] == "train"
    assert SyntheticTasks("test").get(HELD_OUT).metadata["split"] == "test"
    with pytest.raises(KeyError, match="belongs to the 'train' split"):
        SyntheticTasks("test").get(TRAINS.replace("/train/", "/test/"))


@pytest.mark.slow
def test_splits_hold_disjoint_compositions_and_both_have_every_k():
    by_split = {}
    for split in ("train", "test"):
        compositions = defaultdict(set)
        for task in SyntheticTasks(split).tasks(1500, seed=0):
            compositions[task.metadata["k"]].add(composition_names(task))
        by_split[split] = compositions
    train, test = by_split["train"], by_split["test"]
    assert sorted(train) == sorted(test) == [1, 2, 3]
    assert train[1] == test[1] and len(train[1]) == len(OPS)  # k = 1: every primitive, in both splits
    for k in (2, 3):
        assert train[k] and test[k]
        assert not train[k] & test[k]
        assert all(held_out_score(names.split(">")) < 0.2 for names in test[k])


@pytest.mark.slow
def test_about_heldout_fraction_of_the_compositions_are_held_out():
    seen = {
        split: {
            composition_names(task)
            for task in SyntheticTasks(split, min_ops=2, max_ops=2).tasks(1000, seed=0)
        }
        for split in ("train", "test")
    }
    # 1000 draws see (nearly) every usable composition of 2 ops, 221 of them.
    assert len(seen["train"]) + len(seen["test"]) > 200
    assert 0.15 < len(seen["test"]) / (len(seen["train"]) + len(seen["test"])) < 0.3
    more = SyntheticTasks("test", min_ops=2, max_ops=2, heldout_fraction=0.5).tasks(1000, seed=0)
    assert len({composition_names(task) for task in more}) > 1.5 * len(seen["test"])


def test_every_k_up_to_the_maximum_has_a_test_split():
    for k in range(2, MAX_OPS + 1):
        tasks = SyntheticTasks("test", min_ops=k, max_ops=k).tasks(5, seed=k)
        assert {task.metadata["k"] for task in tasks} == {k}
        assert all(held_out_score(task.metadata["ops"]) < 0.2 for task in tasks)


def test_k_stays_within_bounds_and_covers_them():
    tasks = SyntheticTasks(min_ops=2, max_ops=4).tasks(300, seed=3)
    counts = np.bincount([task.metadata["k"] for task in tasks], minlength=5)
    assert counts[:2].sum() == 0
    assert all(counts[k] > 60 for k in (2, 3, 4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "dev"}, r"split must be one of \('train', 'test'\), got 'dev'"),
        ({"min_ops": 0}, r"min_ops must be an int in \[1, 6\], got 0"),
        ({"min_ops": 3, "max_ops": 2}, r"max_ops must be an int in \[3, 6\], got 2"),
        ({"max_ops": 7}, r"max_ops must be an int in \[1, 6\], got 7"),
        ({"max_ops": 2.0}, r"max_ops must be an int in \[1, 6\], got 2.0"),
        ({"tests_per_task": 3}, r"tests_per_task must be an int in \[4, 32\], got 3"),
        ({"heldout_fraction": 0.0}, r"heldout_fraction must be a number in \[0.05, 0.95\], got 0.0"),
        ({"heldout_fraction": "0.2"}, r"heldout_fraction must be a number in \[0.05, 0.95\], got '0.2'"),
        ({"max_list_len": 100}, r"max_list_len must be an int in \[3, 20\], got 100"),
        ({"max_value": True}, r"max_value must be an int in \[5, 1000\], got True"),
        ({"max_words": 1}, r"max_words must be an int in \[2, 8\], got 1"),
    ],
)
def test_bad_constructor_arguments_raise_value_error(kwargs, message):
    split = kwargs.pop("split", "train")
    with pytest.raises(ValueError, match=message):
        SyntheticTasks(split, **kwargs)


def test_reference_steps_are_outline_refine_then_the_code():
    for task in SyntheticTasks(max_ops=MAX_OPS).tasks(100, seed=5):
        outline, *refinements, code_step = task.reference_steps
        k = task.metadata["k"]
        assert outline.startswith("Outline:\n1. ")
        numbered = outline.splitlines()[1:]
        returns_list_or_text = task.metadata["output_type"] != "int"
        assert [line.split(".")[0] for line in numbered] == [
            str(i) for i in range(1, k + 1 + returns_list_or_text)
        ]
        assert refinements and all(step.startswith("Refine:\n") for step in refinements)
        assert (
            f"function solve({'nums' if task.metadata['input_type'] == 'list[int]' else 'text'}):"
            in refinements[0]
        )
        assert code_step.startswith("Write the code")
        assert extract_code(code_step) == (task.reference_solution, True)
        assert len(task.reference_solution.splitlines()) == k + 1  # the def line, then one line per op
        assert sum(len(step) for step in task.reference_steps) < 1500


def test_problem_states_signature_prose_and_examples_computed_by_the_ops():
    for task in SyntheticTasks(max_ops=MAX_OPS).tasks(100, seed=6):
        steps = tuple(
            Step(OPS[name], param)
            for name, param in zip(task.metadata["ops"], task.metadata["params"], strict=True)
        )
        signature = f"solve({'nums' if task.metadata['input_type'] == 'list[int]' else 'text'}: {task.metadata['input_type']}) -> {task.metadata['output_type']}"
        assert task.problem.startswith(f"Write a Python function `{signature}`. Given ")
        assert all(step.prose in task.problem for step in steps)
        examples = re.findall(r"^solve\((.*)\) -> (.*)$", task.problem, re.MULTILINE)
        assert len(examples) == 2
        for argument, result in examples:
            assert repr(run(steps, eval(argument))) == result
        assert len(task.problem) < 650
        assert task.entry_point == "solve" and task.starter_code == "" and task.visible_tests is None


def test_hidden_tests_have_edge_cases_first_and_distinct_inputs():
    source = SyntheticTasks(tests_per_task=10)
    for task in source.tasks(100, seed=4):
        inputs = [test.args[0] for test in task.hidden_tests]
        assert len(inputs) == 10
        assert len({repr(value) for value in inputs}) == 10
        assert all(isinstance(test, CallTest) and test.entry_point == "solve" for test in task.hidden_tests)
        if task.metadata["input_type"] == "list[int]":
            assert inputs[0] == [] and len(inputs[1]) == 1
            assert len(set(inputs[2])) < len(inputs[2])  # a repeated value
            assert all(-20 <= x <= 20 and type(x) is int for value in inputs for x in value)
            assert all(len(value) <= 8 for value in inputs)
        else:
            assert inputs[0] == "" and len(inputs[1].split()) == 1
            assert all(1 <= len(value.split()) <= 4 for value in inputs[1:])


def test_metadata_describes_the_composition():
    task = SyntheticTasks().get("synthetic/train/sort>take(3)>sum/42")
    assert dict(task.metadata) == {
        "k": 3,
        "difficulty": 3,
        "ops": ["sort", "take", "sum"],
        "params": [None, 3, None],
        "composition": "sort>take(3)>sum",
        "split": "train",
        "seed": 42,
        "input_type": "list[int]",
        "output_type": "int",
    }


def test_degenerate_compositions_are_never_drawn():
    assert (
        degenerate_reason((Step(OPS["reverse"]), Step(OPS["reverse"])))
        == "leaving out reverse>reverse changes nothing"
    )
    assert (
        degenerate_reason((Step(OPS["keep_even"]), Step(OPS["keep_odd"]))) == "it returns [] for every input"
    )
    assert degenerate_reason((Step(OPS["reverse"]), Step(OPS["running_sum"]))) is None
    for task in SyntheticTasks(max_ops=MAX_OPS).tasks(300, seed=2):
        steps = tuple(
            Step(OPS[name], param)
            for name, param in zip(task.metadata["ops"], task.metadata["params"], strict=True)
        )
        assert degenerate_reason(steps) is None


@pytest.fixture(scope="module")
def mixed_tasks():
    """120 tasks: 60 per split, k from 1 to 6."""
    tasks = [
        task
        for split in ("train", "test")
        for task in SyntheticTasks(split, max_ops=MAX_OPS).tasks(60, seed=9)
    ]
    assert {task.metadata["k"] for task in tasks} == set(range(1, MAX_OPS + 1))
    return tasks


def test_reference_solutions_pass_every_hidden_test_in_the_sandbox(sandbox_factory, mixed_tasks):
    box = sandbox_factory("local")
    reports = box.run_batch([(task.reference_solution, task.hidden_tests) for task in mixed_tasks])
    failures = [
        (task.task_id, report.tests)
        for task, report in zip(mixed_tasks, reports, strict=True)
        if not report.all_passed
    ]
    assert failures == []


def test_wrong_programs_fail_the_hidden_tests(sandbox_factory, mixed_tasks):
    box = sandbox_factory("local")
    identity = "def solve(value):\n    return value"
    reports = box.run_batch([(identity, task.hidden_tests) for task in mixed_tasks])
    assert sum(not report.all_passed for report in reports) / len(reports) >= 0.9  # observed: 100%
    # Subtler: the reference without one of its steps (where the rest still type-checks). Observed on
    # 500 tasks per range: 99.8% of these fail for k <= 3, 98.5% for k <= 6.
    mutants = []
    for task in mixed_tasks:
        lines = task.reference_solution.splitlines()
        for index, name in enumerate(task.metadata["ops"][:-1], start=1):
            if OPS[name].takes == OPS[name].gives:
                mutants.append((task, "\n".join(lines[:index] + lines[index + 1 :])))
    assert len(mutants) > 100
    reports = box.run_batch([(code, task.hidden_tests) for task, code in mutants])
    assert sum(not report.all_passed for report in reports) / len(reports) >= 0.95
