"""CleanRL-style arguments for benchmark scripts: one dataclass, a docstring under each field, --help from them."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
from typing import TypeVar

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of a dataclass, for --help."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
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


def parse_args(cls: type[T], description: str | None) -> T:
    """Build an argparse parser from the dataclass ``cls`` (int, float and str fields) and parse argv."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        kind = {"int": int, "float": float, "str": str}[field.type]
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(
            flag,
            type=kind,
            default=field.default,
            help=f"{docs.get(field.name, '')} (default: {field.default})",
        )
    return cls(**vars(parser.parse_args()))
