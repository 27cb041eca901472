"""CodeGym for TRL's ``GRPOTrainer``: two routes to the same env.

- **Reward functions** (:class:`CodeTestReward`): ``reward_funcs=[CodeTestReward(...)]``. The trainer
  generates whole episodes (reasoning steps, then code); the reward function plays each completion
  through ``CodeReason-v0`` and sends every completion's code to the sandbox in one batch. The visible
  tests pay, the hidden ones are logged (``hidden_pass_rate``), and any of the env's reward schemes
  applies. :func:`grpo_dataset` makes the prompts, with a ``task_id`` column.
- **Tools** (:class:`CodeReasonToolEnv`, :func:`environment_factory`):
  ``environment_factory=environment_factory(...)``. An episode becomes tools the model calls
  (``run_tests`` on the visible tests, ``submit`` the final code) and ``get_reward()`` is the env's
  return. TRL needs a chat template that supports tool calls; for models without one,
  ``trl.chat_template_utils.qwen2_5_chat_template`` works.

On a CPU, pass ``GRPOConfig(use_cpu=True, bf16=False, gradient_checkpointing=False)``: GRPOConfig turns
both on by default, and a step of the tiny model then takes several times longer.

Importing this package does not import TRL; the trainer is the caller's.
"""

from __future__ import annotations

from codegym.integrations.trl.data import grpo_dataset, split_steps
from codegym.integrations.trl.rewards import CodeTestReward, EpisodeScore
from codegym.integrations.trl.tools import CodeReasonToolEnv, ToolEnvFactory, environment_factory

__all__ = [
    # reward functions for reward_funcs=
    "CodeTestReward",
    "EpisodeScore",
    # an episode as tools, for environment_factory=
    "CodeReasonToolEnv",
    "ToolEnvFactory",
    "environment_factory",
    # prompts and completions
    "grpo_dataset",
    "split_steps",
]
