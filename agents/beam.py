"""Step-level beam search guided by a process reward model (search-and-learn's beam search).

At each depth every live beam proposes ``expansions`` next steps (one policy call for all beams of all
problems), the steps are played (code runs in one sandbox batch), the PRM scores every new path (one
batched call), and the ``beam_width`` best unfinished paths by aggregated PRM score live on. A path that
writes code is finished. The search stops when ``beam_width`` paths have finished, no beam is left,
``max_steps`` is reached, or the budget runs out; the verifier then picks among the finished paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codegym.agents.base import Agent, Episode, Path, Runner, check_verifier, verifier_key
from codegym.errors import UserError
from codegym.rewards import aggregate
from codegym.rewards.prm import AGGREGATIONS

if TYPE_CHECKING:
    from codegym.env import EpisodeState
    from codegym.models.policy import Policy
    from codegym.rewards import ProcessRewardModel


class BeamSearchAgent(Agent):
    """Keep the ``beam_width`` best partial paths by PRM score, widening each by ``expansions`` steps.

    Args:
        policy: writes the steps.
        prm: the process reward model that ranks partial paths (required).
        beam_width: partial paths kept per depth (and finished paths that end the search).
        expansions: next steps sampled per kept path.
        aggregation: how a path's step scores become its rank (``"last"``, ``"min"``, ``"prod"``, ``"mean"``).
        verifier: ranks the finished paths: ``"prm"`` (the default), ``"visible"`` or ``"both"``.
        temperature: sampling temperature of the expansions (> 0).
        **options: ``seed``, ``max_new_tokens`` (see :class:`~codegym.agents.Agent`).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        prm: ProcessRewardModel,
        beam_width: int = 4,
        expansions: int = 4,
        aggregation: str = "last",
        verifier: str = "prm",
        temperature: float = 1.0,
        **options,
    ) -> None:
        if prm is None:
            raise UserError(
                "beam search is guided by a process reward model: pass prm= (e.g. load_prm('tiny'))"
            )
        super().__init__(policy, prm=prm, **options)
        for name, value in (("beam_width", beam_width), ("expansions", expansions)):
            if not (isinstance(value, int) and value >= 1):
                raise UserError(f"{name} must be an int >= 1, got {value!r}")
        if aggregation not in AGGREGATIONS:
            raise UserError(f"unknown aggregation {aggregation!r}: choose one of {', '.join(AGGREGATIONS)}")
        check_verifier(verifier, prm)
        if not (isinstance(temperature, int | float) and temperature > 0):
            raise UserError(
                f"beam search samples its expansions: temperature must be > 0, got {temperature!r}"
            )
        self.beam_width, self.expansions = beam_width, expansions
        self.aggregation, self.verifier, self.temperature = aggregation, verifier, float(temperature)
        self.name = f"beam({beam_width}x{expansions})"

    def search(self, runner: Runner) -> tuple[list[Episode], list[EpisodeState]]:
        roots = [Path(problem=i, state=state) for i, state in enumerate(runner.roots)]
        beams = {i: [root] for i, root in enumerate(roots)}
        finished: dict[int, list[Path]] = {i: [] for i in beams}
        best_partial = dict(enumerate(roots))
        while any(beams.values()):
            live = [path for paths in beams.values() for path in paths]
            children = [
                c
                for group in runner.extend(live, self.expansions, self.temperature, unique=True)
                for c in group
            ]
            runner.score(children)
            rank = lambda path: aggregate(path.scores, self.aggregation)  # noqa: E731
            for problem in beams:
                mine = [c for c in children if c.problem == problem]
                finished[problem].extend(c for c in mine if c.finished)
                open_paths = sorted((c for c in mine if not c.finished), key=rank, reverse=True)
                if open_paths and (
                    best_partial[problem] is roots[problem]
                    or rank(open_paths[0]) >= rank(best_partial[problem])
                ):
                    best_partial[problem] = open_paths[0]
                done = len(finished[problem]) >= self.beam_width
                beams[problem] = [] if done else open_paths[: self.beam_width]
        key = verifier_key(runner, self.verifier, self.aggregation)
        chosen = []
        for problem in beams:
            candidates = finished[problem]
            if candidates:
                chosen.append(max(candidates, key=key))
            else:  # nothing finished (budget or empty steps): report the best partial path, without code
                path = best_partial[problem]
                path.end = path.end or "budget"
                chosen.append(path)
        return [runner.episode(path, self.name) for path in chosen], [p.state for p in chosen]
