"""Search agents on tasks a scripted policy makes solvable: each solves within a tiny budget, reports its
spend, and an MCTS tree's statistics match a hand-worked one."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest

import codegym  # noqa: F401  (registers CodeReason-v0)
from codegym.agents import (
    BeamSearchAgent,
    BestOfNAgent,
    Budget,
    GreedyAgent,
    MCTSAgent,
    SamplingAgent,
    Spend,
)

WRONG_OUTLINE = "Just return the input."
WRONG_CODE = "```python\ndef double(x):\n    return x\n```"
GOOD_OUTLINE = "Outline: add x to itself"
GOOD_CODE = "```python\ndef double(x):\n    return x + x\n```"
SQUARE_OUTLINE = "Outline: square x"
SQUARE_CODE = "```python\ndef double(x):\n    return x * x\n```"  # passes the visible test (2), not 5

# Greedy takes candidate 0, the wrong one; sample 1 is the right one.
FORK = {
    (): [(WRONG_OUTLINE, -1.0), (GOOD_OUTLINE, -2.0)],
    (WRONG_OUTLINE,): [WRONG_CODE],
    (GOOD_OUTLINE,): [GOOD_CODE],
}


@pytest.fixture
def env(double_task, sandbox_factory):
    env = gym.make("CodeReason-v0", tasks=[double_task], sandbox=sandbox_factory("local"), max_steps=4)
    yield env
    env.close()


def test_greedy_follows_the_first_candidate_and_reports_its_spend(env, tree_policy_factory):
    env.reset(seed=0)
    episode = GreedyAgent(tree_policy_factory(FORK)).solve(env, Budget(steps_generated=4))
    assert episode.steps == (WRONG_OUTLINE, WRONG_CODE)
    assert episode.code == "def double(x):\n    return x"
    assert (episode.visible_pass_rate, episode.hidden_pass_rate, episode.hidden_all_passed) == (
        0.0,
        0.0,
        False,
    )
    assert episode.end == "code" and episode.agent == "greedy"
    assert episode.spend.policy_calls == 2 and episode.spend.steps_generated == 2
    assert episode.spend.tokens == len(WRONG_OUTLINE.split()) + len(WRONG_CODE.split())
    assert episode.spend.sandbox_runs == 2  # the visible tests and the hidden tests
    assert episode.spend.prm_calls == 0 and episode.spend.wall_s > 0
    assert len(episode.rewards) == 2
    # The env is left on the chosen path.
    assert env.unwrapped.get_state().steps == episode.steps


def test_best_of_n_with_visible_tests_finds_the_right_path(env, tree_policy_factory):
    env.reset(seed=0)
    policy = tree_policy_factory(FORK)
    episode = BestOfNAgent(policy, n=2).solve(env, Budget(steps_generated=4))
    assert episode.steps == (GOOD_OUTLINE, GOOD_CODE)
    assert episode.hidden_all_passed and episode.visible_pass_rate == 1.0
    # Both first steps from one prompt with n=2, then both paths' code steps in one call.
    assert [len(call) for call in policy.calls] == [1, 2]
    assert episode.spend == Spend(
        policy_calls=2,
        steps_generated=4,
        tokens=episode.spend.tokens,
        sandbox_runs=4,
        wall_s=episode.spend.wall_s,
    )


def test_best_of_n_with_a_prm_ranks_by_the_prm(env, tree_policy_factory, stub_prm):
    env.reset(seed=0)
    # The stub PRM scores the "Outline:" step 0.8 and the free-text one 0.2: min over the path picks GOOD.
    episode = BestOfNAgent(tree_policy_factory(FORK), n=2, verifier="prm", prm=stub_prm).solve(env)
    assert episode.steps == (GOOD_OUTLINE, GOOD_CODE) and episode.hidden_all_passed
    assert episode.spend.prm_calls == 2 and stub_prm.calls == 2


def test_a_budget_too_small_for_the_work_stops_before_it(env, tree_policy_factory):
    env.reset(seed=0)
    episode = BestOfNAgent(tree_policy_factory(FORK), n=8).solve(env, Budget(steps_generated=4))
    assert episode.end == "budget" and episode.code is None and not episode.hidden_all_passed
    assert episode.spend.steps_generated == 0


def test_beam_search_keeps_the_prm_favourite(env, tree_policy_factory, stub_prm):
    env.reset(seed=0)
    policy = tree_policy_factory(FORK)
    agent = BeamSearchAgent(policy, prm=stub_prm, beam_width=1, expansions=2)
    episode = agent.solve(env, Budget(steps_generated=8))
    assert episode.steps == (GOOD_OUTLINE, GOOD_CODE) and episode.hidden_all_passed
    # Depth 1: two candidates, the beam keeps GOOD (0.8 > 0.2); depth 2: GOOD's code, drawn twice, merged.
    assert episode.spend.steps_generated == 4 and episode.spend.policy_calls == 2
    assert episode.spend.prm_calls == 3  # two first steps, then the one distinct code path


def test_sampling_agent_at_a_temperature_draws_sample_zero(env, tree_policy_factory):
    env.reset(seed=0)
    agent = SamplingAgent(tree_policy_factory(FORK), temperature=0.7)
    assert agent.solve(env).steps == (WRONG_OUTLINE, WRONG_CODE) and agent.name == "sample(T=0.7)"


HAND_TREE = {
    (): [(GOOD_OUTLINE, -1.0), ("Just square it.", -3.0)],
    (GOOD_OUTLINE,): [GOOD_CODE, WRONG_CODE],
    ("Just square it.",): [SQUARE_CODE],
}


def test_mcts_statistics_match_a_hand_worked_tree(env, tree_policy_factory, stub_prm):
    """UCT (c=2), PRM evaluation (stub: outline 0.8, free text 0.2), alpha 0.5, K=2, three simulations.

    1. Expand the root: A=GOOD_OUTLINE gets 0.8, B="Just square it." 0.2. Root N=2, W=1.0.
    2. UCT: A 0.8 + 2 sqrt(ln 2) beats B 0.2 + 2 sqrt(ln 2). Expand A: GOOD_CODE passes (1.0),
       WRONG_CODE compiles and fails (0.5*1 + 0.5*0 = 0.5). A: N=3, W=2.3; root N=4, W=2.5.
    3. UCT: A 2.3/3 + 2 sqrt(ln 4 / 3) = 2.126 < B 0.2 + 2 sqrt(ln 4) = 2.555. Expand B: SQUARE_CODE
       passes the visible test (1.0) but not the hidden one. B: N=2, W=1.2; root N=5, W=3.5.
    """
    env.reset(seed=0)
    agent = MCTSAgent(
        tree_policy_factory(HAND_TREE),
        prm=stub_prm,
        simulations=3,
        expansions=2,
        evaluation="prm",
        stop_on_solve=False,
    )
    episode = agent.solve(env)
    tree = episode.tree
    stats = {node.step: (node.visits, round(node.value_sum, 6)) for node in tree.nodes}
    assert stats == {
        None: (5, 3.5),
        GOOD_OUTLINE: (3, 2.3),
        "Just square it.": (2, 1.2),
        GOOD_CODE: (1, 1.0),
        WRONG_CODE: (1, 0.5),
        SQUARE_CODE: (1, 1.0),
    }
    assert tree.simulations == 3 and tree.solved_by is None
    assert [child.step for child in tree.root.children] == [GOOD_OUTLINE, "Just square it."]
    # Priors: softmax of the mean log-prob per token (GOOD_OUTLINE has 5 tokens, the other 3).
    mean_a, mean_b = -1.0 / 5, -3.0 / 3
    prior_a = math.exp(mean_a) / (math.exp(mean_a) + math.exp(mean_b))
    assert tree.root.children[0].prior == pytest.approx(prior_a)
    # The answer: the best code value, the earliest of equals: GOOD_CODE (found before SQUARE_CODE).
    assert episode.steps == (GOOD_OUTLINE, GOOD_CODE) and episode.hidden_all_passed
    assert episode.spend.policy_calls == 3 and episode.spend.steps_generated == 6
    assert episode.spend.prm_calls == 2  # A and B; terminal nodes are valued by their tests
    assert episode.spend.sandbox_runs == 6  # three programs, each on the visible and the hidden tests


def test_mcts_stops_as_soon_as_a_path_passes_every_visible_test(env, tree_policy_factory, stub_prm):
    env.reset(seed=0)
    agent = MCTSAgent(
        tree_policy_factory(HAND_TREE), prm=stub_prm, simulations=10, expansions=2, evaluation="prm"
    )
    episode = agent.solve(env)
    assert episode.tree.simulations == 2 and episode.tree.solved_by == "tree"
    assert episode.steps == (GOOD_OUTLINE, GOOD_CODE)


def test_mcts_rollouts_solve_from_a_half_expanded_tree(env, tree_policy_factory):
    env.reset(seed=0)
    policy = tree_policy_factory(FORK)
    agent = MCTSAgent(policy, simulations=5, expansions=2, evaluation="rollout")
    episode = agent.solve(env, Budget(steps_generated=12))
    # One expansion of the root, then a greedy rollout from each child: GOOD_OUTLINE's rollout passes.
    assert episode.tree.solved_by == "rollout" and episode.tree.simulations == 1
    assert episode.steps == (GOOD_OUTLINE, GOOD_CODE) and episode.hidden_all_passed
    children = {child.step: child for child in episode.tree.root.children}
    assert children[GOOD_OUTLINE].evaluation == 1.0 and children[WRONG_OUTLINE].evaluation == 0.5
    assert episode.spend.steps_generated == 4  # 2 expansions + 2 one-step rollouts


def test_mcts_with_puct_prefers_the_likelier_step(env, tree_policy_factory, stub_prm):
    env.reset(seed=0)
    tree = {(): [(GOOD_OUTLINE, -0.1), ("Outline: something else", -20.0)], (GOOD_OUTLINE,): [GOOD_CODE]}
    agent = MCTSAgent(
        tree_policy_factory(tree),
        prm=stub_prm,
        selection="puct",
        simulations=2,
        evaluation="prm",
    )
    episode = agent.solve(env)
    # Both outlines score 0.8; the prior breaks the tie towards the likelier step.
    assert episode.tree.root.children[0].prior > 0.99
    assert episode.steps == (GOOD_OUTLINE, GOOD_CODE)


def test_solve_many_batches_policy_calls_across_problems(double_task, sandbox_factory, tree_policy_factory):
    from dataclasses import replace

    other = replace(double_task, task_id="toy/double-2")
    env = gym.make("CodeReason-v0", tasks=[double_task, other], sandbox=sandbox_factory("local"))
    policy = tree_policy_factory(FORK)
    episodes = BestOfNAgent(policy, n=2).solve_many(env, ["toy/double", "toy/double-2"])
    assert [e.task_id for e in episodes] == ["toy/double", "toy/double-2"]
    assert all(e.hidden_all_passed for e in episodes)
    assert [len(call) for call in policy.calls] == [2, 4]  # both problems in every call
    # The second problem's code was already judged for the first (same program, same tests): cached.
    assert [e.spend.sandbox_runs for e in episodes] == [4, 4]  # verdicts are cached per task
    env.close()


def test_bad_arguments_get_clear_errors(env, tree_policy_factory, stub_prm):
    policy = tree_policy_factory(FORK)
    with pytest.raises(ValueError, match="needs a process reward model"):
        BestOfNAgent(policy, verifier="prm")
    with pytest.raises(ValueError, match="unknown verifier"):
        BestOfNAgent(policy, verifier="hidden")
    with pytest.raises(ValueError, match="guided by a process reward model"):
        BeamSearchAgent(policy, prm=None)
    with pytest.raises(ValueError, match="unknown selection"):
        MCTSAgent(policy, selection="random")
    with pytest.raises(ValueError, match="evaluation='prm' needs a process reward model"):
        MCTSAgent(policy, evaluation="prm")
    with pytest.raises(ValueError, match=r"Budget.steps_generated must be None \(no limit\) or a number > 0"):
        Budget(steps_generated=0)
    with pytest.raises(TypeError, match="agents solve CodeReason envs"):
        GreedyAgent(policy).solve(gym.make("CartPole-v1"))
    with pytest.raises(RuntimeError, match="call reset"):
        GreedyAgent(policy).solve(env)
    with pytest.raises(TypeError, match=r"budget must be a codegym\.agents\.Budget"):
        env.reset(seed=0)
        GreedyAgent(policy).solve(env, budget=10)


@pytest.fixture(scope="module")
def synthetic_fork():
    """A held-out synthetic task and a policy tree whose first candidate follows another task's plan."""
    from codegym.tasks.synthetic import SyntheticTasks

    task, decoy = SyntheticTasks("test", min_ops=2, max_ops=2).tasks(2, seed=3)
    right, wrong = task.reference_steps, decoy.reference_steps
    tree = {(): [wrong[0], right[0]]}
    for steps in (right, wrong):
        for depth in range(1, len(steps)):
            tree[steps[:depth]] = [steps[depth]]
    return task, tree


