"""Rewards for CodeReason-v0: process reward models, outcome functions and the schemes that combine them."""

from __future__ import annotations

from codegym.rewards.outcome import OUTCOMES, AllPass, CompiledPassRate, OutcomeFn, make_outcome, pass_rate
from codegym.rewards.prm import (
    AGGREGATIONS,
    ProcessRewardModel,
    aggregate,
    checked_batch_scores,
    checked_scores,
)
from codegym.rewards.schemes import (
    ALPHA_SCHEDULES,
    SCHEMES,
    CallableReward,
    ConstantAlpha,
    DenseReward,
    GatedOutcome,
    LinearAlpha,
    LogAlpha,
    O1CoderReward,
    PotentialShaping,
    Reward,
    RewardContext,
    RewardFn,
    RewardScheme,
    TerminalReward,
    make_reward_scheme,
)

__all__ = [
    # process rewards
    "AGGREGATIONS",
    "ProcessRewardModel",
    "aggregate",
    "checked_batch_scores",
    "checked_scores",
    # outcomes
    "OUTCOMES",
    "AllPass",
    "CompiledPassRate",
    "OutcomeFn",
    "make_outcome",
    "pass_rate",
    # schemes
    "ALPHA_SCHEDULES",
    "SCHEMES",
    "CallableReward",
    "ConstantAlpha",
    "DenseReward",
    "LinearAlpha",
    "LogAlpha",
    "O1CoderReward",
    "PotentialShaping",
    "Reward",
    "RewardContext",
    "RewardFn",
    "RewardScheme",
    "TerminalReward",
    "GatedOutcome",
    "make_reward_scheme",
]
