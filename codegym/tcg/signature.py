"""What a test case generator knows about a task's function: its parameters' types and example calls.

Types come from the signature's annotations (read with :mod:`ast`, never by importing the task's code):
``int``, ``float``, ``bool``, ``str``, ``None``, ``list`` / ``List[X]`` / ``Sequence[X]``, ``tuple`` /
``Tuple[X, Y]`` / ``Tuple[X, ...]``, ``dict`` / ``Dict[K, V]``, ``set`` / ``Set[X]``, ``Optional[X]``,
``Union[...]`` and ``X | Y``. A missing annotation, ``Any`` or a bare container is filled in from the
example calls' argument values (:func:`infer_type`).

Example calls are read from the problem text and the starter code (``>>> f(1, [2])`` lines in a
HumanEval docstring, ``solve([3, 1]) -> [1, 3]`` in a synthetic problem) and, optionally, from the
task's own tests (a ``CallTest``'s arguments, or ``candidate(...)`` calls in an ``AssertTest``). Only
calls whose arguments are literals count (:func:`~codegym.tasks.assert_conversion.literal_value`).

Example:
    >>> from codegym.sandbox import CallTest
    >>> from codegym.tasks import Task
    >>> task = Task("toy/add", "Add.\\n>>> add(1, [2])\\n[3]", "add", (CallTest("add", (0, []), expected=[]),),
    ...             reference_solution="def add(k: int, nums):\\n    return [k + x for x in nums]\\n")
    >>> signature = read_signature(task)
    >>> [(p.name, str(p.annotation)) for p in signature.parameters]
    [('k', 'int'), ('nums', 'any')]
    >>> example_calls(task, signature), str(refine(signature.parameters[1].annotation, [[2], []]))
    ([(1, [2]), (0, [])], 'list[int]')
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codegym.sandbox import AssertTest, CallTest
from codegym.tasks.assert_conversion import literal_value
from codegym.tasks.task import Task
from codegym.tcg.base import UnsupportedTask

KINDS = ("int", "float", "bool", "str", "none", "list", "tuple", "dict", "set", "union", "any")
_SCALAR_NAMES = {"int": "int", "float": "float", "bool": "bool", "str": "str", "None": "none"}
_CONTAINER_NAMES = {
    "list": "list", "List": "list", "Sequence": "list", "MutableSequence": "list", "Iterable": "list",
    "tuple": "tuple", "Tuple": "tuple",
    "dict": "dict", "Dict": "dict", "Mapping": "dict", "MutableMapping": "dict",
    "set": "set", "Set": "set", "frozenset": "set", "FrozenSet": "set", "AbstractSet": "set",
}  # fmt: skip
_MAX_TEXT_CALLS = 64  # example calls read from a problem text; more adds nothing but parsing time
_MAX_CALL_CHARS = 4000  # a longer "call" in prose is not an example; stop scanning for its parenthesis


@dataclass(frozen=True)
class ArgType:
    """The type of one argument, as far as a test generator needs it.

    Attributes:
        kind: one of :data:`KINDS`.
        items: element types: one for list and set (and a variadic tuple), one per position for a fixed
            tuple, (key, value) for dict, the alternatives for union.
        variadic: for a tuple, ``Tuple[X, ...]``.
    """

    kind: str
    items: tuple[ArgType, ...] = ()
    variadic: bool = False

    def __str__(self) -> str:
        if not self.items:
            return self.kind
        inner = ", ".join(str(item) for item in self.items) + (", ..." if self.variadic else "")
        return f"{self.kind}[{inner}]"

    @property
    def resolved(self) -> bool:
        """No ``any`` left anywhere inside."""
        return self.kind != "any" and all(item.resolved for item in self.items)


ANY = ArgType("any")


@dataclass(frozen=True)
class Parameter:
    """One parameter of the entry point: its name, its annotated type (``any`` when absent), whether it
    has a default value, and that value when it is a literal."""

    name: str
    annotation: ArgType
    has_default: bool = False
    default: Any = None


@dataclass(frozen=True)
class Signature:
    """The entry point's parameters, in order, and where the signature was read from."""

    entry_point: str
    parameters: tuple[Parameter, ...]
    source: str  # "starter_code" or "reference_solution"


