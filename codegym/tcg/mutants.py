"""Known-wrong solutions: small AST mutations of a reference program that its task's tests tell apart.

Mutation testing turns "how good are these tests?" into a number: make many slightly wrong versions of
a correct program and count how many the tests catch. Here each mutant changes one thing in the
reference (first-order mutants), in the entry point or a function it calls:

====================  ====================================================
operator              change
====================  ====================================================
``compare``           ``<`` to ``<=`` or ``>``, ``==`` to ``!=``, ``in`` to ``not in``, ...
``constant``          an integer constant plus or minus one; ``True`` / ``False`` swapped
``arithmetic``        ``+`` to ``-``, ``*`` to ``+``, ``//`` to ``/``, ``%`` to ``//``, ... (and ``+=``)
``boolean``           ``and`` to ``or`` and back
``negation``          ``not x`` to ``x``, ``-x`` to ``x``; an ``if``/``while`` condition negated
``slice``             a slice bound plus or minus one, a missing bound added, a step reversed
``builtin``           ``min`` to ``max``, ``any`` to ``all`` and back
``statement``         an assignment or call statement deleted; ``break`` to ``continue`` and back
``return_early``      the function's final ``return`` copied in front of a loop (the loop never runs)
====================  ====================================================

:func:`mutate_program` makes every such mutant that still compiles and differs from the reference's
text, in a seeded order. :func:`known_wrong_mutants` then runs them in the sandbox and keeps those that
fail at least one of the task's own hidden tests (so they are truly wrong: the reference passes them
all), dropping any that time out there (a mutant that hangs is caught by any time limit and says
nothing about the tests, while each of its timeouts costs seconds). :func:`judge_mutants` runs mutants
against several named test sets at once and says which sets catch which mutants: the measure of a
test generator's discrimination (``benchmarks/studies/tcg_quality.py``).

Example:
    >>> program = "def clip(x):\\n    return min(x, 10)\\n"
    >>> sorted({mutant.operator for mutant in mutate_program(program, entry_point="clip")})
    ['builtin', 'constant']
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from codegym.errors import UserError
from codegym.sandbox import Sandbox, Test, TestStatus
from codegym.tasks.task import Task

OPERATORS = (
    "compare",
    "constant",
    "arithmetic",
    "boolean",
    "negation",
    "slice",
    "builtin",
    "statement",
    "return_early",
)

_COMPARE_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
_ARITHMETIC_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.Add, ast.FloorDiv),
    ast.Div: (ast.Mult,),
    ast.FloorDiv: (ast.Div, ast.Mod),
    ast.Mod: (ast.FloorDiv,),
    ast.Pow: (ast.Mult,),
}
_BUILTIN_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}


@dataclass(frozen=True)
class Mutant:
    """One mutated program.

    Attributes:
        program: the whole mutated program (as ``ast.unparse`` writes it).
        operator: one of :data:`OPERATORS`.
        description: what changed, e.g. ``"line 4: < -> <="``.
    """

    program: str
    operator: str
    description: str


# A mutation site: (operator, description, function that applies the change to a copy of the tree).
_Site = tuple[str, str, Callable[[ast.Module], None]]


def mutate_program(
    program: str, *, entry_point: str | None = None, seed: int = 0, limit: int | None = None
) -> list[Mutant]:
    """Every first-order mutant of ``program`` that compiles and differs from it, shuffled with ``seed``.

    Args:
        program: the reference program.
        entry_point: mutate only this function and the top-level functions it calls (directly or not);
            None mutates every function.
        seed: the order of the mutants (the same seed gives the same list).
        limit: keep at most this many (after shuffling).

    Raises:
        UserError: ``program`` does not parse, or defines no function ``entry_point``.
    """
    try:
        tree = ast.parse(program)
    except SyntaxError as exc:
        raise UserError(f"the program to mutate does not parse: {exc}") from None
    functions = _reachable_functions(tree, entry_point)
    original = ast.unparse(tree)
    sites = [site for function in functions for site in _sites(tree, function)]
    order = np.random.default_rng(seed).permutation(len(sites))
    mutants, seen = [], {original}
    for index in order:
        operator, description, apply = sites[int(index)]
        mutated = copy.deepcopy(tree)
        apply(mutated)
        source = ast.unparse(ast.fix_missing_locations(mutated))
        if source in seen:
            continue
        seen.add(source)
        try:
            compile(source, "<mutant>", "exec")
        except (SyntaxError, ValueError):
            continue
        mutants.append(Mutant(source, operator, description))
        if limit is not None and len(mutants) >= limit:
            break
    return mutants


@dataclass(frozen=True)
class MutantVerdict:
    """How test sets fared against one mutant.

    Attributes:
        mutant: the mutant.
        caught: per test set name, whether some test of that set did not pass (empty when screened out).
        timed_out: some test timed out (or the screening test did); such a mutant says nothing about a
            test set beyond "it has a time limit", so callers usually leave it out.
    """

    mutant: Mutant
    caught: Mapping[str, bool]
    timed_out: bool


def judge_mutants(
    mutants: Sequence[Sequence[Mutant]],
    test_sets: Sequence[Mapping[str, Sequence[Test]]],
    sandbox: Sandbox,
    *,
    timeout_s: float = 1.0,
    memory_mb: int = 512,
    first_round: int = 4,
) -> list[list[MutantVerdict]]:
    """Run every task's mutants against each of its named test sets; which sets catch which mutants.

    Tests run in rounds, each round one sandbox batch over all mutants still in play: a mutant runs the
    next tests of the sets that have not caught it yet, taken in turn from each set (``first_round``
    tests in the first round, twice as many in each next one). A set stops running once it has caught the
    mutant, and a mutant stops at its first timeout (it would cost a timeout per test, and tells
    nothing about the tests), so a hanging mutant costs a few seconds and most mutants a round or two.

    Args:
        mutants: per task, its mutants.
        test_sets: per task, test sets by name (e.g. ``{"hidden": ..., "oracle": ...}``); a set may be empty
            (it then catches nothing).
        sandbox: a running sandbox.
        timeout_s, memory_mb: limits per test.
        first_round: tests per mutant in the first round.

    Returns:
        Per task, one :class:`MutantVerdict` per mutant, in order.
    """
    if len(mutants) != len(test_sets):
        raise UserError(f"got mutants for {len(mutants)} tasks and test sets for {len(test_sets)}")
    states = [
        _Judging(mutant, {name: list(tests) for name, tests in sets.items()})
        for task_mutants, sets in zip(mutants, test_sets, strict=True)
        for mutant in task_mutants
    ]
    size = first_round
    while True:
        chosen = [(state, state.next_tests(size)) for state in states if not state.timed_out]
        chosen = [(state, picked) for state, picked in chosen if picked]
        if not chosen:
            break
        jobs = [(state.mutant.program, [test for _, test in picked]) for state, picked in chosen]
        reports = sandbox.run_batch(jobs, timeout_s=timeout_s, memory_mb=memory_mb)
        for (state, picked), report in zip(chosen, reports, strict=True):
            for (name, _), result in zip(picked, report.tests, strict=True):
                if result.status is TestStatus.TIMEOUT:
                    state.timed_out = True
                elif result.status is not TestStatus.PASSED:
                    state.caught[name] = True
        size *= 2
    verdicts, flat = [], iter(states)
    for task_mutants in mutants:
        task_verdicts = []
        for _ in task_mutants:
            state = next(flat)
            caught = {} if state.timed_out else dict(state.caught)
            task_verdicts.append(MutantVerdict(state.mutant, caught, state.timed_out))
        verdicts.append(task_verdicts)
    return verdicts


class _Judging:
    """One mutant's progress through its task's test sets."""

    def __init__(self, mutant: Mutant, sets: dict[str, list[Test]]) -> None:
        self.mutant = mutant
        self.remaining = sets
        self.caught = dict.fromkeys(sets, False)
        self.timed_out = False

    def next_tests(self, count: int) -> list[tuple[str, Test]]:
        """Up to ``count`` tests, in turn from each set that has tests left and has not caught the mutant."""
        picked: list[tuple[str, Test]] = []
        while len(picked) < count:
            open_sets = [name for name, tests in self.remaining.items() if tests and not self.caught[name]]
            if not open_sets:
                break
            for name in open_sets:
                if len(picked) < count:
                    picked.append((name, self.remaining[name].pop(0)))
        return picked


def known_wrong_mutants(
    tasks: Sequence[Task],
    sandbox: Sandbox,
    *,
    per_task: int = 20,
    candidates_per_task: int | None = None,
    seed: int = 0,
    timeout_s: float = 1.0,
    memory_mb: int = 512,
    judge_tests: Sequence[Sequence[Test]] | None = None,
) -> list[tuple[Mutant, ...]]:
    """For each task, up to ``per_task`` mutants of its reference that fail one of its hidden tests.

    All candidates of all tasks run together, in a few sandbox batches (see :func:`judge_mutants`). A task
    without a reference solution or an entry point gets no mutants.

    Args:
        tasks: the tasks.
        sandbox: a running sandbox.
        per_task: the most mutants kept per task.
        candidates_per_task: mutants tried per task (default ``4 * per_task``); the rest are never run.
        seed: the order in which mutants are tried (see :func:`mutate_program`).
        timeout_s, memory_mb: limits per test; a mutant that times out on a judging test is dropped.
        judge_tests: per task, the tests that decide "wrong" (default: each task's hidden tests). They
            must be tests the reference passes, or "wrong" means nothing.

    Returns:
        One tuple of mutants per task, in the order of ``tasks``.
    """
    tries = candidates_per_task if candidates_per_task is not None else 4 * per_task
    judges = list(judge_tests) if judge_tests is not None else [task.hidden_tests for task in tasks]
    if len(judges) != len(tasks):
        raise UserError(f"judge_tests has {len(judges)} entries for {len(tasks)} tasks; give one per task")
    candidates = [_candidates(task, seed, tries) for task in tasks]
    verdicts = judge_mutants(
        candidates, [{"judge": tests} for tests in judges], sandbox, timeout_s=timeout_s, memory_mb=memory_mb
    )
    return [
        tuple([v.mutant for v in task_verdicts if not v.timed_out and v.caught["judge"]][:per_task])
        for task_verdicts in verdicts
    ]


def _candidates(task: Task, seed: int, limit: int) -> list[Mutant]:
    if task.entry_point is None or not task.reference_solution:
        return []
    try:
        return mutate_program(task.reference_solution, entry_point=task.entry_point, seed=seed, limit=limit)
    except ValueError:
        return []


# --- which functions ---------------------------------------------------------------------------------


def _reachable_functions(tree: ast.Module, entry_point: str | None) -> list[ast.FunctionDef]:
    """The entry point and the top-level functions it calls, directly or through each other."""
    top = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    if entry_point is None:
        return list(top.values())
    if entry_point not in top:
        raise UserError(f"the program defines no top-level function {entry_point!r} to mutate")
    reached, frontier = [], [entry_point]
    while frontier:
        name = frontier.pop()
        if name in reached:
            continue
        reached.append(name)
        called = {
            node.func.id
            for node in ast.walk(top[name])
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in top
        }
        frontier += sorted(called)
    return [top[name] for name in top if name in reached]


# --- where to mutate ------------------------------------------------------------------------------------


def _body_nodes(function: ast.FunctionDef) -> Iterator[ast.AST]:
    """Nodes of the function's body, skipping its docstring, annotations and nested ``def`` signatures."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    for statement in body:
        yield from ast.walk(statement)


def _locate(tree: ast.Module) -> dict[int, ast.AST]:
    return dict(enumerate(ast.walk(tree)))


def _sites(tree: ast.Module, function: ast.FunctionDef) -> list[_Site]:
    """Every mutation of ``function``, each addressed by its node's index in ``ast.walk(tree)`` order,
    which is the same in a deep copy of the tree."""
    index_of = {id(node): index for index, node in _locate(tree).items()}
    sites: list[_Site] = []

    def at(node: ast.AST, change: Callable[[ast.AST], None]) -> Callable[[ast.Module], None]:
        index = index_of[id(node)]
        return lambda mutated: change(_locate(mutated)[index])

    def swap(node: ast.AST, make: Callable[[ast.AST], ast.AST]) -> Callable[[ast.Module], None]:
        index = index_of[id(node)]

        def apply(mutated: ast.Module) -> None:
            target = _locate(mutated)[index]
            _replace(mutated, target, make(target))

        return apply

    for node in _body_nodes(function):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                for new in _COMPARE_SWAPS.get(type(op), ()):
                    sites.append(
                        (
                            "compare",
                            f"line {line}: {type(op).__name__} -> {new.__name__}",
                            at(node, lambda n, p=position, new=new: n.ops.__setitem__(p, new())),
                        )
                    )
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            sites.append(("constant", f"line {line}: {node.value} -> {not node.value}", at(node, _flip_bool)))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            for delta in (1, -1):
                sites.append(
                    (
                        "constant",
                        f"line {line}: {node.value} -> {node.value + delta}",
                        at(node, lambda n, d=delta: setattr(n, "value", n.value + d)),
                    )
                )
        elif isinstance(node, ast.BinOp | ast.AugAssign):
            for new in _ARITHMETIC_SWAPS.get(type(node.op), ()):
                sites.append(
                    (
                        "arithmetic",
                        f"line {line}: {type(node.op).__name__} -> {new.__name__}",
                        at(node, lambda n, new=new: setattr(n, "op", new())),
                    )
                )
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            sites.append(
                (
                    "boolean",
                    f"line {line}: {type(node.op).__name__} -> {new.__name__}",
                    at(node, lambda n, new=new: setattr(n, "op", new())),
                )
            )
        elif isinstance(node, ast.Slice):
            sites += _slice_sites(node, line, at)
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _BUILTIN_SWAPS
        ):
            new_name = _BUILTIN_SWAPS[node.func.id]
            sites.append(
                (
                    "builtin",
                    f"line {line}: {node.func.id} -> {new_name}",
                    at(node, lambda n, name=new_name: setattr(n.func, "id", name)),
                )
            )
        elif isinstance(node, ast.Break | ast.Continue):
            new_statement = ast.Continue if isinstance(node, ast.Break) else ast.Break
            sites.append(
                (
                    "statement",
                    f"line {line}: {type(node).__name__.lower()} -> {new_statement.__name__.lower()}",
                    swap(node, lambda n, new=new_statement: ast.copy_location(new(), n)),
                )
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
            sites.append(("negation", f"line {line}: {type(node.op).__name__} dropped", swap(node, _operand)))
        if isinstance(node, ast.If | ast.While):
            sites.append(("negation", f"line {line}: condition negated", at(node, _negate_test)))
        for field in ("body", "orelse"):
            statements = getattr(node, field, None)
            if isinstance(statements, list):
                sites += _statement_sites(node, field, statements, at)
    sites += _statement_sites(function, "body", function.body, at)
    sites += _return_early_sites(function, at)
    return sites


def _flip_bool(node: ast.Constant) -> None:
    node.value = not node.value


def _replace(tree: ast.Module, target: ast.AST, new: ast.AST) -> None:
    """Put ``new`` where ``target`` is in ``tree``."""
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, field, new)
                return
            if isinstance(value, list) and any(item is target for item in value):
                value[[id(item) for item in value].index(id(target))] = new
                return


