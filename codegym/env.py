"""``CodeReason-v0``: O1-Coder's language-augmented MDP as a Gymnasium environment."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from codegym.env_config import DEFAULTS, EnvConfig
from codegym.errors import UserError
from codegym.rewards import (
    OutcomeFn,
    ProcessRewardModel,
    RewardContext,
    RewardFn,
    RewardScheme,
    checked_batch_scores,
    checked_scores,
    make_outcome,
    make_reward_scheme,
)
from codegym.sandbox import ExecutionReport, Sandbox, SandboxError, make_sandbox
from codegym.spaces import UnicodeText
from codegym.steps import classify_step, extract_code, render_state, step_header, whole_statements
from codegym.tasks import Task, TaskSource, load_tasks
from codegym.tcg.base import TestCaseGenerator, UnsupportedTask, with_visible_tests
from codegym.verdicts import LRUCache, TestFingerprints, VerdictKey, build_program

logger = logging.getLogger("codegym.env")

VISIBLE_NOTE = "visible_note"  # Task.metadata key: why a test generator left a task's visible tests alone
GENERATED_TESTS_CACHE = 65_536  # tasks whose generated visible tests are remembered (a few KB each)


@dataclass(frozen=True)
class EpisodeState:
    """An exact snapshot of an episode, from :meth:`CodeReasonEnv.get_state`.

    It shares the task and the step strings with the env (nothing is copied), so taking one costs a
    few hundred nanoseconds; :meth:`CodeReasonEnv.set_state` puts it back.
    """

    task: Task
    steps: tuple[str, ...]
    process_rewards: tuple[float, ...]
    rewards: tuple[float, ...]
    done: bool


@dataclass
class PendingStep:
    """A step between its validation and its sandbox run (lets a vector env batch many envs' code)."""

    step: str
    process_rewards: tuple[float, ...]
    code: str | None = None
    code_fence_closed: bool = False
    program: str = ""
    program_source: str = ""
    keys: tuple[VerdictKey, ...] = ()  # (paying, hidden), or (paying,) when they are the same tests
    cached: tuple[ExecutionReport | None, ...] = ()
    jobs: tuple[tuple[str, tuple], ...] = ()  # the (program, tests) pairs the cache did not answer


@dataclass(frozen=True)
class Transition:
    """One step taken by :meth:`CodeReasonEnv.step_batch`: what :meth:`~CodeReasonEnv.step` returns, plus
    the snapshot after the step and how many programs the sandbox ran for it."""

    state: EpisodeState
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    sandbox_runs: int


class CodeReasonEnv(gym.Env[str, str]):
    """Reason in steps, then write code that is run against tests.

    ## Description

    The language-augmented MDP of O1-Coder (arXiv 2412.00154, section 3.5). Each episode is one
    programming task. The agent writes reasoning steps (O1-Coder's kinds: an ``Outline:`` in pseudocode,
    ``Refine:`` steps, free text) and ends with a code action: a step holding a fenced ```` ```python ````
    block. The code runs in a sandbox against the task's tests.

    ## Observation Space

    :class:`~codegym.spaces.UnicodeText`: the problem and the steps so far, rendered by
    :func:`codegym.steps.render_state` (``### Problem`` then ``### Step 1``, ``### Step 2``, ...). The
    same text is what a PRM scores. Structured fields are in ``info``.

    ## Action Space

    :class:`~codegym.spaces.UnicodeText` of 1 to ``max_step_chars`` characters: one step. The first
    ```` ```python ```` (or ```` ```py ````) block in a step is the code; its closing fence may be missing.
    If the code does not define the task's entry point and the task has starter code (HumanEval's
    prompt), the code is read as a completion of the starter code.

    ## Rewards

    After every step t the PRM (if any) scores it: r_t. The code action's outcome R comes from the tests
    that pay (``test_set``): ``outcome="pass_rate"`` (default), ``"all_pass"`` or
    ``"compiled_pass_rate"``. The reward scheme combines them: ``"o1coder"`` (default,
    ``alpha(t) R + (1 - alpha(t)) (1/m) sum_j gamma^j r_j`` on the last step), ``"dense"``,
    ``"potential"``, ``"terminal"``, ``"gated"`` (``R * min_j r_j``), or your own callable; see
    :mod:`codegym.rewards.schemes`.
    ``info["reward_terms"]`` holds every term.

    ## Episode End

    Terminated: the step was a code action. Truncated: ``max_steps`` steps without code; then R = 0 and
    ``info["outcome_note"]`` says so.

    ## Info

    Every step: ``task_id``, ``entry_point``, ``problem``, ``steps``, ``step_index``, ``step_kind``,
    ``step_kinds``, ``process_reward`` (None without a PRM), ``process_rewards``, ``outcome``,
    ``reward_terms``, ``reward_scheme``. A code action adds ``code`` (the code that ran: of a block cut by the
    token limit, its whole statements, :func:`~codegym.steps.whole_statements`), ``code_fence_closed``, ``program``,
    ``program_source``, ``paid_by`` (``"visible"`` or ``"hidden"``), ``visible_source`` (``"tcg"`` when a
    test case generator wrote them, ``"task"`` when the task carries its own, ``"hidden"`` when they are
    the hidden ones), ``visible_note`` (only when the generator could not serve the task, and why),
    ``test_report`` (the :class:`~codegym.sandbox.ExecutionReport` on the tests that paid),
    ``hidden_report``, ``hidden_pass_rate``, ``hidden_all_passed`` and ``verdict_cached``.

    ## Arguments

    ```python
    gym.make("CodeReason-v0", tasks="synthetic", split=None, sandbox="auto", process_reward=None,
             reward="o1coder", reward_options=None, outcome="pass_rate", max_steps=8, timeout_s=3.0,
             test_set="visible", visible_tests=None, visible_tests_n=10)
    ```

    - ``tasks``: ``"synthetic"``, ``"humaneval"``, ``"jsonl:PATH"``, ``"dataset:NAME_OR_PATH"``, a
      :class:`~codegym.tasks.TaskSource` or a list of :class:`~codegym.tasks.Task`.
    - ``split``: the source's split (``"train"``/``"test"`` for synthetic); None for its default.
    - ``task_options``: keyword arguments for the task source (e.g. ``{"max_ops": 2}`` for synthetic,
      ``{"schema": "mbpp", "columns": {...}}`` for files); see :func:`codegym.tasks.load_tasks`.
    - ``sandbox``: ``"auto"``, ``"local"``, ``"docker"`` or a running :class:`~codegym.sandbox.Sandbox`
      (shared, and then not closed by the env). ``sandbox_workers`` sizes a sandbox the env starts.
    - ``process_reward``: a :class:`~codegym.rewards.ProcessRewardModel` or None.
    - ``reward``: a scheme name, a :class:`~codegym.rewards.RewardScheme`, or ``fn(context, **kw)``;
      ``reward_options`` go to a named scheme's constructor.
    - ``outcome``: how a test report becomes R.
    - ``max_steps``: steps before truncation, the code step included.
    - ``timeout_s`` / ``memory_mb``: per-test wall-clock limit and address-space limit of the code.
    - ``test_set``: which tests pay, ``"visible"`` or ``"hidden"``; the hidden ones always judge.
    - ``visible_tests``: where the visible tests come from: None (the task's own, else its hidden ones),
      ``"tcg"`` (an :class:`~codegym.tcg.OracleTCG` on the env's sandbox: inputs drawn from the
      signature and the examples, never a hidden test's input, outputs from the reference solution), or
      any :class:`~codegym.tcg.TestCaseGenerator`. Tests are generated once per task id, at ``reset``,
      and cached; a task the generator cannot serve keeps its own tests and says why in
      ``info["visible_note"]``. ``visible_tests_n``: the most tests generated per task.
    - ``max_step_chars`` / ``max_problem_chars``: bounds of the text spaces.
    - ``verdict_cache_size``: verdicts remembered by (task, program, tests, limits); 0 turns it off.

    ## Version History

    - v0: initial version.
    """

    # "human" prints each observation as text and never paces it; render_fps is declared only because
    # Gymnasium's checker expects every env with render modes to state one.
    metadata = {"render_modes": ["ansi", "human"], "render_fps": 1}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        tasks: str | TaskSource | Sequence[Task] = "synthetic",
        *,
        split: str | None = None,
        task_options: dict[str, Any] | None = None,
        sandbox: str | Sandbox = "auto",
        sandbox_workers: int = DEFAULTS.sandbox_workers,
        process_reward: ProcessRewardModel | None = None,
        reward: str | RewardScheme | RewardFn = DEFAULTS.reward,
        reward_options: dict[str, Any] | None = None,
        outcome: str | OutcomeFn = DEFAULTS.outcome,
        max_steps: int = DEFAULTS.max_steps,
        timeout_s: float = DEFAULTS.timeout_s,
        memory_mb: int = DEFAULTS.memory_mb,
        test_set: str = DEFAULTS.test_set,
        visible_tests: str | TestCaseGenerator | None = None,
        visible_tests_n: int = DEFAULTS.visible_tests_n,
        max_step_chars: int = DEFAULTS.max_step_chars,
        max_problem_chars: int = DEFAULTS.max_problem_chars,
        verdict_cache_size: int = DEFAULTS.verdict_cache_size,
        render_mode: str | None = None,
    ) -> None:
        # The scalar options are checked in one place, the config every front end shares.
        self.config = EnvConfig(
            reward=reward,
            outcome=outcome,
            max_steps=max_steps,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            test_set=test_set,
            visible_tests_n=visible_tests_n,
            max_step_chars=max_step_chars,
            max_problem_chars=max_problem_chars,
            verdict_cache_size=verdict_cache_size,
            sandbox_workers=sandbox_workers,
        )
        if not (
            visible_tests is None or visible_tests == "tcg" or isinstance(visible_tests, TestCaseGenerator)
        ):
            raise UserError(
                "visible_tests must be None (the task's own tests), 'tcg' (an OracleTCG on the env's sandbox) "
                f"or a TestCaseGenerator instance, got {visible_tests!r}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UserError(f"render_mode must be None, 'ansi' or 'human', got {render_mode!r}")
        if process_reward is not None and not isinstance(process_reward, ProcessRewardModel):
            raise TypeError(
                f"process_reward must have a score(problem, steps) method (a ProcessRewardModel) or be None, "
                f"got {type(process_reward).__name__}"
            )
        self.task_source = load_tasks(tasks, split=split, **(task_options or {}))
        longest = self.task_source.max_problem_chars()
        if longest is not None and longest > max_problem_chars:
            raise UserError(
                f"a problem in {self.task_source.name!r} has {longest} characters, more than "
                f"max_problem_chars={max_problem_chars}; pass a larger max_problem_chars"
            )
        self.reward_scheme = make_reward_scheme(reward, **(reward_options or {}))
        self.outcome_fn: OutcomeFn = make_outcome(outcome)
        self.process_reward_model = process_reward
        self.max_steps = max_steps
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.test_set = test_set
        self.max_step_chars = max_step_chars
        self.max_problem_chars = max_problem_chars
        self.render_mode = render_mode
        self.training_step = 0

        header = len(step_header(max_steps)) + 3  # "\n\n" before a header and "\n" after it
        self.observation_space = UnicodeText(
            max_problem_chars + len("### Problem\n") + max_steps * (max_step_chars + header)
        )
        self.action_space = UnicodeText(max_step_chars)

        self._owns_sandbox = not isinstance(sandbox, Sandbox)
        self.sandbox: Sandbox | None = None
        self.sandbox = make_sandbox(sandbox, workers=sandbox_workers) if self._owns_sandbox else sandbox
        self._owns_test_generator = visible_tests == "tcg"
        if visible_tests == "tcg":
            from codegym.tcg.oracle import OracleTCG

            visible_tests = OracleTCG(sandbox=self.sandbox, memory_mb=memory_mb)
        self.test_generator: TestCaseGenerator | None = visible_tests
        self.visible_tests_n = visible_tests_n
        self._generated_tasks: LRUCache[Task] = LRUCache(GENERATED_TESTS_CACHE)
        self._verdicts: LRUCache[ExecutionReport] = LRUCache(verdict_cache_size)
        self._process_scores: LRUCache[float] = LRUCache(verdict_cache_size)
        self._scored_ahead: dict[tuple, float] = {}  # paths step_batch scored in one call, for its steps
        self._fingerprints = TestFingerprints()
        self._state: EpisodeState | None = None

    # -- the Gymnasium API -----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        """Start an episode on a task drawn with ``self.np_random``, or on ``options["task_id"]``.

        ``options["training_step"]`` sets the trainer's progress for reward schedules (O1-Coder's alpha).
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"task_id", "training_step"}
        if unknown:
            raise UserError(f"unknown reset options {sorted(unknown)}; known: 'task_id', 'training_step'")
        if "training_step" in options:
            self.set_training_step(options["training_step"])
        if options.get("task_id") is not None:
            task = self.task_source.get(options["task_id"])
        else:
            task = self.task_source.sample(self.np_random)
        task = self._with_generated_tests(task)
        if len(task.problem) > self.max_problem_chars:
            raise UserError(
                f"task {task.task_id!r} has a {len(task.problem)}-character problem, more than "
                f"max_problem_chars={self.max_problem_chars}; pass a larger max_problem_chars"
            )
        self._state = EpisodeState(task=task, steps=(), process_rewards=(), rewards=(), done=False)
        return self._observation(), self._base_info(self._state)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        pending = self.begin_step(action)
        reports = (
            self.sandbox.run_batch(pending.jobs, timeout_s=self.timeout_s, memory_mb=self.memory_mb)
            if pending.jobs
            else []
        )
        return self.finish_step(pending, reports)

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() was called without a render_mode; pass render_mode='ansi' or 'human'")
            return None
        text = self._observation() if self._state is not None else ""
        if self.render_mode == "ansi":
            return text
        print(text)
        return None

    def close(self) -> None:
        if self._owns_test_generator and self.test_generator is not None:
            self.test_generator.close()
        if self._owns_sandbox and self.sandbox is not None:
            self.sandbox.close()
        super().close()

    # -- tree search --------------------------------------------------------------------------------------

    def get_state(self) -> EpisodeState:
        """A snapshot of the current episode (cheap: it shares the task and the step strings)."""
        self._require_reset()
        return self._state

    def set_state(self, state: EpisodeState) -> str:
        """Restore a snapshot from :meth:`get_state` (of this env or one like it); returns the observation.

        The RNG is not part of a snapshot: later ``reset`` calls draw tasks as they would have.
        """
        if not isinstance(state, EpisodeState):
            raise TypeError(f"set_state takes an EpisodeState from get_state(), got {type(state).__name__}")
        self._state = state
        return self._observation()

    def step_batch(self, states: Sequence[EpisodeState], actions: Sequence[str]) -> list[Transition]:
        """Take one step from each snapshot, running every code action in one sandbox batch.

        ``actions[i]`` is played from ``states[i]`` exactly as :meth:`step` would play it after
        ``set_state(states[i])``; tree search and batched agents expand many nodes this way. Verdicts
        are cached, so a code the env has already run costs nothing. The env's current episode is the
        same after the call as before it.

        Returns:
            One :class:`Transition` per action, in order, each with the snapshot after its step and the
            number of programs the sandbox ran for it (0 on a cache hit or for a reasoning step).
        """
        if len(states) != len(actions):
            raise UserError(
                f"step_batch needs one action per state, got {len(states)} states and {len(actions)} actions"
            )
        current = self._state
        try:
            self._score_ahead(states, actions)
            pendings = []
            for state, action in zip(states, actions, strict=True):
                self.set_state(state)
                pendings.append(self.begin_step(action))
            jobs = [job for pending in pendings for job in pending.jobs]
            reports = iter(
                self.sandbox.run_batch(jobs, timeout_s=self.timeout_s, memory_mb=self.memory_mb)
                if jobs
                else []
            )
            transitions = []
            for state, pending in zip(states, pendings, strict=True):
                self.set_state(state)
                outcome = self.finish_step(pending, [next(reports) for _ in pending.jobs])
                transitions.append(Transition(self._state, *outcome, sandbox_runs=len(pending.jobs)))
            return transitions
        finally:
            self._state = current
            self._scored_ahead.clear()

    def _score_ahead(self, states: Sequence[EpisodeState], actions: Sequence[Any]) -> None:
        """Score with one ``score_batch`` call every new path these steps will ask the PRM about, as the
        agents do, instead of one call per path; :meth:`_process_reward` takes them from there. Actions
        the step will refuse are left to it. (On a CPU the tiny PRM took as long either way, its cost
        being its tokens; a GPU or a served PRM pays per call.)"""
        if self.process_reward_model is None or not hasattr(self.process_reward_model, "score_batch"):
            return
        wanted: dict[tuple, tuple[str, tuple[str, ...]]] = {}
        for state, action in zip(states, actions, strict=True):
            if state.done or not isinstance(action, str) or not action.strip():
                continue
            if len(action) > self.max_step_chars:
                continue
            steps = (*state.steps, action)
            key = (state.task.task_id, state.task.problem, steps)
            if key not in self._process_scores:
                wanted[key] = (state.task.problem, steps)
        if len(wanted) < 2:  # one path: the step scores it as it always did
            return
        scored = checked_batch_scores(self.process_reward_model, list(wanted.values()))
        self._scored_ahead = {key: scores[-1] for key, scores in zip(wanted, scored, strict=True)}

    def set_training_step(self, training_step: int) -> None:
        """Tell reward schedules (O1-Coder's alpha(t)) how far training has gone."""
        if not (isinstance(training_step, int) and training_step >= 0):
            raise UserError(f"training_step must be an int >= 0, got {training_step!r}")
        self.training_step = training_step

    @property
    def task(self) -> Task:
        """The current episode's task."""
        self._require_reset()
        return self._state.task

    @property
    def cache_stats(self) -> dict[str, int]:
        """Hits, misses and sizes of the verdict and process-reward caches."""
        return {
            "verdict_hits": self._verdicts.hits,
            "verdict_misses": self._verdicts.misses,
            "verdicts": len(self._verdicts),
            "process_reward_hits": self._process_scores.hits,
            "process_reward_misses": self._process_scores.misses,
        }

    # -- a step in two halves, so a vector env can run many envs' code in one sandbox batch -----------------

    def begin_step(self, action: str) -> PendingStep:
        """Validate ``action``, score it with the PRM and find what the sandbox must run (cache misses)."""
        self._require_reset()
        if self._state.done:
            raise RuntimeError("this episode has ended (terminated or truncated); call reset() before step()")
        if not isinstance(action, str):
            raise TypeError(f"an action is one reasoning step as a str, got {type(action).__name__}")
        if not action.strip():
            raise UserError("an action must be a non-empty reasoning step (got an empty or blank string)")
        if len(action) > self.max_step_chars:
            raise UserError(
                f"the step has {len(action)} characters, more than max_step_chars={self.max_step_chars}; "
                "shorten it or make the env with a larger max_step_chars"
            )
        state = self._state
        steps = (*state.steps, action)
        pending = PendingStep(
            step=action, process_rewards=(*state.process_rewards, *self._process_reward(state.task, steps))
        )
        extracted = extract_code(action)
        if extracted is None:
            return pending
        pending.code, pending.code_fence_closed = extracted
        if not pending.code_fence_closed:  # cut by the token limit: run what the model finished writing
            pending.code = whole_statements(pending.code)
        pending.program, pending.program_source = build_program(state.task, pending.code)
        test_sets = self._test_sets(state.task)
        pending.keys = tuple(
            VerdictKey(
                state.task.task_id, self._fingerprints(tests), pending.program, self.timeout_s, self.memory_mb
            )
            for tests in test_sets
        )
        pending.cached = tuple(self._verdicts.get(key) for key in pending.keys)
        pending.jobs = tuple(
            (pending.program, tests)
            for tests, report in zip(test_sets, pending.cached, strict=True)
            if report is None
        )
        return pending

    def finish_step(
        self, pending: PendingStep, reports: Sequence[ExecutionReport]
    ) -> tuple[str, float, bool, bool, dict]:
        """Complete a step begun with :meth:`begin_step`, given the sandbox's reports for its jobs."""
        state = self._state
        steps = (*state.steps, pending.step)
        terminated = pending.code is not None
        truncated = not terminated and len(steps) >= self.max_steps
        new_reports = iter(reports)
        verdicts = []
        for key, cached in zip(pending.keys, pending.cached, strict=True):
            report = cached if cached is not None else next(new_reports)
            if cached is None:
                self._verdicts.put(key, report)
            verdicts.append(report)
        paying = hidden = None
        if terminated:
            paying, hidden = verdicts[0], verdicts[-1]
            outcome = float(self.outcome_fn(paying))
        else:
            outcome = 0.0 if truncated else None
        context = RewardContext(
            step_index=len(steps),
            process_rewards=pending.process_rewards,
            outcome=outcome,
            terminated=terminated,
            truncated=truncated,
            report=paying,
            task=state.task,
            training_step=self.training_step,
            steps=steps,
        )
        reward = self.reward_scheme(context)
        self._state = EpisodeState(
            task=state.task,
            steps=steps,
            process_rewards=pending.process_rewards,
            rewards=(*state.rewards, reward.value),
            done=terminated or truncated,
        )
        info = self._base_info(self._state)
        process_reward = pending.process_rewards[-1] if pending.process_rewards else None
        info.update(
            step_kind=classify_step(pending.step).value,
            process_reward=process_reward,
            process_rewards=pending.process_rewards,
            outcome=outcome,
            reward_scheme=self.reward_scheme.name,
            reward_terms={
                "process_reward": process_reward,
                "outcome": outcome,
                **reward.terms,
                "reward": reward.value,
            },
        )
        if truncated:
            info["outcome_note"] = f"max_steps={self.max_steps} reached without a code action: outcome 0"
        if terminated:
            info.update(
                code=pending.code,
                code_fence_closed=pending.code_fence_closed,
                program=pending.program,
                program_source=pending.program_source,
                paid_by=self.test_set,
                visible_source=state.task.visible_source,
                test_report=paying,
                hidden_report=hidden,
                hidden_pass_rate=hidden.pass_rate,
                hidden_all_passed=hidden.all_passed,
                verdict_cached=all(report is not None for report in pending.cached),
            )
            if VISIBLE_NOTE in state.task.metadata:
                info["visible_note"] = state.task.metadata[VISIBLE_NOTE]
        if self.render_mode == "human":
            self.render()
        return self._observation(), reward.value, terminated, truncated, info

    # -- internals -------------------------------------------------------------------------------------------

    def _require_reset(self) -> None:
        if self._state is None:
            raise RuntimeError("call reset() before using step(), get_state() or task")

    def _observation(self) -> str:
        return render_state(self._state.task.problem, self._state.steps)

    def _with_generated_tests(self, task: Task) -> Task:
        """``task`` with visible tests from the test generator (made once per task id, then cached)."""
        if self.test_generator is None:
            return task
        cached = self._generated_tasks.get(task.task_id)
        if cached is not None:
            return cached
        try:
            generation = self.test_generator.generate_report(task, self.visible_tests_n)
            note = generation.skipped or (
                None if generation.tests else f"it kept none of its {generation.proposed} proposed tests"
            )
        except UnsupportedTask as exc:
            note = str(exc)
        except SandboxError:
            raise  # the sandbox itself failed: no task is to blame, and the caller must hear of it
        except Exception as exc:  # a generator bug on this one task must not end the run: degrade, loudly
            note = f"it failed on this task ({type(exc).__name__}: {exc})"
        if note is None:
            task = with_visible_tests(task, generation.tests, source="tcg")
        else:
            name = type(self.test_generator).__name__
            note = f"{name} wrote no visible tests ({note}); the task's own tests pay"
            logger.warning("task %s: %s", task.task_id, note)
            task = dataclasses.replace(task, metadata={**task.metadata, VISIBLE_NOTE: note})
        self._generated_tasks.put(task.task_id, task)
        return task

    def _test_sets(self, task: Task) -> tuple[tuple, ...]:
        """The tests that pay, then the hidden tests (once, when they are the same tuple)."""
        paying = task.tests_that_pay if self.test_set == "visible" else task.hidden_tests
        return (paying,) if paying is task.hidden_tests else (paying, task.hidden_tests)

    def _process_reward(self, task: Task, steps: tuple[str, ...]) -> tuple[float, ...]:
        """(r_t,) from the PRM (cached by task and path), or () without one."""
        if self.process_reward_model is None:
            return ()
        key = (task.task_id, task.problem, steps)
        score = self._process_scores.get(key)
        if score is None:
            score = self._scored_ahead.get(key)
            if score is None:
                score = checked_scores(self.process_reward_model, task.problem, steps)[-1]
            self._process_scores.put(key, score)
        return (score,)

    def _base_info(self, state: EpisodeState) -> dict[str, Any]:
        return {
            "task_id": state.task.task_id,
            "entry_point": state.task.entry_point,
            "problem": state.task.problem,
            "steps": state.steps,
            "step_index": len(state.steps),
            "step_kinds": tuple(classify_step(step).value for step in state.steps),
        }