@pytest.mark.parametrize(
    "make_agent",
    [
        lambda policy, prm: BestOfNAgent(policy, n=2),
        lambda policy, prm: BestOfNAgent(policy, n=2, verifier="both", prm=prm),
        lambda policy, prm: BeamSearchAgent(policy, prm=prm, beam_width=2, expansions=2, verifier="visible"),
        lambda policy, prm: MCTSAgent(policy, simulations=4, expansions=2),
        lambda policy, prm: MCTSAgent(
            policy, prm=prm, simulations=4, expansions=2, selection="puct", evaluation="mix"
        ),
    ],
    ids=["best-of-n", "best-of-n-both", "beam", "mcts-rollout", "mcts-puct-mix"],
)
def test_each_search_agent_solves_a_synthetic_task_greedy_misses(
    make_agent, synthetic_fork, sandbox_factory, tree_policy_factory, stub_prm
):
    task, tree = synthetic_fork
    env = gym.make("CodeReason-v0", tasks=[task], sandbox=sandbox_factory("local"), visible_tests="tcg")
    env.reset(seed=0)
    greedy = GreedyAgent(tree_policy_factory(tree)).solve(env)
    assert greedy.code is not None and not greedy.hidden_all_passed
    env.reset(seed=0)
    episode = make_agent(tree_policy_factory(tree), stub_prm).solve(env, Budget(steps_generated=16))
    assert episode.hidden_all_passed and episode.steps == task.reference_steps
    assert episode.visible_source == "tcg"  # the verifier saw generated tests, not the hidden ones
    assert 0 < episode.spend.steps_generated <= 16 and episode.spend.policy_calls >= 2
    assert episode.spend.tokens > 0 and episode.spend.sandbox_runs > 0
    env.close()


