"""Turn a dataset's assertions into tests the host judges, where they say no more than "f(x) == y".

Datasets state their tests as Python: HumanEval as a ``check(candidate)`` function, MBPP as a list of
``assert f(...) == ...`` lines. Run as an :class:`AssertTest`, such code executes inside the candidate's
process (see the sandbox's "Limits"). Most of it is a call on literal arguments compared with a literal,
which a :class:`CallTest` states as data: the expected value then never enters the sandbox, and each
assertion becomes a test of its own, so a reward can count them.

A ``CallTest`` made here uses ``equality="python"``, the dataset's own ``==`` (``1 == True``, ``2 == 2.0``,
a list is not a tuple, floats exact), on the plain data the candidate returned. ``assert f(...) is True``
(or ``False`` / ``None``) becomes a ``CallTest`` with ``equality="strict"``, which tells bool from int just
as ``is`` does. Anything else (loops, helpers, tolerances, truthiness, expected values computed by calls)
keeps its original form as an ``AssertTest``.

A literal is what ``ast.literal_eval`` accepts (negative numbers, tuples, lists, dicts, sets, None,
True/False, strings), plus arithmetic on literals that datasets write inline (``3 * 19``, ``'ab' + 'c'``),
folded on the host under size limits (:func:`literal_value`).
"""

from __future__ import annotations

import ast
import builtins
import operator
from collections.abc import Sequence
from typing import Any

from codegym.errors import UserError
from codegym.sandbox import AssertTest, CallTest, Test

_IDENTITY_CONSTANTS = (True, False, None)


def tests_from_check(test_source: str, entry_point: str) -> tuple[Test, ...]:
    """Tests for a HumanEval-style ``test`` field: a module defining ``check(candidate)``.

    When every statement of ``check`` is ``assert candidate(<literals>) == <literal>`` (either side,
    with or without a message, keyword arguments allowed), ``assert candidate(...) is True/False/None``,
    or has no effect (``assert True``, a bare string or name, ``pass``), each assertion becomes a
    :class:`CallTest` on ``entry_point``. Otherwise the whole module followed by ``check(entry_point)``
    is one :class:`AssertTest`, exactly as HumanEval runs it.

    Args:
        test_source: the module's source, e.g. HumanEval's ``test`` field.
        entry_point: the function the candidate defines, passed to ``check``.

    Returns:
        One ``CallTest`` per assertion, or one ``AssertTest``.

    Raises:
        UserError: ``test_source`` is not valid Python, or ``entry_point`` is not a name.

    Example:
        >>> source = "def check(candidate):\\n    assert candidate(2, b=-3) == -1, 'sum'\\n"
        >>> [(test.args, test.kwargs, test.expected, test.equality) for test in tests_from_check(source, "add")]
        [((2,), {'b': -3}, -1, 'python')]
    """
    _check_entry_point(entry_point)
    module = _parse(test_source, "test source")
    check = _check_function(module)
    if check is not None:
        converted = [_convert_statement(statement, check, entry_point) for statement in check.body]
        if converted and all(test is not _NOT_CONVERTIBLE for test in converted):
            tests = tuple(test for test in converted if test is not None)
            if tests:
                return tests
    return (whole_check_test(test_source, entry_point),)


def whole_check_test(test_source: str, entry_point: str) -> AssertTest:
    """A ``check(candidate)`` module run as HumanEval runs it: the module, then ``check(entry_point)``."""
    _check_entry_point(entry_point)
    return AssertTest(f"{test_source}\ncheck({entry_point})", entry_point=entry_point)


