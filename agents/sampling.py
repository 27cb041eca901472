"""Agents without a tree: one path (greedy or sampled) and best-of-N with a verifier.

Example:
    >>> import gymnasium as gym, codegym
    >>> from codegym.agents import BestOfNAgent, Budget
    >>> from codegym.models import load_policy
    >>> env = gym.make("CodeReason-v0", tasks="synthetic", visible_tests="tcg")  # doctest: +SKIP
    >>> env.reset(seed=0)  # doctest: +SKIP
    >>> episode = BestOfNAgent(load_policy("tiny"), n=8).solve(env, Budget(steps_generated=64))  # doctest: +SKIP
    >>> episode.hidden_all_passed, episode.spend.steps_generated  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codegym.agents.base import Agent, Episode, Path, Runner, check_verifier, verifier_key
from codegym.errors import UserError
from codegym.rewards.prm import AGGREGATIONS

if TYPE_CHECKING:
    from codegym.env import EpisodeState
    from codegym.models.policy import Policy
    from codegym.rewards import ProcessRewardModel


class SamplingAgent(Agent):
    """One path, step by step: greedy at ``temperature=0`` (the default), sampled otherwise.

    Each depth is one policy call for every problem in the batch and one sandbox batch.
    """

    name = "greedy"

    def __init__(self, policy: Policy, *, temperature: float = 0.0, **options) -> None:
        super().__init__(policy, **options)
        if not (isinstance(temperature, int | float) and temperature >= 0):
            raise UserError(f"temperature must be >= 0 (0 is greedy), got {temperature!r}")
        self.temperature = float(temperature)
        self.name = "greedy" if temperature == 0 else f"sample(T={temperature:g})"

    def search(self, runner: Runner) -> tuple[list[Episode], list[EpisodeState]]:
        roots = [Path(problem=i, state=state) for i, state in enumerate(runner.roots)]
        finished = runner.complete(roots, self.temperature)
        return [runner.episode(path, self.name) for path in finished], [p.state for p in finished]


class GreedyAgent(SamplingAgent):
    """:class:`SamplingAgent` at temperature 0: the policy's most likely step at every depth."""

    def __init__(self, policy: Policy, **options) -> None:
        super().__init__(policy, temperature=0.0, **options)


class BestOfNAgent(Agent):
    """Sample ``n`` whole paths and keep the one the verifier ranks first.

    All ``n`` paths of all problems advance together: one policy call and one sandbox batch per depth.
    The verifier ranks finished paths: those with code first, then

    - ``"visible"``: the pass rate on the tests that pay (visible tests; the paths' code is run anyway);
    - ``"prm"``: the PRM's scores of the path's steps, aggregated (``"min"``, ``"prod"``, ``"last"``,
      ``"mean"``); one batched PRM call scores every finished path;
    - ``"both"``: visible pass rate, ties broken by the PRM.

    Ties keep the earliest sample. With ``n=1`` this is :class:`SamplingAgent`.

    Args:
        policy: writes the steps.
        n: paths per problem.
        verifier: ``"visible"``, ``"prm"`` or ``"both"``.
        prm: the process reward model (needed by the ``"prm"`` and ``"both"`` verifiers).
        aggregation: how a path's step scores become one.
        temperature: sampling temperature (> 0, or the n paths would be one).
        **options: ``seed``, ``max_new_tokens`` (see :class:`~codegym.agents.Agent`).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        n: int = 8,
        verifier: str = "visible",
        prm: ProcessRewardModel | None = None,
        aggregation: str = "min",
        temperature: float = 1.0,
        **options,
    ) -> None:
        super().__init__(policy, prm=prm, **options)
        if not (isinstance(n, int) and n >= 1):
            raise UserError(f"n (paths per problem) must be an int >= 1, got {n!r}")
        check_verifier(verifier, prm)
        if aggregation not in AGGREGATIONS:
            raise UserError(f"unknown aggregation {aggregation!r}: choose one of {', '.join(AGGREGATIONS)}")
        if not (isinstance(temperature, int | float) and temperature > 0):
            raise UserError(f"best-of-N samples: temperature must be > 0, got {temperature!r}")
        self.n, self.verifier, self.aggregation, self.temperature = (
            n,
            verifier,
            aggregation,
            float(temperature),
        )
        self.name = f"best-of-{n}({verifier})"

    def search(self, runner: Runner) -> tuple[list[Episode], list[EpisodeState]]:
        roots = [Path(problem=i, state=state) for i, state in enumerate(runner.roots)]
        # The first step of all n paths comes from one prompt: one row with n samples.
        first = runner.extend(roots, self.n, self.temperature)
        paths = [child for children in first for child in children]
        finished = runner.complete(paths, self.temperature)
        if self.verifier != "visible":
            runner.score([p for p in finished if p.steps])
        key = verifier_key(runner, self.verifier, self.aggregation)
        chosen = []
        for problem, root in enumerate(roots):
            candidates = [p for p in finished if p.problem == problem]
            # max() keeps the first of equals: the earliest sample wins a tie.
            chosen.append(max(candidates, key=key) if candidates else root)
        return [runner.episode(path, self.name) for path in chosen], [p.state for p in chosen]
