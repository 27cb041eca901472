"""Command-line options generated from a function's keyword arguments and docstring."""

from __future__ import annotations

import argparse

import pytest

from codegym.options import add_function_arguments, docstring_args, function_kwargs, plain_text


def example(
    path: str,
    *,
    rate: float = 0.5,
    count: int = 3,
    name: str | None = None,
    fast: bool = False,
    skipped: int = 1,
    objects: list | None = None,
    limit: int | None = None,
) -> None:
    """Do something.

    Args:
        path: positional, never an option.
        rate: how fast,
            over two lines (50% or so).
        count, skipped: how many.
        fast: go fast.

    Returns:
        nothing.
    """


def test_the_args_section_is_read_with_continuations_and_shared_lines():
    assert docstring_args(example) == {
        "path": "positional, never an option.",
        "rate": "how fast, over two lines (50% or so).",
        "count": "how many.",
        "skipped": "how many.",
        "fast": "go fast.",
    }


def test_keyword_arguments_become_typed_options():
    parser = argparse.ArgumentParser()
    add_function_arguments(parser, example, skip=("skipped",))
    args = parser.parse_args(["--rate", "0.25", "--count", "7", "--name", "x", "--fast", "--limit", "4"])
    assert function_kwargs(args, example, skip=("skipped",)) == {
        "rate": 0.25,
        "count": 7,
        "name": "x",
        "fast": True,
        "objects": None,
        "limit": 4,
    }
    defaults = function_kwargs(parser.parse_args([]), example, skip=("skipped",))
    assert defaults == {"rate": 0.5, "count": 3, "name": None, "fast": False, "objects": None, "limit": None}
    assert "how fast, over two lines (50% or so). (default: 0.5)" in " ".join(parser.format_help().split())


def with_options(*, options: dict[str, int] | None = None, ratio: float | None = None) -> None:
    """Take options.

    Args:
        options: settings such as :class:`~codegym.tasks.SyntheticTasks`'s ``max_ops``.
    """


def test_dict_arguments_take_a_json_object_and_docs_lose_their_markup():
    parser = argparse.ArgumentParser()
    add_function_arguments(parser, with_options)
    args = parser.parse_args(["--options", '{"max_ops": 2}', "--ratio", "0.5"])
    assert function_kwargs(args, with_options) == {"options": {"max_ops": 2}, "ratio": 0.5}
    assert "settings such as SyntheticTasks's max_ops. (a JSON object; default: None)" in " ".join(
        parser.format_help().split()
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["--options", "[1, 2]"])


def test_plain_text_keeps_full_names_without_a_tilde():
    assert plain_text(":func:`codegym.models.load_policy` and ``x``") == "codegym.models.load_policy and x"
