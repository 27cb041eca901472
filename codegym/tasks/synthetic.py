"""A procedural, seeded, endless family of small list and string functions (the ``synthetic`` source).

This is the CPU-scale testbed: tasks are short and regular enough for a tiny model trained from scratch
to learn their reference steps in minutes, and hard enough (difficulty k, held-out compositions) that
search, process rewards and RL make a measurable difference.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from codegym.errors import UserError
from codegym.sandbox import CallTest
from codegym.tasks.synthetic_ops import (
    ANNOTATIONS,
    OPS,
    VARIABLES,
    Op,
    Step,
    degenerate_reason,
    run,
    shorter_versions,
)
from codegym.tasks.task import Task, TaskSource

ENTRY_POINT = "solve"
MAX_OPS = 6
SPLITS = ("train", "test")

# Real words, each with at least one consonant, so removing vowels never leaves an empty word and
# "split on whitespace" means the same before and after every string op.
WORDS = (
    "apple", "river", "stone", "cloud", "green", "light", "music", "table", "happy", "orange",
    "sky", "gym", "myth", "dry", "fly", "rhythm", "code", "data", "tree", "bird",
    "moon", "sun", "rain", "wind", "fire", "blue", "red", "cat", "dog", "fox",
    "owl", "sea", "hill", "road", "book", "note", "time", "idea", "echo", "open",
)  # fmt: skip

_SEED_LIMIT = 1_000_000  # instance seeds are drawn below this, to keep ids short
_MAX_DRAWS = 10_000  # rejection-sampling budget for one task; defaults need a handful
_SPLIT_SALT = b"codegym/synthetic/split/v1:"
_ID_PATTERN = re.compile(r"synthetic/(?P<split>[^/]*)/(?P<ops>[^/]*)/(?P<seed>[0-9]+)(?:/(?P<shape>[^/]*))?")
_STEP_PATTERN = re.compile(r"(?P<name>[a-z_]+)(?:\((?P<param>[^()]*)\))?")


@dataclass(frozen=True)
class InputShape:
    """The knobs that shape a task's test inputs. A task id names those that differ from the defaults,
    so :meth:`SyntheticTasks.get` rebuilds a task whatever knobs its own source was made with."""

    tests_per_task: int = 8
    max_list_len: int = 8
    max_value: int = 20
    max_words: int = 4


# Lower bounds keep enough distinct inputs for every test; upper bounds keep texts short.
_SHAPE_RANGES = {
    "tests_per_task": (4, 32),
    "max_list_len": (3, 20),
    "max_value": (5, 1000),
    "max_words": (2, 8),
}


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserError(f"{name} must be an int in [{low}, {high}], got {value!r}")


def held_out_score(ops: Sequence[str]) -> float:
    """A composition's place in [0, 1): it is held out for the test split when this is below the fraction.

    A salted blake2b digest of the op names (parameters ignored), so the split is the same in every
    process and on every machine, unlike Python's randomized ``hash()``.
    """
    digest = hashlib.blake2b(_SPLIT_SALT + ">".join(ops).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class SyntheticTasks(TaskSource):
    """Small list and string functions, each composed of k primitive operations (difficulty k).

    Description:
        A task asks for ``solve(nums: list[int])`` or ``solve(text: str)``, which applies k primitives
        in order (26 of them: sort, keep_even, add(n), dedupe, running_sum, sum, max, upper,
        remove_vowels, word_lengths, count_vowels, ...; see :data:`~codegym.tasks.synthetic_ops.OPS`).
        The problem states the signature, the steps in prose and two examples. The reference episode is
        an ``Outline:`` (numbered steps), a ``Refine:`` (pseudocode naming variables, plus the empty-input
        edge case) and the code, one line per op. Hidden tests are ``CallTest``s whose expected values
        the host computes with the ops' own implementations: the empty input, a one-item input (one
        word for text), a list with a repeated value, then distinct random inputs, preferring those
        on which a solution that skips a step would fail. Compositions in which some step has no
        effect (``sort>sum``, ``upper>lower``) or that return a constant are never drawn (see
        :func:`~codegym.tasks.synthetic_ops.degenerate_reason`).

    Splits:
        The compositions (op names, parameters ignored) of k >= 2 ops are split by a salted blake2b
        hash: those scoring below ``heldout_fraction`` appear only in "test", the rest only in "train".
        With 26 primitives there are too few k = 1 compositions to hold any out, and a policy must
        meet every primitive in training, so both splits serve all k = 1 compositions; their test
        tasks differ from the training ones only in parameters and inputs.

    Task ids:
        ``synthetic/{split}/{composition}/{seed}``, e.g. ``synthetic/train/sort>take(3)>sum/123456``:
        the composition with its parameters and the seed of the instance's inputs, then
        ``/tests_per_task=12,max_value=50`` when the input knobs differ from the defaults. An id
        rebuilds the same task in any process (with the same NumPy: its ``Generator`` draws the inputs).

    Arguments:
        split: "train" or "test".
        min_ops: the fewest primitives in a task, 1 to 6.
        max_ops: the most primitives in a task, ``min_ops`` to 6; k is drawn uniformly in between.
        tests_per_task: hidden tests per task, 4 to 32.
        heldout_fraction: the share of compositions of each k >= 2 kept for the test split, 0.05 to 0.95.
        max_list_len: the longest list input, 3 to 20.
        max_value: list items are drawn from [-max_value, max_value], 5 to 1000.
        max_words: the most words in a text input, 2 to 8.

    Example:
        >>> import numpy as np
        >>> source = SyntheticTasks("test", min_ops=2, max_ops=2)
        >>> task = source.sample(np.random.default_rng(0))
        >>> task.metadata["k"], task.entry_point, source.get(task.task_id) == task
        (2, 'solve', True)
    """

    name = "synthetic"

    def __init__(
        self,
        split: str = "train",
        *,
        min_ops: int = 1,
        max_ops: int = 3,
        tests_per_task: int = 8,
        heldout_fraction: float = 0.2,
        max_list_len: int = 8,
        max_value: int = 20,
        max_words: int = 4,
    ) -> None:
        if split not in SPLITS:
            raise UserError(f"split must be one of {SPLITS}, got {split!r}")
        _check_int("min_ops", min_ops, 1, MAX_OPS)
        _check_int("max_ops", max_ops, min_ops, MAX_OPS)
        if not (isinstance(heldout_fraction, int | float) and 0.05 <= heldout_fraction <= 0.95):
            raise UserError(f"heldout_fraction must be a number in [0.05, 0.95], got {heldout_fraction!r}")
        self.split = split
        self.min_ops = min_ops
        self.max_ops = max_ops
        self.heldout_fraction = float(heldout_fraction)
        self.shape = InputShape(tests_per_task, max_list_len, max_value, max_words)
        for knob in fields(InputShape):
            _check_int(knob.name, getattr(self.shape, knob.name), *_SHAPE_RANGES[knob.name])

    def serves(self, ops: Sequence[str]) -> bool:
        """Whether compositions with these op names belong to this source's split."""
        if len(ops) < 2:
            return True
        held_out = held_out_score(ops) < self.heldout_fraction
        return held_out == (self.split == "test")

    def sample(self, rng: np.random.Generator) -> Task:
        """A task of k ops, k uniform in [min_ops, max_ops]; each op is drawn uniformly among those that
        fit the type so far, and a composition is redrawn until it is in this split and not degenerate."""
        k = int(rng.integers(self.min_ops, self.max_ops + 1))
        for _ in range(_MAX_DRAWS):
            ops = _draw_ops(rng, k)
            if not self.serves([op.name for op in ops]):
                continue
            steps = tuple(Step(op, _draw_param(rng, op)) for op in ops)
            if degenerate_reason(steps) is None:
                return _build_task(self.split, steps, int(rng.integers(_SEED_LIMIT)), self.shape)
        raise RuntimeError(
            f"no {self.split} composition of {k} ops found in {_MAX_DRAWS} draws; "
            f"move heldout_fraction (now {self.heldout_fraction}) towards 0.5"
        )

    def tasks(self, n: int, seed: int = 0) -> list[Task]:
        """``n`` tasks drawn with ``np.random.default_rng(seed)``: a fixed list for evaluation."""
        _check_int("n", n, 0, 10**7)
        rng = np.random.default_rng(seed)
        return [self.sample(rng) for _ in range(n)]

    def get(self, task_id: str) -> Task:
        """Rebuild the task with this id; raises KeyError when the id is malformed, names an unknown
        op or parameter, is degenerate, or belongs to the other split."""
        split, steps, seed, shape = _parse_task_id(task_id)
        if split != self.split:
            raise _bad_id(task_id, f"it is a {split!r} task and this source serves {self.split!r}")
        names = [step.op.name for step in steps]
        if not self.serves(names):
            other = "test" if self.split == "train" else "train"
            raise _bad_id(
                task_id,
                f"composition {'>'.join(names)} belongs to the {other!r} split "
                f"(heldout_fraction={self.heldout_fraction})",
            )
        return _build_task(split, steps, seed, shape)

    def __repr__(self) -> str:
        return f"SyntheticTasks({self.split!r}, min_ops={self.min_ops}, max_ops={self.max_ops})"


