"""Shared fixtures: sandboxes for every backend, started once per session."""

from __future__ import annotations

import os
from typing import ClassVar

import pytest

# Planted before any sandbox starts: a worker that inherited the host's environment would carry it.
CANARY = "codegym-canary-7f3a9c"
os.environ["CODEGYM_TEST_SECRET"] = CANARY

# One torch thread: on a shared 2-core machine torch's second thread spin-waits against the sandbox
# workers and other processes, and a tiny model then generates up to 30x slower. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

BACKENDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


def _unavailable(reason: str):
    if os.environ.get("CODEGYM_REQUIRE_DOCKER") == "1":
        pytest.fail(f"CODEGYM_REQUIRE_DOCKER=1 but the docker sandbox cannot run: {reason}")
    pytest.skip(f"docker sandbox unavailable: {reason}")


@pytest.fixture(scope="session")
def sandbox_factory():
    """Starts (once) and hands out a two-worker sandbox per backend; all are closed at the end."""
    from codegym.sandbox import SandboxUnavailable, make_sandbox

    started = {}

    def get(kind: str):
        if kind not in started:
            try:
                started[kind] = make_sandbox(kind, workers=2)
            except SandboxUnavailable as exc:
                started[kind] = exc
        if isinstance(started[kind], Exception):
            _unavailable(str(started[kind]))
        return started[kind]

    yield get
    for box in started.values():
        if not isinstance(box, Exception):
            box.close()


@pytest.fixture(params=BACKENDS)
def sandbox(request, sandbox_factory):
    return sandbox_factory(request.param)


class KeywordPRM:
    """A scripted process reward model for tests: fixed scores by step kind, so rewards are hand-computable.

    Outline steps score 0.8, Refine steps 0.6, code steps 0.9, anything else 0.2. It records its calls.
    """

    SCORES: ClassVar[dict[str, float]] = {"outline": 0.8, "refine": 0.6, "code": 0.9, "free": 0.2}

    def __init__(self) -> None:
        self.calls = 0

    def score(self, problem: str, steps: list[str]) -> list[float]:
        from codegym.steps import classify_step

        self.calls += 1
        return [self.SCORES[classify_step(step).value] for step in steps]


@pytest.fixture
def stub_prm() -> KeywordPRM:
    return KeywordPRM()


@pytest.fixture(scope="session")
def double_task():
    """A one-function task with two hidden tests and one weaker visible test."""
    from codegym.sandbox import CallTest
    from codegym.tasks import Task

    return Task(
        task_id="toy/double",
        problem="Write `double(x: int) -> int` that returns twice x. Example: double(2) -> 4",
        entry_point="double",
        hidden_tests=(CallTest("double", (2,), expected=4), CallTest("double", (5,), expected=10)),
        visible_tests=(CallTest("double", (2,), expected=4),),
        reference_solution="def double(x):\n    return 2 * x\n",
        reference_steps=("Outline: return x times two", "```python\ndef double(x):\n    return 2 * x\n```"),
    )


class ScriptedPolicy:
    """A scripted :class:`~codegym.models.Policy` for tests: it writes each task's reference steps, in order.

    It finds the task by the problem in the prompt and the step by counting the steps already taken.
    ``replace`` maps a step index to the text written instead (to script a wrong step), and a problem it
    does not know gets ``unknown_step``. It records every ``sample`` call's prompts.
    """

    def __init__(self, tasks, replace=None, unknown_step: str = "Outline: no idea") -> None:
        self.steps_by_problem = {task.problem.strip(): task.reference_steps for task in tasks}
        self.replace = dict(replace or {})
        self.unknown_step = unknown_step
        self.calls: list[list[str]] = []

    def sample(self, prompts, n=1, *, stop=("\n### Step",), max_new_tokens=256, temperature=1.0, seed=None):
        from codegym.models import Sample
        from codegym.steps import parse_state

        self.calls.append(list(prompts))
        results = []
        for prompt in prompts:
            observation, _, _header = prompt.rstrip("\n").rpartition("\n\n### Step ")
            problem, steps = parse_state(observation)
            reference = self.steps_by_problem.get(problem.strip())
            index = len(steps)
            if reference is None or index >= len(reference):
                text = self.unknown_step
            else:
                text = self.replace.get(index, reference[index])
            results.append(
                [Sample(text=text, logprob=-1.0, num_tokens=len(text.split()), finish_reason="stop")] * n
            )
        return results


