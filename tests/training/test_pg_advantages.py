"""Dr. GRPO advantages and DAPO's filter of uniform groups in the policy-gradient trainer."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from codegym.agents import Episode, Spend  # noqa: E402
from codegym.models import load_policy  # noqa: E402
from codegym.training.policy_gradient import (  # noqa: E402
    _advantages,
    _informative,
    _update,
    group_relative_advantages,
    train_policy_gradient,
    uniform_group,
)

BUDGET = {
    "tasks_per_iteration": 2,
    "group_size": 2,
    "max_steps": 3,
    "max_new_tokens": 48,
    "task_options": {"max_ops": 2},
    "progress": False,
}


def test_dr_grpo_advantages_are_the_returns_minus_the_group_mean_at_each_depth():
    returns = [[1.0, 0.5], [0.0], [0.5, 0.0, 2.0]]
    # Depth 0: mean 0.5; depth 1: episodes 0 and 2, mean 0.25; depth 2: episode 2 alone.
    assert group_relative_advantages(returns, scale=False) == [[0.5, 0.25], [-0.5], [0.0, -0.25, 0.0]]
    # GRPO divides the same differences by the sample std plus eps: 0.5 at depth 0, sqrt(0.125) at 1.
    assert group_relative_advantages(returns)[0][0] == pytest.approx(0.5 / (0.5 + 1e-6), rel=1e-12)
    assert group_relative_advantages(returns)[0][1] == pytest.approx(0.25 / (0.125**0.5 + 1e-6), rel=1e-12)


def test_the_advantage_option_picks_the_scaling_per_group_and_leaves_grpo_as_it_was():
    returns = [[1.0], [0.0], [0.2], [0.0]]  # two groups of 2
    dr, _ = _advantages(returns, "dr_grpo", 2, None)
    assert dr == [[0.5], [-0.5], [pytest.approx(0.1)], [pytest.approx(-0.1)]]
    grpo, baseline = _advantages(returns, "grpo", 2, None)
    # The std division makes both groups +-0.707 however small their difference: what Dr. GRPO removes.
    assert [round(a[0], 4) for a in grpo] == [0.7071, -0.7071, 0.7071, -0.7071] and baseline is None


def test_uniform_groups_are_those_with_equal_returns_at_every_depth():
    assert uniform_group([[1.0], [1.0], [1.0]])
    assert uniform_group([[0.0, 1.0], [0.0]])  # depth 1 has one episode: nothing to compare
    assert not uniform_group([[1.0, 0.5], [1.0, 0.0]])  # equal at depth 0, not at depth 1
    assert _informative([[1.0], [1.0], [1.0], [0.0], [0.0], [1.0]], 3) == [False] * 3 + [True] * 3


def _episode(task_id: str, step: str) -> Episode:
    return Episode(task_id, (step,), None, (0.0,), None, 0.0, False, "max_steps", Spend(), "greedy")


def _gradient(policy, episodes, advantages) -> torch.Tensor:
    """The gradient one ``_update`` computes (lr 0 and no clipping: the weights stay as they are)."""
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.0)
    _update(policy, optimizer, episodes, PROBLEMS, advantages, 1e9)
    return torch.cat([p.grad.flatten() for p in policy.model.parameters() if p.grad is not None])


PROBLEMS = {"a": "Return x plus one.", "b": "Return the list reversed."}


def test_a_skipped_group_adds_no_gradient_and_no_steps_to_the_mean():
    policy = load_policy("tiny", device="cpu")
    signal = [_episode("a", "Outline: add one to x."), _episode("a", "Outline: return x.")]
    uniform = [_episode("b", "Outline: reverse the list."), _episode("b", "Outline: sort the list.")]
    alone = _gradient(policy, signal, [[0.5], [-0.5]])
    assert alone.abs().sum() > 0
    # Kept, the uniform group's zero advantages add nothing but its two steps to the denominator.
    diluted = _gradient(policy, signal + uniform, [[0.5], [-0.5], [0.0], [0.0]])
    torch.testing.assert_close(diluted, alone / 2, rtol=1e-4, atol=1e-9)


@pytest.mark.slow
def test_a_run_of_uniform_groups_skips_them_all_and_takes_no_step(tmp_path, sandbox_factory):
    box = sandbox_factory("local")

    def task_only(context, **kwargs) -> float:  # the same for every episode of a task: uniform groups
        return float(len(context.task.task_id) % 2) if context.is_last else 0.0

    skipping = train_policy_gradient(
        tmp_path / "skip",
        iterations=1,
        seed=3,
        reward=task_only,
        advantage="dr_grpo",
        skip_uniform_groups=True,
        sandbox=box,
        **BUDGET,
    )
    (metrics,) = skipping.metrics
    assert (metrics.skipped_groups, metrics.loss, metrics.grad_norm) == (2, 0.0, 0.0)
    plain = train_policy_gradient(
        tmp_path / "plain", iterations=1, seed=3, reward=task_only, advantage="dr_grpo", sandbox=box, **BUDGET
    )
    assert plain.metrics[0].skipped_groups == 0  # off by default: counted only when skipping
    assert plain.metrics[0].mean_reward == metrics.mean_reward  # the same episodes
    with pytest.raises(ValueError, match="other settings"):  # the option is part of the run's settings
        train_policy_gradient(
            tmp_path / "plain",
            iterations=2,
            seed=3,
            reward=task_only,
            advantage="dr_grpo",
            skip_uniform_groups=True,
            sandbox=box,
            **BUDGET,
        )


@pytest.mark.slow
def test_dr_grpo_changes_the_update_but_not_the_episodes(tmp_path, sandbox_factory):
    box = sandbox_factory("local")
    runs = {
        advantage: train_policy_gradient(
            tmp_path / advantage, iterations=1, seed=3, advantage=advantage, sandbox=box, **BUDGET
        ).metrics[0]
        for advantage in ("grpo", "dr_grpo")
    }
    assert runs["grpo"].mean_reward == runs["dr_grpo"].mean_reward
    assert runs["grpo"].loss != runs["dr_grpo"].loss


def test_skipping_needs_a_group_relative_advantage(tmp_path):
    with pytest.raises(ValueError, match="skip_uniform_groups needs a group-relative advantage"):
        train_policy_gradient(tmp_path, advantage="reinforce", skip_uniform_groups=True, **BUDGET)
