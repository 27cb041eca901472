"""The primitive operations that :class:`~codegym.tasks.synthetic.SyntheticTasks` composes.

Each primitive carries four texts that say the same thing at four levels (a prose phrase for the
problem, an imperative line for the outline, a pseudocode line for the refinement, a Python expression
for the code) and a host implementation that computes expected outputs. The implementations are
trusted code in this module: nothing is ever built by ``exec`` of the texts.

Values have three types: ``"list"`` (``list[int]``, held in the variable ``nums``), ``"str"`` (held in
``text``) and ``"int"`` (only ever returned). Text templates may hold ``{n}``, the op's parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ANNOTATIONS = {"list": "list[int]", "str": "str", "int": "int"}
VARIABLES = {"list": "nums", "str": "text"}
VOWELS = "aeiou"


@dataclass(frozen=True)
class Op:
    """One primitive operation.

    Attributes:
        name: the op's id, unique over all types (it appears in task ids).
        takes: the input type, ``"list"`` or ``"str"``.
        gives: the output type, ``"list"``, ``"str"`` or ``"int"``; an ``"int"`` op ends a composition.
        prose: a third-person verb phrase for the problem text ("sorts the numbers ...").
        outline: an imperative sentence for the outline step ("Sort the numbers ...").
        pseudo: a pseudocode expression for the refine step ("nums sorted in ascending order").
        code: a Python expression over ``nums`` or ``text`` for the reference solution.
        apply: the host implementation, ``apply(value, param)``.
        params: the values the parameter may take; empty for an op without one.
    """

    name: str
    takes: str
    gives: str
    prose: str
    outline: str
    pseudo: str
    code: str
    apply: Callable[[Any, Any], Any]
    params: tuple[int | str, ...] = ()


@dataclass(frozen=True)
class Step:
    """An op with its parameter (None for an op without one)."""

    op: Op
    param: int | str | None = None

    @property
    def label(self) -> str:
        """The step as it appears in a task id: ``sort``, ``add(3)``, ``replace_spaces(-)``."""
        return self.op.name if self.param is None else f"{self.op.name}({self.param})"

    def _fill(self, template: str) -> str:
        shown = f'"{self.param}"' if isinstance(self.param, str) else self.param
        return template.replace("{n}", str(shown))

    @property
    def prose(self) -> str:
        return self._fill(self.op.prose)

    @property
    def outline(self) -> str:
        return self._fill(self.op.outline)

    @property
    def pseudo(self) -> str:
        return self._fill(self.op.pseudo)

    @property
    def code(self) -> str:
        return self._fill(self.op.code)

    def __call__(self, value: Any) -> Any:
        return self.op.apply(value, self.param)


def _op(
    name: str,
    signature: str,
    prose: str,
    outline: str,
    pseudo: str,
    code: str,
    apply: Callable[[Any, Any], Any],
    params: tuple[int | str, ...] = (),
) -> Op:
    """An :class:`Op` with its types written as one ``"takes -> gives"`` string, so the table reads well."""
    takes, gives = (part.strip() for part in signature.split("->"))
    return Op(name, takes, gives, prose, outline, pseudo, code, apply, params)


def _count_vowels(text: str) -> int:
    return sum(1 for c in text.lower() if c in VOWELS)


_LIST_OPS = [
    _op(
        "sort",
        "list -> list",
        "sorts the numbers in ascending order",
        "Sort the numbers in ascending order.",
        "nums sorted in ascending order",
        "sorted(nums)",
        lambda xs, n: sorted(xs),
    ),
    _op(
        "reverse",
        "list -> list",
        "reverses the order of the numbers",
        "Reverse the order of the numbers.",
        "nums in reverse order",
        "nums[::-1]",
        lambda xs, n: xs[::-1],
    ),
    _op(
        "keep_even",
        "list -> list",
        "keeps only the even numbers",
        "Keep only the even numbers.",
        "the x in nums where x mod 2 = 0, in order",
        "[x for x in nums if x % 2 == 0]",
        lambda xs, n: [x for x in xs if x % 2 == 0],
    ),
    _op(
        "keep_odd",
        "list -> list",
        "keeps only the odd numbers",
        "Keep only the odd numbers.",
        "the x in nums where x mod 2 = 1, in order",
        "[x for x in nums if x % 2 == 1]",
        lambda xs, n: [x for x in xs if x % 2 == 1],
    ),
    _op(
        "keep_positive",
        "list -> list",
        "keeps only the positive numbers",
        "Keep only the positive numbers.",
        "the x in nums where x > 0, in order",
        "[x for x in nums if x > 0]",
        lambda xs, n: [x for x in xs if x > 0],
    ),
    _op(
        "add",
        "list -> list",
        "adds {n} to each number",
        "Add {n} to each number.",
        "x + {n} for each x in nums",
        "[x + {n} for x in nums]",
        lambda xs, n: [x + n for x in xs],
        params=tuple(range(1, 10)),
    ),
    _op(
        "multiply",
        "list -> list",
        "multiplies each number by {n}",
        "Multiply each number by {n}.",
        "x * {n} for each x in nums",
        "[x * {n} for x in nums]",
        lambda xs, n: [x * n for x in xs],
        params=(2, 3, 4, 5),
    ),
    _op(
        "take",
        "list -> list",
        "keeps only the first {n} numbers",
        "Keep only the first {n} numbers.",
        "the first {n} numbers of nums (all of them if there are fewer)",
        "nums[:{n}]",
        lambda xs, n: xs[:n],
        params=(1, 2, 3, 4, 5),
    ),
    _op(
        "drop",
        "list -> list",
        "removes the first {n} numbers",
        "Remove the first {n} numbers.",
        "nums without its first {n} numbers (empty if there are fewer)",
        "nums[{n}:]",
        lambda xs, n: xs[n:],
        params=(1, 2, 3),
    ),
    _op(
        "dedupe",
        "list -> list",
        "removes repeated numbers (keeping the first occurrence of each)",
        "Remove repeated numbers, keeping the first occurrence of each.",
        "nums keeping only the first occurrence of each value",
        "list(dict.fromkeys(nums))",
        lambda xs, n: list(dict.fromkeys(xs)),
    ),
    _op(
        "running_sum",
        "list -> list",
        "replaces each number by the running total up to and including it",
        "Replace each number by the running total up to and including it.",
        "the running totals of nums (item i is nums[0] + ... + nums[i])",
        "[sum(nums[: i + 1]) for i in range(len(nums))]",
        lambda xs, n: [sum(xs[: i + 1]) for i in range(len(xs))],
    ),
    _op(
        "abs",
        "list -> list",
        "replaces each number by its absolute value",
        "Replace each number by its absolute value.",
        "|x| for each x in nums",
        "[abs(x) for x in nums]",
        lambda xs, n: [abs(x) for x in xs],
    ),
]

_LIST_REDUCERS = [
    _op(
        "sum",
        "list -> int",
        "returns the sum of the numbers (0 if there are none)",
        "Return the sum of the numbers.",
        "the sum of nums (0 if nums is empty)",
        "sum(nums)",
        lambda xs, n: sum(xs),
    ),
    _op(
        "max",
        "list -> int",
        "returns the largest number (0 if there are none)",
        "Return the largest number, or 0 if there are none.",
        "the largest x in nums (0 if nums is empty)",
        "max(nums, default=0)",
        lambda xs, n: max(xs, default=0),
    ),
    _op(
        "min",
        "list -> int",
        "returns the smallest number (0 if there are none)",
        "Return the smallest number, or 0 if there are none.",
        "the smallest x in nums (0 if nums is empty)",
        "min(nums, default=0)",
        lambda xs, n: min(xs, default=0),
    ),
    _op(
        "count",
        "list -> int",
        "returns how many numbers there are",
        "Return how many numbers there are.",
        "the number of items in nums",
        "len(nums)",
        lambda xs, n: len(xs),
    ),
    _op(
        "count_positive",
        "list -> int",
        "returns how many of the numbers are positive",
        "Return how many numbers are positive.",
        "the number of x in nums where x > 0",
        "sum(1 for x in nums if x > 0)",
        lambda xs, n: sum(1 for x in xs if x > 0),
    ),
]

_STR_OPS = [
    _op(
        "upper",
        "str -> str",
        "converts the text to upper case",
        "Convert the text to upper case.",
        "text with every letter in upper case",
        "text.upper()",
        lambda s, n: s.upper(),
    ),
    _op(
        "lower",
        "str -> str",
        "converts the text to lower case",
        "Convert the text to lower case.",
        "text with every letter in lower case",
        "text.lower()",
        lambda s, n: s.lower(),
    ),
    _op(
        "reverse_text",
        "str -> str",
        "reverses the text character by character",
        "Reverse the text character by character.",
        "the characters of text in reverse order",
        "text[::-1]",
        lambda s, n: s[::-1],
    ),
    _op(
        "remove_vowels",
        "str -> str",
        "removes every vowel (a, e, i, o, u, in either case)",
        "Remove every vowel (a, e, i, o, u, in either case).",
        "the characters c of text where lower(c) is not a vowel (a, e, i, o, u)",
        '"".join(c for c in text if c.lower() not in "aeiou")',
        lambda s, n: "".join(c for c in s if c.lower() not in VOWELS),
    ),
    _op(
        "replace_spaces",
        "str -> str",
        "replaces every space with {n}",
        "Replace every space with {n}.",
        "text with every space replaced by {n}",
        'text.replace(" ", {n})',
        lambda s, n: s.replace(" ", n),
        params=("-", "_", "*", "+"),
    ),
    _op(
        "reverse_words",
        "str -> str",
        "reverses the order of the words",
        "Reverse the order of the words.",
        "the words of text (split on whitespace) in reverse order, joined by single spaces",
        '" ".join(text.split()[::-1])',
        lambda s, n: " ".join(s.split()[::-1]),
    ),
    _op(
        "word_lengths",
        "str -> list",
        "turns the text into the list of its word lengths",
        "Turn the text into the list of its word lengths.",
        "the length of each word of text (split on whitespace), in order",
        "[len(word) for word in text.split()]",
        lambda s, n: [len(word) for word in s.split()],
    ),
    _op(
        "text_length",
        "str -> int",
        "returns the number of characters",
        "Return the number of characters.",
        "the number of characters in text",
        "len(text)",
        lambda s, n: len(s),
    ),
    _op(
        "count_vowels",
        "str -> int",
        "returns the number of vowels (a, e, i, o, u, in either case)",
        "Return the number of vowels (a, e, i, o, u, in either case).",
        "the number of characters c of text where lower(c) is a vowel (a, e, i, o, u)",
        'sum(1 for c in text.lower() if c in "aeiou")',
        lambda s, n: _count_vowels(s),
    ),
]

OPS: dict[str, Op] = {op.name: op for op in (*_LIST_OPS, *_LIST_REDUCERS, *_STR_OPS)}
"""Every primitive by name, in a fixed order (sampling draws from it by index)."""

# Inputs on which a composition is run to decide whether it is degenerate (see ``degenerate_reason``).
# Literal, so that the verdict never depends on a random-number library's version.
PROBES: dict[str, tuple[Any, ...]] = {
    "list": (
        [],
        [0],
        [7],
        [-4],
        [1, 2, 3],
        [3, -1, 3, 8],
        [-5, -2, 0, 2, 5],
        [6, 6, 1, -9, 4, 13],
        [12, -7, 5, 5, -3, 8, 2],
        [-1, 9, 4, 0, -8, 11, -6, 3],
        [2, 4, 6, 8, 10, 12],
        [15, -11, 7, 20, -19, 1],
    ),
    "str": (
        "",
        "sky",
        "Apple",
        "the RED fox",
        "Moon and Sun",
        "dry GYM myth",
        "Open Data idea",
        "fly over THE sea",
        "echo tree Stone river",
        "BIRD rain",
    ),
}


def run(steps: tuple[Step, ...], value: Any) -> Any:
    """Apply the steps in order."""
    for step in steps:
        value = step(value)
    return value


def type_checks(steps: tuple[Step, ...], takes: str) -> str | None:
    """The output type of the steps applied to a ``takes`` value, or None when they do not chain."""
    current = takes
    for step in steps:
        if step.op.takes != current:
            return None
        current = step.op.gives
    return current


def shorter_versions(steps: tuple[Step, ...]) -> list[tuple[str, tuple[Step, ...]]]:
    """Each composition left when a contiguous run of steps (possibly all) is taken out and the rest
    still chains to the same output type, with the labels of the run taken out."""
    takes, gives = steps[0].op.takes, steps[-1].op.gives
    versions = []
    for start in range(len(steps)):
        for stop in range(start + 1, len(steps) + 1):
            shorter = steps[:start] + steps[stop:]
            if type_checks(shorter, takes) == gives:
                versions.append((">".join(step.label for step in steps[start:stop]), shorter))
    return versions


@functools.lru_cache(maxsize=65536)
def degenerate_reason(steps: tuple[Step, ...]) -> str | None:
    """Why this composition makes a poor task, or None when it is fine.

    A composition is degenerate when its result is the same on every probe input, or when one of its
    :func:`shorter_versions` gives the same results on every probe: then some step has no effect
    (``sort>sum``, ``upper>lower``, ``reverse>reverse``) and the task is a shorter one in disguise.
    """
    probes = PROBES[steps[0].op.takes]
    outputs = [run(steps, probe) for probe in probes]
    if all(output == outputs[0] for output in outputs):
        return f"it returns {outputs[0]!r} for every input"
    for dropped, shorter in shorter_versions(steps):
        if all(run(shorter, probe) == output for probe, output in zip(probes, outputs, strict=True)):
            return f"leaving out {dropped} changes nothing"
    return None