def tests_from_asserts(asserts: Sequence[str], entry_point: str, setup_code: str = "") -> tuple[Test, ...]:
    """Tests for MBPP-style assertion lines that call ``entry_point`` by name.

    Each ``assert entry_point(<literals>) == <literal>`` (or ``is True/False/None``) becomes a
    :class:`CallTest`; any other line becomes an :class:`AssertTest` of ``setup_code`` followed by the line.
    A literal assertion reads nothing the setup code defines, so the setup code goes only with the
    assertions that stay code.

    Args:
        asserts: one assertion statement per item, e.g. MBPP's ``test_list``.
        entry_point: the function the assertions call.
        setup_code: code the non-literal assertions need first (MBPP's ``test_setup_code``, imports).

    Raises:
        UserError: an item is not exactly one ``assert`` statement, or ``entry_point`` is not a name.

    Example:
        >>> tests = tests_from_asserts(["assert f(1) == 2", "assert f(2) > 3"], "f")
        >>> [type(test).__name__ for test in tests]
        ['CallTest', 'AssertTest']
    """
    _check_entry_point(entry_point)
    if isinstance(asserts, str):
        raise UserError("asserts must be a sequence of assertion strings, got a single string")
    tests: list[Test] = []
    for number, line in enumerate(asserts, start=1):
        if not isinstance(line, str):
            raise UserError(f"assertion {number} must be a string, got {type(line).__name__}")
        module = _parse(line, f"assertion {number}")
        if len(module.body) != 1 or not isinstance(module.body[0], ast.Assert):
            raise UserError(f"assertion {number} must be one assert statement, got {line!r:.200}")
        test = _call_test(module.body[0].test, entry_point, entry_point)
        if test is None:
            code = f"{setup_code}\n{line}" if setup_code.strip() else line
            test = AssertTest(code, entry_point=entry_point)
        tests.append(test)
    if not tests:
        raise UserError(f"no assertions given for {entry_point!r}; a task needs at least one test")
    return tuple(tests)


# Their names start with "test"; a test module that imports them must not have pytest collect them.
tests_from_check.__test__ = False  # type: ignore[attr-defined]
tests_from_asserts.__test__ = False  # type: ignore[attr-defined]

# ---------------------------------------------------------------------------------------------------

_NOT_CONVERTIBLE = object()


def _check_entry_point(entry_point: str) -> None:
    if not (isinstance(entry_point, str) and entry_point.isidentifier()):
        raise UserError(f"entry_point must be a function name, got {entry_point!r}")


def _parse(source: str, what: str) -> ast.Module:
    if not isinstance(source, str):
        raise UserError(f"{what} must be a string of Python, got {type(source).__name__}")
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise UserError(f"{what} is not valid Python: {exc.msg} (line {exc.lineno})") from None


def _check_function(module: ast.Module) -> ast.FunctionDef | None:
    """The module's only ``def check(candidate)`` with one plain parameter, or None."""
    checks = [node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "check"]
    if len(checks) != 1:
        return None
    arguments = checks[0].args
    if (
        len(arguments.args) != 1
        or arguments.posonlyargs
        or arguments.kwonlyargs
        or arguments.vararg
        or arguments.kwarg
        or checks[0].decorator_list
    ):
        return None
    return checks[0]


def _convert_statement(statement: ast.stmt, check: ast.FunctionDef, entry_point: str):
    """A CallTest, None for a statement with no effect, or _NOT_CONVERTIBLE."""
    if isinstance(statement, ast.Pass):
        return None
    if isinstance(statement, ast.Expr):
        value = statement.value
        # A docstring, a stray constant, or a stray builtin name (HumanEval/129 has a bare `print`).
        if isinstance(value, ast.Constant) or (
            isinstance(value, ast.Name) and hasattr(builtins, value.id) and value.id != check.args.args[0].arg
        ):
            return None
        return _NOT_CONVERTIBLE
    if not isinstance(statement, ast.Assert):
        return _NOT_CONVERTIBLE
    if isinstance(statement.test, ast.Constant) and statement.test.value is True:
        return None
    test = _call_test(statement.test, check.args.args[0].arg, entry_point)
    return _NOT_CONVERTIBLE if test is None else test