def _operand(node: ast.UnaryOp) -> ast.expr:
    return node.operand


def _negate_test(node: ast.If | ast.While) -> None:
    node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)


def _slice_sites(node: ast.Slice, line: int, at: Callable) -> list[_Site]:
    sites: list[_Site] = []
    for bound in ("lower", "upper"):
        value = getattr(node, bound)
        if value is None:
            new = 1 if bound == "lower" else -1
            sites.append(
                (
                    "slice",
                    f"line {line}: slice {bound} bound {new} added",
                    at(node, lambda n, b=bound, v=new: setattr(n, b, _number(v))),
                )
            )
            continue
        for delta in (1, -1):
            sites.append(
                (
                    "slice",
                    f"line {line}: slice {bound} bound {'+' if delta > 0 else '-'}1",
                    at(node, lambda n, b=bound, d=delta: setattr(n, b, _shifted(getattr(n, b), d))),
                )
            )
    if node.step is not None:
        sites.append(("slice", f"line {line}: slice step negated", at(node, _negate_step)))
    return sites


def _number(value: int) -> ast.expr:
    return ast.UnaryOp(ast.USub(), ast.Constant(-value)) if value < 0 else ast.Constant(value)


def _shifted(expression: ast.expr, delta: int) -> ast.expr:
    op = ast.Add() if delta > 0 else ast.Sub()
    return ast.BinOp(left=expression, op=op, right=ast.Constant(abs(delta)))


