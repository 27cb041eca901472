"""The agent interface, the episode it returns, and the metered runner every agent works through.

An :class:`Agent` solves the env's current episode: ``agent.solve(env, budget)`` starts from
``env.get_state()``, searches with its policy (and verifier), leaves the env on the path it chose and
returns an :class:`Episode`: the steps, the code, the rewards, the hidden-test verdict and the
:class:`~codegym.agents.budget.Spend`. ``agent.solve_many(env, task_ids, budget)`` solves several
problems at once, so each policy call and each sandbox batch carries all of them.

Agents touch only public API: the env's ``get_state`` / ``set_state`` / ``step_batch`` (many steps from
snapshots, one sandbox batch), :func:`codegym.steps.policy_prompt`, ``Policy.sample`` and
``ProcessRewardModel.score``. :class:`Runner` wraps these three and counts what each problem spent.

The verifier an agent may use is the tests that pay (``info["test_report"]``, the visible tests), never
``info["hidden_*"]``, which only judges the final answer. On a task without visible tests the env pays
with the hidden tests; :attr:`Episode.visible_source` is then ``"hidden"``, so a result that leaned on
them is marked.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from codegym.agents.budget import Budget, Spend
from codegym.errors import UserError
from codegym.rewards import aggregate, checked_batch_scores
from codegym.steps import policy_prompt, render_state

if TYPE_CHECKING:
    import gymnasium as gym

    from codegym.env import CodeReasonEnv, EpisodeState, Transition
    from codegym.models.policy import Policy, Sample
    from codegym.rewards import ProcessRewardModel

VERIFIERS = ("visible", "prm", "both")


@dataclass(frozen=True)
class Episode:
    """What an agent returns for one problem.

    Attributes:
        task_id: the task.
        steps: the steps of the chosen path.
        code: its code; None when the agent ended without a code action.
        rewards: the env's reward after each step of the chosen path.
        visible_pass_rate: the chosen code's pass rate on the tests that pay (None without code).
        hidden_pass_rate: its pass rate on the hidden tests (0.0 without code).
        hidden_all_passed: every hidden test passed: the problem is solved.
        end: ``"code"``, ``"max_steps"``, ``"empty_step"`` (the policy wrote nothing) or ``"budget"``.
        spend: what the agent spent on this problem.
        agent: the agent's name.
        visible_source: who wrote the tests that paid (``"task"``, ``"tcg"``, or ``"hidden"`` when the
            verifier saw the hidden tests because the task has no others).
        tree: the search tree, for agents that build one (:class:`~codegym.agents.mcts.SearchTree`).
        sample: which of a task's samples this is, 0-based (:func:`codegym.agents.rollout` plays
            several per task; an agent's own episodes are sample 0).
        step_token_ids: the token ids the policy generated for each step
            (:attr:`~codegym.models.Sample.token_ids`; None for a step whose backend cannot tell, and
            empty for an episode not played by an agent).
        step_end_token_ids: for each step, the token that ended it
            (:attr:`~codegym.models.Sample.end_token_id`: where the stop string starts, or the EOS
            token; None for a step cut by its token limit or whose backend cannot tell), so a trainer
            scores where a step ends along with its tokens.
    """

    task_id: str
    steps: tuple[str, ...]
    code: str | None
    rewards: tuple[float, ...]
    visible_pass_rate: float | None
    hidden_pass_rate: float
    hidden_all_passed: bool
    end: str
    spend: Spend
    agent: str
    visible_source: str | None = None
    tree: Any = None
    sample: int = 0
    step_token_ids: tuple[tuple[int, ...] | None, ...] = ()
    step_end_token_ids: tuple[int | None, ...] = ()

    @property
    def total_reward(self) -> float:
        return float(sum(self.rewards))

    @property
    def tokens(self) -> int:
        """Tokens the policy generated for this problem (``spend.tokens``)."""
        return self.spend.tokens


@dataclass
class Path:
    """A partial or finished path from a problem's root, as agents keep it."""

    problem: int  # index of the problem in the solve batch
    state: EpisodeState
    transition: Transition | None = None  # the step that made this path (None at the root)
    tokens: int = 0
    logprob: float | None = 0.0  # None once a step's log-prob is unknown (a server that returns none)
    end: str | None = None  # set when the path is finished (see Episode.end)
    scores: tuple[float, ...] | None = None  # PRM scores of every step, once asked for
    # The token ids the policy generated for each step (None for a step whose backend cannot tell).
    step_token_ids: tuple[tuple[int, ...] | None, ...] = ()
    step_end_token_ids: tuple[int | None, ...] = ()  # the token that ended each step (None: unknown)

    @property
    def steps(self) -> tuple[str, ...]:
        return self.state.steps

    @property
    def finished(self) -> bool:
        return self.end is not None

    @property
    def report(self):
        """The report of the tests that paid, when the path ends in code; else None."""
        return None if self.transition is None else self.transition.info.get("test_report")