@pytest.mark.slow
def test_seeded_searches_with_the_tiny_policy_repeat(sandbox_factory):
    from codegym.agents import tree_rows
    from codegym.models import load_policy
    from codegym.tasks.synthetic import SyntheticTasks

    tasks = SyntheticTasks("test", min_ops=2, max_ops=2).tasks(2, seed=0)
    policy = load_policy("tiny")

    def search(seed):
        env = gym.make("CodeReason-v0", tasks=tasks, sandbox=sandbox_factory("local"), max_steps=4)
        agent = MCTSAgent(policy, simulations=2, expansions=2, seed=seed, max_new_tokens=96)
        episodes = agent.solve_many(env, [t.task_id for t in tasks])
        env.close()
        rows = [[(r["step"], r["visits"], r["value"]) for r in tree_rows(e.tree)] for e in episodes]
        return rows, [e.steps for e in episodes]

    first, again, other = search(0), search(0), search(1)
    assert first == again and first != other
    assert all(len(tree) >= 2 for tree in first[0])


def test_spends_that_differ_only_in_wall_time_are_equal():
    from codegym.agents import Spend

    assert Spend(policy_calls=2, tokens=9, wall_s=0.1) == Spend(policy_calls=2, tokens=9, wall_s=3.0)
    assert Spend(policy_calls=2, tokens=9) != Spend(policy_calls=2, tokens=8)
    assert (Spend(wall_s=1.0) + Spend(wall_s=2.0)).wall_s == 3.0
