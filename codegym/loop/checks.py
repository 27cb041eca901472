"""Each training stage checked on data it did not train on, before its output is used.

SFT and RL are checked by the greedy solve rate (hidden tests) of the policy before and after the stage
on ``check_tasks`` validation tasks (:func:`check_tasks`): held-out compositions like the evaluation's,
but never one of the evaluation's tasks, so the final figures are not chosen on. The PRM is checked by
its held-out step AUC against the PRM it started from, on the same held-out labelled steps.

Why not training-split tasks: on 200 of them, SFT moved the demo's policy from 0.330 to 0.335 while it
moved 300 held-out ones from 0.130 to 0.183; a check there would not see what the loop is for. With
``rollback`` on, a stage that scores worse than its input is reported (``"rolled_back": true`` in its
metrics) and the next stage gets the input instead.

The checks answer "did this stage make things worse?" on a few dozen tasks: a stage that loses by one
task is rolled back too, which is the conservative side of noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from codegym.loop.context import StageContext
    from codegym.tasks import Task

CHECK_SEED = 7_919  # mixed with the loop's seed: the check tasks are the same in every iteration


def check_tasks(ctx: StageContext) -> list[Task]:
    """``config.check_tasks`` test-split tasks of the evaluation's difficulty, none of them an evaluation
    task; the same in every iteration."""
    from codegym.loop.task_sets import eval_tasks, task_source

    config = ctx.config
    own = {task.task_id for task in eval_tasks(config)}
    source = task_source(config, "test")
    rng = np.random.default_rng([config.seed, CHECK_SEED])
    chosen: dict[str, Task] = {}
    for _ in range(100 * config.check_tasks):
        task = source.sample(rng)
        if task.task_id not in own:
            chosen.setdefault(task.task_id, task)
        if len(chosen) == config.check_tasks:
            break
    return list(chosen.values())


def greedy_solve_rate(ctx: StageContext, policy: str, tasks: list[Task]) -> float:
    """The share of ``tasks`` whose hidden tests the policy's greedy episode passes."""
    return float(np.mean(greedy_verdicts(ctx, policy, tasks)))


def greedy_verdicts(ctx: StageContext, policy: str, tasks: list[Task]) -> list[int]:
    """1 for each of ``tasks`` whose hidden tests the policy's greedy episode passes, else 0, in order."""
    from codegym.agents import rollout
    from codegym.loop.config import policy_options
    from codegym.models import load_policy

    episodes = rollout(
        load_policy(policy, **policy_options(ctx.config)),
        tasks,
        max_steps=ctx.config.max_steps,
        sandbox=ctx.sandbox,
        seed=ctx.config.seed,
    )
    return [int(episode.hidden_all_passed) for episode in episodes]


def policy_check(ctx: StageContext, before: str, after: str) -> dict[str, Any]:
    """Greedy solve rate of the stage's input and output policies on the check tasks, and the verdict."""
    tasks = check_tasks(ctx)
    scores = {"before": greedy_solve_rate(ctx, before, tasks), "after": greedy_solve_rate(ctx, after, tasks)}
    return _verdict(ctx, "greedy solve rate", len(tasks), scores)


def prm_check(ctx: StageContext, before: str, after: str, held_out: Any) -> dict[str, Any]:
    """Held-out step AUC of the stage's input and output PRMs on the same labelled steps."""
    from codegym.models import load_prm
    from codegym.models.prm_eval import evaluate_prm

    scores = {
        name: evaluate_prm(load_prm(spec), held_out).auc
        for name, spec in (("before", before), ("after", after))
    }
    return _verdict(ctx, "held-out step AUC", len(held_out), scores)


def _verdict(ctx: StageContext, metric: str, size: int, scores: dict[str, float]) -> dict[str, Any]:
    worse = scores["after"] < scores["before"]
    return {
        "metric": metric,
        "size": size,
        **scores,
        "worse": worse,
        "rolled_back": bool(worse and ctx.config.rollback),
    }
