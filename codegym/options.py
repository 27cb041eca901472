"""Options from declarations: the one way CodeGym turns a default and its description into a flag or a key.

A setting is declared once, where it is used, with its default and a sentence saying what it means:

- a keyword-only argument of a library function, described in its Google-style docstring's ``Args:``
  section (the trainers: ``codegym train policy --help`` lists :func:`~codegym.training.policy_sft.
  train_policy`'s arguments);
- a dataclass field with a string literal under it (the loop's TOML, :mod:`codegym.loop.config`, and
  every benchmark script's ``Args``), as CleanRL writes its arguments.

This module reads both kinds of declaration (the default from the signature or the field, the text from
the docstring or the string under the field, the type from the resolved type hints) and makes argparse
options of them; :mod:`codegym.loop.config` writes the same field texts as TOML comments. It imports
nothing outside the standard library, so ``codegym --help`` and ``import codegym`` stay quick.

Example:
    >>> import argparse
    >>> def fit(out: str, *, epochs: int = 3, options: dict | None = None) -> None: ...
    >>> parser = argparse.ArgumentParser()
    >>> add_function_arguments(parser, fit)
    >>> function_kwargs(parser.parse_args(["--epochs", "5", "--options", '{"k": 1}']), fit)
    {'epochs': 5, 'options': {'k': 1}}
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import json
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_ARG_LINE = re.compile(r"^(\s+)([a-z_][a-z0-9_, ]*):\s*(.*)$")
_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")  # Sphinx cross-references such as :func:`~pkg.mod.name`


# -- reading declarations ----------------------------------------------------------------------------


def docstring_args(function: Callable) -> dict[str, str]:
    """The ``Args:`` section of ``function``'s docstring as {name: description}, continuation lines joined.

    A line such as ``hidden_size, layers, heads: the tiny model's shape`` documents each name it lists.
    """
    doc = inspect.getdoc(function) or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration:
        return {}
    described: dict[str, str] = {}
    names: list[str] = []
    indent = None
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith(" "):
            break  # the next section (Returns:, Raises:, ...)
        match = _ARG_LINE.match(line)
        if match and (indent is None or len(match.group(1)) == indent):
            indent = len(match.group(1))
            names = [name.strip() for name in match.group(2).split(",")]
            for name in names:
                described[name] = match.group(3).strip()
        elif line.strip() and names:
            for name in names:
                described[name] += " " + line.strip()
    return described


def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of the dataclass ``cls`` (its description), by field name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = after.value.value
    return docs


def plain_text(text: str) -> str:
    """Docstring markup made readable in a terminal: ``:func:`~a.b``` becomes ``b``, double backticks go.

    Example:
        >>> plain_text("a spec for :func:`~codegym.models.load_policy` (``'tiny'``)")
        "a spec for load_policy ('tiny')"
    """
    text = _ROLE.sub(
        lambda match: match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2), text
    )
    return text.replace("``", "")


def keyword_defaults(function: Callable) -> dict[str, Any]:
    """The default of each keyword argument of ``function`` (a class: its ``__init__``) that has one."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def check_keywords(
    target: Callable, options: dict[str, Any], what: str, *, taken: Iterable[str] = ()
) -> None:
    """Refuse ``options`` that ``target`` (a function or a class) has no keyword argument for.

    Forwarded options otherwise fail deep inside as a TypeError that reads like a bug; this names the bad
    keys and the valid ones. ``taken`` are arguments the caller passes itself; a ``**kwargs`` target
    accepts anything.

    Raises:
        UserError: an unknown key.
    """
    from codegym.errors import UserError

    parameters = inspect.signature(target).parameters.values()
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return
    skipped = set(taken)
    valid = sorted(
        parameter.name
        for parameter in parameters
        if parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and parameter.name not in skipped
    )
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UserError(
            f"{what} takes no option {', '.join(map(repr, unknown))}: the valid ones are {', '.join(valid)}"
        )


def _type_hints(target: Any) -> dict[str, Any]:
    """The type hints of a function or a class, each resolved on its own (``from __future__ import
    annotations`` leaves strings); a hint that names something not importable here (a name imported
    only for type checking) is left out, and the default's type decides."""
    module = sys.modules.get(getattr(target, "__module__", ""), None)
    namespace = dict(vars(module)) if module else {}
    raw: dict[str, Any] = {}
    if dataclasses.is_dataclass(target):
        for klass in reversed(target.__mro__):
            raw.update(vars(klass).get("__annotations__", {}))
    else:
        raw = dict(getattr(target.__init__ if isinstance(target, type) else target, "__annotations__", {}))
    hints = {}
    for name, hint in raw.items():
        if isinstance(hint, str):
            try:
                hint = eval(hint, namespace)  # a hint is an expression of the module's names
            except Exception:
                continue
        hints[name] = hint
    return hints


