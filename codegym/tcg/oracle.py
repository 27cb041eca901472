"""The oracle-based test case generator: draw inputs, let the reference solution say what they should give.

:class:`OracleTCG` needs no model. It reads the entry point's parameter types from the signature
(:mod:`codegym.tcg.signature`), collects example calls from the problem text, the docstring and the
task's own tests, and proposes inputs of four sorts, interleaved:

- **edge cases** of each parameter's type: empty, zero, one element, a repeated element, the smallest
  and largest values the examples show, sorted and reversed lists, the longest example grown by one;
- **mutations** of the examples' arguments: a number nudged by one or doubled, a character or word
  inserted, deleted, swapped or repeated, a list element dropped, duplicated, changed or reordered;
- **random draws** shaped by the examples: numbers in (and a little past) the examples' range, strings
  from the examples' characters (or words, when the examples are sentences), lists of the examples'
  lengths;
- nothing else: the expected outputs are never guessed. The base class runs the reference on every
  input in one sandbox batch and keeps its answers (inputs on which it raises or times out are dropped).

``domain="examples"`` (the default) keeps inputs where the examples live: no negative numbers when
every example is non-negative, no characters the examples never use. A task's preconditions are rarely
written as types ("a string of brackets", "a positive integer"), and a test outside them punishes a
correct solution for its behaviour on inputs the problem never asked about. ``domain="wide"`` steps
outside (negatives, other characters, longer inputs), for probing rather than for rewards.

The kept tests never repeat one of the task's hidden test inputs (``avoid_task_tests``), so the hidden
tests stay an independent judge, and :meth:`OracleTCG.select` spreads the kept tests over the reference's
different outputs (a boolean function gets both answers, not ten ``False``).

Why not Hypothesis: its strategies draw only through its own engine (``@given``, ``find``, or
``.example()``, which its docs reserve for interactive use: slow, and random in a way a seed here does
not control). The same seed and task must give the same tests, so values are drawn from the numpy
``Generator`` the base class hands to :meth:`~OracleTCG.propose`, with small hand-written strategies
per type.

Example:
    >>> from codegym.tasks.humaneval import load_humaneval  # doctest: +SKIP
    >>> with OracleTCG(sandbox="local") as tcg:  # doctest: +SKIP
    ...     tests = tcg.generate(load_humaneval()[0], n=10)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from codegym.errors import UserError
from codegym.sandbox import CallTest, Sandbox
from codegym.sandbox.plain import encode_plain
from codegym.tasks.task import Task
from codegym.tcg.base import Proposal, TestCaseGenerator, UnsupportedTask, arguments_key
from codegym.tcg.domains import Domain, ValueDrawer, build_domain
from codegym.tcg.signature import Signature, example_calls, hidden_calls, named_values, read_signature, refine

DOMAINS = ("examples", "wide")
_PHASES_WITH_EXAMPLES = ("edge", "mutate", "random", "mutate")
_PHASES_WITHOUT_EXAMPLES = ("edge", "random")


class OracleTCG(TestCaseGenerator):
    """Propose inputs from the signature's types and the task's examples; the reference supplies outputs.

    See the module docstring for what is proposed and why. The same seed and task give the same tests.

    Args:
        sandbox: a sandbox name or a running sandbox, as for :class:`~codegym.tcg.base.TestCaseGenerator`.
        seed: seeds the draws (with the task id).
        domain: ``"examples"`` (stay where the examples are) or ``"wide"`` (also step outside them).
        proposals_per_test: inputs proposed per test wanted; the surplus covers inputs the reference
            rejects and lets :meth:`select` pick tests with different outputs.
        use_task_tests: read example calls from the task's own tests too (HumanEval's docstrings show
            two or three calls; its hidden tests show more). Off, only the problem text and starter code
            are read: a generator that has not seen the hidden tests.
        avoid_task_tests: never propose an input one of the task's hidden tests already uses.
        timeout_s: per-input limit for the reference; an input it cannot answer in time is dropped (a
            test a correct solution needs seconds for makes a poor reward).
        memory_mb, equality, skip_unsupported: as for :class:`~codegym.tcg.base.TestCaseGenerator`.

    Raises (from :meth:`generate`):
        UnsupportedTask: the entry point is not a plain function with positional parameters, a
            parameter's annotation is not plain data, or a parameter has neither an annotation nor an
            example value. The message names the parameter.

    Example:
        >>> from codegym.sandbox import CallTest
        >>> from codegym.tasks import Task
        >>> task = Task("toy/inc", "Write `inc(x: int) -> int`.", "inc", (CallTest("inc", (1,), expected=2),),
        ...             reference_solution="def inc(x: int) -> int:\\n    return x + 1\\n")
        >>> with OracleTCG(sandbox="local") as tcg:  # doctest: +SKIP
        ...     [(test.args, test.expected) for test in tcg.generate(task, n=3)]
        [((2,), 3), ((3,), 4), ((0,), 1)]
    """

    def __init__(
        self,
        sandbox: str | Sandbox = "auto",
        *,
        seed: int = 0,
        domain: str = "examples",
        proposals_per_test: int = 3,
        use_task_tests: bool = True,
        avoid_task_tests: bool = True,
        timeout_s: float = 1.0,
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
        if domain not in DOMAINS:
            raise UserError(f"domain must be one of {DOMAINS}, got {domain!r}")
        if not (isinstance(proposals_per_test, int) and proposals_per_test >= 1):
            raise UserError(f"proposals_per_test must be an int >= 1, got {proposals_per_test!r}")
        self.domain = domain
        self.proposals_per_test = proposals_per_test
        self.use_task_tests = use_task_tests
        self.avoid_task_tests = avoid_task_tests

    def __repr__(self) -> str:
        return f"OracleTCG(domain={self.domain!r}, seed={self.seed}, use_task_tests={self.use_task_tests})"

    def domains(self, task: Task) -> tuple[Signature, list[tuple], list[Domain]]:
        """The task's signature, its example calls and one :class:`Domain` per parameter.

        Raises:
            UnsupportedTask: as for :meth:`generate`.
        """
        signature = read_signature(task)
        examples = example_calls(task, signature, use_tests=self.use_task_tests)
        named = named_values(task, signature)
        domains = []
        for position, parameter in enumerate(signature.parameters):
            values = [example[position] for example in examples] + named[parameter.name]
            arg_type = refine(parameter.annotation, values)
            if arg_type.kind == "any":
                raise UnsupportedTask(
                    f"task {task.task_id!r}: parameter {parameter.name!r} of {task.entry_point} has no type "
                    "annotation and no example in the problem or the task's tests shows a literal value for "
                    f"it; annotate it (`{parameter.name}: int`, `{parameter.name}: list[str]`, ...) or put an "
                    f"example such as `>>> {task.entry_point}(...)` in the problem"
                )
            domains.append(build_domain(arg_type, values, wide=self.domain == "wide"))
        return signature, examples, domains

    def propose(self, task: Task, n: int, rng: np.random.Generator) -> list[Proposal]:
        signature, examples, domains = self.domains(task)
        if not domains:  # no parameters: there is one input, and one test
            return [Proposal(())]
        values = ValueDrawer(rng, wide=self.domain == "wide")
        seen = (
            {arguments_key(args) for args in hidden_calls(task, signature)}
            if self.avoid_task_tests
            else set()
        )
        edges = _edge_calls(values, domains, examples)
        phases = _PHASES_WITH_EXAMPLES if examples else _PHASES_WITHOUT_EXAMPLES
        wanted = self.proposals_per_test * n
        proposals: list[Proposal] = []
        for attempt in range(50 * wanted):
            if len(proposals) >= wanted:
                break
            phase = phases[attempt % len(phases)]
            if phase == "edge":
                if not edges:
                    continue
                args = edges.pop(0)
            elif phase == "mutate":
                args = _mutated_call(values, domains, examples[int(rng.integers(len(examples)))])
            else:
                args = tuple(values.draw(domain) for domain in domains)
            key = arguments_key(args)
            if key not in seen:
                seen.add(key)
                proposals.append(Proposal(args))
        return proposals

    def select(self, candidates: Sequence[CallTest], n: int) -> list[CallTest]:
        """Up to ``n`` tests spread over the reference's outputs: one per distinct output in turn, in
        proposal order, so a boolean function gets both answers rather than ten of one."""
        groups: dict[str, list[CallTest]] = {}
        for test in candidates:
            groups.setdefault(repr(encode_plain(test.expected)), []).append(test)
        queues = [list(reversed(group)) for group in groups.values()]
        chosen: list[CallTest] = []
        while len(chosen) < n and any(queues):
            for queue in queues:
                if queue and len(chosen) < n:
                    chosen.append(queue.pop())
        return chosen


def _edge_calls(values: ValueDrawer, domains: list[Domain], examples: list[tuple]) -> list[tuple]:
    """Calls that put each parameter at its edges in turn, the other arguments from an example."""
    per_parameter = [values.edges(domain) for domain in domains]
    calls = []
    for round_index in range(max((len(edges) for edges in per_parameter), default=0)):
        for position, edges in enumerate(per_parameter):
            if round_index >= len(edges):
                continue
            if examples:
                base = list(examples[(round_index + position) % len(examples)])
            else:
                base = [values.draw(domain) for domain in domains]
            base[position] = edges[round_index]
            calls.append(tuple(base))
    return calls


def _mutated_call(values: ValueDrawer, domains: list[Domain], example: tuple) -> tuple:
    """``example`` with one argument (sometimes several) mutated one to three times."""
    args = list(example)
    if len(args) == 1 or values.rng.random() < 0.7:
        positions = [int(values.rng.integers(len(args)))]
    else:
        positions = [i for i in range(len(args)) if values.rng.random() < 0.5] or [0]
    for position in positions:
        for _ in range(int(values.rng.integers(1, 4))):
            args[position] = values.mutate(domains[position], args[position])
    return tuple(args)