def parse_annotation(node: ast.expr | None, where: str = "annotation") -> ArgType:
    """An :class:`ArgType` for an annotation's AST (``any`` for None).

    Raises:
        UnsupportedTask: a type a generator cannot draw values of (a class, ``Callable``, ...).
    """
    if node is None:
        return ANY
    if isinstance(node, ast.Constant):
        if node.value is None:
            return ArgType("none")
        if isinstance(node.value, str):  # a string annotation: "List[int]"
            try:
                return parse_annotation(ast.parse(node.value, mode="eval").body, where)
            except SyntaxError:
                raise UnsupportedTask(f"{where} {node.value!r} is not a readable type") from None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([parse_annotation(node.left, where), parse_annotation(node.right, where)])
    if isinstance(node, ast.Name | ast.Attribute):
        return _named_type(node.id if isinstance(node, ast.Name) else node.attr, where)
    if isinstance(node, ast.Subscript):
        base = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Optional":
            return _union([parse_annotation(args[0], where), ArgType("none")])
        if base == "Union":
            return _union([parse_annotation(arg, where) for arg in args])
        kind = _CONTAINER_NAMES.get(base)
        if kind == "tuple":
            if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
                return ArgType("tuple", (parse_annotation(args[0], where),), variadic=True)
            return ArgType("tuple", tuple(parse_annotation(arg, where) for arg in args))
        if kind == "dict" and len(args) == 2:
            return ArgType("dict", (parse_annotation(args[0], where), parse_annotation(args[1], where)))
        if kind in ("list", "set") and len(args) == 1:
            return ArgType(kind, (parse_annotation(args[0], where),))
    raise UnsupportedTask(
        f"{where} {ast.unparse(node)!r} is not a type this generator can draw values of (plain data: "
        "int, float, bool, str, None and lists, tuples, dicts, sets of those)"
    )


def _named_type(name: str, where: str) -> ArgType:
    if name in _SCALAR_NAMES:
        return ArgType(_SCALAR_NAMES[name])
    if name in ("Any", "object"):
        return ANY
    kind = _CONTAINER_NAMES.get(name)
    if kind == "dict":
        return ArgType("dict", (ANY, ANY))
    if kind == "tuple":
        return ArgType("tuple", (ANY,), variadic=True)
    if kind is not None:
        return ArgType(kind, (ANY,))
    raise UnsupportedTask(
        f"{where} {name!r} is not a type this generator can draw values of (plain data: int, float, "
        "bool, str, None and lists, tuples, dicts, sets of those)"
    )


def _union(members: Sequence[ArgType]) -> ArgType:
    flat: list[ArgType] = []
    for member in members:
        for item in member.items if member.kind == "union" else (member,):
            if item not in flat:
                flat.append(item)
    return flat[0] if len(flat) == 1 else ArgType("union", tuple(flat))


def infer_type(values: Sequence[Any]) -> ArgType:
    """The narrowest :class:`ArgType` covering ``values`` (``any`` for none); ints beside floats are floats.

    Example:
        >>> str(infer_type([[1, 2], [], [3.5]])), str(infer_type([(1, "a"), None]))
        ('list[float]', 'union[tuple[int, str], none]')
    """
    groups: dict[str, list[Any]] = {}
    for value in values:
        groups.setdefault(_kind_of(value), []).append(value)
    if "float" in groups and "int" in groups:
        groups["float"] += groups.pop("int")
    members = []
    for kind, group in groups.items():
        if kind in ("list", "set"):
            members.append(ArgType(kind, (infer_type([item for value in group for item in value]),)))
        elif kind == "tuple":
            lengths = {len(value) for value in group}
            if len(lengths) == 1:
                members.append(
                    ArgType("tuple", tuple(infer_type(column) for column in zip(*group, strict=True)))
                )
            else:
                members.append(
                    ArgType("tuple", (infer_type([i for value in group for i in value]),), variadic=True)
                )
        elif kind == "dict":
            keys = [key for value in group for key in value]
            items = [item for value in group for item in value.values()]
            members.append(ArgType("dict", (infer_type(keys), infer_type(items))))
        elif kind != "other":
            members.append(ArgType(kind))
    return _union(members) if members else ANY


def _kind_of(value: Any) -> str:
    kind = type(value)
    if kind in (bool, int, float, str, list, tuple, dict):
        return kind.__name__
    if value is None:
        return "none"
    if kind in (set, frozenset):
        return "set"
    return "other"


def refine(annotation: ArgType, values: Sequence[Any]) -> ArgType:
    """``annotation`` with every ``any`` inside replaced by what ``values`` show (``any`` if nothing)."""
    if annotation.kind == "any":
        return infer_type(values)
    if annotation.resolved or not values:
        return annotation
    if annotation.kind in ("list", "set") or (annotation.kind == "tuple" and annotation.variadic):
        items = [
            item for value in values if isinstance(value, list | tuple | set | frozenset) for item in value
        ]
        return ArgType(annotation.kind, (refine(annotation.items[0], items),), annotation.variadic)
    if annotation.kind == "tuple":
        rows = [value for value in values if isinstance(value, tuple) and len(value) == len(annotation.items)]
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in annotation.items]
        return ArgType("tuple", tuple(refine(t, c) for t, c in zip(annotation.items, columns, strict=True)))
    if annotation.kind == "dict":
        dicts = [value for value in values if isinstance(value, dict)]
        keys = [key for value in dicts for key in value]
        items = [item for value in dicts for item in value.values()]
        return ArgType("dict", (refine(annotation.items[0], keys), refine(annotation.items[1], items)))
    if annotation.kind == "union":
        return _union([refine(member, [v for v in values if fits(v, member)]) for member in annotation.items])
    return annotation


