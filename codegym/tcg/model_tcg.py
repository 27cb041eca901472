"""The model-based test case generator: a language model writes input/output cases from the problem.

After O1-Coder's TCG (arXiv 2412.00154, section 3.1): the model reads the problem (and, optionally, the
reference solution) and writes cases, one per line, in the same form the synthetic problems use for
their examples::

    solve([3, 1, 2]) -> [1, 2, 3]
    solve('') -> ''

A line is parsed without running anything: the left side must be a call of the task's entry point whose
arguments are Python literals, the right side a literal, each read with ``ast.literal_eval``. Lines that
are not cases are counted (:attr:`CaseParse.malformed`), never executed and never raised. Every parsed
case carries its claimed output, so the base class keeps it only when the reference returns exactly
that output; a wrong output counts against :attr:`~codegym.tcg.base.Generation.validity_rate`.

Sampling is one batched ``Policy.sample`` call for all the tasks of a :meth:`generate_reports` call.
``model="tiny"`` loads the built-in tiny checkpoint (``codegym train tcg`` rebuilds it, see
:mod:`codegym.training.tcg`); a hub id or a local path loads through transformers; any
:class:`~codegym.models.policy.Policy` object works as is.

Example:
    >>> from codegym.tcg.model_tcg import parse_cases
    >>> parsed = parse_cases("solve([1, 2]) -> 3\\nnot a case\\n", "solve")
    >>> parsed.proposals[0].args, parsed.proposals[0].expected, parsed.malformed
    (([1, 2],), 3, ('not a case',))
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from codegym.errors import UserError
from codegym.models.policy import Policy
from codegym.sandbox import CallTest, Sandbox
from codegym.sandbox.plain import NotPlainDataError, encode_plain
from codegym.tasks.task import Task
from codegym.tcg.base import Generation, Proposal, TestCaseGenerator, stable_hash

TESTS_HEADER = "### Tests"
ARROW = "->"
CASE_STOP: tuple[str, ...] = ("\n\n", "\n###")  # a block of cases ends at a blank line or a new header
MAX_LINE_CHARS = 2000  # longer lines are malformed: the parser's cost (and recursion) stays bounded


class CaseSyntaxError(ValueError):
    """A line that is not ``entry_point(literal, ...) -> literal``; the message says what is wrong."""


@dataclass(frozen=True)
class CaseParse:
    """The cases read from one model output (or several, joined).

    Attributes:
        proposals: the parsed cases, in order, each with its claimed expected output.
        malformed: the non-empty lines that were not cases (blank lines are ignored).
    """

    proposals: tuple[Proposal, ...]
    malformed: tuple[str, ...] = ()

    @property
    def lines(self) -> int:
        """Non-empty lines read."""
        return len(self.proposals) + len(self.malformed)

    @property
    def parse_rate(self) -> float:
        """The share of non-empty lines that parsed as cases; 0.0 when there were none."""
        return len(self.proposals) / self.lines if self.lines else 0.0


def format_case(
    entry_point: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None, expected: Any
) -> str:
    """One case line, ``entry_point(args, key=value) -> expected``, with ``repr`` for every value.

    Example:
        >>> format_case("solve", ([1, 2],), None, 3)
        'solve([1, 2]) -> 3'
    """
    parts = [repr(arg) for arg in args] + [f"{key}={value!r}" for key, value in (kwargs or {}).items()]
    return f"{entry_point}({', '.join(parts)}) {ARROW} {expected!r}"


def format_cases(tests: Sequence[CallTest]) -> str:
    """The case lines of ``tests``, one per line, each ending in a newline (the text a model learns)."""
    return "".join(format_case(t.entry_point, t.args, t.kwargs, t.expected) + "\n" for t in tests)


def parse_case_line(line: str, entry_point: str) -> Proposal:
    """The case on one line, read without evaluating anything but literals.

    The line is split at each ``->`` in turn (a string argument may hold one) until the left side parses
    as a call of ``entry_point`` with literal arguments and the right side as a literal.

    Raises:
        CaseSyntaxError: the line is not a case; the message names the reason.
    """
    text = line.strip()
    if len(text) > MAX_LINE_CHARS:
        raise CaseSyntaxError(f"line is longer than {MAX_LINE_CHARS} characters")
    if ARROW not in text:
        raise CaseSyntaxError(f"no {ARROW!r} between the call and the expected output")
    reasons = []
    start = text.find(ARROW)
    while start >= 0:
        try:
            args, kwargs = _read_call(text[:start], entry_point)
            expected = _read_literal(text[start + len(ARROW) :], "the expected output")
        except CaseSyntaxError as exc:
            reasons.append(str(exc))
        else:
            return Proposal(args=args, kwargs=kwargs, expected=expected)
        start = text.find(ARROW, start + 1)
    raise CaseSyntaxError(reasons[0])  # the first split is the usual intent


def parse_cases(text: str, entry_point: str) -> CaseParse:
    """Every case in ``text`` (one per line); lines that are not cases are collected, not raised."""
    proposals: list[Proposal] = []
    malformed: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            proposals.append(parse_case_line(line, entry_point))
        except CaseSyntaxError:
            malformed.append(line)
    return CaseParse(tuple(proposals), tuple(malformed))


def _parse_expression(source: str, what: str) -> ast.expr:
    try:
        return ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CaseSyntaxError(f"{what} is not an expression ({type(exc).__name__})") from None


def _literal(node: ast.expr, what: str) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise CaseSyntaxError(f"{what} is not a literal ({type(exc).__name__}: {exc})"[:200]) from None
    try:
        encode_plain(value)
    except (NotPlainDataError, RecursionError) as exc:
        raise CaseSyntaxError(f"{what} is not plain data ({exc})"[:200]) from None
    return value


def _read_literal(source: str, what: str) -> Any:
    return _literal(_parse_expression(source, what), what)


def _read_call(source: str, entry_point: str) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
    node = _parse_expression(source, "the call")
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point):
        raise CaseSyntaxError(f"the left side is not a call of {entry_point}(...)")
    if any(isinstance(arg, ast.Starred) for arg in node.args) or any(kw.arg is None for kw in node.keywords):
        raise CaseSyntaxError("*args and **kwargs are not allowed; write the values out")
    args = tuple(_literal(arg, "an argument") for arg in node.args)
    kwargs = {kw.arg: _literal(kw.value, f"argument {kw.arg}") for kw in node.keywords}
    return args, kwargs or None


def tcg_prompt(task: Task, *, with_reference: bool = False) -> str:
    """The text a model continues with case lines: the problem, optionally the reference, a header.

    Example:
        >>> from codegym.sandbox import CallTest
        >>> tests = (CallTest("solve", (1,), expected=2),)
        >>> task = Task("t/0", "Write `solve(x: int) -> int`: twice x.", "solve", tests)
        >>> print(tcg_prompt(task))
        ### Problem
        Write `solve(x: int) -> int`: twice x.
        <BLANKLINE>
        ### Tests
        <BLANKLINE>
    """
    parts = [f"### Problem\n{task.problem.strip()}\n"]
    if with_reference:
        if not task.reference_solution:
            raise UserError(f"with_reference=True but task {task.task_id!r} has no reference_solution")
        parts.append(f"### Reference\n```python\n{task.reference_solution.strip()}\n```\n")
    parts.append(f"{TESTS_HEADER}\n")
    return "\n".join(parts)


@dataclass(frozen=True)
class TCGEvaluation:
    """How a model-based generator did on a set of tasks (see :meth:`ModelTCG.evaluate`).

    Attributes:
        tasks: tasks evaluated.
        lines: non-empty lines the model wrote.
        malformed: lines that were not cases.
        proposed: cases parsed (each with a claimed output).
        valid: cases whose claimed output the reference returned.
        kept: tests kept after deduplication and the cap of ``n`` per task, summed over tasks.
        tasks_with_tests: tasks for which at least one test was kept.
    """

    tasks: int
    lines: int
    malformed: int
    proposed: int
    valid: int
    kept: int
    tasks_with_tests: int

    @property
    def validity_rate(self) -> float:
        """O1-Coder's TCG metric: the share of parsed cases the reference passes (0.0 when none)."""
        return self.valid / self.proposed if self.proposed else 0.0

    @property
    def line_validity_rate(self) -> float:
        """The stricter share: valid cases over every non-empty line, malformed ones included."""
        return self.valid / self.lines if self.lines else 0.0

    @property
    def parse_rate(self) -> float:
        """The share of non-empty lines that parsed as cases."""
        return self.proposed / self.lines if self.lines else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """Counts and rates as plain data, for JSON."""
        return {
            "tasks": self.tasks,
            "lines": self.lines,
            "malformed": self.malformed,
            "proposed": self.proposed,
            "valid": self.valid,
            "kept": self.kept,
            "tasks_with_tests": self.tasks_with_tests,
            "validity_rate": self.validity_rate,
            "line_validity_rate": self.line_validity_rate,
            "parse_rate": self.parse_rate,
        }


