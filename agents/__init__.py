"""Consumers of the CodeReason env: greedy, sampling, best-of-N, beam search and MCTS agents, the agent
registry, ``rollout``, and the env as stable-baselines3 sees it.

:class:`CandidateChoiceEnv` turns the env into Box observations and a Discrete choice among the policy's
candidate steps for stable-baselines3. Training on the env's rewards (policy gradient on the policy LM,
SB3's PPO over candidates) lives in :mod:`codegym.training`.

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
from codegym.agents.rollouts import rollout
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
from codegym.lazy import lazy_exports

# The SB3 view of the env pulls in torch: it loads on first use.
__getattr__, __dir__ = lazy_exports(
    "codegym.agents",
    {
        "CandidateChoiceEnv": "codegym.agents.candidate_env",
    },
)

__all__ = [
    # the interface
    "Agent",
    "Budget",
    "Episode",
    "Path",
    "Runner",
    "Spend",
    # playing a policy: episodes of every task (codegym eval, the loop's checks, policy gradient)
    "rollout",
    # search agents
    "BeamSearchAgent",
    "BestOfNAgent",
    "GreedyAgent",
    "MCTSAgent",
    "SamplingAgent",
    # the env as stable-baselines3 sees it
    "CandidateChoiceEnv",
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