class Runner:
    """Runs an agent's policy, PRM and env calls for a batch of problems and meters each problem's spend."""

    def __init__(
        self,
        env: CodeReasonEnv,
        roots: Sequence[EpisodeState],
        budget: Budget,
        policy: Policy,
        prm: ProcessRewardModel | None,
        *,
        seed: int,
        max_new_tokens: int,
    ) -> None:
        self.env = env
        self.roots = list(roots)
        self.budget = budget
        self.policy = policy
        self.prm = prm
        self.seed = seed
        self.max_new_tokens = max_new_tokens
        self.calls = 0
        self.started = time.perf_counter()
        self._spend = [Spend() for _ in self.roots]

    # -- spend ---------------------------------------------------------------------------------------

    def spend(self, problem: int) -> Spend:
        wall = (time.perf_counter() - self.started) / len(self.roots)
        return replace(self._spend[problem], wall_s=wall)

    def allows(self, problem: int, steps: int = 0) -> bool:
        return self.budget.allows(self.spend(problem), steps=steps)

    def _charge(self, problem: int, **amounts: int) -> None:
        spend = self._spend[problem]
        self._spend[problem] = replace(
            spend, **{name: getattr(spend, name) + amount for name, amount in amounts.items()}
        )

    # -- the three metered calls ---------------------------------------------------------------------

    def sample(self, paths: Sequence[Path], n: int, temperature: float) -> list[list[Sample]]:
        """``n`` next steps for each path, in one ``Policy.sample`` call (seeded by the call count)."""
        if not paths:
            return []
        prompts = [policy_prompt(render_state(p.state.task.problem, p.steps), len(p.steps)) for p in paths]
        call_seed = int(np.random.SeedSequence([self.seed, self.calls]).generate_state(1)[0])
        self.calls += 1
        samples = self.policy.sample(
            prompts, n=n, max_new_tokens=self.max_new_tokens, temperature=temperature, seed=call_seed
        )
        for problem in {p.problem for p in paths}:
            self._charge(problem, policy_calls=1)
        for path, drawn in zip(paths, samples, strict=True):
            # Greedy decoding repeats one generation n times: it is written (and counted) once.
            written = drawn[:1] if temperature == 0 else drawn
            self._charge(
                path.problem, steps_generated=len(written), tokens=sum(s.num_tokens for s in written)
            )
        return samples

    def step(self, paths: Sequence[Path], actions: Sequence[str], samples: Sequence[Sample]) -> list[Path]:
        """Play ``actions[i]`` from ``paths[i]`` (all code in one sandbox batch); returns the new paths."""
        transitions = self.env.step_batch([p.state for p in paths], list(actions))
        children = []
        for path, transition, sample in zip(paths, transitions, samples, strict=True):
            self._charge(path.problem, sandbox_runs=transition.sandbox_runs)
            end = "code" if transition.terminated else "max_steps" if transition.truncated else None
            children.append(
                Path(
                    problem=path.problem,
                    state=transition.state,
                    transition=transition,
                    tokens=path.tokens + sample.num_tokens,
                    logprob=(
                        None
                        if path.logprob is None or sample.logprob is None
                        else path.logprob + sample.logprob
                    ),
                    end=end,
                    step_token_ids=(*path.step_token_ids, sample.token_ids),
                    step_end_token_ids=(*path.step_end_token_ids, sample.end_token_id),
                )
            )
        return children

    def score(self, paths: Sequence[Path]) -> list[tuple[float, ...]]:
        """The PRM's score of every step of each path (one batched call when the PRM has ``score_batch``)."""
        if self.prm is None:
            raise UserError("this agent needs a process reward model: pass prm= (e.g. load_prm('tiny'))")
        todo = [p for p in paths if p.scores is None]
        if todo:
            scored = checked_batch_scores(self.prm, [(p.state.task.problem, list(p.steps)) for p in todo])
            for path, scores in zip(todo, scored, strict=True):
                path.scores = tuple(scores)
                self._charge(path.problem, prm_calls=1)
        return [p.scores for p in paths]

    # -- common moves --------------------------------------------------------------------------------

    def extend(
        self, paths: Sequence[Path], n: int, temperature: float, *, unique: bool = False
    ) -> list[list[Path]]:
        """Sample ``n`` next steps per path and play them; empty steps are dropped, and with ``unique``
        so are repeats of a step already drawn for the same path (tree search merges them).

        Paths whose problem's budget cannot pay for ``n`` more steps are not extended (an empty list).
        """
        allowed = [p for p in paths if self.allows(p.problem, steps=1 if temperature == 0 else n)]
        samples = self.sample(allowed, n, temperature)
        parents, actions, drawn = [], [], []
        for path, candidates in zip(allowed, samples, strict=True):
            seen = set()
            for sample in candidates:
                if sample.text.strip() and not (unique and sample.text in seen):
                    seen.add(sample.text)
                    parents.append(path)
                    actions.append(sample.text)
                    drawn.append(sample)
        children = self.step(parents, actions, drawn)
        by_parent: dict[int, list[Path]] = {id(p): [] for p in paths}
        for parent, child in zip(parents, children, strict=True):
            by_parent[id(parent)].append(child)
        for path, candidates in zip(allowed, samples, strict=True):
            if not by_parent[id(path)] and candidates:
                path.end = path.end or "empty_step"
        return [by_parent[id(p)] for p in paths]

    def complete(self, paths: Sequence[Path], temperature: float) -> list[Path]:
        """Play each path to its end (code, ``max_steps``, an empty step or the budget), one step at a time,
        all paths' prompts in one policy call per depth."""
        current = list(paths)
        while True:
            active = [i for i, p in enumerate(current) if not p.finished]
            if not active:
                return current
            extended = self.extend([current[i] for i in active], 1, temperature)
            for i, children in zip(active, extended, strict=True):
                if children:
                    current[i] = children[0]
                elif not current[i].finished:
                    current[i].end = "budget"

    def episode(self, path: Path, agent: str, tree: Any = None) -> Episode:
        info = path.transition.info if path.transition is not None else {}
        report = info.get("test_report")
        code = info.get("code")
        return Episode(
            task_id=path.state.task.task_id,
            steps=path.steps,
            code=code,
            rewards=path.state.rewards,
            visible_pass_rate=None if report is None else report.pass_rate,
            hidden_pass_rate=float(info.get("hidden_pass_rate", 0.0)),
            hidden_all_passed=bool(info.get("hidden_all_passed", False)),
            end="code" if code is not None else (path.end or "budget"),
            spend=self.spend(path.problem),
            agent=agent,
            visible_source=info.get("visible_source"),
            tree=tree,
            step_token_ids=path.step_token_ids,
            step_end_token_ids=path.step_end_token_ids,
        )