# --- drawing -------------------------------------------------------------------------------------


def _draw_ops(rng: np.random.Generator, k: int) -> list[Op]:
    chain: list[Op] = []
    for position in range(k):
        last = position == k - 1
        choices = [
            op
            for op in OPS.values()
            if (not chain or op.takes == chain[-1].gives) and (last or op.gives != "int")
        ]
        chain.append(choices[int(rng.integers(len(choices)))])
    return chain


def _draw_param(rng: np.random.Generator, op: Op) -> int | str | None:
    return op.params[int(rng.integers(len(op.params)))] if op.params else None


def _draw_inputs(steps: tuple[Step, ...], seed: int, shape: InputShape) -> tuple[list[Any], list[Any]]:
    """Distinct test inputs (edge cases first) and two example inputs for the problem text.

    The random test inputs come from a pool four times the size needed; those that tell the composition
    apart from one of its shorter versions go first, so that a solution skipping a step fails a test
    (a filter such as keep_even can leave ``dedupe`` or ``take(4)`` nothing to do on most inputs).
    """
    rng = np.random.default_rng(seed)
    if steps[0].op.takes == "list":

        def draw(low: int, high: int) -> Any:
            length = int(rng.integers(low, high + 1))
            return rng.integers(-shape.max_value, shape.max_value + 1, size=length).tolist()

        repeated = draw(2, shape.max_list_len - 1)
        repeated.insert(int(rng.integers(len(repeated) + 1)), repeated[int(rng.integers(len(repeated)))])
        edge_cases = [[], draw(1, 1), repeated]
        longest, shortest = shape.max_list_len, 5
    else:

        def draw(low: int, high: int) -> Any:
            count = int(rng.integers(low, high + 1))
            return " ".join(_draw_word(rng) for _ in range(count))

        edge_cases = ["", draw(1, 1)]
        longest, shortest = shape.max_words, 3
    size = len(edge_cases) + 4 * (shape.tests_per_task - len(edge_cases))
    pool = _distinct(edge_cases, lambda: draw(2, longest), size)
    examples = _distinct(pool, lambda: draw(2, min(shortest, longest)), len(pool) + 2)[len(pool) :]
    return _telling_first(steps, pool, len(edge_cases), shape.tests_per_task), examples


