"""CodeGym as verl's reward: ``compute_score`` for ``custom_reward_function.path``.

verl calls a custom reward function once per response (its ``naive`` reward manager) as
``compute_score(data_source, solution_str, ground_truth, extra_info)``, or once per batch (the ``batch``
reward manager) as ``compute_score(data_sources=, solution_strs=, ground_truths=, extra_infos=)``. This
one function serves both; in a batch, every response's code runs in one sandbox batch per task source.

The dataset rows say what to run: ``ground_truth`` is a CodeGym task id (``"HumanEval/0"``, a synthetic
id such as ``"synthetic/train/sort>sum/42"``, or an id in your own file) and ``data_source`` the task
source it comes from (``"synthetic"``, ``"humaneval"``, ``"jsonl:PATH"``, ``"dataset:NAME"``), unless
``extra_info["codegym_tasks"]`` names it. The response is played as an episode of ``CodeReason-v0``
(reasoning steps, then a ```python block); the visible tests pay and the hidden pass rate comes back
beside the score, which verl logs.

Configure it in verl's config::

    custom_reward_function:
      path: /path/to/codegym/integrations/verl.py   # python -c "import codegym.integrations.verl as m; print(m.__file__)"
      name: compute_score
      reward_kwargs: {sandbox: local, reward: terminal}
    reward_model:
      reward_manager: batch   # one sandbox batch per step; "naive" works too, one response at a time

``reward_kwargs`` are :class:`~codegym.integrations.trl.CodeTestReward` options (``sandbox``,
``sandbox_workers``, ``reward``, ``outcome``, ``test_set``, ``visible_tests``, ``max_steps``,
``timeout_s``). One scorer (and its sandbox) is made per task source and options, on first use in
each reward worker process, and reused.
"""

from __future__ import annotations

import atexit
import json
import threading
from collections.abc import Sequence
from typing import Any

from codegym.errors import UserError
from codegym.integrations.trl.rewards import CodeTestReward

TASKS_KEY = "codegym_tasks"

_scorers: dict[str, CodeTestReward] = {}
_scorers_lock = threading.Lock()


def compute_score(
    data_source: str | None = None,
    solution_str: str | None = None,
    ground_truth: str | None = None,
    extra_info: dict[str, Any] | None = None,
    *,
    data_sources: Sequence[str] | None = None,
    solution_strs: Sequence[str] | None = None,
    ground_truths: Sequence[str] | None = None,
    extra_infos: Sequence[dict[str, Any] | None] | None = None,
    **options: Any,
) -> dict[str, Any] | list[dict[str, Any]]:
    """Score one response (verl's per-response call) or a batch (its batch call; then a list).

    Args:
        data_source: the row's task source (or any label, when ``extra_info["codegym_tasks"]`` names it).
        solution_str: the model's response: reasoning steps, then a ```python block.
        ground_truth: the task id.
        extra_info: the row's extra info; ``codegym_tasks`` overrides ``data_source``.
        data_sources, solution_strs, ground_truths, extra_infos: the same, one per response (batch call).
        **options: :class:`~codegym.integrations.trl.CodeTestReward` options (verl's ``reward_kwargs``).

    Returns:
        ``{"score": the episode's return, "visible_pass_rate", "hidden_pass_rate", "has_code", "note"}``
        per response (pass rates are 0.0 without code; ``note`` says why a score is 0).

    Example:
        >>> from codegym.tasks.synthetic import SyntheticTasks
        >>> task = SyntheticTasks("train", max_ops=1).tasks(1, seed=0)[0]
        >>> response = "Outline: ...\\n\\n### Step 2\\n```python\\n" + task.reference_solution + "\\n```"
        >>> compute_score("synthetic", response, task.task_id, sandbox="local")["score"]
        1.0
    """
    if solution_strs is not None:
        count = len(solution_strs)
        for name, column in (("data_sources", data_sources), ("ground_truths", ground_truths)):
            if column is None or len(column) != count:
                raise UserError(f"a batch call needs {name} with one entry per response ({count})")
        if extra_infos is not None and len(extra_infos) != count:
            raise UserError(f"extra_infos has {len(extra_infos)} entries for {count} responses")
        return score_batch(
            list(data_sources),
            list(solution_strs),
            list(ground_truths),
            list(extra_infos) if extra_infos is not None else [None] * count,
            **options,
        )
    if solution_str is None or ground_truth is None:
        raise TypeError(
            "compute_score needs (data_source, solution_str, ground_truth[, extra_info]) or the batch keywords "
            "(data_sources=, solution_strs=, ground_truths=, extra_infos=)"
        )
    [score] = score_batch([data_source], [solution_str], [ground_truth], [extra_info], **options)
    return score


def score_batch(
    data_sources: Sequence[str | None],
    solution_strs: Sequence[str],
    ground_truths: Sequence[str],
    extra_infos: Sequence[dict[str, Any] | None],
    **options: Any,
) -> list[dict[str, Any]]:
    """Scores for a batch; each task source's responses go to the sandbox in one batch."""
    groups: dict[str, list[int]] = {}
    for index, (source, info) in enumerate(zip(data_sources, extra_infos, strict=True)):
        tasks = (info or {}).get(TASKS_KEY) or source
        if not isinstance(tasks, str) or not tasks:
            raise UserError(
                f"response {index}: no task source; set the row's data_source to a CodeGym task source "
                f"('synthetic', 'humaneval', 'jsonl:PATH', ...) or extra_info[{TASKS_KEY!r}]"
            )
        groups.setdefault(tasks, []).append(index)
    results: list[dict[str, Any] | None] = [None] * len(solution_strs)
    for tasks, indices in groups.items():
        scorer = _scorer(tasks, options)
        scores = scorer.score(
            [str(solution_strs[i]) for i in indices], [_task_id(ground_truths[i]) for i in indices]
        )
        for index, score in zip(indices, scores, strict=True):
            results[index] = {
                "score": score.reward,
                "visible_pass_rate": score.visible_pass_rate if score.visible_pass_rate is not None else 0.0,
                "hidden_pass_rate": score.hidden_pass_rate,
                "has_code": score.has_code,
                "note": score.note,
            }
    return results  # type: ignore[return-value]


def _task_id(ground_truth: Any) -> str:
    """The task id in a ground truth: the string itself, or ``task_id`` of a JSON object or dict."""
    if isinstance(ground_truth, dict):
        ground_truth = ground_truth.get("task_id")
    elif isinstance(ground_truth, str) and ground_truth.lstrip().startswith("{"):
        ground_truth = json.loads(ground_truth).get("task_id")
    if not isinstance(ground_truth, str) or not ground_truth:
        raise UserError(
            f"ground_truth must be a CodeGym task id (or {{'task_id': ...}}), got {ground_truth!r}"
        )
    return ground_truth


def _scorer(tasks: str, options: dict[str, Any]) -> CodeTestReward:
    """The scorer for a task source and options, made once per process (verl imports this module by path)."""
    key = json.dumps([tasks, options], sort_keys=True, default=repr)
    with _scorers_lock:
        if key not in _scorers:
            _scorers[key] = CodeTestReward(tasks, **options)
        return _scorers[key]


@atexit.register
def close_scorers() -> None:
    """Stop every scorer's sandbox (also run at interpreter exit)."""
    with _scorers_lock:
        for scorer in _scorers.values():
            scorer.close()
        _scorers.clear()


__all__ = ["close_scorers", "compute_score", "score_batch"]
