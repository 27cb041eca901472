"""verl's ``compute_score`` (called as verl's naive and batch reward managers call it)."""

from __future__ import annotations

import json

import pytest

from codegym.integrations import verl
from tests.integrations.conftest import reference_completion


@pytest.fixture(autouse=True)
def fresh_scorers():
    yield
    verl.close_scorers()


def test_one_response(synthetic_tasks):
    task = synthetic_tasks[0]
    score = verl.compute_score("synthetic", reference_completion(task), task.task_id, None, sandbox="local")
    assert score == {
        "score": 1.0,
        "visible_pass_rate": 1.0,
        "hidden_pass_rate": 1.0,
        "has_code": True,
        "note": "",
    }
    wrong = verl.compute_score(
        "synthetic", "Outline: guess", json.dumps({"task_id": task.task_id}), sandbox="local"
    )
    assert wrong["score"] == 0.0 and wrong["has_code"] is False and "no ```python" in wrong["note"]


def test_a_batch_runs_each_task_source_in_one_sandbox_batch(synthetic_tasks, tmp_path, monkeypatch):
    from codegym.sandbox import make_sandbox

    task = synthetic_tasks[0]
    rows = tmp_path / "double.jsonl"
    rows.write_text(
        json.dumps(
            {
                "task_id": "double",
                "text": "Double x.",
                "code": "def double(x):\n    return 2 * x",
                "test_list": ["assert double(2) == 4"],
            }
        )
        + "\n"
    )
    batches: list[int] = []
    real_make = make_sandbox

    def counting_sandbox(*args, **kwargs):
        box = real_make(*args, **kwargs)
        run_batch = box.run_batch
        box.run_batch = lambda jobs, **kw: batches.append(len(jobs)) or run_batch(jobs, **kw)
        return box

    monkeypatch.setattr("codegym.env.make_sandbox", counting_sandbox)
    double = "```python\ndef double(x):\n    return 2 * x\n```"
    scores = verl.compute_score(
        data_sources=["synthetic", "anything", "synthetic", "synthetic"],
        solution_strs=[
            reference_completion(task),
            double,
            "```python\ndef solve(x):\n    return 0\n```",
            "no code",
        ],
        ground_truths=[task.task_id, "mbpp/double", task.task_id, task.task_id],
        extra_infos=[None, {"codegym_tasks": f"jsonl:{rows}"}, {}, None],
        sandbox="local",
        sandbox_workers=1,
    )
    assert [s["score"] for s in scores] == [1.0, 1.0, 0.0, 0.0]
    assert sorted(batches) == [1, 2]  # one sandbox batch per task source


def test_bad_calls_name_the_fix():
    with pytest.raises(ValueError, match="task id"):
        verl.compute_score("synthetic", "x", "", sandbox="local")
    with pytest.raises(ValueError, match="no task source"):
        verl.compute_score(None, "x", "t", {})
    with pytest.raises(ValueError, match="ground_truths"):
        verl.compute_score(data_sources=["s", "s"], solution_strs=["x", "y"], ground_truths=["t"])
    with pytest.raises(TypeError, match="batch keywords"):
        verl.compute_score("synthetic")
