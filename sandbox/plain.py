"""Plain data: the only values that cross a process boundary in the sandbox.

Exact types only (None, bool, int, float, complex, str, bytes, and list, tuple, dict, set, frozenset of
those), so an object with a lying ``__eq__``, or an int subclass, cannot travel and be compared as if it
were a real answer. The encoding is JSON with tags that keep tuples, sets, bytes and non-finite floats.
Standard library only: this module is shipped into the sandbox with the runner.
"""

from __future__ import annotations

import base64
import math

# ---------------------------------------------------------------------------------------------------


class NotPlainDataError(TypeError):
    """Raised when a value is not plain data (None, bool, int, float, complex, str, bytes, and
    list, tuple, dict, set, frozenset of those)."""


_SCALARS = (type(None), bool, int, str)


def encode_plain(value, *, max_depth: int = 100, max_items: int = 1_000_000):
    """Encode plain data as a JSON-able tree that keeps tuples, sets, bytes and non-finite floats."""
    budget = [max_items]

    def enc(obj, depth):
        budget[0] -= 1
        if budget[0] < 0:
            raise NotPlainDataError(f"value has more than {max_items} elements")
        if depth > max_depth:
            raise NotPlainDataError(f"value is nested deeper than {max_depth} levels")
        kind = type(obj)
        if kind in _SCALARS:
            return obj
        if kind is float:
            return obj if math.isfinite(obj) else {"f": repr(obj)}
        if kind is list:
            return [enc(item, depth + 1) for item in obj]
        if kind is tuple:
            return {"t": [enc(item, depth + 1) for item in obj]}
        if kind is dict:
            return {"d": [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in obj.items()]}
        if kind is set:
            return {"s": [enc(item, depth + 1) for item in obj]}
        if kind is frozenset:
            return {"fs": [enc(item, depth + 1) for item in obj]}
        if kind is bytes:
            return {"b": base64.b64encode(obj).decode("ascii")}
        if kind is complex:
            return {"c": [enc(obj.real, depth + 1), enc(obj.imag, depth + 1)]}
        raise NotPlainDataError(
            f"value of type {kind.__qualname__} is not plain data (expected None, bool, int, float, "
            "complex, str, bytes or a list/tuple/dict/set of those)"
        )

    return enc(value, 0)


def decode_plain(tree):
    """Inverse of :func:`encode_plain`."""
    if isinstance(tree, list):
        return [decode_plain(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    if len(tree) != 1:
        raise ValueError(f"malformed plain-data node: {tree!r:.200}")
    ((tag, body),) = tree.items()
    if tag == "t":
        return tuple(decode_plain(item) for item in body)
    if tag == "d":
        return {decode_plain(k): decode_plain(v) for k, v in body}
    if tag == "s":
        return {decode_plain(item) for item in body}
    if tag == "fs":
        return frozenset(decode_plain(item) for item in body)
    if tag == "b":
        return base64.b64decode(body)
    if tag == "c":
        return complex(decode_plain(body[0]), decode_plain(body[1]))
    if tag == "f":
        return float(body)
    raise ValueError(f"unknown plain-data tag {tag!r}")


# ---------------------------------------------------------------------------------------------------
# Framing: one JSON object per line, both host <-> worker and child -> worker.
