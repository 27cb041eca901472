"""One way to play tasks with agents, in this process or on Ray workers.

A caller names the models (:class:`Players`: a policy spec, maybe a PRM spec, a sandbox kind) and gives a
picklable ``agents_for(policy, prm) -> {name: agent}``. :func:`play_tasks` loads the models once (here,
or once per Ray worker), then plays the tasks in batches: for each batch, every agent is built fresh, so
a batch never depends on the ones before it, and solves the batch in an env of its own. The same batches
give the same episodes whether they ran here or on workers, and whatever worker took them.

``codegym solve``/``search`` (:mod:`codegym.cli.solve`) and the loop's search and evaluation stages
(:mod:`codegym.loop.stages`) both play through here, and :func:`distributed_rollout` (``codegym eval`` on Ray) loads its
workers' models the same way.

Example:
    >>> from codegym.agents.registry import make_agent
    >>> from codegym.tasks import load_tasks
    >>> def greedy(policy, prm):
    ...     return {"greedy": make_agent("greedy", policy)}
    >>> tasks = load_tasks("synthetic", split="test", max_ops=2).tasks(4, seed=0)
    >>> played = play_tasks(tasks, greedy, Players("tiny", sandbox="local"), batch_size=2)
    >>> [episode.task_id for episode in played["greedy"]] == [task.task_id for task in tasks]
    True
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codegym.errors import UserError

if TYPE_CHECKING:
    from codegym.agents import Agent, Budget, Episode
    from codegym.sandbox import Sandbox
    from codegym.tasks import Task

ENV_KINDS = ("gym", "raw")


@dataclass(frozen=True)
class Players:
    """The models that play, by name (so a Ray worker can load its own replicas).

    Attributes:
        policy: a :func:`codegym.models.load_policy` spec.
        policy_options: ``load_policy``'s keyword arguments (``protocol``, ``device``, ...).
        prm: a :func:`codegym.models.load_prm` spec, or None when no agent scores paths with a PRM.
        prm_options: ``load_prm``'s keyword arguments.
        sandbox: the sandbox kind started where the models load ("ray" means "auto" on a Ray worker).
    """

    policy: str
    policy_options: Mapping[str, Any] = field(default_factory=dict)
    prm: str | None = None
    prm_options: Mapping[str, Any] = field(default_factory=dict)
    sandbox: str = "auto"


@dataclass
class LoadedPlayers:
    """:class:`Players` loaded: the policy, the PRM (or None) and a running sandbox."""

    policy: Any
    prm: Any
    sandbox: Sandbox
    owns_sandbox: bool

    def close(self) -> None:
        if self.owns_sandbox:
            self.sandbox.close()


def worker_sandbox(sandbox: str) -> str:
    """The sandbox a Ray worker starts on its node: the one asked for, with "ray" meaning "auto" there
    (a worker already runs on a node; a ray sandbox inside it would start actors of its own)."""
    return "auto" if sandbox == "ray" else sandbox


def load_players(
    players: Players, *, sandbox: Sandbox | None = None, on_worker: bool = False
) -> LoadedPlayers:
    """Load ``players``' policy and PRM, and start its sandbox unless a running ``sandbox`` is given
    (``on_worker``: on a Ray worker, where "ray" means "auto" and one sandbox worker suffices)."""
    from codegym.models import load_policy, load_prm
    from codegym.sandbox import make_sandbox

    policy = load_policy(players.policy, **players.policy_options)
    prm = load_prm(players.prm, **players.prm_options) if players.prm else None
    if sandbox is not None:
        return LoadedPlayers(policy, prm, sandbox, owns_sandbox=False)
    if on_worker:
        return LoadedPlayers(policy, prm, make_sandbox(worker_sandbox(players.sandbox), workers=1), True)
    return LoadedPlayers(policy, prm, make_sandbox(players.sandbox), owns_sandbox=True)


@dataclass(frozen=True)
class _Game:
    """How one batch is played: everything but the models and the tasks (picklable, for Ray)."""

    agents_for: Callable[[Any, Any], dict[str, Agent]]
    env_kind: str
    env_options: Mapping[str, Any]
    budget: Budget | None
    seed: int

    def play(self, loaded: LoadedPlayers, tasks: list[Task]) -> dict[str, list[Episode]]:
        results = {}
        for name, agent in self.agents_for(loaded.policy, loaded.prm).items():
            env = self._env(tasks, loaded.sandbox)
            try:
                results[name] = agent.solve_many(
                    env, [task.task_id for task in tasks], self.budget, seed=self.seed
                )
            finally:
                env.close()
        return results

    def _env(self, tasks: list[Task], sandbox: Sandbox):
        if self.env_kind == "raw":
            from codegym.env import CodeReasonEnv

            return CodeReasonEnv(tasks=tasks, sandbox=sandbox, **self.env_options)
        import gymnasium as gym

        import codegym  # noqa: F401  (registers CodeReason-v0)

        return gym.make("CodeReason-v0", tasks=tasks, sandbox=sandbox, **self.env_options)


def _load_on_worker(players: Players) -> LoadedPlayers:
    return load_players(players, on_worker=True)


def _play_chunk(game: _Game, loaded: LoadedPlayers, chunk: list[list[Task]]) -> list[dict[str, list]]:
    return [game.play(loaded, batch) for batch in chunk]


def play_tasks(
    tasks: Sequence[Task],
    agents_for: Callable[[Any, Any], dict[str, Agent]],
    players: Players | LoadedPlayers,
    *,
    batch_size: int = 0,
    env_kind: str = "gym",
    env_options: Mapping[str, Any] | None = None,
    budget: Budget | None = None,
    seed: int = 0,
    ray_address: str | None = None,
    ray_workers: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, list[Episode]]:
    """Each agent's episodes on ``tasks``, in task order, played ``batch_size`` tasks at a time.

    Args:
        tasks: the tasks (their hidden tests judge; visible tests come with them or from ``env_options``).
        agents_for: ``agents_for(policy, prm) -> {name: agent}``, called once per batch; with
            ``ray_address`` it must pickle (a module-level function or a ``functools.partial`` of one).
        players: the models: by name (:class:`Players`: loaded here, or once per Ray worker), or loaded
            already (:class:`LoadedPlayers`, played here; the caller closes them).
        batch_size: tasks per batch (0: all at once); one batch is one ``solve_many`` call per agent.
        env_kind: "gym" (``gym.make("CodeReason-v0")``) or "raw" (:class:`~codegym.env.CodeReasonEnv`).
        env_options: the env's keyword arguments (``max_steps``, ``visible_tests``, ``reward``, ...).
        budget: each task's :class:`~codegym.agents.Budget` (None: unlimited).
        seed: every task is reset with it (``solve_many``'s ``seed``).
        ray_address: play the batches on Ray workers of this cluster (each loads its own models and
            starts its own sandbox); None: here.
        ray_workers: how many Ray workers (default: one per CPU of the cluster, at most one per batch).
        on_batch: called with each finished batch's task count (progress bars).

    Raises:
        UserError: a bad ``batch_size`` or ``env_kind``, an env option that :func:`play_tasks` sets
            itself, or loaded players together with ``ray_address``.
    """
    if not (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 0):
        raise UserError(f"batch_size must be an int >= 0 (0: all tasks in one batch), got {batch_size!r}")
    if env_kind not in ENV_KINDS:
        raise UserError(f"env_kind must be one of {', '.join(ENV_KINDS)}, got {env_kind!r}")
    env_options = dict(env_options or {})
    clashing = sorted(set(env_options) & {"tasks", "sandbox"})
    if clashing:
        raise UserError(f"env_options must not set {clashing}: play_tasks passes the batch and its sandbox")
    if ray_address and not isinstance(players, Players):
        raise UserError("loaded models cannot travel to Ray workers: pass Players (names) with ray_address")
    tasks = list(tasks)
    if not tasks:
        return {}
    batches = [tasks[i : i + batch_size] for i in range(0, len(tasks), batch_size)] if batch_size else [tasks]
    game = _Game(agents_for, env_kind, env_options, budget, seed)
    if ray_address:
        from codegym.distributed import map_chunks

        chunked = map_chunks(
            functools.partial(_load_on_worker, players),
            functools.partial(_play_chunk, game),
            [[batch] for batch in batches],
            address=ray_address,
            workers=ray_workers,
            on_chunk=(lambda index, _results: on_batch(len(batches[index]))) if on_batch else None,
        )
        per_batch = [results for [results] in chunked]
    else:
        loaded = load_players(players) if isinstance(players, Players) else players
        try:
            per_batch = []
            for batch in batches:
                per_batch.append(game.play(loaded, batch))
                if on_batch is not None:
                    on_batch(len(batch))
        finally:
            if loaded is not players:
                loaded.close()
    return {name: [episode for results in per_batch for episode in results[name]] for name in per_batch[0]}


# -- rollouts (codegym eval) over Ray workers ---------------------------------------------------------------


def _rollout_chunk(options: dict[str, Any], loaded: LoadedPlayers, tasks: list) -> list:
    from codegym.agents.rollouts import rollout

    return rollout(loaded.policy, tasks, sandbox=loaded.sandbox, **options)


def distributed_rollout(
    policy: str,
    tasks: Sequence[Any],
    *,
    address: str | None = None,
    workers: int | None = None,
    tasks_per_chunk: int = 8,
    sandbox: str = "auto",
    progress: bool = False,
    policy_options: dict[str, Any] | None = None,
    **rollout_options: Any,
) -> list[Any]:
    """:func:`codegym.agents.rollout` over Ray workers, each with its own policy replica and sandbox.

    Args:
        policy: a :func:`codegym.models.load_policy` spec ("tiny", a path, a hub id, "openai:<url>/<model>"
            for one shared policy server); each worker loads its own replica.
        tasks: the tasks; they travel to the workers in chunks of ``tasks_per_chunk``.
        address, workers: see :func:`codegym.distributed.map_chunks`.
        tasks_per_chunk: tasks per unit of work (each chunk's episodes share one policy batch per depth).
        sandbox: the sandbox each worker starts on its node, by name ("ray" means "auto" there).
        progress: a progress bar over episodes, moving as chunks finish.
        policy_options: keyword arguments of ``load_policy`` (``protocol``, ``device``, ...) for every replica.
        **rollout_options: ``samples_per_task``, ``temperature``, ``seed``, ``max_steps``, ... as for rollout.

    Returns:
        The episodes, task by task and samples in order, as :func:`~codegym.agents.rollout` returns them.
    """
    from tqdm import tqdm

    from codegym.distributed import map_chunks

    if not (isinstance(tasks_per_chunk, int) and tasks_per_chunk >= 1):
        raise UserError(f"tasks_per_chunk must be an int >= 1, got {tasks_per_chunk!r}")
    if not isinstance(sandbox, str):
        raise TypeError("sandbox must be a name here (each Ray worker starts its own), not a running sandbox")
    if "sandbox" in rollout_options or "progress" in rollout_options:
        raise UserError("sandbox and progress are distributed_rollout's own arguments")
    from codegym.agents.rollouts import rollout
    from codegym.options import check_keywords

    check_keywords(
        rollout, rollout_options, "distributed_rollout (rollout's options)", taken=("policy", "tasks")
    )
    tasks = list(tasks)
    chunks = [tasks[start : start + tasks_per_chunk] for start in range(0, len(tasks), tasks_per_chunk)]
    samples = rollout_options.get("samples_per_task", 1)
    started = time.perf_counter()
    with tqdm(total=len(tasks) * samples, desc="episodes", unit="episode", disable=not progress) as bar:
        results = map_chunks(
            functools.partial(_load_on_worker, Players(policy, dict(policy_options or {}), sandbox=sandbox)),
            functools.partial(_rollout_chunk, rollout_options),
            chunks,
            address=address,
            workers=workers,
            on_chunk=lambda _index, episodes: bar.update(len(episodes)),
        )
    logging.getLogger("codegym.distributed").info(
        "distributed rollout: %d chunks in %.1f s", len(chunks), time.perf_counter() - started
    )
    return [episode for chunk in results for episode in chunk]


__all__ = [
    "ENV_KINDS",
    "LoadedPlayers",
    "Players",
    "distributed_rollout",
    "load_players",
    "play_tasks",
    "worker_sandbox",
]
