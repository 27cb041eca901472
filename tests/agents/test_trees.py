"""Search trees as data: step-label rows PRM training reads, SFT paths, JSON and HTML."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import codegym  # noqa: F401  (registers CodeReason-v0)
from codegym.agents import (
    MCTSAgent,
    solved_paths,
    tree_rows,
    tree_to_html,
    trees_dataset,
    write_html,
    write_json,
)
from codegym.models.prm_data import STEP_LABEL_FEATURES, load_step_labels

OUTLINE = "Outline: add x to itself"
GOOD_CODE = "```python\ndef double(x):\n    return x + x\n```"
WRONG_CODE = "```python\ndef double(x):\n    return x\n```"
TREE = {(): [OUTLINE, "Just <guess>."], (OUTLINE,): [GOOD_CODE, WRONG_CODE], ("Just <guess>.",): [WRONG_CODE]}


@pytest.fixture
def tree(double_task, sandbox_factory, tree_policy_factory, stub_prm):
    env = gym.make("CodeReason-v0", tasks=[double_task], sandbox=sandbox_factory("local"))
    env.reset(seed=0)
    agent = MCTSAgent(
        tree_policy_factory(TREE),
        prm=stub_prm,
        simulations=3,
        expansions=2,
        evaluation="prm",
        stop_on_solve=False,
    )
    yield agent.solve(env).tree
    env.close()


def test_rows_carry_the_step_label_schema_and_node_statistics(tree):
    rows = tree_rows(tree)
    assert len(rows) == len(tree.nodes) - 1 == 5
    by_step = {(tuple(r["prefix"]), r["step"]): r for r in rows}
    outline = by_step[((), OUTLINE)]
    assert outline["visits"] == 3 and outline["value"] == pytest.approx(2.3 / 3)
    assert outline["soft_label"] == pytest.approx(2.3 / 3) and outline["hard_label"] == 1.0
    assert outline["origin"] == "mcts" and outline["depth"] == 1 and outline["prm_score"] == 0.8
    guess = by_step[((), "Just <guess>.")]
    assert guess["hard_label"] == 0.0  # nothing below it passed
    good = by_step[((OUTLINE,), GOOD_CODE)]
    assert good["code"] == "def double(x):\n    return x + x" and good["terminal"]
    assert (good["visible_pass_rate"], good["hidden_all_passed"], good["hard_label"]) == (1.0, True, 1.0)
    wrong = by_step[((OUTLINE,), WRONG_CODE)]
    assert (wrong["visible_pass_rate"], wrong["hard_label"], wrong["soft_label"]) == (0.0, 0.0, 0.5)


def test_the_dataset_is_what_prm_training_reads(tree):
    dataset = trees_dataset([tree])
    labels = load_step_labels(dataset)
    assert set(STEP_LABEL_FEATURES) <= set(labels.column_names)
    assert len(labels) == 5 and sorted(labels["hard_label"]) == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_solved_paths_are_the_code_paths_that_passed(tree, double_task):
    assert solved_paths([tree]) == [(double_task.problem, (OUTLINE, GOOD_CODE))]


def test_json_keeps_the_whole_tree(tree, tmp_path):
    path = write_json([tree], tmp_path / "trees.json")
    [data] = json.loads(path.read_text())
    assert data["task_id"] == "toy/double" and data["simulations"] == 3
    assert data["root"]["visits"] == 5
    outline = data["root"]["children"][0]
    assert outline["step"] == OUTLINE and [c["step"] for c in outline["children"]] == [GOOD_CODE, WRONG_CODE]
    assert data["answer_steps"] == [OUTLINE, GOOD_CODE]


def test_html_is_self_contained_and_escapes_steps(tree, tmp_path):
    page = tree_to_html(tree)
    assert page.startswith("<!DOCTYPE html>") and "<script src" not in page and "http" not in page
    assert "Just &lt;guess&gt;." in page and "Just <guess>." not in page
    assert page.count("<details") == 5 and "N=3 Q=0.767" in page
    assert write_html(tree, tmp_path / "t.html").read_text() == page
