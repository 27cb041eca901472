"""Values of a parameter's type, shaped by the task's examples: random draws, edge cases, mutations.

A :class:`Domain` is a type (:class:`~codegym.tcg.signature.ArgType`) plus what the examples show about it:
the range of numbers, the characters and words of strings, the lengths of containers.
:class:`ValueDrawer` draws values from a domain, lists its edge cases and mutates a value a little, all
from one numpy ``Generator`` (see :mod:`codegym.tcg.oracle` for why not Hypothesis).

Example:
    >>> import numpy as np
    >>> from codegym.tcg.signature import ArgType
    >>> domain = build_domain(ArgType("list", (ArgType("int"),)), [[3, 1, 2], [5]])
    >>> (domain.max_len, domain.items[0].low, domain.items[0].high, domain.items[0].non_negative)
    (3, 1.0, 5.0, True)
    >>> ValueDrawer(np.random.default_rng(0), wide=False).edges(domain)[:2]
    [[], [3]]
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codegym.sandbox.plain import encode_plain
from codegym.tcg.signature import ArgType, fits

_DEFAULT_CHARS = string.ascii_lowercase
_FOREIGN_CHARS = " aZ09!_-"  # what domain="wide" adds to an alphabet
_MAX_STR_LEN = 200
_MAX_CONTAINER_LEN = 40


@dataclass(frozen=True)
class Domain:
    """Where values of one argument (or one element of it) are drawn from: a type plus what the
    examples show about it.

    Attributes:
        type: the argument's type.
        seeds: example values of this node, in order, deduplicated.
        low, high: numbers: the examples' range (a default range without examples).
        non_negative: numbers: stay at or above zero (every example is, and the domain is "examples").
        decimals: floats: decimal places to round draws to.
        chars: strings: every example character, with repeats, so draws follow their frequencies.
        words: strings: the examples' words, when the examples are sentences; else empty.
        max_len: strings and containers: the longest example (a default without examples).
        items: element domains: as :attr:`ArgType.items`.
    """

    type: ArgType
    seeds: tuple = ()
    low: float = 0
    high: float = 10
    non_negative: bool = False
    decimals: int = 1
    chars: str = _DEFAULT_CHARS
    words: tuple[str, ...] = ()
    max_len: int = 5
    items: tuple[Domain, ...] = ()


def build_domain(arg_type: ArgType, values: Sequence[Any], wide: bool = False) -> Domain:
    """The :class:`Domain` of ``arg_type`` shaped by example ``values`` (recursively for elements)."""
    seeds = tuple(_unique(v for v in values if fits(v, arg_type)))
    kind = arg_type.kind
    if kind in ("any", "int", "float"):
        # Only finite examples shape the range (an example may be inf or nan, or an int past any float), and
        # the range is clamped, so that no draw below overflows.
        numbers = [
            _clamp(float(v))
            for v in seeds
            if isinstance(v, int | float) and not isinstance(v, bool) and _finite(v)
        ]
        low, high = (min(numbers), max(numbers)) if numbers else (-10.0, 10.0)
        decimals = max([_decimals(v) for v in numbers if isinstance(v, float)] or [1])
        return Domain(
            ArgType("int") if kind == "any" else arg_type,
            seeds,
            low=low,
            high=high,
            non_negative=bool(numbers) and low >= 0 and not wide,
            decimals=min(decimals, 3),
        )
    if kind == "str":
        texts = [v for v in seeds if v]
        chars = "".join(texts) or _DEFAULT_CHARS
        if wide:
            chars += _FOREIGN_CHARS
        words = (
            tuple(sorted({w for t in texts for w in t.split(" ") if w}))
            if any(" " in t for t in texts)
            else ()
        )
        return Domain(arg_type, seeds, chars=chars, words=words, max_len=max([len(t) for t in texts] or [8]))
    if kind in ("list", "set") or (kind == "tuple" and arg_type.variadic):
        elements = [item for value in seeds for item in value]
        lengths = [len(value) for value in seeds]
        item = build_domain(arg_type.items[0], elements, wide)
        return Domain(arg_type, seeds, max_len=max([*lengths, 1]) if lengths else 5, items=(item,))
    if kind == "tuple":
        rows = [value for value in seeds if len(value) == len(arg_type.items)]
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in arg_type.items]
        items = tuple(build_domain(t, c, wide) for t, c in zip(arg_type.items, columns, strict=True))
        return Domain(arg_type, seeds, items=items)
    if kind == "dict":
        keys = [key for value in seeds for key in value]
        entries = [entry for value in seeds for entry in value.values()]
        items = (build_domain(arg_type.items[0], keys, wide), build_domain(arg_type.items[1], entries, wide))
        return Domain(arg_type, seeds, max_len=max([len(v) for v in seeds] or [3]), items=items)
    if kind == "union":
        items = tuple(
            build_domain(member, [v for v in seeds if fits(v, member)], wide) for member in arg_type.items
        )
        return Domain(arg_type, seeds, items=items)
    return Domain(arg_type, seeds)  # bool, none


_LIMIT = 1e300  # numbers are drawn within +-_LIMIT: far past any example, and far from float overflow


def _finite(value: int | float) -> bool:
    return isinstance(value, int) or math.isfinite(value)


def _clamp(value: float) -> float:
    return min(max(value, -_LIMIT), _LIMIT)


def _unique(values: Any) -> list:
    seen, unique = set(), []
    for value in values:
        key = repr(encode_plain(value))
        if key not in seen:
            seen.add(key)
            unique.append(value)
    return unique


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 1


class ValueDrawer:
    """Draws, edge cases and mutations of values in a :class:`Domain`, all from one numpy ``Generator``.

    Args:
        rng: the only source of randomness, so the same seed gives the same values.
        wide: step outside the examples (longer inputs, numbers further out).
    """

    def __init__(self, rng: np.random.Generator, wide: bool) -> None:
        self.rng = rng
        self.wide = wide

    def _pick(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def _length(self, domain: Domain, cap: int) -> int:
        longest = domain.max_len if self.rng.random() < 0.8 else min(2 * domain.max_len + 1, cap)
        return int(self.rng.integers(0, longest + 1))

    # -- numbers -------------------------------------------------------------------------------------

    def _span(self, domain: Domain) -> tuple[float, float]:
        pad = max(2.0, domain.high / 2 - domain.low / 2) * (4 if self.wide else 1)
        low = _clamp(domain.low - pad)
        if domain.non_negative:
            low = max(low, 0.0)
        return low, _clamp(domain.high + pad)

    def _number(self, domain: Domain, value: float) -> int | float:
        if isinstance(value, float) and not math.isfinite(value):  # a mutated example: inf * 2, nan
            value = _clamp(value) if not math.isnan(value) else 0.0
        if domain.non_negative:
            value = abs(value)
        if domain.type.kind == "int":
            return int(value)
        return round(float(value), domain.decimals)

    def draw_number(self, domain: Domain) -> int | float:
        low, high = (domain.low, domain.high) if self.rng.random() < 0.75 else self._span(domain)
        low, high = min(low, high), max(low, high)
        if domain.type.kind == "int":
            first, last = math.floor(low), math.ceil(high)  # Python ints: any size
            return self._number(domain, first + self._below(last - first + 1))
        share = self.rng.random()
        return self._number(domain, low * (1 - share) + high * share)  # no high - low: it may overflow

    def _below(self, bound: int) -> int:
        """A uniform int in [0, bound), for bounds past numpy's int64 too."""
        if bound < 1 << 62:
            return int(self.rng.integers(bound))
        return int.from_bytes(self.rng.bytes(bound.bit_length() // 8 + 8), "little") % bound

    def number_edges(self, domain: Domain) -> list:
        low, high = domain.low, domain.high
        candidates = [low, high, 0, 1, -1, high + 1, 2, low - 1]
        if domain.type.kind == "float":
            candidates += [0.5, -0.5, (low + high) / 2]
        return [self._number(domain, v) for v in candidates if not (domain.non_negative and v < 0)]

    def mutate_number(self, domain: Domain, value: int | float) -> int | float:
        step = 1 if domain.type.kind == "int" else 10.0**-domain.decimals
        delta = step * int(self.rng.integers(1, 4))
        options = [value + step, value - step, value + delta, value - delta, value * 2, value / 2, -value, 0]
        return (
            self._number(domain, self._pick(options))
            if self.rng.random() < 0.85
            else self.draw_number(domain)
        )

    # -- strings -------------------------------------------------------------------------------------

    def draw_str(self, domain: Domain) -> str:
        if domain.words and self.rng.random() < 0.8:
            most = max(len(seed.split(" ")) for seed in domain.seeds)  # words imply non-empty seeds
            count = int(self.rng.integers(0, (most if self.rng.random() < 0.8 else 2 * most) + 1))
            return " ".join(self._pick(domain.words) for _ in range(count))
        length = self._length(domain, _MAX_STR_LEN)
        return "".join(domain.chars[i] for i in self.rng.integers(0, len(domain.chars), size=length))

    def str_edges(self, domain: Domain) -> list:
        char = domain.chars[int(self.rng.integers(len(domain.chars)))]
        edges = ["", char, char * 3]
        if domain.words:
            edges.append(self._pick(domain.words))
        longest = max(domain.seeds, key=len, default="")
        if longest:
            edges += [longest + longest[-1], longest[::-1]]
        if self.wide:
            edges += [" ", longest.upper(), "a1!"]
        return edges

    def mutate_str(self, domain: Domain, text: str) -> str:
        chars = domain.chars
        position = int(self.rng.integers(0, len(text) + 1))
        char = chars[int(self.rng.integers(len(chars)))]
        options = [
            text[:position] + char + text[position:],  # insert
            text[: position - 1] + text[position:] if position else text[1:],  # delete
            text[:position] + char + text[position + 1 :],  # replace
            text[::-1],
            text[:position] + text[position : position + 1] * 2 + text[position + 1 :],  # repeat a char
        ]
        if len(text) >= 2:
            i = int(self.rng.integers(len(text) - 1))
            options.append(text[:i] + text[i + 1] + text[i] + text[i + 2 :])  # swap neighbours
        if domain.words and " " in text:
            words = text.split(" ")
            i = int(self.rng.integers(len(words)))
            options += [
                " ".join(words[:i] + words[i + 1 :]),
                " ".join(words[: i + 1] + words[i:]),
                " ".join([*words[:i], self._pick(domain.words), *words[i + 1 :]]),
            ]
        if any(c.isupper() for c in chars) and any(c.islower() for c in chars) and text:
            i = int(self.rng.integers(len(text)))
            options.append(text[:i] + text[i].swapcase() + text[i + 1 :])
        return self._pick(options)[:_MAX_STR_LEN]

    # -- containers ----------------------------------------------------------------------------------

    def draw_sequence(self, domain: Domain) -> list:
        element = domain.items[0]
        values = [self.draw(element) for _ in range(self._length(domain, _MAX_CONTAINER_LEN))]
        if values and self.rng.random() < 0.15 and _sortable(values):
            values.sort()
        return values

    def sequence_edges(self, domain: Domain) -> list[list]:
        element = domain.items[0]
        one = self.draw(element)
        edges = [[], [one], [one, one], [self.draw(element) for _ in range(domain.max_len + 1)]]
        longest = max((list(seed) for seed in domain.seeds), key=len, default=[])
        if len(longest) >= 2 and _sortable(longest):
            edges += [sorted(longest), sorted(longest, reverse=True)]
        return edges

    def mutate_sequence(self, domain: Domain, values: list) -> list:
        values = list(values)
        element = domain.items[0]
        if not values:
            return [self.draw(element)]
        i, j = (int(k) for k in self.rng.integers(len(values), size=2))
        options = [
            values[:i] + values[i + 1 :],  # drop one
            [*values[:i], self.draw(element), *values[i:]],  # insert one
            [*values[:i], self.mutate(element, values[i]), *values[i + 1 :]],  # change one
            [*values[:i], values[i], *values[i:]],  # repeat one
            values[::-1],
            values[: len(values) // 2],
            [*values, self.draw(element)],
        ]
        swapped = list(values)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        options.append(swapped)
        if _sortable(values):
            options.append(sorted(values))
        return self._pick(options)[:_MAX_CONTAINER_LEN]

    def _as(self, domain: Domain, values: list) -> Any:
        kind = domain.type.kind
        if kind == "set":
            return set(_unique(values)) if _hashable(values) else set()
        return tuple(values) if kind == "tuple" else values

    def draw_dict(self, domain: Domain) -> dict:
        keys, entries = domain.items
        result = {}
        for _ in range(self._length(domain, _MAX_CONTAINER_LEN)):
            key = self.draw(keys)
            if _hashable([key]):
                result[key] = self.draw(entries)
        return result

    def mutate_dict(self, domain: Domain, value: dict) -> dict:
        keys, entries = domain.items
        result = dict(value)
        if result and self.rng.random() < 0.5:
            key = self._pick(list(result))
            if self.rng.random() < 0.5:
                del result[key]
            else:
                result[key] = self.mutate(entries, result[key])
        else:
            key = self.draw(keys)
            if _hashable([key]):
                result[key] = self.draw(entries)
        return result

    # -- any domain ----------------------------------------------------------------------------------

    def draw(self, domain: Domain) -> Any:
        """A random value of ``domain``."""
        kind = domain.type.kind
        if kind in ("int", "float"):
            return self.draw_number(domain)
        if kind == "bool":
            return bool(self.rng.random() < 0.5)
        if kind == "str":
            return self.draw_str(domain)
        if kind in ("list", "set") or (kind == "tuple" and domain.type.variadic):
            return self._as(domain, self.draw_sequence(domain))
        if kind == "tuple":
            return tuple(self.draw(item) for item in domain.items)
        if kind == "dict":
            return self.draw_dict(domain)
        if kind == "union":
            weights = np.array([len(item.seeds) + 1.0 for item in domain.items])
            return self.draw(domain.items[int(self.rng.choice(len(weights), p=weights / weights.sum()))])
        return None  # none

    def edges(self, domain: Domain) -> list:
        """Edge cases of ``domain``: empty, zero, one element, the examples' extremes, ..."""
        kind = domain.type.kind
        if kind in ("int", "float"):
            return self.number_edges(domain)
        if kind == "bool":
            return [False, True]
        if kind == "str":
            return self.str_edges(domain)
        if kind in ("list", "set") or (kind == "tuple" and domain.type.variadic):
            return [self._as(domain, edge) for edge in self.sequence_edges(domain)]
        if kind == "tuple":
            return [tuple(self._pick(self.edges(item)) for item in domain.items) for _ in range(2)]
        if kind == "dict":
            return [{}, self.mutate_dict(domain, {})]
        if kind == "union":
            return [edge for item in domain.items for edge in self.edges(item)]
        return [None]

    def mutate(self, domain: Domain, value: Any) -> Any:
        """``value`` changed a little (or a fresh draw when it does not fit ``domain``)."""
        kind = domain.type.kind
        if kind == "union":
            members = [item for item in domain.items if fits(value, item.type)]
            if not members or self.rng.random() < 0.15:
                return self.draw(domain)
            return self.mutate(members[0], value)
        if not fits(value, domain.type):
            return self.draw(domain)
        if kind in ("int", "float") and not isinstance(value, bool):
            return self.mutate_number(domain, value)
        if kind == "bool":
            return not value
        if kind == "str":
            return self.mutate_str(domain, value)
        if kind in ("list", "set") or (kind == "tuple" and domain.type.variadic):
            ordered = sorted(value, key=repr) if isinstance(value, set | frozenset) else list(value)
            return self._as(domain, self.mutate_sequence(domain, ordered))
        if kind == "tuple" and len(value) == len(domain.items):
            i = int(self.rng.integers(len(domain.items)))
            return tuple(
                self.mutate(d, v) if k == i else v
                for k, (d, v) in enumerate(zip(domain.items, value, strict=True))
            )
        if kind == "dict":
            return self.mutate_dict(domain, value)
        return self.draw(domain)


def _sortable(values: list) -> bool:
    try:
        sorted(values)
    except TypeError:
        return False
    return True


def _hashable(values: list) -> bool:
    try:
        set(values)
    except TypeError:
        return False
    return True