def _telling_first(steps: tuple[Step, ...], pool: list[Any], keep: int, count: int) -> list[Any]:
    """The first ``keep`` inputs, then those that catch a shorter version the chosen ones miss, then the
    rest in pool order, ``count`` in all."""
    chosen = pool[:keep]
    survivors = [shorter for _, shorter in shorter_versions(steps)]
    for value in pool[keep:]:
        expected = run(steps, value)
        if any(run(shorter, value) != expected for shorter in survivors):
            chosen.append(value)
            survivors = [shorter for shorter in survivors if run(shorter, value) == expected]
    chosen = chosen[:count]
    chosen += [value for value in pool[keep:] if value not in chosen][: count - len(chosen)]
    return chosen


def _draw_word(rng: np.random.Generator) -> str:
    word = WORDS[int(rng.integers(len(WORDS)))]
    casing = rng.random()
    return word if casing < 0.5 else word.capitalize() if casing < 0.8 else word.upper()


def _distinct(start: list[Any], draw: Callable[[], Any], count: int) -> list[Any]:
    values, seen = list(start), {repr(value) for value in start}
    for _ in range(1000 * count):
        if len(values) >= count:
            return values
        value = draw()
        if repr(value) not in seen:
            values.append(value)
            seen.add(repr(value))
    raise RuntimeError(f"could not draw {count} distinct inputs; widen the input knobs")


