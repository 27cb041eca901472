"""Run untrusted programs against tests: ``make_sandbox("local" | "docker" | "auto" | "ray")``.

Example:
    >>> from codegym.sandbox import make_sandbox, CallTest
    >>> with make_sandbox("local", workers=1) as box:
    ...     report = box.run("def double(x):\\n    return 2 * x", [CallTest("double", (4,), expected=8)])
    >>> report.passed, report.total, report.tests[0].status.value
    (1, 1, 'passed')
"""

from __future__ import annotations

from codegym.sandbox.base import Sandbox, SandboxError, SandboxUnavailable
from codegym.sandbox.cases import AssertTest, CallTest, StdioTest, Test
from codegym.sandbox.factory import BACKENDS, make_sandbox
from codegym.sandbox.report import ExecutionReport, TestResult, TestStatus

__all__ = [
    # choosing and using a sandbox
    "BACKENDS",
    "Sandbox",
    "make_sandbox",
    # tests
    "AssertTest",
    "CallTest",
    "StdioTest",
    "Test",
    # results
    "ExecutionReport",
    "TestResult",
    "TestStatus",
    # errors
    "SandboxError",
    "SandboxUnavailable",
]
