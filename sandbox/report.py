"""What a sandbox run returns: one frozen result per test, and a report per program."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class TestStatus(StrEnum):
    """The verdict on one test. Only ``PASSED`` passes."""

    __test__ = False  # not a pytest class

    PASSED = "passed"
    FAILED = "failed"  # ran to the end with a wrong answer (or an AssertionError)
    ERROR = "error"  # raised, exited, printed too much, returned non-plain data, or did not compile
    TIMEOUT = "timeout"  # wall-clock or CPU limit
    MEMORY = "memory"  # MemoryError or the out-of-memory killer
    CRASHED = "crashed"  # died without reporting: a signal, os._exit, a dead worker


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test.

    Attributes:
        status: the verdict.
        error_type: the exception or signal name behind a non-pass (None on a pass or a plain wrong answer).
        message: a human-readable explanation, truncated.
        duration_s: wall-clock seconds the test took inside the sandbox.
        returned: for a CallTest whose call returned (status PASSED or FAILED), the plain value it
            returned, decoded on the host; None otherwise. A test case generator reads the reference
            solution's outputs from it.
    """

    __test__ = False

    status: TestStatus
    error_type: str | None = None
    message: str = ""
    duration_s: float = 0.0
    returned: Any = None

    @property
    def passed(self) -> bool:
        return self.status is TestStatus.PASSED


@dataclass(frozen=True)
class ExecutionReport:
    """The result of running one program against its tests.

    Attributes:
        compiled: False when the program has a syntax error (then no test ran).
        tests: one result per test, in the order the tests were given.
        stdout: what the program printed, capped (see ``report_bytes`` on the sandbox).
        stderr: what it wrote to stderr, capped.
        duration_s: wall-clock seconds for the whole job inside the sandbox.
        backend: the sandbox that ran it ("local" or "docker").
    """

    compiled: bool
    tests: tuple[TestResult, ...]
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    backend: str = ""

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.tests)

    @property
    def total(self) -> int:
        return len(self.tests)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.tests else 0.0

    @property
    def all_passed(self) -> bool:
        return bool(self.tests) and self.passed == self.total
