"""Tasks from JSON-lines files and ``datasets`` datasets in HumanEval, MBPP or APPS form.

Three schemas, named after the datasets that made them common (field: what it holds):

- ``humaneval``: ``task_id``, ``prompt`` (signature and docstring), ``entry_point``,
  ``canonical_solution`` (the body that completes the prompt), ``test`` (a module defining
  ``check(candidate)``).
- ``mbpp``: ``text`` (the problem), ``code`` (a reference solution), ``test_list`` (``assert`` lines);
  optional ``task_id``, ``test_setup_code`` and ``test_imports`` (code the assertions need);
  ``challenge_test_list`` is ignored.
- ``apps`` (also TACO): ``question``, ``input_output`` (JSON text or a mapping with ``inputs``,
  ``outputs`` and, for function-call problems, ``fn_name``); optional ``solutions`` (JSON text or a list
  of programs), ``starter_code``, ``problem_id`` or ``id``, ``difficulty``.

A file whose columns have other names is read through ``columns``, a mapping from this module's field
names to the file's column names. Every row is checked; a malformed one raises ValueError naming the
file, the row, the field and what is wrong.
"""

from __future__ import annotations

import ast
import dataclasses
import gzip
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from codegym.errors import MissingInputError, UserError
from codegym.sandbox import AssertTest, CallTest, StdioTest, Test
from codegym.tasks.assert_conversion import tests_from_asserts, tests_from_check
from codegym.tasks.task import Task, TaskList