def code_value(path: Path, alpha: float) -> float:
    """O1-Coder's value of a finished path: ``alpha*compiled + (1-alpha)*pass_rate`` on the tests that pay
    (0.0 for a path without code)."""
    report = path.report
    if report is None:
        return 0.0
    return alpha * float(report.compiled) + (1 - alpha) * report.pass_rate


def verifier_key(runner: Runner, verifier: str, aggregation: str):
    """A sort key for finished paths under a verifier: code first, then visible pass rate and/or PRM score."""

    def key(path: Path) -> tuple[float, ...]:
        report = path.report
        has_code = float(report is not None)
        visible = report.pass_rate if report is not None else 0.0
        if verifier == "visible":
            return (has_code, visible)
        prm = aggregate(path.scores, aggregation) if path.scores else 0.0
        return (has_code, prm) if verifier == "prm" else (has_code, visible, prm)

    return key


def check_verifier(verifier: str, prm: ProcessRewardModel | None) -> None:
    if verifier not in VERIFIERS:
        raise UserError(f"unknown verifier {verifier!r}: choose one of {', '.join(VERIFIERS)}")
    if verifier in ("prm", "both") and prm is None:
        raise UserError(
            f"verifier={verifier!r} needs a process reward model: pass prm= (e.g. load_prm('tiny'))"
        )