def _option_type(hint: Any, default: Any) -> Callable[[str], Any] | None:
    """The argparse type for a value of type ``hint`` with ``default``; None: not a flag's kind of value.

    A default of int, float or str is its own type; a None default takes its hint's: ``X | None`` takes
    X's, a dict is a JSON object, int and float are themselves, anything else is passed on as text.
    """
    if default is not None and not isinstance(default, bool) and isinstance(default, int | float | str):
        return type(default)
    if default is not None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        hint = kinds[0] if len(kinds) == 1 else str
        origin = typing.get_origin(hint)
    if hint is dict or origin is dict:
        return json_object
    if hint in (int, float, str):
        return hint
    return str  # a None default with any other hint: the flag passes the text on


# -- making options ----------------------------------------------------------------------------------


def add_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    name: str,
    default: Any,
    hint: Any,
    description: str,
) -> bool:
    """Add ``--name`` (underscores become dashes) for a setting; False when its kind makes no flag.

    Booleans become ``--name`` / ``--no-name``; the help ends with the default.
    """
    flag = "--" + name.replace("_", "-")
    text = plain_text(description).replace("%", "%%")
    if isinstance(default, bool):
        parser.add_argument(
            flag, action=argparse.BooleanOptionalAction, default=default, help=f"{text} (default: {default})"
        )
        return True
    kind = _option_type(hint, default)
    if kind is None:
        return False
    is_json = kind is json_object
    parser.add_argument(
        flag,
        type=kind,
        default=default,
        metavar="JSON" if is_json else name.upper(),
        help=f"{text} ({'a JSON object; ' if is_json else ''}default: {default})",
    )
    return True


def add_function_arguments(
    parser: argparse.ArgumentParser, function: Callable, *, skip: Iterable[str] = ()
) -> None:
    """Add ``--name`` for each keyword-only argument of ``function`` with an int, float, str, bool or None default.

    A None default takes the type its hint names (``int | None`` an int, ``dict | None`` a JSON object,
    anything else a string). Arguments in ``skip``, and arguments whose default is of another type, are
    left out.
    """
    docs = docstring_args(function)
    hints = _type_hints(function)
    skipped = set(skip)
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY or name in skipped:
            continue
        add_option(parser, name, parameter.default, hints.get(name, parameter.annotation), docs.get(name, ""))


def function_kwargs(
    args: argparse.Namespace, function: Callable, *, skip: Iterable[str] = ()
) -> dict[str, Any]:
    """The parsed values of the options :func:`add_function_arguments` added, as keyword arguments."""
    skipped = set(skip)
    return {
        name: getattr(args, name)
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in skipped and hasattr(args, name)
    }


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``--name`` for each field of the dataclass ``cls``, its help the string under the field.

    Raises:
        TypeError: a field whose type makes no flag (a nested dataclass, a list).
    """
    docs = field_docs(cls)
    hints = _type_hints(cls)
    for item in dataclasses.fields(cls):
        if item.default is not dataclasses.MISSING:
            default = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            default = None
        if not add_option(
            parser, item.name, default, hints.get(item.name, item.type), docs.get(item.name, "")
        ):
            raise TypeError(f"{cls.__name__}.{item.name}: a {item.type} field makes no command-line option")


def parse_args(cls: type[T], description: str | None, argv: Sequence[str] | None = None) -> T:
    """``cls`` (a dataclass of settings) from the command line: a benchmark script's arguments.

    Example:
        >>> from codegym.loop.config import EvalConfig
        >>> parse_args(EvalConfig, "a benchmark", ["--best-of-n", "2"])
        EvalConfig(best_of_n=2, mcts_simulations=4, batch_size=0)
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_arguments(parser, cls)
    return cls(**vars(parser.parse_args(argv)))


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object such as ``'{"max_ops": 1}'``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"max_ops\": 1}}', got {text!r} ({exc.msg})"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"max_ops\": 1}}', got {type(value).__name__} {text!r}"
        )
    return value


__all__ = [
    # reading declarations
    "docstring_args",
    "field_docs",
    "keyword_defaults",
    "plain_text",
    # making options
    "add_dataclass_arguments",
    "add_function_arguments",
    "add_option",
    "function_kwargs",
    "json_object",
    "parse_args",
]
