"""Turning a code action into a sandbox job, and remembering verdicts so a revisit costs nothing."""

from __future__ import annotations

import ast
import functools
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from codegym.errors import UserError
from codegym.sandbox import Test
from codegym.tasks import Task, tests_fingerprint

V = TypeVar("V")


class LRUCache(Generic[V]):
    """A bounded mapping that forgets the least recently used entry; counts hits and misses."""

    def __init__(self, maxsize: int) -> None:
        if not (isinstance(maxsize, int) and maxsize >= 0):
            raise UserError(f"cache size must be an int >= 0 (0 turns caching off), got {maxsize!r}")
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Hashable, value: V) -> None:
        if self.maxsize == 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` is kept (neither a hit nor a miss, and it does not refresh the entry)."""
        return key in self._entries


@functools.lru_cache(maxsize=1024)
def _top_level(source: str) -> tuple[frozenset[str], str] | None:
    """Names the source defines at top level and its top-level import lines; None if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    names = frozenset(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    )
    lines = source.splitlines()
    imports = "\n".join(
        "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
    )
    return names, imports


def build_program(task: Task, code: str) -> tuple[str, str]:
    """The program to run for ``code`` on ``task``, and how it was built.

    - ``"code"``: the code as written (no starter code, or the task has no entry point).
    - ``"starter_imports+code"``: the code defines the entry point itself; the starter code's imports
      (``from typing import List`` in HumanEval) go first so its annotations resolve.
    - ``"starter+code"``: the code does not define the entry point, so it is read as a completion of
      the starter code (HumanEval's prompt followed by a function body).
    """
    if not task.starter_code or task.entry_point is None:
        return code, "code"
    parsed = _top_level(code)
    if parsed is not None and task.entry_point in parsed[0]:
        starter = _top_level(task.starter_code)
        imports = starter[1] if starter is not None else ""
        return (f"{imports}\n{code}" if imports else code), "starter_imports+code"
    glue = "" if task.starter_code.endswith("\n") else "\n"
    return task.starter_code + glue + code, "starter+code"


@dataclass(frozen=True)
class VerdictKey:
    """What a verdict depends on: the program, the tests and the limits they ran under."""

    task_id: str
    tests: str  # tests_fingerprint of the test list
    program: str
    timeout_s: float
    memory_mb: int


class TestFingerprints:
    """Memoizes ``tests_fingerprint`` per test tuple (held by identity: tasks keep their tuples)."""

    __test__ = False

    def __init__(self, maxsize: int = 4096) -> None:
        self._cache: LRUCache[tuple[Any, str]] = LRUCache(maxsize)

    def __call__(self, tests: Sequence[Test]) -> str:
        entry = self._cache.get(id(tests))
        if entry is not None and entry[0] is tests:
            return entry[1]
        fingerprint = tests_fingerprint(tests)
        self._cache.put(id(tests), (tests, fingerprint))  # holding ``tests`` keeps its id from being reused
        return fingerprint
