"""``codegym solve`` and ``codegym search`` on Ray workers (``--ray-address``).

Each worker loads its own policy (and PRM) replica, starts a sandbox on its node and builds the env and
the agent once; then it solves whole ``--batch-size`` batches, the same unit one process solves, with the
same seed, so the episodes are the ones a single process would produce.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from dataclasses import dataclass
from typing import Any

# Set by the command machinery; not data, and not needed (or picklable) on a worker.
_LOCAL_ONLY = ("run", "command_parser")


@dataclass(frozen=True)
class RemoteAgent:
    """What the summary needs of an agent that ran on the workers: its name."""

    name: str


def _setup(settings: dict[str, Any], tasks: list) -> tuple[Any, Any, Any]:
    import gymnasium as gym

    import codegym  # noqa: F401  (registers CodeReason-v0)
    from codegym.cli.common import model_options
    from codegym.cli.solve import make_agent, make_budget, needs_prm
    from codegym.distributed import worker_sandbox
    from codegym.models import load_policy, load_prm

    args = argparse.Namespace(**settings)
    policy = load_policy(args.policy, **model_options(args, args.policy))
    prm = (
        load_prm(args.prm, **({"device": args.device} if getattr(args, "device", None) else {}))
        if needs_prm(args)
        else None
    )
    env = gym.make(
        "CodeReason-v0",
        tasks=tasks,
        sandbox=worker_sandbox(args.sandbox),
        sandbox_workers=1,
        max_steps=args.max_steps,
        visible_tests="tcg" if args.visible_tests == "tcg" else None,
    )
    return make_agent(args, policy, prm), env, make_budget(args)


def _solve_batch(seed: int, state: tuple[Any, Any, Any], task_ids: list[str]) -> list:
    agent, env, budget = state
    return agent.solve_many(env, task_ids, budget, seed=seed)


def solve_on_ray(
    args: argparse.Namespace, tasks: list, *, progress_label: str
) -> tuple[RemoteAgent, list, float]:
    """Solve ``tasks`` in ``--batch-size`` batches over Ray workers; returns (agent, episodes, seconds)."""
    from tqdm import tqdm

    from codegym.cli.common import batches
    from codegym.distributed import map_chunks

    settings = {key: value for key, value in vars(args).items() if key not in _LOCAL_ONLY}
    chunks = [[task.task_id for task in batch] for batch in batches(tasks, args.batch_size)]
    started = time.perf_counter()
    with tqdm(total=len(tasks), desc=progress_label, unit="task", file=sys.stderr) as bar:
        results = map_chunks(
            functools.partial(_setup, settings, list(tasks)),
            functools.partial(_solve_batch, args.seed),
            chunks,
            address=args.ray_address,
            workers=args.ray_workers,
            on_chunk=lambda _index, episodes: bar.update(len(episodes)),
        )
    episodes = [episode for chunk in results for episode in chunk]
    return RemoteAgent(episodes[0].agent if episodes else args.agent), episodes, time.perf_counter() - started
