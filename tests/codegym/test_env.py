"""CodeReason-v0: conformance, determinism, snapshots, rewards through the env, errors, HumanEval."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import codegym
from codegym.env import CodeReasonEnv
from codegym.sandbox import CallTest
from codegym.steps import parse_state, render_state
from codegym.tasks import Task

CODE = "Here is the code.\n```python\n{}\n```"
GOOD = CODE.format("def double(x):\n    return 2 * x")
HALF = CODE.format("def double(x):\n    return 4 if x == 2 else 0")


@pytest.fixture
def make_env(sandbox_factory):
    """Envs on the shared local sandbox, closed after the test."""
    made = []

    def make(env_id="CodeReason-v0", **kwargs):
        kwargs.setdefault("sandbox", sandbox_factory("local"))
        env = gym.make(env_id, **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


@pytest.mark.parametrize("env_id", codegym.ENV_IDS)
@pytest.mark.parametrize("tasks", ["synthetic", "humaneval"])
def test_check_env_passes_without_warnings(make_env, env_id, tasks):
    env = make_env(env_id, tasks=tasks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    assert [str(warning.message) for warning in caught] == []


def test_every_registered_id_is_in_the_registry():
    assert set(codegym.ENV_IDS) <= set(gym.registry)
    assert gym.spec("CodeReason-v0").vector_entry_point == "codegym.vector:CodeReasonVectorEnv"


def test_full_episode_with_rewards_terms_and_process_rewards(make_env, double_task, stub_prm):
    env = make_env(tasks=[double_task], process_reward=stub_prm, reward="dense", test_set="hidden")
    observation, info = env.reset(seed=0)
    assert observation == render_state(double_task.problem, [])
    assert info["task_id"] == "toy/double" and info["entry_point"] == "double" and info["step_index"] == 0

    observation, reward, terminated, truncated, info = env.step("Outline: return x times two")
    assert (reward, terminated, truncated) == (pytest.approx(0.8), False, False)
    assert info["step_kind"] == "outline" and info["process_reward"] == 0.8 and info["outcome"] is None

    observation, reward, terminated, truncated, info = env.step(HALF)
    assert terminated and not truncated
    assert info["outcome"] == 0.5  # one of the two hidden tests
    assert reward == pytest.approx(0.9 + 0.5)
    assert info["reward_terms"] == pytest.approx(
        {
            "process_reward": 0.9,
            "outcome": 0.5,
            "weighted_process": 0.9,
            "weighted_outcome": 0.5,
            "reward": 1.4,
        }
    )
    assert info["paid_by"] == "hidden" and info["test_report"].total == 2
    assert info["hidden_pass_rate"] == 0.5 and info["hidden_all_passed"] is False
    assert info["step_kinds"] == ("outline", "code") and info["steps"][1] == HALF
    assert info["code"] == "def double(x):\n    return 4 if x == 2 else 0" and info["code_fence_closed"]
    assert parse_state(observation) == (double_task.problem, ["Outline: return x times two", HALF.strip()])
    assert env.observation_space.contains(observation)


def test_a_block_cut_by_the_token_limit_runs_its_whole_statements(make_env, double_task):
    # A finished function, then a test loop the token limit cut mid-list (HumanEval/6 with the Qwen coder).
    cut = "```python\ndef double(x):\n    return 2 * x\n\n# Check it\nfor case in [(2, 4), (5, 10), (7,"
    env = make_env(tasks=[double_task], reward="terminal")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(cut)
    assert terminated and not info["code_fence_closed"]
    assert info["code"] == "def double(x):\n    return 2 * x\n\n# Check it"
    assert info["hidden_all_passed"] is True


def test_a_cut_block_with_no_whole_statement_still_fails(make_env, double_task):
    env = make_env(tasks=[double_task], reward="terminal")
    env.reset(seed=0)
    _, reward, _, _, info = env.step("```python\ndef double(x):\n    return [2 * x,")
    assert info["code"] == "def double(x):\n    return [2 * x," and info["hidden_all_passed"] is False
    assert reward == 0.0


def test_visible_tests_pay_and_hidden_tests_judge(make_env, double_task):
    env = make_env(tasks=[double_task], reward="terminal")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(HALF)
    # The weak visible test is gamed; the hidden verdict shows the gap.
    assert reward == 1.0 and info["paid_by"] == "visible" and info["visible_source"] == "task"
    assert info["test_report"].total == 1 and info["hidden_report"].total == 2
    assert info["hidden_pass_rate"] == 0.5


def test_visible_defaults_to_hidden(make_env):
    task = Task("toy/one", "Return 1 from `one()`.", "one", (CallTest("one", (), expected=1),))
    env = make_env(tasks=[task], reward="terminal")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(CODE.format("def one():\n    return 1"))
    assert (
        reward == 1.0 and info["visible_source"] == "hidden" and info["test_report"] is info["hidden_report"]
    )


def test_gated_reward_pays_the_outcome_times_the_weakest_step(make_env, double_task, stub_prm):
    env = make_env(tasks=[double_task], process_reward=stub_prm, reward="gated", test_set="hidden")
    env.reset(seed=0)
    _, reward, _, _, _ = env.step("Outline: return x times two")
    assert reward == 0.0
    _, reward, terminated, _, info = env.step(HALF)
    assert terminated and info["outcome"] == 0.5
    assert reward == pytest.approx(0.5 * 0.8) and info["reward_terms"]["gate"] == pytest.approx(0.8)


def test_a_reward_function_sees_the_steps_so_far(make_env, double_task):
    seen = []
    env = make_env(tasks=[double_task], reward=lambda context, **kw: seen.append(context.steps) or 0.0)
    env.reset(seed=0)
    env.step("Outline: return x times two")
    env.step(HALF)
    assert seen == [("Outline: return x times two",), ("Outline: return x times two", HALF.strip())]


def test_truncation_pays_outcome_zero_and_says_so(make_env, double_task, stub_prm):
    env = make_env(tasks=[double_task], process_reward=stub_prm, reward="o1coder", max_steps=2)
    env.reset(seed=0)
    env.step("Outline: double it")
    _, reward, terminated, truncated, info = env.step("Refine: multiply x by 2")
    assert truncated and not terminated
    assert info["outcome"] == 0.0 and "without a code action" in info["outcome_note"]
    assert reward == pytest.approx(1.0 * 0.0)  # alpha(0) = 1: phi is the outcome alone


def test_o1coder_reward_follows_the_training_step(make_env, double_task, stub_prm):
    env = make_env(tasks=[double_task], process_reward=stub_prm, test_set="hidden")
    env.reset(seed=0, options={"training_step": 50})  # alpha = 0.5
    env.step("Outline: double it")
    _, reward, *_, info = env.step(HALF)
    process = (0.9 * 0.8 + 0.81 * 0.9) / 2
    assert info["reward_terms"]["alpha"] == pytest.approx(0.5)
    assert reward == pytest.approx(0.5 * 0.5 + 0.5 * process)


def test_determinism_same_seed_same_tasks_and_rewards(make_env, stub_prm):
    def rollout(seed):
        env = make_env(tasks="synthetic", process_reward=stub_prm, reward="dense")
        env.action_space.seed(seed)
        trace = []
        observation, info = env.reset(seed=seed)
        for episode in range(4):
            task = env.unwrapped.task
            steps = list(task.reference_steps) if episode % 2 == 0 else [env.action_space.sample()] * 8
            for step in steps:
                observation, reward, terminated, truncated, info = env.step(step)
                trace.append(
                    (info["task_id"], observation, reward, terminated, truncated, info["reward_terms"])
                )
                if terminated or truncated:
                    break
            observation, info = env.reset()
            trace.append(info["task_id"])
        return trace

    first, second = rollout(7), rollout(7)
    assert first == second
    assert rollout(8) != first


def test_reference_episode_passes_on_synthetic(make_env):
    env = make_env(tasks="synthetic", split="test", reward="terminal")
    for seed in range(5):
        env.reset(seed=seed)
        for step in env.unwrapped.task.reference_steps:
            _, reward, terminated, _, info = env.step(step)
        assert terminated and reward == 1.0 and info["hidden_all_passed"]
        assert info["step_kinds"][0] == "outline" and info["step_kinds"][-1] == "code"


def test_snapshot_restore_round_trip_and_verdict_cache(make_env, double_task, stub_prm):
    env = make_env(tasks=[double_task], process_reward=stub_prm, reward="dense")
    env.reset(seed=0)
    env.step("Outline: double it")
    snapshot = env.unwrapped.get_state()
    first = env.step(GOOD)
    assert first[4]["verdict_cached"] is False
    calls = stub_prm.calls

    observation = env.unwrapped.set_state(snapshot)
    assert observation == render_state(double_task.problem, ["Outline: double it"])
    assert env.unwrapped.get_state() == snapshot
    again = env.step(GOOD)
    assert again[4]["verdict_cached"] is True and stub_prm.calls == calls  # nothing recomputed
    assert again[:4] == first[:4] and again[4]["reward_terms"] == first[4]["reward_terms"]
    assert again[4]["test_report"] == first[4]["test_report"]

    env.unwrapped.set_state(snapshot)  # a sibling branch from the same node
    sibling = env.step("Refine: multiply by 2")
    assert sibling[4]["steps"] == ("Outline: double it", "Refine: multiply by 2")
    stats = env.unwrapped.cache_stats
    assert stats["verdict_hits"] >= 2 and stats["process_reward_hits"] >= 1


def test_step_batch_plays_each_action_from_its_snapshot_in_one_sandbox_batch(make_env, double_task, stub_prm):
    env = make_env(tasks=[double_task], process_reward=stub_prm, reward="dense")
    env.reset(seed=0)
    base = env.unwrapped
    root = base.get_state()
    env.step("Outline: return x times two")
    outlined = base.get_state()
    transitions = base.step_batch([root, outlined, outlined], ["Outline: again", GOOD, HALF])
    # The env's own episode is where it was.
    assert base.get_state() is outlined
    first, good, half = transitions
    assert first.state.steps == ("Outline: again",) and not first.terminated and first.sandbox_runs == 0
    assert first.reward == pytest.approx(0.8) and first.info["step_index"] == 1
    assert good.terminated and good.info["hidden_all_passed"] and good.state.steps == (*outlined.steps, GOOD)
    assert half.terminated and half.info["hidden_pass_rate"] == 0.5
    assert (good.sandbox_runs, half.sandbox_runs) == (2, 2)  # visible and hidden tests, one batch
    # The same as step() from the snapshot, and a repeat is answered by the verdict cache.
    base.set_state(outlined)
    _, reward, terminated, _, info = env.step(GOOD)
    assert (reward, terminated, info["hidden_all_passed"]) == (good.reward, True, True)
    assert info["verdict_cached"] and base.step_batch([outlined], [GOOD])[0].sandbox_runs == 0
    with pytest.raises(ValueError, match="one action per state"):
        base.step_batch([root], ["a", "b"])


class BatchedKeywordPRM:
    """The keyword PRM with a ``score_batch`` (as a transformers PRM has), counting both kinds of call."""

    def __init__(self, broken: bool = False) -> None:
        from tests.conftest import KeywordPRM

        self.inner, self.broken, self.batches = KeywordPRM(), broken, []

    def score(self, problem, steps):
        return self.inner.score(problem, steps)

    def score_batch(self, paths):
        self.batches.append(len(paths))
        scores = [self.inner.score(problem, steps) for problem, steps in paths]
        return scores[:-1] if self.broken else scores


def test_step_batch_scores_its_new_paths_in_one_prm_call_and_rewards_as_step_does(make_env, double_task):
    prm = BatchedKeywordPRM()
    env = make_env(tasks=[double_task], process_reward=prm, reward="dense")
    env.reset(seed=0)
    base = env.unwrapped
    root = base.get_state()
    actions = ["Outline: return x times two", "Refine: multiply by 2", "Outline: again", GOOD]
    transitions = base.step_batch([root] * 4 + [root], [*actions, actions[0]])  # the last repeats the first
    assert prm.batches == [4] and prm.inner.calls == 4  # one call for the four distinct paths
    assert base.cache_stats["process_reward_misses"] == 4 and base.cache_stats["process_reward_hits"] == 1
    expected = []
    for action in actions:
        base.set_state(root)
        expected.append(env.step(action)[1])
    assert [t.reward for t in transitions[:4]] == expected and transitions[4].reward == expected[0]
    assert prm.batches == [4]  # stepping them again hit the cache
    broken = make_env(tasks=[double_task], process_reward=BatchedKeywordPRM(broken=True), reward="dense")
    broken.reset(seed=0)
    start = broken.unwrapped.get_state()
    with pytest.raises(ValueError, match="returned 1 score lists for 2 paths"):
        broken.unwrapped.step_batch([start, start], actions[:2])


def test_humaneval_0_canonical_earns_one_and_a_wrong_solution_less(make_env):
    env = make_env(tasks="humaneval", reward="terminal")
    env.reset(options={"task_id": "HumanEval/0"})
    task = env.unwrapped.task
    _, reward, terminated, _, info = env.step(CODE.format(task.reference_solution))
    assert terminated and reward == 1.0 and info["test_report"].total > 1 and info["hidden_all_passed"]
    assert info["program_source"] == "starter_imports+code"

    env.reset(options={"task_id": "HumanEval/0"})
    wrong = "    return False\n"  # a completion of the prompt: right on some tests, wrong on others
    _, reward, _, _, info = env.step(CODE.format(wrong))
    assert info["program_source"] == "starter+code"
    assert 0.0 < reward < 1.0 and not info["hidden_all_passed"]


def test_unknown_task_id_and_options(make_env, double_task):
    env = make_env(tasks=[double_task])
    with pytest.raises(KeyError, match="unknown task id 'toy/triple'"):
        env.reset(options={"task_id": "toy/triple"})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"difficulty": 3})


def test_bad_use_gets_clear_errors(sandbox_factory, double_task):
    env = CodeReasonEnv(tasks=[double_task], sandbox=sandbox_factory("local"), max_step_chars=80)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before"):
        env.step("Outline: x")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="as a str, got int"):
        env.step(3)
    with pytest.raises(ValueError, match="non-empty"):
        env.step("   ")
    with pytest.raises(ValueError, match="81 characters, more than max_step_chars=80"):
        env.step("x" * 81)
    env.step(GOOD)
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step("Outline: again")
    with pytest.raises(TypeError, match="EpisodeState"):
        env.set_state({"steps": []})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"reward": "sparse"}, ValueError, "unknown reward scheme 'sparse'"),
        ({"test_set": "train"}, ValueError, "test_set must be 'visible' or 'hidden'"),
        ({"tasks": "mbpp"}, ValueError, "unknown task source 'mbpp'"),
        ({"max_steps": 0}, ValueError, "max_steps must be"),
        ({"process_reward": "tiny"}, TypeError, "score"),
        ({"outcome": "pass@1"}, ValueError, "unknown outcome"),
        ({"tasks": "humaneval", "max_problem_chars": 100}, ValueError, "max_problem_chars=100"),
    ],
)
def test_bad_arguments_are_named(sandbox_factory, kwargs, error, match):
    kwargs.setdefault("tasks", "synthetic")
    with pytest.raises(error, match=match):
        gym.make("CodeReason-v0", sandbox=sandbox_factory("local"), **kwargs)


def test_unicode_observations_are_in_the_space(make_env):
    task = Task(
        "toy/arrow",
        "Return the string '→ ok' (with an arrow, déjà vu).",
        "arrow",
        (CallTest("arrow", (), expected="→ ok"),),
    )
    env = make_env(tasks=[task])
    observation, _ = env.reset(seed=0)
    observation, *_ = env.step("Outline: return the literal «→ ok»")
    assert "→" in observation and env.observation_space.contains(observation)
    assert env.action_space.contains("Refine: 文字") and not env.action_space.contains("")


def test_render_ansi(make_env, double_task):
    env = make_env(tasks=[double_task], render_mode="ansi")
    observation, _ = env.reset(seed=0)
    assert env.render() == observation


@pytest.mark.parametrize("backend", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_episode_on_every_sandbox_backend(sandbox_factory, double_task, backend):
    env = gym.make("CodeReason-v0", tasks=[double_task], sandbox=sandbox_factory(backend), reward="terminal")
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(GOOD)
    assert (
        terminated and reward == 1.0 and info["hidden_all_passed"] and info["test_report"].backend == backend
    )
    env.close()


def test_vector_env_batches_code_and_autoresets(sandbox_factory, double_task):
    envs = gym.make_vec(
        "CodeReason-v0", num_envs=3, tasks=[double_task], sandbox=sandbox_factory("local"), reward="terminal"
    )
    assert isinstance(envs.unwrapped, codegym.CodeReasonVectorEnv)
    observations, infos = envs.reset(seed=0)
    assert len(observations) == 3 and list(infos["task_id"]) == ["toy/double"] * 3
    observations, rewards, terminated, _truncated, infos = envs.step([GOOD, HALF, "Outline: double"])
    assert rewards.tolist() == [1.0, 1.0, 0.0] and terminated.tolist() == [True, True, False]
    assert infos["hidden_pass_rate"][:2].tolist() == [1.0, 0.5] and infos["_hidden_pass_rate"].tolist() == [
        True,
        True,
        False,
    ]
    assert all(envs.single_observation_space.contains(observation) for observation in observations)
    observations, rewards, terminated, _, infos = envs.step(["ignored", "ignored", GOOD])
    assert rewards.tolist() == [0.0, 0.0, 1.0] and infos["step_index"].tolist() == [0, 0, 2]  # two autoresets
    envs.close()


def test_async_vector_env_through_shared_memory(double_task):
    envs = gym.make_vec(
        "CodeReason-v0",
        num_envs=2,
        vectorization_mode="async",
        tasks=[double_task],
        sandbox="local",
        sandbox_workers=1,
    )
    try:
        observations, _infos = envs.reset(seed=3)
        assert observations[0] == render_state(double_task.problem, [])
        observations, rewards, terminated, *_ = envs.step(["Outline: naïve → double", GOOD])
        assert observations[0].endswith("Outline: naïve → double")
        assert rewards.tolist()[1] == pytest.approx(1.0) and terminated.tolist() == [False, True]
    finally:
        envs.close()


def test_seeded_task_draws_use_np_random(make_env):
    env = make_env(tasks="synthetic")
    ids = [env.reset(seed=seed)[1]["task_id"] for seed in (1, 2, 1)]
    assert ids[0] == ids[2] and len(set(ids)) == 2
    assert isinstance(env.unwrapped.np_random, np.random.Generator)
