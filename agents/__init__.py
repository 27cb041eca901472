"""Consumers of the CodeReason env: greedy, best-of-N, beam search, MCTS and RL agents.

RL: :class:`CandidateChoiceEnv` turns the env into Box observations and a Discrete choice among the
policy's candidate steps for stable-baselines3 (:func:`train_ppo`); :func:`train_policy_gradient`
fine-tunes the policy LM itself on the env's rewards (GRPO-style or REINFORCE).

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

# The RL agents pull in torch and stable-baselines3: they load on first use.
__getattr__, __dir__ = lazy_exports(
    "codegym.agents",
    {
        "CandidateChoiceEnv": "codegym.agents.candidate_env",
        "PPORun": "codegym.agents.ppo",
        "train_ppo": "codegym.agents.ppo",
        "PolicyGradientResult": "codegym.agents.policy_gradient",
        "train_policy_gradient": "codegym.agents.policy_gradient",
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
    # RL agents
    "CandidateChoiceEnv",
    "PPORun",
    "PolicyGradientResult",
    "train_policy_gradient",
    "train_ppo",
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
