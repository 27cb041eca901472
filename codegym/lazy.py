"""Module-level ``__getattr__`` for packages whose public names live in heavy modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A ``__getattr__`` that imports ``table[name]`` on first use and returns its attribute ``name``.

    Keeps ``import codegym`` quick (heavy imports load lazily: CONTRIBUTING.md) while the names stay public.
    """

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
