"""``UnicodeText``: a Gymnasium text space that holds any string a language model can write.

Gymnasium's ``Text`` space only contains strings over a finite ``charset`` (alphanumerics by default),
and listing all of Unicode would cost hundreds of megabytes. ``UnicodeText`` contains every ``str``
within its length bounds, samples printable ASCII, and flattens each character to its code point, so
vector envs can pass observations through shared memory.
"""

from __future__ import annotations

import string
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


@read_from_shared_memory.register(UnicodeText)
def _read_unicode_text(space: UnicodeText, shared_memory: Any, n: int = 1) -> tuple[str, ...]:
    # Writing needs no override: Gymnasium writes ``flatten(space, value)``, which is registered above.
    rows = np.frombuffer(shared_memory.get_obj(), dtype=np.int32).reshape((n, space.max_length))
    return tuple(_unflatten_unicode_text(space, row) for row in rows)