@pytest.fixture
def scripted_policy_factory():
    """Builds a :class:`ScriptedPolicy` for the given tasks (see its docstring for ``replace``)."""
    return ScriptedPolicy


class TreePolicy:
    """A scripted :class:`~codegym.models.Policy` for search tests: a fixed tree of candidate steps.

    ``tree`` maps the steps taken so far (a tuple) to the candidates after them, each a text or a
    ``(text, logprob)`` pair. Sample ``j`` of a prompt is candidate ``j % len(candidates)``; greedy
    (``temperature=0``) always gives candidate 0. Paths the tree does not know get ``unknown_step``.
    It records every ``sample`` call's prompts.
    """

    def __init__(self, tree, unknown_step: str = "Outline: no idea") -> None:
        self.tree = {
            tuple(path): [c if isinstance(c, tuple) else (c, -1.0) for c in candidates]
            for path, candidates in tree.items()
        }
        self.unknown_step = unknown_step
        self.calls: list[list[str]] = []

    def sample(self, prompts, n=1, *, stop=("\n### Step",), max_new_tokens=256, temperature=1.0, seed=None):
        from codegym.models import Sample
        from codegym.steps import parse_state

        self.calls.append(list(prompts))
        results = []
        for prompt in prompts:
            observation, _, _header = prompt.rstrip("\n").rpartition("\n\n### Step ")
            _problem, steps = parse_state(observation)
            candidates = self.tree.get(tuple(steps), [(self.unknown_step, -1.0)])
            picks = [candidates[0 if temperature == 0 else j % len(candidates)] for j in range(n)]
            results.append(
                [
                    Sample(text=text, logprob=logprob, num_tokens=len(text.split()), finish_reason="stop")
                    for text, logprob in picks
                ]
            )
        return results


@pytest.fixture
def tree_policy_factory():
    """Builds a :class:`TreePolicy` from a ``{steps so far: [candidate, ...]}`` mapping."""
    return TreePolicy


class MixedPolicy:
    """A fast, seeded :class:`~codegym.models.Policy` for RL tests: candidate ``j`` of a call with ``seed``
    is, by a draw from ``default_rng([seed, j])``, the task's reference step (from ``scripted``, a
    :class:`ScriptedPolicy`), a wrong code step, or a numbered free step. ``blank`` makes every candidate
    empty; ``crash_after`` raises on the call after that many (a simulated crash). It records the seeds.
    """

    WRONG_CODE = "The code.\n```python\ndef solve(x):\n    return None\n```"

    def __init__(self, scripted, *, blank: bool = False, crash_after: int | None = None) -> None:
        self.scripted, self.blank, self.crash_after = scripted, blank, crash_after
        self.seeds: list[int | None] = []

    def sample(self, prompts, n=1, *, stop=("\n### Step",), max_new_tokens=256, temperature=1.0, seed=None):
        import numpy as np

        from codegym.models import Sample

        self.seeds.append(seed)
        if self.crash_after is not None and len(self.seeds) > self.crash_after:
            raise RuntimeError("simulated crash")
        results = []
        for [reference] in self.scripted.sample(prompts, 1):
            row = []
            for j in range(n):
                pick = int(np.random.default_rng([seed, j]).integers(3))
                text = (
                    ""
                    if self.blank
                    else [reference.text, self.WRONG_CODE, f"Note {seed % 1000} {j}: think."][pick]
                )
                row.append(
                    Sample(
                        text, logprob=-0.5 * (pick + 1), num_tokens=len(text.split()), finish_reason="stop"
                    )
                )
            results.append(row)
        return results


@pytest.fixture
def mixed_policy_factory(scripted_policy_factory):
    """Builds a :class:`MixedPolicy` over the reference steps of ``tasks``."""

    def make(tasks, **options):
        return MixedPolicy(scripted_policy_factory(tasks), **options)

    return make
