"""The test case generator's contract: propose test inputs (and maybe outputs), keep what the reference passes.

A generator only *proposes*: :meth:`TestCaseGenerator.propose` returns :class:`Proposal` objects. The base
class does the part every generator shares and none may skip (O1-Coder's validation step): it runs the
task's reference solution on every proposal in the sandbox, in one batch,

- a proposal **with** an expected output becomes a test only if the reference returns that output
  (a model-written case the reference disagrees with is dropped, and counts against validity);
- a proposal **without** one (an oracle's input) gets the reference's own output as its expected value,
  and is dropped if the reference raises, times out or returns something that is not plain data;

then drops duplicates (the same arguments twice) and keeps at most ``n`` (:meth:`TestCaseGenerator.select`
chooses which; by default the first ``n``). A generator that cannot handle a task (no entry point, no
reference, a signature it cannot read) raises :class:`UnsupportedTask`, or, made with
``skip_unsupported=True``, returns an empty :class:`Generation` whose ``skipped`` says why.

Example:
    >>> from codegym.tcg import OracleTCG  # doctest: +SKIP
    >>> with OracleTCG(sandbox="local") as tcg:  # doctest: +SKIP
    ...     tests = tcg.generate(task, n=10)
"""

from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codegym.errors import UserError
from codegym.sandbox import CallTest, Sandbox, TestStatus, make_sandbox
from codegym.sandbox.plain import NotPlainDataError, encode_plain
from codegym.tasks.task import VISIBLE_SOURCE_KEY, Task

NO_EXPECTED = object()  # a Proposal's expected value when the reference must supply it


class UnsupportedTask(UserError):
    """A generator cannot write tests for this task; the message names the reason and what to do."""


@dataclass(frozen=True)
class Proposal:
    """One candidate test: a call's arguments, and its expected result if the generator claims one."""

    args: tuple = ()
    kwargs: Mapping[str, Any] | None = None
    expected: Any = NO_EXPECTED

    @property
    def has_expected(self) -> bool:
        return self.expected is not NO_EXPECTED


@dataclass(frozen=True)
class Generation:
    """What :meth:`TestCaseGenerator.generate_report` did for one task.

    Attributes:
        task_id: the task.
        tests: the kept tests: the reference passes each one, no two share arguments, at most ``n``.
        proposed: proposals the generator made.
        valid: proposals the reference passed (a claimed output matched) or answered (no claimed output).
        duplicates: valid proposals dropped because an earlier one had the same arguments.
        rejected_reasons: for each proposal the reference did not pass, the sandbox's message (capped).
        skipped: why the generator made no proposal for this task (an :class:`UnsupportedTask` message,
            with ``skip_unsupported=True``); None when it ran.
    """

    task_id: str
    tests: tuple[CallTest, ...]
    proposed: int
    valid: int
    duplicates: int
    rejected_reasons: tuple[str, ...] = field(default=(), repr=False)
    skipped: str | None = None

    @property
    def validity_rate(self) -> float:
        """The share of proposals the reference passed (O1-Coder's TCG metric); 0.0 when none was made."""
        return self.valid / self.proposed if self.proposed else 0.0