def _negate_step(node: ast.Slice) -> None:
    node.step = ast.UnaryOp(op=ast.USub(), operand=node.step)


def _statement_sites(parent: ast.AST, field: str, statements: list[ast.stmt], at: Callable) -> list[_Site]:
    """Delete one assignment or expression statement (replaced by ``pass``)."""
    sites: list[_Site] = []
    for position, statement in enumerate(statements):
        if isinstance(statement, ast.Assign | ast.AugAssign | ast.AnnAssign) or (
            isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
        ):
            sites.append(
                (
                    "statement",
                    f"line {statement.lineno}: statement deleted",
                    at(parent, lambda n, f=field, p=position: getattr(n, f).__setitem__(p, ast.Pass())),
                )
            )
    return sites


def _return_early_sites(function: ast.FunctionDef, at: Callable) -> list[_Site]:
    """Copy the function's final ``return`` in front of each of its top-level loops."""
    body = function.body
    if not body or not isinstance(body[-1], ast.Return):
        return []
    final = body[-1]
    sites: list[_Site] = []
    for position, statement in enumerate(body):
        if isinstance(statement, ast.For | ast.While):
            sites.append(
                (
                    "return_early",
                    f"line {statement.lineno}: return before the loop",
                    at(
                        function,
                        lambda n, p=position, r=final: n.body.insert(p, copy.deepcopy(r)),
                    ),
                )
            )
    return sites
