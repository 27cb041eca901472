"""CodeIO: 3,002 real Python problems from ``reasoning-gym``'s data file, with hidden tests made by
running each problem's own reference solution on inputs from its own seeded input generator.

``reasoning-gym`` (Apache-2.0; ``make install`` installs 0.1.25 with ``--no-deps``) ships
``reasoning_gym/data/codeio.jsonl.gz``. Each row holds a task description, an input/output spec, a
reference ``main_solution(**inputs)`` and an input generator ``generate_inputs(rng: Random) -> dict``
(much of the code derives from TheAlgorithms/Python, MIT). The package is never imported (importing it
loads every one of its generators and their dependencies); :func:`codeio_data_file` finds the file
through the installed distribution's metadata.

A task's tests are made in the sandbox, never in this process: the generator runs there and its
return value comes back as untrusted plain data (a dict of argument names to values, checked here); the
reference then runs there on those inputs, twice, and a problem is kept only when its reference answers
every input with plain data the same way both times. The first kept input becomes the example shown in
the problem text (when short); the next ``tests_per_task`` distinct inputs become host-judged
``CallTest`` s. Built tests are cached per problem under ``$CODEGYM_CACHE/tasks``, so each problem is
built once; building the default ``stdlib`` subset (2,213 problems) takes a few minutes on 2 cores.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegym.errors import MissingInputError, UserError
from codegym.sandbox import CallTest, Sandbox, TestStatus
from codegym.tasks.task import Task, TaskList

DISTRIBUTION = "reasoning-gym"
DATA_FILE = "codeio.jsonl.gz"
INSTALL_HINT = (
    "install it with `pip install --no-deps reasoning-gym==0.1.25` (`make install` does); --no-deps "
    "because only its data file is read"
)
SPLITS = ("train", "test")
SUBSETS = ("stdlib", "all")
ENTRY_POINT = "main_solution"
# Changes whenever the way tests are made changes, so older cached builds are not reused.
_BUILD_VERSION = "codeio-v1"
_EXAMPLE_CHARS = 600  # an example longer than this stays out of the problem text
_TEST_CHARS = 20_000  # a test whose inputs and output encode longer than this is not kept
_INPUTS_HELPER = """

def codegym_inputs(seed):
    return generate_inputs(Random(seed))
