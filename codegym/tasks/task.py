"""A programming task, and the sources that hand tasks to the environment."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codegym.errors import UserError
from codegym.sandbox import AssertTest, CallTest, StdioTest, Test

_TEST_TYPES = (AssertTest, CallTest, StdioTest)
VISIBLE_SOURCE_KEY = "visible_source"  # metadata key: who wrote the visible tests (see Task.visible_source)


@dataclass(frozen=True)
class Task:
    """One programming problem with the tests that judge a solution.

    Attributes:
        task_id: unique within its source, e.g. ``"HumanEval/0"`` or ``"synthetic/test/k2/17"``.
        problem: the text the policy sees (for HumanEval the prompt: signature and docstring).
        entry_point: the function a solution must define; None for stdin/stdout tasks.
        hidden_tests: the dataset's own tests. They judge (``info["hidden_*"]``) and pay only when the
            env is made with ``test_set="hidden"``.
        visible_tests: the tests that pay the reward. None means "the hidden tests", until a test case
            generator supplies others; :attr:`visible_source` says which.
        reference_solution: a program that passes every hidden test, when the source has one.
        reference_steps: a whole reference episode when the source has one: pseudocode steps, then the
            code action (a step holding a fenced ```python block with the reference solution).
        starter_code: code a solution may build on; when the code action does not define the entry point,
            the env runs ``starter_code`` followed by the code (HumanEval-style completions).
        metadata: anything else the source knows (difficulty, dataset row, ...); treat it as read-only.
    """

    task_id: str
    problem: str
    entry_point: str | None
    hidden_tests: tuple[Test, ...]
    visible_tests: tuple[Test, ...] | None = None
    reference_solution: str | None = None
    reference_steps: tuple[str, ...] = ()
    starter_code: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.task_id, str) or not self.task_id:
            raise UserError(f"Task.task_id must be a non-empty string, got {self.task_id!r}")
        if not isinstance(self.problem, str) or not self.problem.strip():
            raise UserError(f"Task {self.task_id!r}: problem must be non-empty text")
        if self.entry_point is not None and not (
            isinstance(self.entry_point, str) and self.entry_point.isidentifier()
        ):
            raise UserError(f"Task {self.task_id!r}: entry_point must be a function name or None")
        for name in ("hidden_tests", "visible_tests"):
            tests = getattr(self, name)
            if tests is None:
                continue
            tests = tuple(tests)
            if not tests:
                raise UserError(f"Task {self.task_id!r}: {name} is empty; a task needs at least one test")
            bad = [type(test).__name__ for test in tests if not isinstance(test, _TEST_TYPES)]
            if bad:
                raise TypeError(f"Task {self.task_id!r}: {name} must hold sandbox tests, got {bad[0]}")
            object.__setattr__(self, name, tests)
        object.__setattr__(self, "reference_steps", tuple(self.reference_steps))
        object.__setattr__(self, "metadata", dict(self.metadata))  # a copy; plain so tasks pickle

    @property
    def tests_that_pay(self) -> tuple[Test, ...]:
        """The visible tests, or the hidden ones when no visible set was given."""
        return self.visible_tests if self.visible_tests is not None else self.hidden_tests

    @property
    def visible_source(self) -> str:
        """Where the visible tests come from: ``"hidden"`` (none of their own, so the hidden ones),
        ``metadata["visible_source"]`` when whoever set them recorded it (``"tcg"`` for a test case
        generator), else ``"task"`` (the source's own)."""
        if self.visible_tests is None:
            return "hidden"
        return str(self.metadata.get(VISIBLE_SOURCE_KEY, "task"))


def tests_fingerprint(tests: Sequence[Test]) -> str:
    """A stable digest of a test list, for caching verdicts by (task, code, tests)."""
    return hashlib.blake2b(repr(tuple(tests)).encode(), digest_size=16).hexdigest()


class TaskSource(ABC):
    """Where an environment gets its tasks: a finite list or an endless generator.

    Subclasses implement :meth:`get` (a task by id) and :meth:`sample` (a task drawn with the env's
    ``np_random``, so the same seed gives the same task sequence).
    """

    name: str = "tasks"

    @abstractmethod
    def get(self, task_id: str) -> Task:
        """The task with this id; raises KeyError naming the id and how to list valid ones."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Task:
        """A task drawn with ``rng``."""

    def max_problem_chars(self) -> int | None:
        """The longest problem text, when the source is finite (None for endless sources)."""
        return None


class TaskList(TaskSource):
    """A finite, ordered set of tasks; ``sample`` draws uniformly.

    Example:
        >>> from codegym.sandbox import CallTest
        >>> tasks = TaskList([Task("t/0", "Return 1.", "one", (CallTest("one", (), expected=1),))])
        >>> len(tasks), tasks.get("t/0").entry_point
        (1, 'one')
    """

    def __init__(self, tasks: Sequence[Task], name: str = "tasks") -> None:
        tasks = list(tasks)
        if not tasks:
            raise UserError(f"task source {name!r} has no tasks")
        bad = [type(task).__name__ for task in tasks if not isinstance(task, Task)]
        if bad:
            raise TypeError(f"task source {name!r} must hold Task objects, got {bad[0]}")
        self._by_id: dict[str, Task] = {}
        for task in tasks:
            if task.task_id in self._by_id:
                raise UserError(f"task source {name!r} has two tasks with id {task.task_id!r}")
            self._by_id[task.task_id] = task
        self._tasks = tasks
        self.name = name

    def get(self, task_id: str) -> Task:
        try:
            return self._by_id[task_id]
        except KeyError:
            examples = ", ".join(repr(task.task_id) for task in self._tasks[:3])
            raise KeyError(
                f"unknown task id {task_id!r} in {self.name!r} ({len(self)} tasks, e.g. {examples}); "
                "list them with [task.task_id for task in source]"
            ) from None

    def sample(self, rng: np.random.Generator) -> Task:
        return self._tasks[int(rng.integers(len(self._tasks)))]

    def max_problem_chars(self) -> int:
        return max(len(task.problem) for task in self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks)

    def __getitem__(self, index: int) -> Task:
        return self._tasks[index]

    def __repr__(self) -> str:
        return f"TaskList({self.name!r}, {len(self)} tasks)"
