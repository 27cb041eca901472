"""The three kinds of test a sandbox runs, how they travel to a worker, and how the host judges them.

Expected values never travel: a ``CallTest``'s expected value and a ``StdioTest``'s expected output
stay on the host, and the comparison happens here, outside the candidate's reach.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codegym.errors import UserError
from codegym.sandbox.plain import MalformedDataError, NotPlainDataError, decode_plain, encode_plain
from codegym.sandbox.report import TestResult, TestStatus


@dataclass(frozen=True)
class AssertTest:
    """A snippet run after the program, in its namespace (HumanEval's ``check(candidate)`` style).

    It passes when it runs to its end. With ``entry_point`` set, that function's results reach the
    snippet rebuilt from plain data, so an object with a lying ``__eq__`` cannot satisfy an assertion.
    The snippet runs in the candidate's process: prefer ``CallTest`` or ``StdioTest`` when a test can
    be stated as data, since those are compared on the host.

    Example:
        >>> AssertTest("assert add(2, 3) == 5", entry_point="add").code
        'assert add(2, 3) == 5'
    """

    __test__ = False

    code: str
    entry_point: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code.strip():
            raise UserError(f"AssertTest.code must be a non-empty string of Python, got {self.code!r:.80}")
        try:
            compile(self.code, "test.py", "exec")
        except (SyntaxError, ValueError) as exc:
            raise UserError(f"AssertTest.code does not compile ({exc}): {self.code!r:.80}") from None

    def to_wire(self) -> dict:
        return {"kind": "assert", "code": self.code, "entry_point": self.entry_point}


EQUALITIES = ("strict", "python")


@dataclass(frozen=True)
class CallTest:
    """Call ``entry_point(*args, **kwargs)`` and compare the result with ``expected`` on the host.

    The result must be plain data (None, bool, int, float, complex, str, bytes and lists, tuples, dicts,
    sets of those); anything else is an error. With ``equality="strict"`` (the default) a float expected
    compares with ``math.isclose(rel_tol, abs_tol)``, an int expected exactly (``1000000.9`` is not
    ``1000000``), bool and int are told apart, and list and tuple are told apart. With
    ``equality="python"`` the host applies Python's ``==`` to the decoded plain data, which is what a
    dataset's own ``assert f(x) == y`` meant (``1 == True``, ``2 == 2.0``, exact floats); it
    is still safe, because only plain data reaches the comparison.

    Example:
        >>> CallTest("add", args=(2, 3), expected=5).args
        (2, 3)
    """

    __test__ = False

    entry_point: str
    args: tuple = ()
    kwargs: Mapping[str, Any] | None = None
    expected: Any = None
    rel_tol: float = 1e-6
    abs_tol: float = 1e-9
    equality: str = "strict"
    _wire: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.entry_point, str) or not self.entry_point.isidentifier():
            raise UserError(f"CallTest.entry_point must be a function name, got {self.entry_point!r}")
        if self.equality not in EQUALITIES:
            raise UserError(f"CallTest.equality must be one of {EQUALITIES}, got {self.equality!r}")
        object.__setattr__(self, "args", tuple(self.args))
        if self.kwargs is not None and not isinstance(self.kwargs, Mapping):
            raise UserError(
                f"CallTest.kwargs must be a mapping of keyword arguments, got {self.kwargs!r:.80}; "
                "pass the expected value as expected=..."
            )
        try:
            wire = {
                "kind": "call",
                "entry_point": self.entry_point,
                "args": encode_plain(list(self.args)),
                "kwargs": encode_plain(dict(self.kwargs or {})),
            }
            encode_plain(self.expected)
        except NotPlainDataError as exc:
            raise UserError(f"CallTest arguments and expected value must be plain data: {exc}") from None
        object.__setattr__(self, "_wire", wire)

    def to_wire(self) -> dict:
        return self._wire


@dataclass(frozen=True)
class StdioTest:
    """Run the whole program with ``stdin`` and compare its stdout with ``expected_stdout``.

    Comparison is token by token on whitespace-split output (so line breaks and trailing spaces do not
    matter); an integer token expected compares exactly as a number, and other numbers with
    ``math.isclose(rel_tol, abs_tol)``. The program must exit with status 0.
    """

    __test__ = False

    stdin: str
    expected_stdout: str
    rel_tol: float = 1e-6
    abs_tol: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("stdin", "expected_stdout"):
            if not isinstance(getattr(self, name), str):
                raise UserError(f"StdioTest.{name} must be a str, got {type(getattr(self, name)).__name__}")

    def to_wire(self) -> dict:
        return {"kind": "stdio", "stdin": self.stdin}


Test = AssertTest | CallTest | StdioTest


def plain_equal(actual: Any, expected: Any, rel_tol: float, abs_tol: float) -> bool:
    """Structural equality of plain data; bool is not int, list is not tuple.

    An int expected compares exactly (``1000000.9`` is not ``1000000``; ``2.0`` is ``2``); a float
    expected compares with the tolerance.
    """
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if isinstance(expected, int):
            return actual == expected  # Python compares an int with a float exactly
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return math.isclose(actual, expected, rel_tol=rel_tol, abs_tol=abs_tol)
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, list | tuple):
        return len(actual) == len(expected) and all(
            plain_equal(a, e, rel_tol, abs_tol) for a, e in zip(actual, expected, strict=True)
        )
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            plain_equal(actual[key], expected[key], rel_tol, abs_tol) for key in expected
        )
    return actual == expected


def _python_equal(actual: Any, expected: Any) -> bool:
    try:
        return bool(actual == expected)
    except Exception:  # e.g. a set holding an unorderable mix; plain data cannot lie, it can only differ
        return False


_INTEGER_TOKEN = re.compile(r"[+-]?[0-9]+")


def _token_equal(actual: str, expected: str, rel_tol: float, abs_tol: float) -> bool:
    """Equal tokens; numbers as numbers: an integer expected exactly (``7.0`` is ``7``, ``1000000006`` is
    not ``1000000007``), any other number with the tolerance."""
    if actual == expected:
        return True
    if _INTEGER_TOKEN.fullmatch(expected):
        try:
            return decimal.Decimal(actual) == decimal.Decimal(expected)
        except (decimal.InvalidOperation, ValueError):
            return False
    try:
        a, e = float(actual), float(expected)
    except ValueError:
        return False
    if math.isnan(a) or math.isnan(e):
        return False
    return math.isclose(a, e, rel_tol=rel_tol, abs_tol=abs_tol)


def stdout_matches(actual: str, expected: str, rel_tol: float, abs_tol: float) -> bool:
    actual_tokens, expected_tokens = actual.split(), expected.split()
    return len(actual_tokens) == len(expected_tokens) and all(
        _token_equal(a, e, rel_tol, abs_tol) for a, e in zip(actual_tokens, expected_tokens, strict=True)
    )


def _preview(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def judge(test: Test, raw: dict) -> TestResult:
    """Turn a worker's raw result for ``test`` into a verdict.

    ``raw`` comes from the sandbox and is untrusted: anything malformed is an ``error`` verdict with
    error type ``ProtocolError``, never an exception and never a pass.
    """
    try:
        return _judge(test, raw)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError, OverflowError) as exc:
        return TestResult(
            TestStatus.ERROR,
            "ProtocolError",
            f"the sandbox sent a malformed result ({type(exc).__name__}: {exc})",
        )


def _judge(test: Test, raw: dict) -> TestResult:
    status = raw["status"]
    duration = float(raw.get("duration_s", 0.0))
    if not math.isfinite(duration):
        duration = 0.0
    if status == "returned" and isinstance(test, CallTest):
        actual = decode_plain(raw["value"])
        if test.equality == "python":
            equal = _python_equal(actual, test.expected)
        else:
            equal = plain_equal(actual, test.expected, test.rel_tol, test.abs_tol)
        if equal:
            return TestResult(TestStatus.PASSED, duration_s=duration, returned=actual)
        return TestResult(
            TestStatus.FAILED,
            message=f"{test.entry_point}(...) returned {_preview(actual)}, expected {_preview(test.expected)}",
            duration_s=duration,
            returned=actual,
        )
    if status == "exited" and isinstance(test, StdioTest):
        if type(raw["exit_code"]) is not int:
            raise MalformedDataError(f"exit code {raw['exit_code']!r:.20} is not an int")
        if raw["exit_code"] != 0:
            return TestResult(
                TestStatus.ERROR, "Exit", f"the program exited with status {raw['exit_code']}", duration
            )
        stdout = str(raw.get("stdout", ""))
        if stdout_matches(stdout, test.expected_stdout, test.rel_tol, test.abs_tol):
            return TestResult(TestStatus.PASSED, duration_s=duration)
        return TestResult(
            TestStatus.FAILED,
            message=f"printed {_preview(stdout)}, expected {_preview(test.expected_stdout)}",
            duration_s=duration,
        )
    if status == "passed" and isinstance(test, AssertTest):
        return TestResult(TestStatus.PASSED, duration_s=duration)
    if status in ("returned", "exited", "passed"):
        # A raw status that does not belong to this kind of test is a protocol violation, never a pass.
        return TestResult(
            TestStatus.ERROR, "ProtocolError", f"unexpected {status!r} for {type(test).__name__}"
        )
    error_type = raw.get("error_type")
    return TestResult(
        TestStatus(status),
        None if error_type is None else str(error_type),
        str(raw.get("message", "")),
        duration,
    )