def load_jsonl(
    path: str | Path, *, schema: str = "auto", columns: Mapping[str, str] | None = None
) -> TaskList:
    """The tasks in a local JSON-lines file (``.jsonl``, or gzip-compressed ``.jsonl.gz``), one per line.

    Args:
        path: the file. Blank lines are skipped; every other line is one JSON object.
        schema: ``"humaneval"``, ``"mbpp"``, ``"apps"``, or ``"auto"`` to tell from the column names.
        columns: our field name -> the file's column name, for the fields whose names differ, e.g.
            ``{"text": "question_text", "code": "solution"}`` reads an MBPP-style file whose problem is in
            ``question_text``. Fields not named keep their own names.

    Returns:
        A :class:`TaskList` named ``"jsonl:<path>"``. Errors name rows by their 1-based line number, which
        is also the task id's fallback suffix (``"mbpp/<line>"``) when a row has no id of its own.

    Raises:
        FileNotFoundError: no such file.
        UserError: an unparsable line, a malformed row, a duplicate task id, or a schema that cannot be
            told from the columns; the message says which line and field, and what to do.

    Example:
        A file in MBPP's form whose problem and solution columns are named differently, with rows like
        ``{"question_text": "Double x.", "solution": "def double(x):\n    return 2 * x", "test_list":
        ["assert double(2) == 4"]}`` (no ``task_id``, so the first row's id is ``mbpp/1``, its line):

        >>> tasks = load_jsonl(  # doctest: +SKIP
        ...     "my_mbpp.jsonl", schema="mbpp", columns={"text": "question_text", "code": "solution"}
        ... )
        >>> tasks[0].task_id, tasks[0].entry_point, tasks[0].hidden_tests[0].expected  # doctest: +SKIP
        ('mbpp/1', 'double', 4)
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"no JSON-lines file at {str(path)!r}")
    records = list(_read_jsonl(path))
    return _task_list(records, origin=f"jsonl:{path}", schema=schema, columns=columns)


def load_dataset_tasks(
    name_or_path: str | Path,
    *,
    split: str = "train",
    schema: str = "auto",
    columns: Mapping[str, str] | None = None,
    **load_kwargs: Any,
) -> TaskList:
    """The tasks in one split of a ``datasets`` dataset: a Hub name, a local folder, or a local file.

    Reads ``datasets.load_dataset(name_or_path, split=split, **load_kwargs)``; a local ``.json``,
    ``.jsonl``, ``.parquet`` or ``.csv`` file (optionally ``.gz``) is read with the matching builder. The
    schemas, ``columns`` and row checks are those of :func:`load_jsonl`; rows are named by their index in
    the split (``dataset[index]``), which is also the task id's fallback suffix.

    Args:
        name_or_path: e.g. ``"google-research-datasets/mbpp"`` (needs the network or a warm cache), or a
            local folder of parquet/json files.
        split: which split.
        schema: ``"humaneval"``, ``"mbpp"``, ``"apps"`` or ``"auto"``.
        columns: our field name -> the dataset's column name, e.g. ``{"question": "problem"}``.
        **load_kwargs: passed to ``datasets.load_dataset`` (``name=``, ``revision=``, ``data_files=``...).

    Example:
        >>> tasks = load_dataset_tasks("google-research-datasets/mbpp", split="test")  # doctest: +SKIP
        >>> len(tasks), tasks[0].task_id  # doctest: +SKIP
        (500, 'mbpp/11')
    """
    import datasets  # heavy: loaded only when a dataset is asked for

    source = label = str(name_or_path)
    if "data_files" in load_kwargs:
        label = f"{source}:{load_kwargs['data_files']}"
    builder = _local_builder(Path(source))
    if builder is not None:
        load_kwargs.setdefault("data_files", source)
        source = builder
    dataset = datasets.load_dataset(source, split=split, **load_kwargs)
    if not isinstance(dataset, datasets.Dataset | datasets.IterableDataset):
        raise UserError(
            f"{name_or_path!r} gave {type(dataset).__name__}, not one split; pass split='train' or another"
        )
    origin = f"{label}[{split}]"
    records = [(f"{origin} row {index}", index, row) for index, row in enumerate(dataset)]
    return _task_list(records, origin=origin, schema=schema, columns=columns)


# ---------------------------------------------------------------------------------------------------
# Reading rows
# ---------------------------------------------------------------------------------------------------

# (where, number, values): where names the row in messages; number is its line (files) or index (splits).
_Record = tuple[str, int, Mapping[str, Any]]


def _read_jsonl(path: Path) -> Iterator[_Record]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            for line_number, raw in enumerate(stream, start=1):
                where = f"{path} line {line_number}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise UserError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
                if not line.strip():
                    continue
                try:
                    values = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(values, dict):
                    raise UserError(f"{where}: expected a JSON object, got {type(values).__name__}")
                yield where, line_number, values
    except (gzip.BadGzipFile, EOFError) as exc:
        raise UserError(f"{path}: not a readable gzip file ({exc})") from None


def _local_builder(path: Path) -> str | None:
    """The ``datasets`` builder for a local data file, or None for a folder or a Hub name."""
    if not path.is_file():
        return None
    suffixes = [suffix for suffix in path.suffixes if suffix != ".gz"]
    builders = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
    if not suffixes or suffixes[-1] not in builders:
        raise UserError(f"cannot tell the format of {str(path)!r}; name it .jsonl, .json, .parquet or .csv")
    return builders[suffixes[-1]]


class _RowError(UserError):
    """A malformed row; the message already names the row and the field."""


class _Row:
    """One record read through the column mapping; every complaint names the row and the field."""

    def __init__(self, record: _Record, columns: Mapping[str, str]) -> None:
        self.where, self.number, self._values = record
        self._columns = columns

    def fail(self, field: str, problem: str) -> NoReturn:
        column = self._columns.get(field, field)
        named = f"field {field!r}" + (f" (column {column!r})" if column != field else "")
        raise _RowError(f"{self.where}: {named}: {problem}")

    def get(self, field: str, kinds: type | tuple[type, ...], *, required: bool = True) -> Any:
        """The field's value, None when an optional field is missing or null."""
        value = self._values.get(self._columns.get(field, field))
        if value is None:
            if required:
                self.fail(field, "missing")
            return None
        if not isinstance(value, kinds):
            expected = " or ".join(
                kind.__name__ for kind in (kinds if isinstance(kinds, tuple) else (kinds,))
            )
            self.fail(field, f"expected {expected}, got {type(value).__name__} {value!r:.80}")
        return value

    def text(self, field: str, *, required: bool = True) -> str | None:
        value = self.get(field, str, required=required)
        if required and not value.strip():
            self.fail(field, "empty")
        return value

    def texts(self, field: str, *, required: bool = True) -> list[str]:
        """A list of strings (a JSON array, or a JSON text holding one)."""
        value = self.get(field, (list, str), required=required)
        if value is None:
            return []
        if isinstance(value, str):
            value = self.parse_json(field, value) if value.strip() else []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(field, f"expected a list of strings, got {value!r:.80}")
        return value

    def parse_json(self, field: str, text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            self.fail(field, f"not valid JSON ({exc.msg} at character {exc.pos})")


# ---------------------------------------------------------------------------------------------------
# The schemas
# ---------------------------------------------------------------------------------------------------


def _humaneval_task(row: _Row) -> Task:
    task_id = row.text("task_id")
    prompt = row.text("prompt")
    entry_point = row.text("entry_point")
    if not entry_point.isidentifier():
        row.fail("entry_point", f"not a function name: {entry_point!r}")
    reference = prompt + row.get("canonical_solution", str)
    if entry_point not in _defined_names(row, "canonical_solution", reference):
        row.fail("entry_point", f"{entry_point!r} is not defined by prompt + canonical_solution")
    test = row.text("test")
    try:
        hidden_tests = tests_from_check(test, entry_point)
    except ValueError as exc:
        row.fail("test", str(exc))
    return Task(
        task_id=task_id,
        problem=prompt,
        entry_point=entry_point,
        hidden_tests=hidden_tests,
        reference_solution=reference,
        starter_code=prompt,
        # HumanEval's own check program, for comparisons with its harness (see humaneval.check_program_test)
        metadata={"check_program": test},
    )


def _mbpp_task(row: _Row) -> Task:
    text = row.text("text")
    code = row.text("code")
    asserts = row.texts("test_list")
    if not asserts:
        row.fail("test_list", "empty; a task needs at least one test")
    setup = [*row.texts("test_imports", required=False), row.text("test_setup_code", required=False) or ""]
    functions = {
        node.name: node
        for node in _parse(row, "code", code).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    first = _parse(row, "test_list", asserts[0])
    if len(first.body) != 1 or not isinstance(first.body[0], ast.Assert):
        row.fail("test_list", f"assertion 1 must be one assert statement, got {asserts[0]!r:.200}")
    called = [  # in source order, outermost first: `assert set(f(x)) == ...` calls set, then f
        node.func.id
        for node in sorted(
            (node for node in ast.walk(first) if isinstance(node, ast.Call)),
            key=lambda node: (node.lineno, node.col_offset),
        )
        if isinstance(node.func, ast.Name)
    ]
    entry_point = next((name for name in called if name in functions), None)
    if entry_point is None:
        row.fail("test_list", f"the first assertion calls {called or 'no function'}, none defined by `code`")
    try:
        hidden_tests = tests_from_asserts(asserts, entry_point, setup_code="\n".join(setup).strip())
    except ValueError as exc:
        row.fail("test_list", str(exc))
    signature = f"{entry_point}({ast.unparse(functions[entry_point].args)})"
    task_id = row.get("task_id", (int, str), required=False)
    return Task(
        task_id=f"mbpp/{task_id if task_id is not None else row.number}",
        # The usual MBPP prompt: the problem, the function to write, and the first test as an example.
        problem=f"{text}\nYour code should define `{signature}` and pass tests like this one:\n{asserts[0]}",
        entry_point=entry_point,
        hidden_tests=hidden_tests,
        reference_solution=code,
    )


def _apps_task(row: _Row) -> Task:
    question = row.text("question")
    spec = row.get("input_output", (str, dict))
    if isinstance(spec, str):
        spec = row.parse_json("input_output", spec)
    if not isinstance(spec, dict):
        row.fail("input_output", f"expected an object with inputs and outputs, got {type(spec).__name__}")
    inputs, outputs = spec.get("inputs"), spec.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        row.fail("input_output", "needs 'inputs' and 'outputs' lists of the same length")
    if not inputs:
        row.fail("input_output", "has no tests (empty 'inputs')")
    fn_name = spec.get("fn_name")
    if fn_name is not None and not (isinstance(fn_name, str) and fn_name.isidentifier()):
        row.fail("input_output", f"fn_name must be a function name, got {fn_name!r}")
    starter_code = row.get("starter_code", str, required=False) or ""
    if fn_name is None:
        entry_point = None
        hidden_tests = tuple(
            StdioTest(_stdio_text(row, item), _stdio_text(row, expected))
            for item, expected in zip(inputs, outputs, strict=True)
        )
        how = "Read the input from standard input and print the answer to standard output."
    else:
        # LeetCode-style problems have the method on a class, as APPS's own harness calls it.
        on_class = "class Solution" in starter_code
        entry_point = "Solution" if on_class else fn_name
        hidden_tests = tuple(
            _call_test(row, fn_name, on_class, arguments, expected)
            for arguments, expected in zip(inputs, outputs, strict=True)
        )
        target = f"the method `Solution().{fn_name}`" if on_class else f"the function `{fn_name}`"
        how = f"Write {target}; each test calls it with arguments and checks what it returns."
    solutions = row.texts("solutions", required=False)
    problem_id = row.get("problem_id", (int, str), required=False)
    if problem_id is None:
        problem_id = row.get("id", (int, str), required=False)
    difficulty = row.get("difficulty", str, required=False)
    starter = f"\n\nStarter code:\n{starter_code.rstrip()}" if starter_code.strip() else ""
    return Task(
        task_id=f"apps/{problem_id if problem_id is not None else row.number}",
        problem=f"{question}{starter}\n\n{how}",
        entry_point=entry_point,
        hidden_tests=hidden_tests,
        reference_solution=solutions[0] if solutions else None,
        starter_code=starter_code,
        metadata={} if difficulty is None else {"difficulty": difficulty},
    )


def _stdio_text(row: _Row, value: Any) -> str:
    """APPS stores stdin and stdout as text, or as a list of lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    row.fail("input_output", f"stdin/stdout must be text or a list of lines, got {value!r:.80}")


def _call_test(row: _Row, fn_name: str, on_class: bool, arguments: Any, expected: Any) -> Test:
    if not isinstance(arguments, list):
        row.fail("input_output", f"a call's inputs must be a list of arguments, got {arguments!r:.80}")
    # APPS wraps a call's expected value in a one-element list (its harness accepts the value or the
    # list); we unwrap it, so a function returning [5] is stored as [[5]] and one returning 5 as [5].
    if isinstance(expected, list) and len(expected) == 1:
        expected = expected[0]
    if on_class:
        # Stays code: the candidate's class is instantiated in its own process. JSON keeps the values exact.
        code = (
            f"import json as _json\n"
            f"_arguments, _expected = _json.loads({json.dumps([arguments, expected])!r})\n"
            f"assert Solution().{fn_name}(*_arguments) == _expected\n"
        )
        return AssertTest(code)
    return CallTest(fn_name, tuple(arguments), expected=expected, equality="python")


def _parse(row: _Row, field: str, source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        row.fail(field, f"not valid Python: {exc.msg} (line {exc.lineno})")


def _defined_names(row: _Row, field: str, source: str) -> set[str]:
    return {
        node.name
        for node in _parse(row, field, source).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


@dataclass(frozen=True)
class _Schema:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    build: Callable[[_Row], Task]


_SCHEMAS = {
    schema.name: schema
    for schema in (
        _Schema(
            "humaneval",
            ("task_id", "prompt", "entry_point", "canonical_solution", "test"),
            (),
            _humaneval_task,
        ),
        _Schema(
            "mbpp",
            ("text", "code", "test_list"),
            ("task_id", "test_setup_code", "test_imports", "challenge_test_list"),
            _mbpp_task,
        ),
        _Schema(
            "apps",
            ("question", "input_output"),
            ("solutions", "starter_code", "problem_id", "id", "difficulty"),
            _apps_task,
        ),
    )
}
SCHEMAS = tuple(_SCHEMAS)


# ---------------------------------------------------------------------------------------------------
# Rows to tasks, shared by both loaders
# ---------------------------------------------------------------------------------------------------


def _task_list(
    records: Sequence[_Record], *, origin: str, schema: str, columns: Mapping[str, str] | None
) -> TaskList:
    if not records:
        raise UserError(f"{origin} has no rows")
    column_names = sorted({name for _, _, values in records for name in values})
    columns = _check_columns(columns, schema, column_names, origin)
    chosen = _SCHEMAS[schema] if schema != "auto" else _detect_schema(column_names, columns, origin)
    tasks: list[Task] = []
    first_seen: dict[str, str] = {}
    for record in records:
        row = _Row(record, columns)
        try:
            task = chosen.build(row)
        except _RowError:
            raise
        except (TypeError, ValueError) as exc:  # e.g. Task's own checks, which name the task, not the row
            raise UserError(f"{row.where}: {exc}") from None
        if task.task_id in first_seen:
            raise UserError(
                f"{row.where}: duplicate task id {task.task_id!r}, first seen at {first_seen[task.task_id]}"
            )
        first_seen[task.task_id] = row.where
        metadata = {"source": chosen.name, "origin": origin, "row": row.number, **task.metadata}
        tasks.append(dataclasses.replace(task, metadata=metadata))
    return TaskList(tasks, name=origin)


def _check_columns(
    columns: Mapping[str, str] | None, schema: str, column_names: Sequence[str], origin: str
) -> dict[str, str]:
    if schema != "auto" and schema not in _SCHEMAS:
        raise UserError(f"unknown schema {schema!r}; choose one of {[*SCHEMAS, 'auto']}")
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise UserError(
            f"columns must map our field names to your column names, got {type(columns).__name__}"
        )
    schemas = [_SCHEMAS[schema]] if schema != "auto" else list(_SCHEMAS.values())
    fields = {field for s in schemas for field in (*s.required, *s.optional)}
    for field, column in columns.items():
        if field not in fields:
            raise UserError(
                f"columns names an unknown field {field!r}; the fields of "
                f"{'schema ' + repr(schema) if schema != 'auto' else 'the schemas'} are {sorted(fields)}"
            )
        if not isinstance(column, str):
            raise UserError(f"columns[{field!r}] must be a column name (str), got {column!r}")
        if column not in column_names:
            raise UserError(f"columns maps {field!r} to {column!r}, but {origin} has only {column_names}")
    return dict(columns)


def _detect_schema(column_names: Sequence[str], columns: Mapping[str, str], origin: str) -> _Schema:
    present = set(column_names)
    matches = [
        schema
        for schema in _SCHEMAS.values()
        if all(columns.get(field, field) in present for field in schema.required)
    ]
    if len(matches) == 1:
        return matches[0]
    verdict = (
        "matches several schemas: " + ", ".join(s.name for s in matches) if matches else "matches no schema"
    )
    required = "; ".join(f"{s.name}: {', '.join(s.required)}" for s in _SCHEMAS.values())
    raise UserError(
        f"cannot tell the schema of {origin}: its columns {list(column_names)} {verdict}. Required columns: "
        f"{required}. Pass schema='mbpp' (or another), and columns={{our field: your column}} for the "
        "fields named differently, e.g. columns={'text': 'question_text'}."
    )
