"""Command-line options generated from a function's keyword arguments and docstring."""

from __future__ import annotations

import argparse

from codegym.cli_args import add_function_arguments, docstring_args, function_kwargs


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
