"""Plain data: the only values that cross a process boundary in the sandbox.

Exact types only (None, bool, int, float, complex, str, bytes, and list, tuple, dict, set, frozenset of
those), so an object with a lying ``__eq__``, or an int subclass, cannot travel and be compared as if it
were a real answer. The encoding is JSON with tags that keep tuples, sets, bytes and non-finite floats.
Standard library only: this module is shipped into the sandbox with the runner.
"""

from __future__ import annotations

import base64
import math
import time

# ---------------------------------------------------------------------------------------------------


class NotPlainDataError(TypeError):
    """Raised when a value is not plain data (None, bool, int, float, complex, str, bytes, and
    list, tuple, dict, set, frozenset of those)."""


class MalformedDataError(ValueError):
    """A tree from another process (untrusted: a sandbox worker, a judge, a candidate) that is not an
    encoding of plain data. Not the caller's mistake, so not a ``UserError``; a ``ValueError`` like the
    JSON and UTF-8 decoding errors raised on the same bytes, so one ``except ValueError`` turns any
    malformed reply into a protocol-error verdict."""


_SCALARS = (type(None), bool, int, str)


def encode_plain(value, *, max_depth: int = 100, max_items: int = 1_000_000, other=None):
    """Encode plain data as a JSON-able tree that keeps tuples, sets, bytes and non-finite floats.

    ``other``, when given, encodes any value that is not plain data (it returns a tree, typically a
    ``{"r": handle}`` reference); without it such a value raises :class:`NotPlainDataError`.
    """
    kind = type(value)
    if kind in _SCALARS or (kind is float and math.isfinite(value)):  # the common case, without a walk
        return value
    if kind is list and len(value) < max_items:  # a flat list of scalars (e.g. a call's arguments)
        for item in value:
            if type(item) not in _SCALARS and not (type(item) is float and math.isfinite(item)):
                break
        else:
            return list(value)
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
        if other is not None:
            return other(obj)
        raise NotPlainDataError(
            f"value of type {kind.__qualname__} is not plain data (expected None, bool, int, float, "
            "complex, str, bytes or a list/tuple/dict/set of those)"
        )

    return enc(value, 0)


def decode_plain(tree, *, ref=None):
    """Inverse of :func:`encode_plain`; ``ref`` turns a ``{"r": handle}`` node back into an object.

    The tree may come from an untrusted process: anything malformed raises
    :class:`MalformedDataError` (a ``ValueError``), never another exception type (deep nesting included).
    """
    try:
        return _decode(tree, ref)
    except ValueError:
        raise
    except (TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError) as exc:
        raise MalformedDataError(f"malformed plain data ({type(exc).__name__}: {exc})") from None


def _decode(tree, ref):
    kind = type(tree)
    if kind in _SCALARS or kind is float:
        return tree
    if kind is list:
        return [_decode(item, ref) for item in tree]
    if kind is not dict or len(tree) != 1:
        raise MalformedDataError(f"malformed plain-data node: {tree!r:.200}")
    ((tag, body),) = tree.items()
    if tag == "f":
        if body not in ("inf", "-inf", "nan"):
            raise MalformedDataError(f"malformed non-finite float {body!r:.50}")
        return float(body)
    if tag == "b":
        if type(body) is not str:
            raise MalformedDataError("malformed bytes node")
        return base64.b64decode(body, validate=True)
    if tag == "r":
        if ref is None or type(body) is not int:
            raise MalformedDataError("an object reference where only plain data may travel")
        return ref(body)
    if type(body) is not list:
        raise MalformedDataError(f"malformed plain-data node for tag {tag!r:.20}")
    if tag == "t":
        return tuple(_decode(item, ref) for item in body)
    if tag == "d":
        return {_decode(key, ref): _decode(value, ref) for key, value in body}
    if tag == "s":
        return {_decode(item, ref) for item in body}
    if tag == "fs":
        return frozenset(_decode(item, ref) for item in body)
    if tag == "c":
        real, imag = (_decode(part, ref) for part in body)
        if type(real) not in (int, float) or type(imag) not in (int, float):
            raise MalformedDataError("malformed complex node")
        return complex(real, imag)
    raise MalformedDataError(f"unknown plain-data tag {tag!r:.20}")


def _truncate(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def error_result(exc: BaseException, started: float) -> dict:
    """An exception raised while running a test, as a raw result (plain data) for the worker or judge."""
    if isinstance(exc, MemoryError):
        status = "memory"
    elif isinstance(exc, AssertionError):
        status = "failed"
    else:
        status = "error"
    try:
        message = str(exc)
    except BaseException:  # a candidate's exception may have a __str__ that raises
        message = "<unprintable exception>"
    if isinstance(exc, SystemExit):
        message = f"the program called exit({message}) instead of returning"
    error_type = getattr(exc, "error_type", None) or type(exc).__name__
    return {
        "status": status,
        "error_type": str(error_type),
        "message": _truncate(message),
        "duration_s": time.monotonic() - started,
    }