# --- texts ---------------------------------------------------------------------------------------


def _build_task(split: str, steps: tuple[Step, ...], seed: int, shape: InputShape) -> Task:
    takes, gives = steps[0].op.takes, steps[-1].op.gives
    test_inputs, example_inputs = _draw_inputs(steps, seed, shape)
    solution = _solution(steps)
    reference_steps = (
        _outline(steps),
        _refinement(steps),
        f"Write the code, one line per step.\n```python\n{solution}\n```",
    )
    composition = ">".join(step.label for step in steps)
    return Task(
        task_id=_task_id(split, composition, seed, shape),
        problem=_problem(steps, [(value, run(steps, value)) for value in example_inputs]),
        entry_point=ENTRY_POINT,
        hidden_tests=tuple(
            CallTest(ENTRY_POINT, (value,), expected=run(steps, value)) for value in test_inputs
        ),
        reference_solution=solution,
        reference_steps=reference_steps,
        metadata={
            "k": len(steps),
            "difficulty": len(steps),
            "ops": [step.op.name for step in steps],
            "params": [step.param for step in steps],
            "composition": composition,
            "split": split,
            "seed": seed,
            "input_type": ANNOTATIONS[takes],
            "output_type": ANNOTATIONS[gives],
        },
    )


def _signature(steps: tuple[Step, ...]) -> str:
    takes, gives = steps[0].op.takes, steps[-1].op.gives
    return f"{ENTRY_POINT}({VARIABLES[takes]}: {ANNOTATIONS[takes]}) -> {ANNOTATIONS[gives]}"


def _result_noun(steps: tuple[Step, ...]) -> str | None:
    """What the function returns when its last op is not a reducer ("list" or "text")."""
    return {"list": "list", "str": "text", "int": None}[steps[-1].op.gives]


def _problem(steps: tuple[Step, ...], examples: list[tuple[Any, Any]]) -> str:
    clauses = [step.prose for step in steps]
    if noun := _result_noun(steps):
        clauses.append(f"returns the resulting {noun}")
    if len(clauses) == 2:
        action = f"{clauses[0]} and {clauses[1]}"
    else:
        action = ", then ".join(clauses[:-1]) + f", and {clauses[-1]}"
    given = "a list of integers" if steps[0].op.takes == "list" else "a text of words separated by spaces"
    shown = "\n".join(f"{ENTRY_POINT}({value!r}) -> {result!r}" for value, result in examples)
    return f"Write a Python function `{_signature(steps)}`. Given {given}, it {action}.\n\nExamples:\n{shown}"


def _outline(steps: tuple[Step, ...]) -> str:
    lines = [step.outline for step in steps]
    if noun := _result_noun(steps):
        lines.append(f"Return the resulting {noun}.")
    return "Outline:\n" + "\n".join(f"{number}. {line}" for number, line in enumerate(lines, start=1))


def _refinement(steps: tuple[Step, ...]) -> str:
    takes = steps[0].op.takes
    empty = [] if takes == "list" else ""
    lines = [f"Refine:\nfunction {ENTRY_POINT}({VARIABLES[takes]}):"]
    lines += [f"    {VARIABLES[step.op.gives]} <- {step.pseudo}" for step in steps[:-1]]
    lines.append(f"    return {steps[-1].pseudo}")
    lines.append(f"Edge case: {ENTRY_POINT}({empty!r}) returns {run(steps, empty)!r}.")
    return "\n".join(lines)