"""


@dataclass(frozen=True)
class CodeIOProblem:
    """One row of the CodeIO file.

    Attributes:
        row: the row's index in the file (the task id is ``codeio/<row>``).
        description: what to compute, in words.
        io_spec: the inputs (names and types) and the output.
        reference: the reference solution, defining ``main_solution``.
        generator: the input generator, defining ``generate_inputs(rng)``.
    """

    row: int
    description: str
    io_spec: str
    reference: str
    generator: str

    @property
    def modules(self) -> frozenset[str]:
        """The top-level modules that the reference and the generator import."""
        return frozenset(_imports(self.reference) | _imports(self.generator))

    @property
    def stdlib_only(self) -> bool:
        """True when the reference and the generator import only the standard library."""
        return self.modules <= sys.stdlib_module_names


def codeio_data_file() -> Path:
    """``reasoning_gym/data/codeio.jsonl.gz`` inside the installed ``reasoning-gym`` distribution.

    Raises:
        MissingInputError: reasoning-gym is not installed or lacks the file; the message says how to fix it.
    """
    from importlib import metadata

    try:
        distribution = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise MissingInputError(f"the codeio tasks need {DISTRIBUTION}; {INSTALL_HINT}") from None
    for file in distribution.files or []:
        if file.name == DATA_FILE and file.parent.name == "data":
            path = Path(distribution.locate_file(file))
            if path.is_file():
                return path
    raise MissingInputError(f"{DATA_FILE} is missing from the installed {DISTRIBUTION}; {INSTALL_HINT}")


def read_problems(path: str | os.PathLike[str] | None = None) -> list[CodeIOProblem]:
    """Every row of the CodeIO file (``path``, else the installed one), in file order."""
    source = Path(path) if path is not None else codeio_data_file()
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [
        CodeIOProblem(
            row=index,
            description=row["task_description"],
            io_spec=row["input_output_spec"],
            reference=row["code_sample"],
            generator=row["input_generator"],
        )
        for index, row in enumerate(rows)
    ]


def split_of(row: int, *, seed: int = 0, test_fraction: float = 0.2) -> str:
    """``"test"`` for a seeded, stable ``test_fraction`` of the rows, ``"train"`` for the rest.

    A row's split depends only on its index and ``seed``, so filtering (the subset) never moves a
    problem from one split to the other.
    """
    digest = hashlib.blake2b(f"codeio-split:{seed}:{row}".encode(), digest_size=8).digest()
    return "test" if int.from_bytes(digest, "big") / 2**64 < test_fraction else "train"


def problem_text(problem: CodeIOProblem, parameters: Sequence[str], example: tuple[dict, Any] | None) -> str:
    """The text the policy sees: the description, the input/output spec, the function to write and
    (when short) one worked example that is not among the hidden tests."""
    signature = f"{ENTRY_POINT}({', '.join(parameters)})"
    parts = [
        problem.description.strip(),
        problem.io_spec.strip(),
        f"Write a Python function `{signature}` that takes the inputs above as keyword arguments and "
        "returns the output described above as plain Python data (numbers, strings, lists, dicts).",
    ]
    if example is not None:
        inputs, output = example
        call = f"{ENTRY_POINT}({', '.join(f'{name}={value!r}' for name, value in inputs.items())})"
        parts.append(f"Example: {call} returns {output!r}")
    return "\n\n".join(parts)


def load_codeio(
    split: str = "train",
    *,
    subset: str = "stdlib",
    tests_per_task: int = 5,
    seed: int = 0,
    test_fraction: float = 0.2,
    limit: int | None = None,
    sandbox: str | Sandbox = "local",
    timeout_s: float = 3.0,
    progress: bool = True,
    data_file: str | os.PathLike[str] | None = None,
) -> TaskList:
    """The CodeIO tasks of one split, their hidden tests made (once, then cached) in the sandbox.

    Args:
        split: ``"train"`` or ``"test"`` (a seeded ``test_fraction`` of the rows; see :func:`split_of`).
        subset: ``"stdlib"`` keeps the problems whose reference and generator import only the standard
            library (2,213 of 3,002 rows); ``"all"`` keeps every row (numpy, scipy, sympy and pandas
            must then be importable in the sandbox).
        tests_per_task: hidden tests per task (distinct generated inputs, each with the reference's output).
        seed: seeds the split and the generators' inputs; another seed gives other tests and splits.
        test_fraction: the share of rows in the test split.
        limit: build and return only the first ``limit`` problems of the split (None: all of them).
        sandbox: where generators and references run: a backend name or a running Sandbox.
        timeout_s: the sandbox's limit for each generator or reference call, in seconds.
        progress: show a progress bar while building tests that are not cached yet.
        data_file: a CodeIO ``.jsonl.gz`` file instead of the installed one.

    Returns:
        A :class:`TaskList` named ``codeio/<split>``: ids ``codeio/<row>``, entry point ``main_solution``,
        hidden ``CallTest`` s, the reference solution, and metadata (row, split, modules, example).

    Raises:
        UserError: a bad option, or no problem of the split survived.
        MissingInputError: reasoning-gym is not installed.
    """
    if split not in SPLITS:
        raise UserError(f"codeio has splits {list(SPLITS)}, got split={split!r}")
    if subset not in SUBSETS:
        raise UserError(f"codeio subset must be one of {list(SUBSETS)}, got {subset!r}")
    if not (isinstance(tests_per_task, int) and 1 <= tests_per_task <= 50):
        raise UserError(f"tests_per_task must be an int in [1, 50], got {tests_per_task!r}")
    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if limit is not None and not (isinstance(limit, int) and limit >= 1):
        raise UserError(f"limit must be an int >= 1 or None, got {limit!r}")
    path = Path(data_file) if data_file is not None else codeio_data_file()
    if not path.is_file():
        raise MissingInputError(f"no CodeIO data file at {path}")
    problems = [
        problem
        for problem in read_problems(path)
        if split_of(problem.row, seed=seed, test_fraction=test_fraction) == split
        and (subset == "all" or problem.stdlib_only)
    ]
    if limit is not None:
        problems = problems[:limit]
    cache = _BuildCache(path, tests_per_task=tests_per_task, seed=seed, timeout_s=timeout_s)
    missing = [problem for problem in problems if str(problem.row) not in cache.entries]
    if missing:
        _build(missing, cache, sandbox=sandbox, tests_per_task=tests_per_task, seed=seed,
               timeout_s=timeout_s, progress=progress)  # fmt: skip
    tasks = []
    for problem in problems:
        task = _task(problem, cache.entries[str(problem.row)], split)
        if task is not None:
            tasks.append(task)
    if not tasks:
        raise UserError(f"no codeio problem of split {split!r} (subset {subset!r}, limit {limit}) has tests")
    return TaskList(tasks, name=f"codeio/{split}")


def excluded_rows(
    *,
    tests_per_task: int = 5,
    seed: int = 0,
    timeout_s: float = 3.0,
    data_file: str | os.PathLike[str] | None = None,
) -> dict[int, str]:
    """Why each problem built so far with these settings was left out (row -> reason), read from the cache."""
    path = Path(data_file) if data_file is not None else codeio_data_file()
    cache = _BuildCache(path, tests_per_task=tests_per_task, seed=seed, timeout_s=timeout_s)
    return {int(row): entry["excluded"] for row, entry in cache.entries.items() if "excluded" in entry}


# -- building tests in the sandbox ---------------------------------------------------------------------


class _BuildCache:
    """Per-problem build results (tests or the reason for exclusion), in one JSON file per setting."""

    def __init__(self, data_file: Path, *, tests_per_task: int, seed: int, timeout_s: float) -> None:
        from codegym.models.builtin import cache_dir

        digest = hashlib.sha256(data_file.read_bytes()).hexdigest()
        key = hashlib.blake2b(
            f"{_BUILD_VERSION}:{digest}:{tests_per_task}:{seed}:{timeout_s}".encode(), digest_size=8
        ).hexdigest()
        self.path = cache_dir() / "tasks" / f"codeio-{key}.json"
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())["entries"]
            except (ValueError, KeyError, TypeError):
                self.entries = {}  # a damaged cache is rebuilt, not trusted

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=".codeio-", dir=self.path.parent)
        with os.fdopen(handle, "w") as out:
            json.dump({"version": _BUILD_VERSION, "entries": self.entries}, out)
        os.replace(staging, self.path)


def _build(
    problems: list[CodeIOProblem],
    cache: _BuildCache,
    *,
    sandbox: str | Sandbox,
    tests_per_task: int,
    seed: int,
    timeout_s: float,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    from codegym.sandbox import make_sandbox

    owned = not isinstance(sandbox, Sandbox)
    box = make_sandbox(sandbox, workers=2) if owned else sandbox
    chunk = 32
    try:
        with tqdm(total=len(problems), desc="codeio: making tests", unit="task", disable=not progress) as bar:
            for start in range(0, len(problems), chunk):
                batch = problems[start : start + chunk]
                for problem, entry in zip(
                    batch, _build_batch(box, batch, tests_per_task, seed, timeout_s), strict=True
                ):
                    cache.entries[str(problem.row)] = entry
                cache.save()
                bar.update(len(batch))
    finally:
        if owned:
            box.close()


def _build_batch(
    box: Sandbox, problems: list[CodeIOProblem], tests_per_task: int, seed: int, timeout_s: float
) -> list[dict]:
    """Build entries for ``problems``: generated inputs, two reference runs, then the tests."""
    from codegym.sandbox.plain import encode_plain

    draws = tests_per_task * 2 + 1  # room for duplicates; the first kept input is the example
    entries: dict[int, dict] = {}
    parameters: dict[int, tuple[str, ...]] = {}
    for problem in problems:
        found = _parameters(problem.reference)
        if isinstance(found, str):
            entries[problem.row] = {"excluded": found}
        else:
            parameters[problem.row] = found
    todo = [problem for problem in problems if problem.row in parameters]

    # 1. The generator, in the sandbox: its output is untrusted plain data.
    generated = box.run_batch(
        [
            (
                "from random import Random\n" + problem.generator + _INPUTS_HELPER,
                [CallTest("codegym_inputs", (_input_seed(seed, problem.row, k),)) for k in range(draws)],
            )
            for problem in todo
        ],
        timeout_s=timeout_s,
    )
    inputs: dict[int, list[dict]] = {}
    for problem, report in zip(todo, generated, strict=True):
        kept, reason = _valid_inputs(report, parameters[problem.row], tests_per_task + 1)
        if reason:
            entries[problem.row] = {"excluded": reason}
        else:
            inputs[problem.row] = kept
    todo = [problem for problem in todo if problem.row in inputs]

    # 2. The reference on those inputs, in the sandbox: what it returns is the expected output.
    first = box.run_batch(
        [
            (problem.reference, [CallTest(ENTRY_POINT, kwargs=kw) for kw in inputs[problem.row]])
            for problem in todo
        ],
        timeout_s=timeout_s,
    )
    outputs: dict[int, list[Any]] = {}
    for problem, report in zip(todo, first, strict=True):
        if not report.compiled:
            entries[problem.row] = {"excluded": "the reference does not compile"}
            continue
        bad = [r for r in report.tests if r.status not in (TestStatus.PASSED, TestStatus.FAILED)]
        if bad:
            entries[problem.row] = {"excluded": f"the reference failed: {_why(bad[0])}"}
            continue
        outputs[problem.row] = [result.returned for result in report.tests]
    todo = [problem for problem in todo if problem.row in outputs]

    # 3. The reference again, judged by the tests just made: a nondeterministic one is left out.
    tests = {
        problem.row: [
            CallTest(ENTRY_POINT, kwargs=kw, expected=out)
            for kw, out in zip(inputs[problem.row], outputs[problem.row], strict=True)
        ]
        for problem in todo
    }
    second = box.run_batch([(problem.reference, tests[problem.row]) for problem in todo], timeout_s=timeout_s)
    for problem, report in zip(todo, second, strict=True):
        if not report.all_passed:
            entries[problem.row] = {"excluded": "the reference answers differently on a second run"}
            continue
        pairs = [
            {"kwargs": encode_plain(test.kwargs), "expected": encode_plain(test.expected)}
            for test in tests[problem.row]
        ]
        sized = [pair for pair in pairs if len(json.dumps(pair)) <= _TEST_CHARS]
        if len(sized) < 2:
            entries[problem.row] = {"excluded": f"its tests encode longer than {_TEST_CHARS} characters"}
            continue
        entries[problem.row] = {"parameters": list(parameters[problem.row]), "pairs": sized}
    return [entries[problem.row] for problem in problems]


def _valid_inputs(report, parameters: tuple[str, ...], wanted: int) -> tuple[list[dict], str]:
    """The distinct generated input dicts (at most ``wanted``), or a reason to leave the problem out."""
    if not report.compiled:
        return [], "the input generator does not compile"
    kept: list[dict] = []
    seen: set[str] = set()
    for result in report.tests:
        if result.status not in (TestStatus.PASSED, TestStatus.FAILED):
            return [], f"the input generator failed: {_why(result)}"
        value = result.returned
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            return [], f"the input generator returned {type(value).__name__}, not a dict of arguments"
        if not set(value) <= set(parameters):
            return (
                [],
                f"the input generator names arguments {sorted(set(value) - set(parameters))} that main_solution lacks",
            )
        key = repr(sorted(value.items(), key=lambda item: item[0]))
        if key not in seen:
            seen.add(key)
            kept.append(value)
    if len(kept) < 3:  # an example and at least two tests
        return [], f"the input generator gave only {len(kept)} distinct inputs"
    return kept[:wanted], ""


def _why(result) -> str:
    return f"{result.status.value} {result.error_type or ''}: {result.message}".strip()[:300]


def _task(problem: CodeIOProblem, entry: dict, split: str) -> Task | None:
    from codegym.sandbox.plain import decode_plain

    if "excluded" in entry:
        return None
    pairs = [(decode_plain(pair["kwargs"]), decode_plain(pair["expected"])) for pair in entry["pairs"]]
    example, *tested = pairs
    shown = example if len(repr(example)) <= _EXAMPLE_CHARS else None
    return Task(
        task_id=f"codeio/{problem.row}",
        problem=problem_text(problem, entry["parameters"], shown),
        entry_point=ENTRY_POINT,
        hidden_tests=tuple(CallTest(ENTRY_POINT, kwargs=kwargs, expected=out) for kwargs, out in tested),
        reference_solution=problem.reference,
        metadata={
            "source": "codeio",
            "row": problem.row,
            "split": split,
            "modules": sorted(problem.modules),
            "example_shown": shown is not None,
        },
    )


def _parameters(reference: str) -> tuple[str, ...] | str:
    """``main_solution``'s parameter names, or the reason the reference cannot be used."""
    try:
        module = _parse(reference)
    except SyntaxError:
        return "the reference does not parse"
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == ENTRY_POINT:
            arguments = node.args
            if arguments.vararg or arguments.kwarg:
                return "main_solution takes *args or **kwargs"
            return tuple(arg.arg for arg in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs))
    return "the reference defines no top-level main_solution"


def _imports(code: str) -> set[str]:
    try:
        module = _parse(code)
    except SyntaxError:
        return {"<unparsable>"}
    names: set[str] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _parse(code: str) -> ast.Module:
    # The dataset's code has invalid escapes and `is` with literals: warnings about it help nobody here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(code)


def _input_seed(seed: int, row: int, draw: int) -> int:
    digest = hashlib.blake2b(f"codeio-inputs:{seed}:{row}:{draw}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")
