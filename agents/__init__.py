"""Consumers of the CodeReason env: greedy, best-of-N, beam search, MCTS and RL agents.

Agents use only the public API of ``codegym`` and ``gymnasium``, like any user's own agent. Every search
agent has ``solve(env, budget) -> Episode`` and ``solve_many(env, task_ids, budget)``, and reports its
:class:`Spend` (policy calls, steps generated, tokens, PRM calls, sandbox runs, wall time).

Example:
    >>> import gymnasium as gym, codegym
    >>> from codegym.agents import MCTSAgent, Budget
    >>> from codegym.models import load_policy
    >>> env = gym.make("CodeReason-v0", tasks="synthetic", visible_tests="tcg")  # doctest: +SKIP
    >>> _ = env.reset(seed=0)  # doctest: +SKIP
    >>> episode = MCTSAgent(load_policy("tiny"), simulations=8).solve(env, Budget(steps_generated=64))  # doctest: +SKIP
"""

from __future__ import annotations

from codegym.agents.base import Agent, Episode, Path, Runner
from codegym.agents.beam import BeamSearchAgent
from codegym.agents.budget import Budget, Spend
from codegym.agents.mcts import MCTSAgent, Node, SearchTree
from codegym.agents.sampling import BestOfNAgent, GreedyAgent, SamplingAgent
from codegym.agents.trees import (
    solved_paths,
    tree_rows,
    tree_to_dict,
    tree_to_html,
    trees_dataset,
    write_html,
    write_json,
)

__all__ = [
    # the interface
    "Agent",
    "Budget",
    "Episode",
    "Path",
    "Runner",
    "Spend",
    # search agents
    "BeamSearchAgent",
    "BestOfNAgent",
    "GreedyAgent",
    "MCTSAgent",
    "SamplingAgent",
    # search trees as data
    "Node",
    "SearchTree",
    "solved_paths",
    "tree_rows",
    "tree_to_dict",
    "tree_to_html",
    "trees_dataset",
    "write_html",
    "write_json",
]