def _solution(steps: tuple[Step, ...]) -> str:
    lines = [f"def {_signature(steps)}:"]
    lines += [f"    {VARIABLES[step.op.gives]} = {step.code}" for step in steps[:-1]]
    lines.append(f"    return {steps[-1].code}")
    return "\n".join(lines)


# --- ids -----------------------------------------------------------------------------------------


def _task_id(split: str, composition: str, seed: int, shape: InputShape) -> str:
    changed = [
        f"{knob.name}={getattr(shape, knob.name)}"
        for knob in fields(InputShape)
        if getattr(shape, knob.name) != knob.default
    ]
    suffix = "/" + ",".join(changed) if changed else ""
    return f"synthetic/{split}/{composition}/{seed}{suffix}"


def _bad_id(task_id: str, reason: str) -> KeyError:
    return KeyError(
        f"no synthetic task {task_id!r}: {reason}. Ids look like 'synthetic/train/sort>take(3)>sum/123456'; "
        "take them from task.task_id of a sampled task"
    )


def _parse_task_id(task_id: str) -> tuple[str, tuple[Step, ...], int, InputShape]:
    match = _ID_PATTERN.fullmatch(task_id) if isinstance(task_id, str) else None
    if match is None:
        raise _bad_id(task_id, "it is not of the form synthetic/{split}/{op>op>...}/{seed}[/{knobs}]")
    split, seed = match["split"], int(match["seed"])
    if split not in SPLITS:
        raise _bad_id(task_id, f"unknown split {split!r}; splits are {SPLITS}")
    labels = match["ops"].split(">")
    if not 1 <= len(labels) <= MAX_OPS:
        raise _bad_id(task_id, f"it has {len(labels)} ops; a composition has 1 to {MAX_OPS}")
    steps = tuple(_parse_step(task_id, label) for label in labels)
    for before, after in itertools.pairwise(steps):
        if after.op.takes != before.op.gives:
            raise _bad_id(
                task_id,
                f"{after.label} takes a {after.op.takes}, but {before.label} gives a {before.op.gives}",
            )
    if reason := degenerate_reason(steps):
        raise _bad_id(task_id, f"the composition is degenerate ({reason})")
    shape = _parse_shape(task_id, match["shape"])
    canonical = _task_id(split, ">".join(step.label for step in steps), seed, shape)
    if canonical != task_id:
        raise _bad_id(task_id, f"it is not written canonically; did you mean {canonical!r}?")
    return split, steps, seed, shape


def _parse_step(task_id: str, label: str) -> Step:
    match = _STEP_PATTERN.fullmatch(label)
    if match is None or match["name"] not in OPS:
        names = ", ".join(OPS)
        raise _bad_id(task_id, f"unknown op {label!r}; ops are {names}")
    op, text = OPS[match["name"]], match["param"]
    if not op.params:
        if text is not None:
            raise _bad_id(task_id, f"op {op.name} takes no parameter, got {label!r}")
        return Step(op)
    allowed = ", ".join(str(value) for value in op.params)
    for value in op.params:
        if text == str(value):
            return Step(op, value)
    raise _bad_id(task_id, f"op {op.name} needs a parameter in ({allowed}), got {label!r}")


def _parse_shape(task_id: str, text: str | None) -> InputShape:
    if text is None:
        return InputShape()
    values: dict[str, int] = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name not in _SHAPE_RANGES or not value.isdigit():
            raise _bad_id(task_id, f"bad input knob {item!r}; knobs are {', '.join(_SHAPE_RANGES)}")
        low, high = _SHAPE_RANGES[name]
        if not low <= int(value) <= high:
            raise _bad_id(task_id, f"input knob {name}={value} is outside [{low}, {high}]")
        values[name] = int(value)
    return InputShape(**values)