class Agent(ABC):
    """Solves problems of a CodeReason env with a policy; subclasses implement :meth:`search`.

    An agent works on the CodeReason env under any wrappers (``env.unwrapped``): a search forks
    episodes and steps paths in batches, which a wrapper's ``step`` cannot see. Wrappers other than
    those ``gym.make`` adds itself are bypassed, and a warning names them; set rewards and limits
    through the env's own options.

    Args:
        policy: the :class:`~codegym.models.Policy` that writes steps.
        prm: a :class:`~codegym.rewards.ProcessRewardModel`, for agents or verifiers that need one.
        seed: seeds every policy call (the i-th call of a solve uses ``(seed, i)``), so a solve repeats.
        max_new_tokens: the most tokens one step may have.
    """

    name = "agent"

    def __init__(
        self,
        policy: Policy,
        *,
        prm: ProcessRewardModel | None = None,
        seed: int = 0,
        max_new_tokens: int = 256,
    ) -> None:
        if not hasattr(policy, "sample"):
            raise TypeError(
                f"policy must have a sample() method (a codegym Policy), got {type(policy).__name__}"
            )
        if not (isinstance(seed, int) and seed >= 0):
            raise UserError(f"seed must be an int >= 0, got {seed!r}")
        self.policy = policy
        self.prm = prm
        self.seed = seed
        self.max_new_tokens = max_new_tokens

    def solve(self, env: gym.Env, budget: Budget | None = None) -> Episode:
        """Solve the env's current episode (call ``env.reset`` first); the env is left on the chosen path."""
        base = _code_reason_env(env)
        [episode] = self._run(base, [base.get_state()], budget or Budget())
        return episode

    def solve_many(
        self, env: gym.Env, task_ids: Sequence[str], budget: Budget | None = None, *, seed: int = 0
    ) -> list[Episode]:
        """Solve several tasks at once (policy calls and sandbox batches carry all of them); ``budget`` is
        per task. Each task is reset with ``seed`` and its id."""
        base = _code_reason_env(env)
        if isinstance(task_ids, str) or not task_ids:
            raise UserError("task_ids must be a non-empty list of task ids")
        roots = []
        for task_id in task_ids:
            base.reset(seed=seed, options={"task_id": task_id})
            roots.append(base.get_state())
        return self._run(base, roots, budget or Budget())

    def _run(self, env: CodeReasonEnv, roots: list[EpisodeState], budget: Budget) -> list[Episode]:
        if not isinstance(budget, Budget):
            raise TypeError(f"budget must be a codegym.agents.Budget, got {type(budget).__name__}")
        if any(root.done for root in roots):
            raise RuntimeError("the env's episode has ended; call env.reset() before solve()")
        runner = Runner(
            env, roots, budget, self.policy, self.prm, seed=self.seed, max_new_tokens=self.max_new_tokens
        )
        # A path's next prompt starts with its last one and the step just written: a policy that can
        # keep their keys and values reads only the new part (a cache scoped to this search).
        reusing = getattr(self.policy, "reusing_prefixes", None)
        with reusing() if reusing is not None else nullcontext():
            episodes, final_states = self.search(runner)
        env.set_state(final_states[-1])
        return episodes

    @abstractmethod
    def search(self, runner: Runner) -> tuple[list[Episode], list[EpisodeState]]:
        """Search every root of ``runner``; return one episode per root and the state each path ends in."""


# The wrappers gym.make adds on its own; they only check call order and the API, nothing an agent needs.
_BOOKKEEPING_WRAPPERS = frozenset({"OrderEnforcing", "PassiveEnvChecker"})


def _code_reason_env(env: gym.Env) -> CodeReasonEnv:
    """The CodeReason env under ``env``'s wrappers; a warning names the wrappers that are bypassed.

    A search forks episodes (``get_state``/``set_state``) and steps many paths in one ``step_batch``, so
    it runs on the env itself: a wrapper's rewards, observations, limits or records do not apply to it.
    """
    base = getattr(env, "unwrapped", env)
    if not hasattr(base, "step_batch"):
        raise TypeError(
            f"agents solve CodeReason envs (gym.make('CodeReason-v0', ...)), got {type(base).__name__}"
        )
    bypassed = []
    layer = env
    while layer is not base and hasattr(layer, "env"):
        if type(layer).__name__ not in _BOOKKEEPING_WRAPPERS:
            bypassed.append(type(layer).__name__)
        layer = layer.env
    if bypassed:
        warnings.warn(
            f"the search agents step the CodeReason env itself (get_state, set_state, step_batch), so the "
            f"wrappers {', '.join(bypassed)} are bypassed: their rewards, observations and limits do not "
            "apply; configure the env instead (reward=, max_steps=, ...)",
            stacklevel=3,
        )
    return base
