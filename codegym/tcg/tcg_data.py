"""The TCG's training data and its held-out measure: SFT rows, DPO pairs (O1-Coder's shuffled outputs),
and validity of a trained model on held-out synthetic tasks.

:mod:`codegym.training.tcg` trains on these rows; this module needs no torch, so the rows can be
built, inspected and saved without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import numpy as np

from codegym.errors import UserError
from codegym.sandbox import CallTest, Sandbox
from codegym.tasks.task import Task
from codegym.tcg.model_tcg import ModelTCG, TCGEvaluation, format_cases, tcg_prompt

# ------------------------------------------------------------------------------------------ data


def call_tests(task: Task) -> tuple[CallTest, ...]:
    """The task's hidden tests that are function calls (the only kind a case line can state)."""
    return tuple(test for test in task.hidden_tests if isinstance(test, CallTest))


def sft_examples(tasks: Sequence[Task], *, with_reference: bool = False) -> list[dict[str, str]]:
    """Prompt-completion rows for SFT: the prompt of :func:`~codegym.tcg.model_tcg.tcg_prompt`, and the
    task's own call tests as case lines. Tasks with no call test are skipped.

    Example:
        >>> from codegym.tasks.synthetic import SyntheticTasks
        >>> [row] = sft_examples(SyntheticTasks("train").tasks(1))
        >>> row["completion"].splitlines()[0]
        "solve('') -> ''"
    """
    return [
        {"prompt": tcg_prompt(task, with_reference=with_reference), "completion": format_cases(tests)}
        for task in tasks
        if (tests := call_tests(task))
    ]


def shuffled_outputs(
    tests: Sequence[CallTest], rng: np.random.Generator, *, tries: int = 10
) -> list[CallTest] | None:
    """``tests`` with the same inputs and their expected outputs shuffled among them (O1-Coder's rejected
    cases), or None when no shuffle within ``tries`` changes the text (all outputs equal, or one test)."""
    original = format_cases(tests)
    for _ in range(tries):
        order = rng.permutation(len(tests))
        shuffled = [
            CallTest(test.entry_point, test.args, test.kwargs, tests[int(j)].expected, equality=test.equality)
            for test, j in zip(tests, order, strict=True)
        ]
        if format_cases(shuffled) != original:
            return shuffled
    return None


def dpo_pairs(
    tasks: Sequence[Task], *, seed: int = 0, pairs_per_task: int = 1, with_reference: bool = False
) -> list[dict[str, str]]:
    """Preference rows for DPO: ``chosen`` = the task's correct cases, ``rejected`` = the same inputs with
    shuffled outputs. Tasks whose outputs cannot be told apart by shuffling are skipped.

    Example:
        >>> from codegym.tasks.synthetic import SyntheticTasks
        >>> [row] = dpo_pairs(SyntheticTasks("train").tasks(1), seed=0)
        >>> [line.split(" -> ")[0] for line in row["chosen"].splitlines()] == [
        ...     line.split(" -> ")[0] for line in row["rejected"].splitlines()]
        True
    """
    if not (isinstance(pairs_per_task, int) and pairs_per_task >= 1):
        raise UserError(f"pairs_per_task must be an int >= 1, got {pairs_per_task!r}")
    rng = np.random.default_rng(seed)
    rows = []
    for task in tasks:
        tests = call_tests(task)
        prompt = tcg_prompt(task, with_reference=with_reference)
        for _ in range(pairs_per_task):
            rejected = shuffled_outputs(tests, rng) if len(tests) >= 2 else None
            if rejected is not None:
                rows.append(
                    {"prompt": prompt, "chosen": format_cases(tests), "rejected": format_cases(rejected)}
                )
    return rows


# ------------------------------------------------------------------------------------------ evaluation


def evaluate_tcg(
    model: str | PathLike[str],
    tasks: Sequence[Task],
    *,
    n: int = 8,
    seed: int = 0,
    sandbox: str | Sandbox = "local",
    temperature: float = 0.7,
    samples_per_task: int = 2,
    max_new_tokens: int = 256,
    with_reference: bool = False,
    batch_size: int = 32,
) -> TCGEvaluation:
    """Validity of the model in ``model`` on ``tasks``: a :class:`~codegym.tcg.model_tcg.ModelTCG` run."""
    tcg = ModelTCG(
        str(model),
        sandbox=sandbox,
        seed=seed,
        temperature=temperature,
        samples_per_task=samples_per_task,
        max_new_tokens=max_new_tokens,
        with_reference=with_reference,
        policy_options={"batch_size": batch_size},
    )
    with tcg:
        return tcg.evaluate(tasks, n)


def heldout_tasks(count: int, seed: int = 0) -> list[Task]:
    """``count`` tasks of the synthetic test split (compositions never seen in training)."""
    from codegym.tasks.synthetic import SyntheticTasks

    return SyntheticTasks("test").tasks(count, seed=seed)


__all__ = [
    "call_tests",
    "dpo_pairs",
    "evaluate_tcg",
    "heldout_tasks",
    "sft_examples",
    "shuffled_outputs",
]