class ModelTCG(TestCaseGenerator):
    """A test case generator backed by a language model (O1-Coder's TCG).

    For each task the model continues :func:`tcg_prompt` ``samples_per_task`` times; every line of every
    sample is parsed with :func:`parse_cases`; the base class then keeps the cases whose claimed output
    the reference returns, drops repeated arguments and caps at ``n``. The lines that did not parse for
    the last call are in :attr:`last_parses` (by task id), and :meth:`evaluate` sums everything up.

    Sampling is seeded: the same ``seed``, model and list of tasks give the same tests. All the tasks of
    one :meth:`generate_reports` call are sampled in one batch, so a task's cases depend on the whole
    list (the seed is drawn from ``seed`` and every task id); a list of one task is the same as
    :meth:`generate` on it.

    Args:
        model: ``"tiny"`` (the built-in trained tiny checkpoint), a hub id or a local path (loaded with
            :func:`~codegym.models.load_policy`, so ``"openai:..."`` servers work too), or a loaded
            :class:`~codegym.models.policy.Policy`.
        sandbox: a sandbox name or a running sandbox, as for :class:`~codegym.tcg.base.TestCaseGenerator`.
        seed: seeds the sampling.
        temperature: sampling temperature (0 is greedy, and then one sample per task is enough).
        samples_per_task: continuations per task; each is a block of case lines.
        max_new_tokens: the longest continuation; a line cut at the limit is counted malformed.
        with_reference: show the reference solution in the prompt (O1-Coder's TCG sees only the problem).
        policy_options: keyword arguments for the policy's constructor when ``model`` is a string
            (for transformers: ``device``, ``batch_size``, ``dtype``, ...).
        timeout_s, memory_mb, equality, skip_unsupported: as for :class:`~codegym.tcg.base.TestCaseGenerator`.

    Example:
        >>> with ModelTCG("path/to/tcg-model", sandbox="local") as tcg:  # doctest: +SKIP
        ...     report = tcg.generate_report(task, n=8)
        >>> report.validity_rate  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | PathLike[str] | Policy = "tiny",
        *,
        sandbox: str | Sandbox = "auto",
        seed: int = 0,
        temperature: float = 0.7,
        samples_per_task: int = 2,
        max_new_tokens: int = 256,
        with_reference: bool = False,
        policy_options: Mapping[str, Any] | None = None,
        timeout_s: float = 3.0,
        memory_mb: int = 512,
        equality: str = "strict",
        skip_unsupported: bool = False,
    ) -> None:
        super().__init__(
            sandbox,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            seed=seed,
            equality=equality,
            skip_unsupported=skip_unsupported,
        )
        if not (isinstance(samples_per_task, int) and samples_per_task >= 1):
            raise UserError(f"samples_per_task must be an int >= 1, got {samples_per_task!r}")
        if not (isinstance(temperature, int | float) and temperature >= 0):
            raise UserError(f"temperature must be >= 0 (0 is greedy), got {temperature!r}")
        self.policy = _load_policy(model, policy_options)
        self.temperature = float(temperature)
        self.samples_per_task = samples_per_task
        self.max_new_tokens = max_new_tokens
        self.with_reference = with_reference
        self.last_parses: dict[str, CaseParse] = {}
        self._pending: dict[str, CaseParse] = {}

    def __repr__(self) -> str:
        return f"ModelTCG({self.policy!r}, samples_per_task={self.samples_per_task})"

    def sample_cases(self, tasks: Sequence[Task]) -> list[CaseParse]:
        """The parsed model output for each task, sampled in one batched policy call."""
        # Tasks the base class will refuse (no entry point or no reference) are not sampled: it raises
        # UnsupportedTask for them, or skips them with skip_unsupported=True.
        ready = [task for task in tasks if task.entry_point is not None and task.reference_solution]
        parses = dict.fromkeys((task.task_id for task in tasks), CaseParse(()))
        if not ready:
            return [parses[task.task_id] for task in tasks]
        prompts = [tcg_prompt(task, with_reference=self.with_reference) for task in ready]
        draws = 1 if self.temperature == 0 else self.samples_per_task
        samples = self.policy.sample(
            prompts,
            draws,
            stop=CASE_STOP,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=_batch_seed(self.seed, [task.task_id for task in ready]),
        )
        for task, task_samples in zip(ready, samples, strict=True):
            pieces = [parse_cases(sample.text, task.entry_point) for sample in task_samples]
            parses[task.task_id] = CaseParse(
                tuple(p for piece in pieces for p in piece.proposals),
                tuple(line for piece in pieces for line in piece.malformed),
            )
        return [parses[task.task_id] for task in tasks]

    def generate_reports(self, tasks: Sequence[Task], n: int = 10) -> list[Generation]:
        """Sample every task's cases in one batch, then validate them (see the base class)."""
        parses = self.sample_cases(tasks)
        self._pending = {task.task_id: parse for task, parse in zip(tasks, parses, strict=True)}
        self.last_parses = dict(self._pending)
        try:
            return super().generate_reports(tasks, n)
        finally:
            self._pending = {}

    def propose(self, task: Task, n: int, rng: np.random.Generator) -> list[Proposal]:
        """The parsed cases for ``task``: from the current batch, or sampled now for this task alone."""
        parse = self._pending.pop(task.task_id, None)
        if parse is None:
            [parse] = self.sample_cases([task])
            self.last_parses[task.task_id] = parse
        return list(parse.proposals)

    def evaluate(self, tasks: Sequence[Task], n: int = 10) -> TCGEvaluation:
        """Generate for ``tasks`` and count lines, parsed cases, valid cases and kept tests."""
        generations = self.generate_reports(tasks, n)
        parses = [self.last_parses[task.task_id] for task in tasks]
        return TCGEvaluation(
            tasks=len(tasks),
            lines=sum(parse.lines for parse in parses),
            malformed=sum(len(parse.malformed) for parse in parses),
            proposed=sum(g.proposed for g in generations),
            valid=sum(g.valid for g in generations),
            kept=sum(len(g.tests) for g in generations),
            tasks_with_tests=sum(1 for g in generations if g.tests),
        )


def _load_policy(model: str | PathLike[str] | Policy, options: Mapping[str, Any] | None) -> Policy:
    if isinstance(model, Policy) and not isinstance(model, str | PathLike):
        if options:
            raise UserError("policy_options apply when model is a name or path, not a loaded Policy")
        return model
    if not isinstance(model, str | PathLike):
        raise TypeError(
            f"model must be 'tiny', a hub id, a local path or a Policy, got {type(model).__name__}"
        )
    from codegym.models import load_policy

    spec = str(model)
    options = dict(options or {})
    if spec == "tiny":
        from codegym.models.tiny import tiny_checkpoint

        spec = str(tiny_checkpoint("tcg"))
    # The TCG prompt is its own text format (problem, then "### Tests" and cases), continued as is: a
    # chat protocol's step format does not apply to it.
    options.setdefault("protocol", "native")
    return load_policy(spec, **options)


def _batch_seed(seed: int, task_ids: Sequence[str]) -> int:
    """A policy seed (below 2**63) drawn from ``seed`` and the task ids, stable across processes."""
    digests = [stable_hash(task_id) for task_id in task_ids]
    return int(np.random.SeedSequence([seed, *digests]).generate_state(1, np.uint64)[0] >> 1)
