"""Command-line options made from a function's keyword arguments and its Google-style docstring.

The library function stays the one source of truth: ``codegym train policy --help`` lists exactly the
keyword arguments of :func:`~codegym.models.train_policy.train_policy`, with their defaults and the
text of its docstring's ``Args:`` section.

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
import inspect
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

_ARG_LINE = re.compile(r"^(\s+)([a-z_][a-z0-9_, ]*):\s*(.*)$")
_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")  # Sphinx cross-references such as :func:`~pkg.mod.name`


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


def add_function_arguments(
    parser: argparse.ArgumentParser, function: Callable, *, skip: Iterable[str] = ()
) -> None:
    """Add ``--name`` for each keyword-only argument of ``function`` with an int, float, str, bool or None default.

    Booleans become ``--name`` / ``--no-name``. A None default takes an int or float when the type hint
    starts with one (``int | None``), a JSON object when it starts with ``dict``, else a string.
    Arguments in ``skip``, and arguments whose default is of another type, are left out.
    """
    docs = docstring_args(function)
    skipped = set(skip)
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY or name in skipped:
            continue
        default = parameter.default
        flag = "--" + name.replace("_", "-")
        help_text = plain_text(docs.get(name, "")).replace("%", "%%")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif default is None or isinstance(default, int | float | str):
            kind = _none_default_type(parameter.annotation) if default is None else type(default)
            is_json = kind is json_object
            parser.add_argument(
                flag,
                type=kind,
                default=default,
                metavar="JSON" if is_json else name.upper(),
                help=f"{help_text} ({'a JSON object; ' if is_json else ''}default: {default})",
            )


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


def _none_default_type(annotation: Any) -> Callable[[str], Any]:
    """The option type for an argument defaulting to None: int or float when the hint starts so, a JSON
    object for ``dict``, else str."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    first = text.split("|")[0].split("[")[0].strip()
    return {"int": int, "float": float, "dict": json_object}.get(first, str)


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
