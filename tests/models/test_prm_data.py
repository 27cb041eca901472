"""Step-label data: the schema, sibling pairs, and labels for synthetic tasks made by execution."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("datasets")

from codegym.models.prm_data import (
    CORRUPTIONS,
    STEP_LABEL_FEATURES,
    STEP_PAIR_FEATURES,
    StepLabel,
    balance_labels,
    check_step_labels,
    label_balance,
    load_step_labels,
    neighbour_compositions,
    sibling_pairs,
    step_labels_dataset,
    synthetic_episode,
    synthetic_step_labels,
    task_composition,
)
from codegym.tasks.synthetic import SyntheticTasks
from codegym.tasks.synthetic_ops import OPS, Step, run, type_checks


@pytest.fixture(scope="module")
def labelled(sandbox_factory):
    return synthetic_step_labels("train", n_tasks=6, seed=0, sandbox=sandbox_factory("local"))


def _row(prefix, step, hard, soft=None, task_id="t/0", problem="P"):
    return StepLabel(
        task_id, problem, tuple(prefix), step, float(hard), float(hard if soft is None else soft)
    )


def test_synthetic_episode_rebuilds_the_reference_steps():
    for task in SyntheticTasks("train", min_ops=1, max_ops=6).tasks(20, seed=1):
        assert synthetic_episode(task_composition(task)) == task.reference_steps


def test_neighbours_are_one_edit_away_and_type_check():
    steps = (Step(OPS["keep_even"]), Step(OPS["take"], 3), Step(OPS["sum"]))
    neighbours = neighbour_compositions(steps)
    kinds = {kind for kind, _ in neighbours}
    assert kinds == set(CORRUPTIONS)
    for kind, candidate in neighbours:
        assert candidate != steps
        assert type_checks(candidate, "list") is not None
        length_change = {"replace": 0, "swap": 0, "drop": -1, "insert": 1}[kind]
        assert len(candidate) == len(steps) + length_change
    assert ("drop", steps[1:]) in neighbours  # keep_even dropped: take(3)>sum still chains
    assert ("replace", (steps[0], Step(OPS["take"], 4), steps[2])) in neighbours
    assert len({candidate for _, candidate in neighbours}) == len(neighbours)


def test_synthetic_labels_come_from_running_the_completed_code(labelled):
    assert labelled.features == STEP_LABEL_FEATURES
    tasks = {task.task_id: task for task in SyntheticTasks("train").tasks(6, seed=0)}
    assert set(labelled["task_id"]) == set(tasks)
    for row in labelled:
        assert row["hard_label"] == float(row["soft_label"] == 1.0)
        task = tasks[row["task_id"]]
        position = len(row["prefix"])
        if row["origin"] == "reference":
            assert row["step"] == task.reference_steps[position]
            assert row["hard_label"] == 1.0
        else:
            assert row["step"] != task.reference_steps[position]
    # Recompute one corrupted code step's label on the host: its pass rate on the true task's tests.
    code_rows = [r for r in labelled if r["origin"] != "reference" and len(r["prefix"]) == 2]
    row = code_rows[0]
    task = tasks[row["task_id"]]
    namespace: dict = {}
    exec(row["step"].split("```python\n")[1].split("\n```")[0], namespace)  # trusted: our own generated code
    passed = [namespace["solve"](*test.args) == test.expected for test in task.hidden_tests]
    assert row["soft_label"] == pytest.approx(sum(passed) / len(passed))
    balance = label_balance(labelled)
    assert 0.2 < balance["good_fraction"] < 0.8  # both classes are well represented
    assert balance["rows"] == len(labelled)


def test_off_path_rows_judge_the_step_not_the_prefix(labelled):
    tasks = {task.task_id: task for task in SyntheticTasks("train").tasks(6, seed=0)}
    off_path = [
        row
        for row in labelled
        if row["prefix"] and row["prefix"][0] != tasks[row["task_id"]].reference_steps[0]
    ]
    assert off_path
    # After a corrupted outline, the reference refinement returns to the right plan: it is good.
    returning = [row for row in off_path if row["origin"] == "reference"]
    assert returning and all(row["hard_label"] == 1.0 for row in returning)


def test_synthetic_labels_are_seeded(sandbox_factory, labelled):
    again = synthetic_step_labels("train", n_tasks=6, seed=0, sandbox=sandbox_factory("local"))
    assert again.to_list() == labelled.to_list()


def test_sibling_pairs_order_siblings_by_label():
    rows = step_labels_dataset(
        [
            _row([], "good", 1, 1.0),
            _row([], "bad", 0, 0.25),
            _row([], "worse", 0, 0.0),
            _row(["good"], "next", 1),
            _row([], "other task", 0, task_id="t/1"),
        ]
    )
    hard = sibling_pairs(rows, labels="hard")
    assert hard.features == STEP_PAIR_FEATURES
    assert sorted((r["chosen"], r["rejected"]) for r in hard) == [("good", "bad"), ("good", "worse")]
    soft = sibling_pairs(rows, labels="soft")
    assert sorted((r["chosen"], r["rejected"]) for r in soft) == [
        ("bad", "worse"),
        ("good", "bad"),
        ("good", "worse"),
    ]
    assert all(r["chosen_label"] > r["rejected_label"] for r in soft)
    with pytest.raises(ValueError, match="labels must be one of"):
        sibling_pairs(rows, labels="medium")


def test_balance_labels_evens_good_and_bad_within_code_and_reasoning():
    code = "```python\ndef f(x):\n    return x\n```"
    rows = step_labels_dataset(
        [_row([], f"outline {i}", i < 3) for i in range(10)]  # 3 good, 7 bad
        + [_row(["o"], f"{code}\n# {i}", i == 0) for i in range(5)]  # 1 good, 4 bad
        + [_row(["o", "c"], "only bad refine", 0)]
    )
    kept = balance_labels(rows, seed=0)
    is_code = ["```python" in step for step in kept["step"]]
    good = [label == 1.0 for label in kept["hard_label"]]
    assert sum(g for g, c in zip(good, is_code, strict=True) if c) == 1 and sum(is_code) == 2
    assert sum(g for g, c in zip(good, is_code, strict=True) if not c) == 3 and is_code.count(False) == 6
    assert set(rows.filter(lambda r: r["hard_label"] == 1.0)["step"]) <= set(kept["step"])  # the rare label
    assert kept.features == rows.features
    assert balance_labels(rows, seed=0)["step"] == kept["step"]  # seeded
    assert len(balance_labels(rows.filter(lambda r: r["hard_label"] == 0.0))) == 0  # one label: nothing


def test_load_step_labels_reads_files_and_rejects_bad_labels(tmp_path):
    rows = [_row([], "a", 1).as_row(), _row(["a"], "b", 0, 0.5).as_row()]
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    loaded = load_step_labels(path)
    assert loaded.features == STEP_LABEL_FEATURES
    assert loaded["soft_label"] == [1.0, 0.5]
    step_labels_dataset(rows).save_to_disk(str(tmp_path / "saved"))
    assert load_step_labels(tmp_path / "saved").to_list() == loaded.to_list()
    with pytest.raises(FileNotFoundError, match="STEP_LABEL_FEATURES"):
        load_step_labels(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="soft_label must lie in"):
        step_labels_dataset([{**rows[0], "soft_label": 1.5}])
    with pytest.raises(ValueError, match=r"hard_label must be 0\.0 or 1\.0"):
        step_labels_dataset([{**rows[0], "hard_label": 0.5}])
    from datasets import Dataset

    with pytest.raises(ValueError, match="lacks the columns"):
        check_step_labels(Dataset.from_list([{"problem": "p", "step": "s"}]))


def test_host_run_agrees_with_reference_on_hidden_tests():
    # The premise of execution labels: the reference composition passes its own task's tests.
    task = SyntheticTasks("train").tasks(1, seed=5)[0]
    steps = task_composition(task)
    assert all(run(steps, test.args[0]) == test.expected for test in task.hidden_tests)
