"""Search agents run on the CodeReason env itself, and say so when a user's wrapper is bypassed."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest

from codegym.agents import GreedyAgent
from codegym.models import load_policy
from codegym.tasks.synthetic import SyntheticTasks


@pytest.fixture(scope="module")
def policy():
    return load_policy("tiny", device="cpu")


def make_env(sandbox_factory):
    task = SyntheticTasks("test", max_ops=1).tasks(1, seed=0)[0]
    return gym.make("CodeReason-v0", tasks=[task], sandbox=sandbox_factory("local"), max_steps=4), task


def test_a_plain_env_gives_no_warning(policy, sandbox_factory):
    env, task = make_env(sandbox_factory)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [episode] = GreedyAgent(policy).solve_many(env, [task.task_id])
    assert episode.task_id == task.task_id


def test_a_users_wrapper_is_named_as_bypassed_and_does_not_change_the_episode(policy, sandbox_factory):
    env, task = make_env(sandbox_factory)
    [plain] = GreedyAgent(policy).solve_many(env, [task.task_id])
    doubled = gym.wrappers.TransformReward(env, lambda reward: 2 * reward)
    with pytest.warns(UserWarning, match="wrappers TransformReward are bypassed"):
        [wrapped] = GreedyAgent(policy).solve_many(doubled, [task.task_id])
    assert any(plain.rewards)
    assert wrapped.rewards == plain.rewards  # the wrapper's reward did not apply, as the warning says
