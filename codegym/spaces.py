"""``UnicodeText``: a Gymnasium text space that holds any string a language model can write.

Gymnasium's ``Text`` space only contains strings over a finite ``charset`` (alphanumerics by default),
and listing all of Unicode would cost hundreds of megabytes. ``UnicodeText`` contains every ``str``
within its length bounds, samples printable ASCII, and flattens each character to its code point, so
vector envs can pass observations through shared memory.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.spaces import Text
from gymnasium.spaces.utils import flatten, unflatten
from gymnasium.vector.utils.shared_memory import read_from_shared_memory

_PAD = -1  # code points are >= 0, so -1 marks the unused tail of a flattened string
SAMPLE_CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n"


class UnicodeText(Text):
    """Any ``str`` whose length lies in ``[min_length, max_length]``.

    Example:
        >>> space = UnicodeText(max_length=10)
        >>> space.contains("déjà vu →"), space.contains(""), space.contains("x" * 11)
        (True, False, False)
    """

    def __init__(self, max_length: int, *, min_length: int = 1, seed: Any = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    __hash__ = None  # like Text: spaces compare by value and are not dict keys


@flatten.register(UnicodeText)
def _flatten_unicode_text(space: UnicodeText, x: str) -> np.ndarray:
    flat = np.full((space.max_length,), _PAD, dtype=np.int32)
    flat[: len(x)] = np.fromiter(map(ord, x), dtype=np.int32, count=len(x))
    return flat


@unflatten.register(UnicodeText)
def _unflatten_unicode_text(space: UnicodeText, x: np.ndarray) -> str:
    return "".join(map(chr, x[x != _PAD].tolist()))


class SharedTextBatch(Sequence[str]):
    """A live view of N strings in an async vector env's shared memory.

    Gymnasium reads shared memory once, when the vector env is built, and relies on the result being a
    view that later writes show through (true of numpy arrays). Its ``Text`` reader returns a tuple of
    strings decoded at that moment, which never changes; this view decodes on every access instead. A
    deep copy (what ``AsyncVectorEnv(copy=True)``, the default, hands out) is a plain tuple.
    """

    def __init__(self, space: UnicodeText, rows: np.ndarray) -> None:
        self._space = space
        self._rows = rows  # (N, max_length) int32, backed by the shared buffer

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(_unflatten_unicode_text(self._space, row) for row in self._rows[index])
        return _unflatten_unicode_text(self._space, self._rows[index])

    def __deepcopy__(self, memo: dict) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"SharedTextBatch({tuple(self)!r})"


@read_from_shared_memory.register(UnicodeText)
def _read_unicode_text(space: UnicodeText, shared_memory: Any, n: int = 1) -> SharedTextBatch:
    # Writing needs no override: Gymnasium writes ``flatten(space, value)``, which is registered above.
    rows = np.frombuffer(shared_memory.get_obj(), dtype=np.int32).reshape((n, space.max_length))
    return SharedTextBatch(space, rows)