def fits(value: Any, annotation: ArgType) -> bool:
    """Whether ``value`` is of the outer kind of ``annotation`` (an int fits a float)."""
    kind = _kind_of(value)
    if annotation.kind in ("any", kind):
        return True
    if annotation.kind == "float":
        return kind == "int"
    if annotation.kind == "union":
        return any(fits(value, member) for member in annotation.items)
    return False


# --- reading the task ------------------------------------------------------------------------------


def read_signature(task: Task) -> Signature:
    """The entry point's parameters, from the starter code when it defines the function, else the reference.

    Raises:
        UnsupportedTask: no top-level ``def`` of the entry point, or ``*args`` / ``**kwargs`` / keyword-only
            parameters, or an annotation that is not plain data.
    """
    for source_name in ("starter_code", "reference_solution"):
        source = getattr(task, source_name) or ""
        function = _find_function(source, task.entry_point)
        if function is not None:
            return _signature_of(task, function, source_name)
    raise UnsupportedTask(
        f"task {task.task_id!r}: neither its starter code nor its reference solution has a top-level "
        f"`def {task.entry_point}(...)`; a generator reads the parameters from it"
    )


def _find_function(source: str, name: str | None) -> ast.FunctionDef | None:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    return None


def _signature_of(task: Task, function: ast.FunctionDef, source: str) -> Signature:
    arguments = function.args
    if arguments.vararg or arguments.kwarg or arguments.kwonlyargs:
        raise UnsupportedTask(
            f"task {task.task_id!r}: `{function.name}` takes *args, **kwargs or keyword-only parameters; "
            "this generator writes positional calls only, so give it a plain positional signature"
        )
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults))
    defaults += arguments.defaults
    parameters = []
    for argument, default in zip(positional, defaults, strict=True):
        where = f"task {task.task_id!r}: parameter {argument.arg!r} has annotation"
        value, has_default = None, default is not None
        if default is not None:
            try:
                value = literal_value(default)
            except (ValueError, ArithmeticError):
                has_default = False  # a default computed at definition time: always pass the argument
        parameters.append(
            Parameter(argument.arg, parse_annotation(argument.annotation, where), has_default, value)
        )
    return Signature(task.entry_point, tuple(parameters), source)


def example_calls(task: Task, signature: Signature, *, use_tests: bool = True) -> list[tuple]:
    """Literal argument tuples of calls to the entry point found in the task (deduplicated, in order).

    Read from the problem and the starter code (calls, and lines that name every parameter:
    ``For s = "abc", c = "b" ...``), then (``use_tests``) from the task's visible and hidden tests. Keyword arguments are put in their positions; a call that does not match the signature is
    skipped; a missing argument with a literal default gets that default.
    """
    calls: list[tuple[list, dict]] = []
    for text in dict.fromkeys([task.problem, task.starter_code]):
        calls += _calls_in_text(text, task.entry_point)
    for assigned in _assignments_in_text(task, signature):
        if len(assigned) == len(signature.parameters):
            calls.append(([], assigned))
    if use_tests:
        calls += _calls_in_tests((*(task.visible_tests or ()), *task.hidden_tests), task.entry_point)
    return _positional_calls(signature, calls)


def named_values(task: Task, signature: Signature) -> dict[str, list]:
    """Per parameter, the literal values the problem gives it by name: ``For num = "AB" the output ...``,
    ``grid : [[0, 1]]``, and ``Input: [4, 2, 3]`` for a one-parameter function (HumanEval's prose
    examples). They type an unannotated parameter even where no line names every parameter."""
    values: dict[str, list] = {parameter.name: [] for parameter in signature.parameters}
    for assigned in _assignments_in_text(task, signature):
        for name, value in assigned.items():
            values[name].append(value)
    return values


