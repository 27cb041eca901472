"""CandidateChoiceEnv: SB3's and Gymnasium's env checkers, the observation layout, the action's meaning,
seeded repeats, embeddings and argument errors."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env

from codegym.agents.candidate_env import (
    BLANK_STEP,
    CANDIDATE_FEATURES,
    CandidateChoiceEnv,
    hashed_embedding,
)
from codegym.tasks import load_tasks

SYNTHETIC = {"tasks": "synthetic", "split": "train", "task_options": {"max_ops": 1}}


@pytest.fixture(scope="module")
def train_tasks():
    return load_tasks("synthetic", split="train", max_ops=1).tasks(6, seed=0)


@pytest.fixture
def make_env(sandbox_factory, mixed_policy_factory, train_tasks):
    """Wrappers over a CodeReason env on the shared local sandbox; closed after the test."""
    made = []

    def make(policy=None, **kwargs):
        policy = policy or mixed_policy_factory(train_tasks)
        env_kwargs = {"tasks": train_tasks, "sandbox": sandbox_factory("local"), "max_steps": 4}
        env = CandidateChoiceEnv(policy=policy, env_kwargs=env_kwargs, **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


@pytest.fixture(scope="module")
def tiny_policy():
    """The tiny policy (tests/conftest.py keeps torch on one thread)."""
    from codegym.models import load_policy

    return load_policy("tiny", device="cpu")


def test_sb3_and_gymnasium_checkers_pass_with_the_tiny_policy(sandbox_factory, tiny_policy):
    inner = gym.make("CodeReason-v0", sandbox=sandbox_factory("local"), **SYNTHETIC)
    env = CandidateChoiceEnv(inner, policy=tiny_policy, candidates=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert [str(w.message) for w in caught] == []
    assert env.embedding == "model" and env.embed_dim == 128
    assert env.observation_space.shape == (128 + 1 + 3 * (128 + len(CANDIDATE_FEATURES)),)
    assert env.action_space == gym.spaces.Discrete(3)
    # Seeded resets repeat exactly: same task, same candidates, same embedding bits.
    first, info = env.reset(seed=11)
    again, info_again = env.reset(seed=11)
    np.testing.assert_array_equal(first, again)
    assert info["task_id"] == info_again["task_id"] and info["candidates"] == info_again["candidates"]
    assert len(info["candidates"]) == 3 and all(isinstance(text, str) for text in info["candidates"])
    env.close()
    inner.close()


def test_gymnasium_checker_passes_and_observation_layout(make_env):
    env = make_env(candidates=4, embedding="hashed", hashed_dim=32)
    gym_check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=0)
    dim, width = 32, 32 + len(CANDIDATE_FEATURES)
    assert observation.shape == (dim + 1 + 4 * width,) == env.observation_space.shape
    assert observation.dtype == np.float32 and env.observation_space.contains(observation)
    assert np.linalg.norm(observation[:dim]) == pytest.approx(1.0, abs=1e-5)  # the state's unit embedding
    assert observation[dim] == 0.0  # step 0 of max_steps
    slots = observation[dim + 1 :].reshape(4, width)
    for sample, slot in zip(env.offer, slots, strict=True):
        assert np.linalg.norm(slot[:dim]) == pytest.approx(1.0, abs=1e-5)
        expected = np.exp(sample.logprob / sample.num_tokens)
        assert slot[dim] == pytest.approx(expected, rel=1e-5)  # geometric-mean token probability
        assert slot[dim + 2] == float("```python" in sample.text)  # is-code flag


def test_action_i_plays_candidate_i(make_env):
    env = make_env(candidates=3)
    env.reset(seed=3)
    offer = [sample.text for sample in env.offer]
    assert len(set(offer)) > 1, "the seeded policy should offer different steps here"
    for index in range(3):
        env.reset(seed=3)
        assert [sample.text for sample in env.offer] == offer
        _, _, terminated, _, info = env.step(index)
        assert env.env.unwrapped.get_state().steps == (offer[index],)
        assert info["candidate_index"] == index and info["candidate_text"] == offer[index]
        assert info["steps"] == (offer[index],)  # the wrapped env's info is kept
        assert terminated == ("```python" in offer[index])
        if terminated:
            assert info["candidates"] == () and "hidden_pass_rate" in info
        else:
            assert len(info["candidates"]) == 3


def test_episode_end_zeroes_the_candidate_slots_and_step_needs_reset(make_env):
    env = make_env(candidates=2, embedding="hashed", hashed_dim=16)
    env.reset(seed=0)
    done = False
    while not done:
        code = [i for i, s in enumerate(env.offer) if "```python" in s.text]
        observation, _, terminated, truncated, _ = env.step(code[0] if code else 0)
        done = terminated or truncated
    assert np.all(observation[17:] == 0.0) and np.linalg.norm(observation[:16]) > 0.99
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_seeds_come_from_np_random(make_env):
    env = make_env(candidates=2)
    first, _ = env.reset(seed=5)
    seeds = list(env.policy.seeds)
    again, _ = env.reset(seed=5)
    np.testing.assert_array_equal(first, again)
    assert env.policy.seeds == seeds * 2
    env.reset(seed=6)
    assert env.policy.seeds[-1] != seeds[-1]
    assert (env.compute["policy_calls"], env.compute["candidates_sampled"]) == (3, 6)


def test_a_blank_candidate_is_played_as_a_placeholder_and_said_so(
    make_env, mixed_policy_factory, train_tasks
):
    env = make_env(mixed_policy_factory(train_tasks, blank=True), candidates=2)
    env.reset(seed=0)
    _, _, _, _, info = env.step(1)
    assert info["candidate_text"] == BLANK_STEP
    assert "blank" in info["candidate_note"]
    assert env.env.unwrapped.get_state().steps == (BLANK_STEP,)


def test_hashed_embedding_is_deterministic_and_signed():
    vector = hashed_embedding("def solve(x): return x", dim=64)
    np.testing.assert_array_equal(vector, hashed_embedding("def solve(x): return x", dim=64))
    grams = sum(len("def solve(x): return x") - n + 1 for n in (2, 3, 4))
    assert vector.shape == (64,) and vector.dtype == np.float32
    assert np.abs(vector).sum() <= grams and (vector > 0).any() and (vector < 0).any()
    assert not np.array_equal(vector, hashed_embedding("def solve(x): return -x", dim=64))
    assert not hashed_embedding("", dim=8).any()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"candidates": 0}, ValueError, "candidates"),
        ({"candidates": 2.0}, ValueError, "candidates"),
        ({"embedding": "bert"}, ValueError, "embedding must be one of"),
        ({"embedding": "model"}, ValueError, "embedding='hashed'"),
        ({"temperature": -1}, ValueError, "temperature"),
        ({"hashed_dim": 0}, ValueError, "hashed_dim"),
    ],
)
def test_bad_arguments_are_refused(make_env, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_env(**kwargs)


def test_bad_actions_and_env_arguments_are_refused(make_env, sandbox_factory):
    env = make_env(candidates=2)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"candidate index in \[0, 2\)"):
        env.step(2)
    with pytest.raises(ValueError, match="not both"):
        CandidateChoiceEnv(env.env, policy=env.policy, env_kwargs={"max_steps": 3})
    with pytest.raises(TypeError, match="sample"):
        CandidateChoiceEnv(env.env, policy=object())
