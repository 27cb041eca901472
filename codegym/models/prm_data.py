"""Step-labelled data for process reward models: the schema, sibling pairs, and labels made by execution.

The schema (:data:`STEP_LABEL_FEATURES`) has one row per labelled step; :class:`StepLabel` is a row:

=============  ==================  ===================================================================
column         type                meaning
=============  ==================  ===================================================================
task_id        string              the task (rows of one task stay on one side of a train/test split)
problem        string              the problem text, as the env shows it
prefix         list of strings     the steps before this one (empty for a first step)
step           string              the step being labelled
hard_label     float32, 0 or 1     1.0 when the step leads to a correct solution
soft_label     float32 in [0, 1]   how good it is: a pass rate, a Monte-Carlo success fraction, an
                                   MCTS value
origin         string              "reference", a corruption ("replace", "drop", "swap", "insert"), or
                                   the producer's word ("mcts", "policy", ...)
=============  ==================  ===================================================================

Search trees (the agents) write this schema: a node's step is a row, its prefix the path to it, its
value the soft label. Until then :func:`synthetic_step_labels` labels steps of synthetic tasks by
execution. Pair-wise training compares sibling steps (same task, problem and prefix): :func:`sibling_pairs`
derives the pairs (:data:`STEP_PAIR_FEATURES`: ``chosen``, ``rejected`` and their labels) from the
point-wise rows, so one dataset feeds both objectives. Files: ``Dataset.save_to_disk`` folders, or
``.jsonl`` / ``.parquet`` with these columns (:func:`load_step_labels`).

Example:
    >>> from codegym.models.prm_data import synthetic_step_labels, sibling_pairs
    >>> rows = synthetic_step_labels("train", n_tasks=4, seed=0)  # doctest: +SKIP
    >>> rows[0]["step"], rows[0]["hard_label"]  # doctest: +SKIP
    ('Outline:\\n1. ...', 1.0)
    >>> pairs = sibling_pairs(rows, labels="hard")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
from datasets import Dataset, Features, Value, load_dataset, load_from_disk

from codegym.errors import UserError
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks, _outline, _refinement, _solution
from codegym.tasks.synthetic_ops import OPS, Step, type_checks

if TYPE_CHECKING:
    from codegym.sandbox import Sandbox
    from codegym.tasks import Task

logger = logging.getLogger(__name__)

LABEL_KINDS = ("hard", "soft")
CORRUPTIONS = ("replace", "drop", "swap", "insert")
# The code step of a synthetic reference episode opens with this line (see codegym.tasks.synthetic).
CODE_INTRO = "Write the code, one line per step."


@dataclass(frozen=True)
class StepLabel:
    """One labelled step: a row of :data:`STEP_LABEL_FEATURES`.

    Attributes:
        task_id: the task the step belongs to (rows of one task never straddle a train/test split).
        problem: the task's problem text, as the env shows it.
        prefix: the steps before this one, in order (empty for a first step).
        step: the step being labelled.
        hard_label: 1.0 when the step leads to a correct solution, else 0.0 (for execution labels:
            the completed episode's code passed every hidden test).
        soft_label: how good the step is, in [0, 1] (for execution labels: the completed code's pass rate
            on the hidden tests; for Monte-Carlo or MCTS labels: the fraction of successful rollouts or
            the node's mean value).
        origin: how the step was made: "reference", a corruption ("replace", "drop", "swap", "insert"),
            or the producer's own word ("mcts", "policy", ...).
    """

    task_id: str
    problem: str
    prefix: tuple[str, ...]
    step: str
    hard_label: float
    soft_label: float
    origin: str = "reference"

    def as_row(self) -> dict[str, Any]:
        return {**asdict(self), "prefix": list(self.prefix)}


@dataclass(frozen=True)
class StepPair:
    """Two sibling steps after the same prefix, the better one first: a row of :data:`STEP_PAIR_FEATURES`."""

    task_id: str
    problem: str
    prefix: tuple[str, ...]
    chosen: str
    rejected: str
    chosen_label: float
    rejected_label: float

    def as_row(self) -> dict[str, Any]:
        return {**asdict(self), "prefix": list(self.prefix)}


_TEXT, _LABEL = Value("string"), Value("float32")

STEP_LABEL_FEATURES = Features(
    {
        "task_id": _TEXT,
        "problem": _TEXT,
        "prefix": datasets.Sequence(_TEXT),
        "step": _TEXT,
        "hard_label": _LABEL,
        "soft_label": _LABEL,
        "origin": _TEXT,
    }
)
"""The point-wise schema: one row per labelled step (the fields of :class:`StepLabel`)."""

STEP_PAIR_FEATURES = Features(
    {
        "task_id": _TEXT,
        "problem": _TEXT,
        "prefix": datasets.Sequence(_TEXT),
        "chosen": _TEXT,
        "rejected": _TEXT,
        "chosen_label": _LABEL,
        "rejected_label": _LABEL,
    }
)
"""The pair-wise schema: two sibling steps, the better one first (the fields of :class:`StepPair`)."""


# --- loading and checking --------------------------------------------------------------------------


def step_labels_dataset(rows: Iterable[StepLabel | Mapping[str, Any]]) -> Dataset:
    """A ``datasets.Dataset`` with :data:`STEP_LABEL_FEATURES` from rows (dataclasses or dicts), checked."""
    records = [row.as_row() if isinstance(row, StepLabel) else dict(row) for row in rows]
    dataset = (
        Dataset.from_list(records, features=STEP_LABEL_FEATURES) if records else _empty(STEP_LABEL_FEATURES)
    )
    check_step_labels(dataset)
    return dataset


def _empty(features: Features) -> Dataset:
    return Dataset.from_dict({name: [] for name in features}, features=features)


def load_step_labels(source: str | PathLike[str] | Dataset) -> Dataset:
    """Step labels from a ``Dataset``, a ``save_to_disk`` folder, or a ``.jsonl``/``.json``/``.parquet`` file.

    Only the schema's columns are returned; others (such as a search tree's statistics) are dropped.

    Raises:
        FileNotFoundError: the path does not exist.
        UserError: a column is missing or a label is outside [0, 1] (see :func:`check_step_labels`).
    """
    if isinstance(source, Dataset):
        dataset = source
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(
                f"no step-label data at {path}; write it with Dataset.save_to_disk or as JSON lines "
                "with the columns of codegym.models.prm_data.STEP_LABEL_FEATURES"
            )
        if path.is_dir():
            dataset = load_from_disk(str(path))
        else:
            kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(path.suffix)
            if kind is None:
                raise UserError(
                    f"cannot read {path}: use a .jsonl, .json or .parquet file or a dataset folder"
                )
            dataset = load_dataset(kind, data_files=str(path), split="train")
    check_step_labels(dataset)
    # Extra columns (a search tree's visits, values, verdicts, ...) are kept by the producer, not read here.
    dataset = dataset.select_columns(list(STEP_LABEL_FEATURES))
    return dataset.cast(STEP_LABEL_FEATURES) if dataset.features != STEP_LABEL_FEATURES else dataset


def check_step_labels(dataset: Dataset) -> None:
    """Raise ValueError unless ``dataset`` has the schema's columns and labels in [0, 1]."""
    missing = [name for name in STEP_LABEL_FEATURES if name not in dataset.column_names]
    if missing:
        raise UserError(
            f"step-label data lacks the columns {missing}; it needs {list(STEP_LABEL_FEATURES)} "
            "(see codegym.models.prm_data.StepLabel)"
        )
    for column in ("hard_label", "soft_label"):
        values = np.asarray(dataset[column], dtype=np.float64)
        bad = values[~((values >= 0) & (values <= 1))]
        if bad.size:
            raise UserError(f"{column} must lie in [0, 1], found {bad[0]!r}")
    hard = np.asarray(dataset["hard_label"], dtype=np.float64)
    if not np.isin(hard, (0.0, 1.0)).all():
        raise UserError("hard_label must be 0.0 or 1.0; put graded values in soft_label")


def sibling_pairs(dataset: Dataset, *, labels: str = "hard", min_gap: float = 1e-6) -> Dataset:
    """Pairs of sibling steps (same task, problem and prefix) whose labels differ by at least ``min_gap``.

    Every such pair of rows gives one :class:`StepPair`, the higher-labelled step as ``chosen``; the
    pair-wise (Bradley-Terry) objective learns from them. Siblings with equal labels give no pair.

    Args:
        dataset: point-wise rows with :data:`STEP_LABEL_FEATURES`.
        labels: compare ``"hard"`` or ``"soft"`` labels.
        min_gap: the smallest label difference that makes a pair.
    """
    if labels not in LABEL_KINDS:
        raise UserError(f"labels must be one of {LABEL_KINDS}, got {labels!r}")
    if not (isinstance(min_gap, int | float) and min_gap > 0):
        raise UserError(f"min_gap must be a positive number, got {min_gap!r}")
    check_step_labels(dataset)
    column = f"{labels}_label"
    groups: dict[tuple[str, str, tuple[str, ...]], list[tuple[str, float]]] = defaultdict(list)
    for row in dataset:
        groups[(row["task_id"], row["problem"], tuple(row["prefix"]))].append((row["step"], row[column]))
    pairs = []
    for (task_id, problem, prefix), siblings in groups.items():
        for (step_a, label_a), (step_b, label_b) in itertools.combinations(siblings, 2):
            if abs(label_a - label_b) < min_gap or step_a == step_b:
                continue
            (chosen, chosen_label), (rejected, rejected_label) = sorted(
                [(step_a, label_a), (step_b, label_b)], key=lambda item: -item[1]
            )
            pairs.append(StepPair(task_id, problem, prefix, chosen, rejected, chosen_label, rejected_label))
    if not pairs:
        return _empty(STEP_PAIR_FEATURES)
    return Dataset.from_list([pair.as_row() for pair in pairs], features=STEP_PAIR_FEATURES)


# --- labels for synthetic tasks, by execution ------------------------------------------------------


def synthetic_episode(steps: Sequence[Step]) -> tuple[str, str, str]:
    """The reference episode (outline, refinement, code step) of a synthetic composition.

    The same texts as ``Task.reference_steps`` of a synthetic task with this composition.
    """
    steps = tuple(steps)
    return _outline(steps), _refinement(steps), f"{CODE_INTRO}\n```python\n{_solution(steps)}\n```"


def task_composition(task: Task) -> tuple[Step, ...]:
    """The composition of a synthetic task, rebuilt from its metadata."""
    try:
        names, params = task.metadata["ops"], task.metadata["params"]
    except KeyError:
        raise UserError(f"task {task.task_id!r} is not a synthetic task (its metadata has no ops)") from None
    return tuple(Step(OPS[name], param) for name, param in zip(names, params, strict=True))


def neighbour_compositions(steps: Sequence[Step]) -> list[tuple[str, tuple[Step, ...]]]:
    """Every composition one edit away from ``steps`` that still type-checks, with the edit's name.

    The edits are the mistakes a policy makes when it misreads a problem: ``replace`` one op (another op
    of the same types, or the same op with another parameter), ``drop`` one op, ``swap`` two neighbours,
    ``insert`` an extra op. A neighbour may compute the same function on the tests (then its steps are
    labelled good: labels come from execution, not from the edit).
    """
    steps = tuple(steps)
    takes = steps[0].op.takes
    found: dict[tuple[Step, ...], str] = {}

    def add(kind: str, candidate: tuple[Step, ...]) -> None:
        if candidate and candidate != steps and candidate not in found and type_checks(candidate, takes):
            found[candidate] = kind

    for index, step in enumerate(steps):
        for op in OPS.values():
            if op.takes != step.op.takes or op.gives != step.op.gives:
                continue
            for param in op.params or (None,):
                add("replace", (*steps[:index], Step(op, param), *steps[index + 1 :]))
    for index in range(len(steps)):
        add("drop", steps[:index] + steps[index + 1 :])
    for index in range(len(steps) - 1):
        add("swap", (*steps[:index], steps[index + 1], steps[index], *steps[index + 2 :]))
    for index in range(len(steps) + 1):
        current = takes if index == 0 else steps[index - 1].op.gives
        if current == "int":
            continue
        for op in OPS.values():
            if op.takes == current and op.gives == current:
                for param in op.params or (None,):
                    add("insert", (*steps[:index], Step(op, param), *steps[index:]))
    return [(kind, candidate) for candidate, kind in found.items()]


def synthetic_step_labels(
    split: str = "train",
    *,
    n_tasks: int = 400,
    seed: int = 0,
    corruptions_per_step: int = 2,
    off_path: bool = True,
    min_ops: int = 1,
    max_ops: int = 3,
    sandbox: str | Sandbox = "local",
    timeout_s: float = 3.0,
) -> Dataset:
    """Label the steps of synthetic tasks by completing them and running the result on the hidden tests.

    For each task, at each of the three positions of its reference episode (outline, refinement, code),
    the rows are the reference step and ``corruptions_per_step`` corrupted steps: the same position's
    step of a neighbouring composition (:func:`neighbour_compositions`: one op replaced, dropped,
    swapped or inserted), all after the reference prefix. With ``off_path``, the positions after a
    corrupted outline (and after a corrupted refinement) get two more rows each: the step that follows
    the corrupted plan and the reference step that returns to the right one, so that a PRM must judge a
    step against the problem and not just copy the verdict on the prefix.

    A step is completed with the reference episode of the composition it describes (the latest plan
    wins over the prefix), and that code runs on the true task's hidden tests in the sandbox:
    ``hard_label`` is 1.0 when every test passes, ``soft_label`` is the pass rate. A neighbour that
    happens to compute the same function on the tests is labelled good: labels come from execution.

    Args:
        split: "train" or "test" tasks (test holds compositions unseen in training).
        n_tasks: how many tasks, drawn with ``SyntheticTasks(split).tasks(n_tasks, seed)``.
        seed: seeds the tasks and the choice of corruptions.
        corruptions_per_step: corrupted siblings of each reference step, 0 to 8.
        off_path: add the rows after a corrupted prefix (see above).
        min_ops: the fewest ops in a task.
        max_ops: the most ops in a task.
        sandbox: a sandbox, or its name for :func:`~codegym.sandbox.make_sandbox` (started and closed here).
        timeout_s: the sandbox's time limit per test.

    Returns:
        A ``Dataset`` with :data:`STEP_LABEL_FEATURES`, rows grouped by task.
    """
    if not (isinstance(corruptions_per_step, int) and 0 <= corruptions_per_step <= 8):
        raise UserError(f"corruptions_per_step must be an int in [0, 8], got {corruptions_per_step!r}")
    tasks = SyntheticTasks(split, min_ops=min_ops, max_ops=max_ops).tasks(n_tasks, seed=seed)
    rng = np.random.default_rng([seed, 7])  # its own stream: the corruptions do not shift the tasks
    planned = [row for task in tasks for row in _plan_rows(task, rng, corruptions_per_step, off_path)]

    # One sandbox run per distinct (task, program); many rows share the code they complete to.
    jobs = sorted({(row.task.task_id, row.program) for row in planned})
    by_id = {task.task_id: task for task in tasks}
    box = make_sandbox(sandbox, workers=2) if isinstance(sandbox, str) else sandbox
    try:
        reports = box.run_batch(
            [(program, by_id[task_id].hidden_tests) for task_id, program in jobs], timeout_s=timeout_s
        )
    finally:
        if isinstance(sandbox, str):
            box.close()
    verdicts = {job: (report.all_passed, report.pass_rate) for job, report in zip(jobs, reports, strict=True)}

    rows, seen = [], set()
    for row in planned:
        key = (row.task.task_id, row.prefix, row.step)
        if key in seen:
            continue
        seen.add(key)
        all_passed, pass_rate = verdicts[(row.task.task_id, row.program)]
        rows.append(
            StepLabel(
                task_id=row.task.task_id,
                problem=row.task.problem,
                prefix=row.prefix,
                step=row.step,
                hard_label=float(all_passed),
                soft_label=float(pass_rate),
                origin=row.origin,
            )
        )
    logger.info(
        "labelled %d steps of %d %s tasks with %d sandbox runs", len(rows), len(tasks), split, len(jobs)
    )
    return step_labels_dataset(rows)


@dataclass(frozen=True)
class _PlannedRow:
    task: Task
    prefix: tuple[str, ...]
    step: str
    origin: str
    program: str  # the code the step completes to


def _plan_rows(
    task: Task, rng: np.random.Generator, corruptions_per_step: int, off_path: bool
) -> list[_PlannedRow]:
    reference = task_composition(task)
    episode = synthetic_episode(reference)
    if episode != task.reference_steps:
        raise RuntimeError(
            f"synthetic_episode no longer matches the reference steps of {task.task_id!r}; "
            "update codegym.models.prm_data to the new synthetic format"
        )

    by_kind: dict[str, list[tuple[str, tuple[Step, ...]]]] = defaultdict(list)
    for kind, composition in neighbour_compositions(reference):
        by_kind[kind].append((kind, composition))

    def pick(count: int) -> list[tuple[str, tuple[Step, ...]]]:
        # Kinds in turn, in a random order, so that the many possible inserts do not crowd out the rest.
        pools = [[by_kind[kind][int(i)] for i in rng.permutation(len(by_kind[kind]))] for kind in by_kind]
        pools = [pools[int(i)] for i in rng.permutation(len(pools))]
        rounds = itertools.zip_longest(*pools)
        return [item for round_ in rounds for item in round_ if item is not None][:count]

    rows = []
    for position in range(len(episode)):
        prefix = episode[:position]
        for origin, composition in [("reference", reference), *pick(corruptions_per_step)]:
            rows.append(_row(task, prefix, origin, composition, position))
        if not off_path or position == len(episode) - 1:
            continue
        # After a corrupted step at this position: the step that follows it, and the way back.
        for origin, wrong in pick(1):
            wrong_prefix = (*prefix, synthetic_episode(wrong)[position])
            rows.append(_row(task, wrong_prefix, origin, wrong, position + 1))
            rows.append(_row(task, wrong_prefix, "reference", reference, position + 1))
    return rows


def _row(
    task: Task, prefix: tuple[str, ...], origin: str, composition: tuple[Step, ...], position: int
) -> _PlannedRow:
    return _PlannedRow(
        task=task,
        prefix=tuple(prefix),
        step=synthetic_episode(composition)[position],
        origin=origin,
        program=_solution(composition),
    )


def balance_labels(dataset: Dataset, *, seed: int = 0) -> Dataset:
    """The rows with as many good steps as bad among code steps, and again among reasoning steps.

    In each of the two groups every row of the rarer hard label is kept, with as many rows of the other
    label drawn at random (``seed``); a group with only one label keeps nothing. Search trees need this:
    the search stops at its first solve, so deep nodes live in failed trees (about 4% of the code and
    refinement nodes are good) and a PRM trained on them learns a step's depth, not its worth.
    """
    from codegym.steps import StepKind, classify_step

    rng = np.random.default_rng(seed)
    is_code = np.array([classify_step(step) is StepKind.CODE for step in dataset["step"]], dtype=bool)
    good = np.asarray(dataset["hard_label"], dtype=np.float64) >= 0.5
    keep: list[np.ndarray] = []
    for group in (is_code, ~is_code):
        rows = {label: np.flatnonzero(group & (good == label)) for label in (True, False)}
        count = min(len(r) for r in rows.values())
        keep += [rng.choice(r, size=count, replace=False) for r in rows.values()]
    return dataset.select(np.sort(np.concatenate(keep)).tolist())


def label_balance(dataset: Dataset) -> dict[str, float]:
    """Rows, the share of good steps (hard) and the mean soft label: a quick look at a label set."""
    hard = np.asarray(dataset["hard_label"], dtype=np.float64)
    soft = np.asarray(dataset["soft_label"], dtype=np.float64)
    return {
        "rows": len(dataset),
        "good_fraction": float(hard.mean()) if hard.size else math.nan,
        "mean_soft_label": float(soft.mean()) if soft.size else math.nan,
    }