def _assignments_in_text(task: Task, signature: Signature) -> list[dict[str, Any]]:
    """For each line of the problem and starter code, the literals it assigns to parameters by name."""
    names = [parameter.name for parameter in signature.parameters]
    aliases = {name: name for name in names}
    if len(names) == 1:
        aliases["Input"] = names[0]
    pattern = re.compile(rf"(?<![\w.])({'|'.join(map(re.escape, aliases))})\s*[=:]\s*")
    found = []
    for text in dict.fromkeys([task.problem, task.starter_code]):
        for line in text.splitlines():
            assigned: dict[str, Any] = {}
            for match in pattern.finditer(line):
                value = _literal_at(line, match.end())
                if value is not _NOT_A_LITERAL:
                    assigned.setdefault(aliases[match.group(1)], value)
            if assigned:
                found.append(assigned)
    return found


_NOT_A_LITERAL = object()
_SCALAR_TOKEN = re.compile(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?(?![\w.])|True\b|False\b|None\b")


def _literal_at(text: str, start: int) -> Any:
    """The literal that starts at ``text[start]`` (a number, a quoted string, a bracketed display)."""
    if start >= len(text):
        return _NOT_A_LITERAL
    char = text[start]
    if char in "[({":
        end = _closing_parenthesis(text, start + 1)
        source = text[start : end + 1] if end is not None else None
    elif char in "'\"":
        end = text.find(char, start + 1)
        source = text[start : end + 1] if end > start else None
    else:
        match = _SCALAR_TOKEN.match(text, start)
        source = match.group(0) if match else None
    if source is None:
        return _NOT_A_LITERAL
    try:
        return literal_value(ast.parse(source, mode="eval").body)
    except (SyntaxError, ValueError, ArithmeticError, TypeError, RecursionError):
        return _NOT_A_LITERAL


def hidden_calls(task: Task, signature: Signature) -> list[tuple]:
    """The argument tuples of the task's hidden tests (calls on literals inside an ``AssertTest`` too)."""
    return _positional_calls(signature, _calls_in_tests(task.hidden_tests, task.entry_point))


def _calls_in_tests(tests: Sequence[Any], entry_point: str | None) -> list[tuple[list, dict]]:
    calls: list[tuple[list, dict]] = []
    for test in tests:
        if isinstance(test, CallTest) and test.entry_point == entry_point:
            calls.append((list(test.args), dict(test.kwargs or {})))
        elif isinstance(test, AssertTest):
            calls += _calls_in_code(test.code, {entry_point, "candidate"})
    return calls


def _positional_calls(signature: Signature, calls: list[tuple[list, dict]]) -> list[tuple]:
    seen: set[str] = set()
    examples = []
    for args, kwargs in calls:
        positional = _positional(signature, args, dict(kwargs))
        if positional is None:
            continue
        key = repr(positional)
        if key not in seen:
            seen.add(key)
            examples.append(positional)
    return examples


def _positional(signature: Signature, args: list, kwargs: dict) -> tuple | None:
    parameters = signature.parameters
    if len(args) > len(parameters):
        return None
    values = list(args)
    for parameter in parameters[len(args) :]:
        if parameter.name in kwargs:
            values.append(kwargs.pop(parameter.name))
        elif parameter.has_default:
            values.append(parameter.default)
        else:
            return None
    return tuple(values) if not kwargs else None


def _calls_in_code(code: str, callees: set[str | None]) -> list[tuple[list, dict]]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in callees:
            call = _literal_call(node)
            if call is not None:
                calls.append(call)
    return calls


def _literal_call(node: ast.Call) -> tuple[list, dict] | None:
    if any(isinstance(arg, ast.Starred) for arg in node.args) or any(k.arg is None for k in node.keywords):
        return None
    try:
        return [literal_value(arg) for arg in node.args], {
            k.arg: literal_value(k.value) for k in node.keywords
        }
    except (ValueError, ArithmeticError, TypeError, RecursionError):
        return None


def _calls_in_text(text: str, entry_point: str | None) -> list[tuple[list, dict]]:
    """Calls ``entry_point(...)`` in prose or doctest lines, each parsed on its own (balanced parentheses)."""
    if not text or not entry_point:
        return []
    calls = []
    for match in re.finditer(rf"(?<![\w.]){re.escape(entry_point)}\(", text):
        end = _closing_parenthesis(text, match.end())
        if end is None:
            continue
        try:
            node = ast.parse(text[match.start() : end + 1], mode="eval").body
        except (SyntaxError, ValueError, RecursionError):
            continue
        if isinstance(node, ast.Call):
            call = _literal_call(node)
            if call is not None:
                calls.append(call)
        if len(calls) >= _MAX_TEXT_CALLS:
            break
    return calls


def _closing_parenthesis(text: str, start: int) -> int | None:
    """The index of the ``)`` closing the ``(`` just before ``start``, skipping quoted strings."""
    depth, quote, index = 1, None, start
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
        if index - start > _MAX_CALL_CHARS:
            return None
    return None
