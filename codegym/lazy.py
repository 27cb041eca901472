"""Module-level ``__getattr__`` and ``__dir__`` for packages whose public names live in heavy modules."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, table: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__`` for names that load on first use.

    ``__getattr__`` imports ``table[name]`` on first use and returns its attribute ``name``; ``__dir__``
    lists those names beside the module's own, so ``dir()``, tab completion and ``from package import *``
    tooling see every public name. Keeps ``import codegym`` quick (heavy imports load lazily:
    CONTRIBUTING.md) while the names stay public.

    Example:
        >>> __getattr__, __dir__ = lazy_exports(__name__, {"OrderedDict": "collections"})
    """

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