class TestCaseGenerator(ABC):
    """Base class: subclasses implement :meth:`propose`; validation against the reference lives here.

    Args:
        sandbox: a sandbox name ("auto", "local", "docker"), started on first use and closed by
            :meth:`close`, or a running :class:`~codegym.sandbox.Sandbox` the caller owns (not closed).
        timeout_s: per-test time limit when running the reference.
        memory_mb: memory limit when running the reference.
        seed: seeds the generator's randomness; the same seed and task give the same tests.
        equality: the ``CallTest.equality`` of the tests made ("strict" or "python").
        skip_unsupported: for a task the generator cannot handle, return an empty :class:`Generation`
            whose ``skipped`` gives the reason, instead of raising :class:`UnsupportedTask` (useful when
            generating for a whole dataset).
    """

    __test__ = False  # not a pytest class, despite the name

    def __init__(
        self,
        sandbox: str | Sandbox = "auto",
        *,
        timeout_s: float = 3.0,
        memory_mb: int = 512,
        seed: int = 0,
        equality: str = "strict",
        skip_unsupported: bool = False,
    ) -> None:
        self._sandbox_spec = sandbox
        self._sandbox: Sandbox | None = sandbox if isinstance(sandbox, Sandbox) else None
        self._owns_sandbox = not isinstance(sandbox, Sandbox)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.seed = seed
        self.equality = equality
        self.skip_unsupported = skip_unsupported

    @abstractmethod
    def propose(self, task: Task, n: int, rng: np.random.Generator) -> list[Proposal]:
        """Up to about ``n`` candidate tests for ``task`` (propose more than ``n`` if many may be dropped).

        Raise :class:`UnsupportedTask` with the reason when the task is out of the generator's reach.
        """

    def select(self, candidates: Sequence[CallTest], n: int) -> list[CallTest]:
        """Which of the valid, distinct ``candidates`` (in proposal order) to keep, at most ``n``.

        The default keeps the first ``n``; a generator may prefer, say, tests with different outputs.
        """
        return list(candidates[:n])

    # ---------------------------------------------------------------- validation (shared by every generator)

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = make_sandbox(self._sandbox_spec)
        return self._sandbox

    def generate(self, task: Task, n: int = 10) -> tuple[CallTest, ...]:
        """At most ``n`` tests for ``task``, each one passed by its reference solution, no duplicates."""
        return self.generate_report(task, n).tests

    def generate_report(self, task: Task, n: int = 10) -> Generation:
        """Like :meth:`generate`, with the counts behind validity rate and deduplication."""
        return self.generate_reports([task], n)[0]

    def generate_reports(self, tasks: Sequence[Task], n: int = 10) -> list[Generation]:
        """:meth:`generate_report` for many tasks; every reference runs in one sandbox batch."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise UserError(f"n must be a positive int (the most tests to keep per task), got {n!r}")
        proposals_per_task: list[list[Proposal]] = []
        skipped: list[str | None] = []
        for task in tasks:
            rng = np.random.default_rng([self.seed, stable_hash(task.task_id)])
            try:
                _check_generatable(task)
                proposals_per_task.append(list(self.propose(task, n, rng)))
                skipped.append(None)
            except UnsupportedTask as exc:
                if not self.skip_unsupported:
                    raise
                proposals_per_task.append([])
                skipped.append(str(exc))
        jobs = [
            (task.reference_solution, [self._probe(task, p) for p in proposals])
            for task, proposals in zip(tasks, proposals_per_task, strict=True)
            if proposals
        ]
        reports = iter(
            self.sandbox.run_batch(jobs, timeout_s=self.timeout_s, memory_mb=self.memory_mb) if jobs else []
        )
        generations = []
        for task, proposals, reason in zip(tasks, proposals_per_task, skipped, strict=True):
            results = next(reports).tests if proposals else ()
            generations.append(dataclasses.replace(self._keep(task, proposals, results, n), skipped=reason))
        return generations

    def _probe(self, task: Task, proposal: Proposal) -> CallTest:
        # Without a claimed output, expected=None is a placeholder: the reference's returned value is read
        # from the result, whatever the verdict on the placeholder.
        expected = proposal.expected if proposal.has_expected else None
        return CallTest(task.entry_point, proposal.args, proposal.kwargs, expected, equality=self.equality)

    def _keep(self, task: Task, proposals: list[Proposal], results: Sequence[Any], n: int) -> Generation:
        candidates: list[CallTest] = []
        seen: set[str] = set()
        valid = duplicates = 0
        rejected: list[str] = []
        for proposal, result in zip(proposals, results, strict=True):
            if proposal.has_expected:
                ok = result.status is TestStatus.PASSED
                expected = proposal.expected
            else:
                # The call returned a value (PASSED or FAILED against the placeholder). A FAILED with an
                # error_type is the reference raising AssertionError, not returning: no value to keep.
                ok = result.status in (TestStatus.PASSED, TestStatus.FAILED) and result.error_type is None
                expected = result.returned
            if not ok:
                rejected.append(result.message[:200] or result.error_type or result.status.value)
                continue
            valid += 1
            key = arguments_key(proposal.args, proposal.kwargs)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            candidates.append(
                CallTest(task.entry_point, proposal.args, proposal.kwargs, expected, equality=self.equality)
            )
        kept = self.select(candidates, n)[:n]
        return Generation(task.task_id, tuple(kept), len(proposals), valid, duplicates, tuple(rejected))

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the sandbox if this generator started it."""
        if self._owns_sandbox and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def __enter__(self) -> TestCaseGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_generatable(task: Task) -> None:
    if task.entry_point is None:
        raise UnsupportedTask(
            f"task {task.task_id!r} is a stdin/stdout task; test case generators write function-call "
            "tests, so they need a task with an entry_point"
        )
    if not task.reference_solution:
        raise UnsupportedTask(
            f"task {task.task_id!r} has no reference_solution; generated tests are validated against it, "
            "so give the task one (or use the task's own tests)"
        )


def arguments_key(args: Sequence[Any], kwargs: Mapping[str, Any] | None = None) -> str:
    """A canonical text for a call's arguments: two calls with the same key are the same test input.

    Plain data is encoded with its types (``1`` and ``True``, a list and a tuple differ), so the key is
    stable across processes.
    """
    try:
        return repr(encode_plain([list(args), dict(kwargs or {})]))
    except NotPlainDataError:
        return repr((tuple(args), kwargs))


def stable_hash(text: str) -> int:
    """A 64-bit digest of ``text`` that is the same in every process (unlike ``hash``), for seeding."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def with_visible_tests(task: Task, tests: Sequence[CallTest], source: str = "tcg") -> Task:
    """``task`` with ``tests`` as its visible tests (the env pays with them; hidden tests still judge).

    ``source`` is recorded in the task's metadata (``"visible_source"``), so the env can report where
    the tests that paid came from; read it back with :attr:`Task.visible_source`.
    """
    return dataclasses.replace(
        task, visible_tests=tuple(tests), metadata={**task.metadata, VISIBLE_SOURCE_KEY: source}
    )
