"""The loop's task sets: the configured source's splits, each iteration's training tasks, the held-out
evaluation tasks, and the function (group) each task asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from codegym.loop.config import LoopConfig
    from codegym.tasks import Task, TaskSource


def task_source(config: LoopConfig, split: str) -> TaskSource:
    """The configured source's ``split``: synthetic with the configured ops (the evaluation's ops for
    ``"test"``; ``"train"`` is the training tasks' source, drawn from ``tasks.train_split``), or CodeIO's
    real problems (built once into the cache)."""
    if config.tasks.source == "codeio":
        from codegym.tasks.codeio import load_codeio

        return load_codeio(split, seed=config.seed)
    from codegym.tasks.synthetic import SyntheticTasks

    if split == "test":
        return SyntheticTasks("test", min_ops=config.tasks.eval_ops, max_ops=config.tasks.eval_ops)
    return SyntheticTasks(
        config.tasks.train_split, min_ops=config.tasks.min_ops, max_ops=config.tasks.max_ops
    )


def draw_tasks(source: TaskSource, n: int, seed: int) -> list[Task]:
    """``n`` distinct tasks of ``source`` drawn with ``seed`` (all of a finite source that has fewer)."""
    if hasattr(source, "tasks"):  # synthetic: its own seeded list
        return list({task.task_id: task for task in source.tasks(n, seed=seed)}.values())
    tasks = list(source)
    order = np.random.default_rng(seed).permutation(len(tasks))[:n]
    return [tasks[int(index)] for index in order]


def training_tasks(config: LoopConfig, seed: int) -> list[Task]:
    """The iteration's training-split tasks (distinct ids)."""
    return draw_tasks(task_source(config, "train"), config.tasks.train_tasks, seed)


def eval_tasks(config: LoopConfig) -> list[Task]:
    """The held-out evaluation tasks: the same in every iteration."""
    return draw_tasks(task_source(config, "test"), config.tasks.eval_tasks, config.seed)


def task_group(task: Task) -> str:
    """The function a task asks for: its composition for a synthetic task (the same function recurs with
    other examples), else its id. Intervals count these, not tasks (:mod:`codegym.loop.stats`)."""
    return str(task.metadata.get("composition", task.task_id))


def eval_groups(config: LoopConfig) -> list[str]:
    """:func:`task_group` of each evaluation task, in the evaluation's order."""
    return [task_group(task) for task in eval_tasks(config)]