def _call_test(condition: ast.expr, callee: str, entry_point: str) -> CallTest | None:
    """``callee(<literals>) == <literal>`` (either order) or ``... is True/False/None`` as a CallTest."""
    if not (isinstance(condition, ast.Compare) and len(condition.ops) == 1):
        return None
    left, right, operator = condition.left, condition.comparators[0], condition.ops[0]
    if isinstance(operator, ast.Eq):
        equality = "python"
        if not _is_call_to(left, callee) and _is_call_to(right, callee):
            left, right = right, left
    elif isinstance(operator, ast.Is):
        equality = "strict"  # `x is True` holds only for a bool, which strict equality also demands
        if not (isinstance(right, ast.Constant) and any(right.value is c for c in _IDENTITY_CONSTANTS)):
            return None
    else:
        return None
    if not _is_call_to(left, callee):
        return None
    try:
        args = tuple(literal_value(argument) for argument in left.args)
        kwargs = {keyword.arg: literal_value(keyword.value) for keyword in left.keywords}
        expected = literal_value(right)
        return CallTest(entry_point, args, kwargs or None, expected=expected, equality=equality)
    except (ValueError, TypeError, ArithmeticError, MemoryError, RecursionError):
        return None  # not a literal, or not plain data: the assertion stays code


def _is_call_to(node: ast.expr, callee: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == callee
        and not any(isinstance(argument, ast.Starred) for argument in node.args)
        and all(keyword.arg is not None for keyword in node.keywords)  # no **mapping
    )


# Arithmetic on literals that datasets write inline (HumanEval: ``3 * 19``, ``'abc' + 'de'``, ``0**0``),
# folded on the host under size limits, so that a hostile file cannot make loading hang or eat memory.
_BINARY_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPERATORS = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_MAX_INT_BITS = 4096
_MAX_LENGTH = 100_000


def literal_value(node: ast.expr) -> Any:
    """The value of a literal expression: what ``ast.literal_eval`` accepts, plus arithmetic on literals.

    Raises:
        UserError: the expression is not a literal (a name, a call other than ``set()``, ...), or folding
            it would exceed the size limits.
        ArithmeticError: the arithmetic fails, e.g. a division by zero.

    Example:
        >>> literal_value(ast.parse("(3 * 19, -2.5, 'ab' + 'c', set())", mode="eval").body)
        (57, -2.5, 'abc', set())
    """
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        values = [literal_value(element) for element in node.elts]
        return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](values)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):  # {**mapping}
            raise UserError("a dict display with ** is not a literal")
        return {
            literal_value(key): literal_value(value)
            for key, value in zip(node.keys, node.values, strict=True)
        }
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "set"
        and not node.args
        and not node.keywords
    ):
        return set()  # the only way to write an empty set
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPERATORS:
        operand = literal_value(node.operand)
        if not isinstance(operand, int | float | complex):
            raise UserError(f"unary {type(node.op).__name__} on a {type(operand).__name__}")
        return _bounded(_UNARY_OPERATORS[type(node.op)](operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPERATORS:
        left, right = literal_value(node.left), literal_value(node.right)
        _check_operands(node.op, left, right)
        return _bounded(_BINARY_OPERATORS[type(node.op)](left, right))
    raise UserError(f"not a literal: {ast.unparse(node)[:80]}")


def _check_operands(op: ast.operator, left: Any, right: Any) -> None:
    numbers = (int, float, complex)
    if isinstance(left, numbers) and isinstance(right, numbers):
        huge_int_power = (
            isinstance(op, ast.Pow)
            and isinstance(left, int)
            and isinstance(right, int)
            and (abs(right) > _MAX_INT_BITS or abs(left).bit_length() * abs(right) > _MAX_INT_BITS)
        )
        if huge_int_power:
            raise UserError("the power is too large to fold")
        return
    sequences = (str, bytes, list, tuple)
    if isinstance(op, ast.Add) and isinstance(left, sequences) and type(left) is type(right):
        return
    if isinstance(op, ast.Mult):
        sequence, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(sequence, sequences) and isinstance(count, int) and not isinstance(count, bool):
            if len(sequence) * max(count, 0) > _MAX_LENGTH:
                raise UserError("the repeated sequence is too long to fold")
            return
    raise UserError(f"{type(op).__name__} on {type(left).__name__} and {type(right).__name__} is not folded")


def _bounded(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise UserError("the folded integer is too large")
    if isinstance(value, str | bytes | list | tuple) and len(value) > _MAX_LENGTH:
        raise UserError("the folded sequence is too long")
    return value
