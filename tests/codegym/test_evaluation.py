"""Rollouts through the env in batches, and the pass@k estimator."""

from __future__ import annotations

import math

import pytest

from codegym.agents import rollout
from codegym.evaluation import pass_at_k
from codegym.tasks.synthetic import SyntheticTasks


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (10, 3, 1, 0.3),
        (10, 0, 5, 0.0),
        (10, 10, 1, 1.0),
        (5, 2, 2, 1 - math.comb(3, 2) / math.comb(5, 2)),
        (4, 2, 3, 1.0),
    ],
)
def test_pass_at_k_is_the_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="pass_at_k needs"):
        pass_at_k(n, c, k)


@pytest.fixture(scope="module")
def tasks():
    return SyntheticTasks("test", min_ops=2, max_ops=2).tasks(3, seed=5)


def test_the_reference_policy_solves_every_task_with_one_call_per_depth(
    tasks, scripted_policy_factory, sandbox_factory
):
    policy = scripted_policy_factory(tasks)
    results = rollout(policy, tasks, samples_per_task=2, sandbox=sandbox_factory("local"))
    assert [(r.task_id, r.sample) for r in results] == [(t.task_id, s) for t in tasks for s in (0, 1)]
    assert all(r.hidden_all_passed and r.hidden_pass_rate == 1.0 and r.end == "code" for r in results)
    assert [r.steps for r in results[::2]] == [t.reference_steps for t in tasks]
    # three steps each (outline, refine, code): three batched calls, each with every unfinished episode
    assert [len(call) for call in policy.calls] == [6, 6, 6]
    assert results[0].tokens == sum(len(step.split()) for step in tasks[0].reference_steps)


def test_wrong_code_fails_and_an_empty_step_ends_the_episode(tasks, scripted_policy_factory, sandbox_factory):
    box = sandbox_factory("local")
    wrong = scripted_policy_factory(tasks, replace={2: "```python\ndef solve(x):\n    return None\n```"})
    results = rollout(wrong, tasks, sandbox=box)
    assert all(r.end == "code" and not r.hidden_all_passed for r in results)
    assert all(r.code == "def solve(x):\n    return None" for r in results)
    empty = scripted_policy_factory(tasks, replace={1: "   "})
    results = rollout(empty, tasks, sandbox=box)
    assert all(r.end == "empty_step" and r.code is None and len(r.steps) == 1 for r in results)


def test_running_out_of_steps_is_reported(tasks, scripted_policy_factory, sandbox_factory):
    chatty = scripted_policy_factory(tasks, replace={1: "Refine: more", 2: "Refine: still more"})
    results = rollout(chatty, tasks[:1], max_steps=3, sandbox=sandbox_factory("local"))
    assert results[0].end == "max_steps" and results[0].hidden_pass_rate == 0.0


def test_env_options_choose_the_reward_scheme(tasks, scripted_policy_factory, sandbox_factory, stub_prm):
    policy = scripted_policy_factory(tasks[:1])
    box = sandbox_factory("local")
    terminal = rollout(policy, tasks[:1], sandbox=box, env_options={"reward": "terminal"})[0]
    dense = rollout(
        policy, tasks[:1], sandbox=box, env_options={"reward": "dense", "process_reward": stub_prm}
    )[0]
    assert terminal.rewards == (0.0, 0.0, 1.0) and terminal.total_reward == 1.0
    # dense: the stub PRM's 0.8 (outline) and 0.6 (refine), then 0.9 (code) plus the outcome 1.0
    assert dense.rewards == pytest.approx((0.8, 0.6, 1.9))
    with pytest.raises(ValueError, match="env_options must not set"):
        rollout(policy, tasks[:1], sandbox=box, env_options={"max_steps": 2})


def test_bad_arguments_are_named(tasks, scripted_policy_factory):
    with pytest.raises(ValueError, match="at least one task"):
        rollout(scripted_policy_factory(tasks), [], sandbox="local")
    with pytest.raises(ValueError, match="samples_per_task"):
        rollout(scripted_policy_factory(tasks), tasks, samples_per_task=0, sandbox="local")


@pytest.mark.slow
def test_rollout_is_the_agents_engine_with_their_episodes_and_seeds(tasks, sandbox_factory):
    """``codegym eval``, the loop's evaluation and policy gradient play through one engine: the episodes
    of ``rollout`` are the greedy agent's, step for step, for the same seed; sampling repeats by seed."""
    import gymnasium as gym

    import codegym  # noqa: F401  (registers CodeReason-v0)
    from codegym.agents import Episode, GreedyAgent, SamplingAgent
    from codegym.models import load_policy

    policy, box = load_policy("tiny"), sandbox_factory("local")
    ids = [task.task_id for task in tasks]
    played = rollout(policy, tasks, max_steps=4, max_new_tokens=64, seed=3, sandbox=box)
    env = gym.make("CodeReason-v0", tasks=tasks, sandbox=box, max_steps=4)
    agent = GreedyAgent(policy, seed=3, max_new_tokens=64).solve_many(env, ids, seed=3)
    assert all(isinstance(e, Episode) for e in played)
    assert [(e.steps, e.code, e.hidden_all_passed, e.rewards) for e in played] == [
        (e.steps, e.code, e.hidden_all_passed, e.rewards) for e in agent
    ]
    sampled = rollout(policy, tasks, samples_per_task=2, temperature=1.0, max_steps=4, seed=3, sandbox=box)
    doubled = [task_id for task_id in ids for _ in range(2)]
    by_agent = SamplingAgent(policy, temperature=1.0, seed=3, max_new_tokens=256).solve_many(
        env, doubled, seed=3
    )
    assert [e.steps for e in sampled] == [e.steps for e in by_agent]
    assert [e.sample for e in sampled] == [0, 1] * len(tasks)
    assert sampled[0].steps != sampled[1].steps  # two samples of one task differ
    env.close()


def test_episodes_keep_the_token_ids_a_policy_sampled(tasks, sandbox_factory):
    pytest.importorskip("torch")
    from codegym.models import load_policy

    policy = load_policy("tiny", device="cpu")
    results = rollout(
        policy, tasks[:2], samples_per_task=2, temperature=1.0, seed=0, sandbox=sandbox_factory("local")
    )
    for episode in results:
        assert len(episode.step_token_ids) == len(episode.steps) >= 1
        assert sum(len(ids) for ids in episode.step_token_ids) == episode.tokens
        for step, ids in zip(episode.steps, episode.step_token_ids, strict=True):
            assert policy.tokenizer.decode(ids, skip_special_tokens=True).strip() in step
