"""The LM policy-gradient agent: advantages, log-probs, updates, seeding, resuming and the reward argument."""

from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")

from codegym.agents import Episode, Spend  # noqa: E402
from codegym.models import load_policy  # noqa: E402
from codegym.steps import policy_prompt, render_state  # noqa: E402
from codegym.training.policy_gradient import (  # noqa: E402
    _frozen_copy,
    _update,
    continuation_log_probs,
    group_relative_advantages,
    returns_to_go,
    train_policy_gradient,
)
from codegym.training.policy_sft import synthetic_episodes  # noqa: E402

# A budget that trains in seconds: 2 tasks x a group of 2, short steps.
BUDGET = {
    "tasks_per_iteration": 2,
    "group_size": 2,
    "max_steps": 3,
    "max_new_tokens": 48,
    "task_options": {"max_ops": 2},
    "progress": False,
}


def _weights(path) -> dict[str, torch.Tensor]:
    return load_policy(str(path), device="cpu").model.state_dict()


def _figures(metrics) -> list:
    """The metrics without their wall times, which no two runs share."""
    return [dataclasses.replace(entry, seconds=0.0) for entry in metrics]


def _same(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


@pytest.fixture(scope="module")
def two_iterations(tmp_path_factory, sandbox_factory):
    """Two updates of the tiny policy, checkpointed after each."""
    out_dir = tmp_path_factory.mktemp("pg") / "run"
    result = train_policy_gradient(
        out_dir, iterations=2, checkpoint_every=1, seed=3, sandbox=sandbox_factory("local"), **BUDGET
    )
    return out_dir, result


def test_returns_to_go_discount_later_rewards():
    assert returns_to_go([0.0, 0.5, 1.0], gamma=0.5) == [0.5, 1.0, 1.0]
    assert returns_to_go([], gamma=0.9) == []


def test_group_advantages_compare_episodes_at_the_same_depth():
    advantages = group_relative_advantages([[1.0, 1.0], [0.0], [0.5, 0.0, 2.0]])
    assert advantages[0][0] == pytest.approx(1.0, abs=1e-5)  # mean 0.5, sample std 0.5
    assert advantages[1][0] == pytest.approx(-1.0, abs=1e-5)
    assert advantages[2][0] == pytest.approx(0.0, abs=1e-5)
    assert advantages[0][1] == pytest.approx(0.7071, abs=1e-4)  # depth 1: episodes 0 and 2 only
    assert advantages[2][2] == 0.0  # no other episode took a third step
    assert group_relative_advantages([[0.3], [0.3]]) == [[0.0], [0.0]]


def test_log_probs_match_what_the_sampler_recorded():
    policy = load_policy("tiny", device="cpu")
    prompts = [
        "### Problem\nReturn the list reversed.\n\n### Step 1\n",
        "### Problem\nAdd one.\n\n### Step 1\n",
    ]
    samples = [s for [s] in policy.sample(prompts, stop=(), max_new_tokens=12, temperature=0, seed=0)]
    together = continuation_log_probs(policy, prompts, [s.text for s in samples])
    assert together.requires_grad and together.shape == (2,)
    for index, sample in enumerate(samples):
        alone = continuation_log_probs(policy, prompts[index : index + 1], [sample.text])
        assert alone.item() == pytest.approx(together[index].item(), abs=1e-4)  # padding changes nothing
        assert alone.item() == pytest.approx(sample.logprob, abs=1e-3)


def test_the_sampled_token_ids_are_scored_when_given():
    policy = load_policy("tiny", device="cpu")
    prompts = [
        "### Problem\nReturn the list reversed.\n\n### Step 1\n",
        "### Problem\nAdd one.\n\n### Step 1\n",
    ]
    samples = [s for [s] in policy.sample(prompts, stop=(), max_new_tokens=12, temperature=0, seed=0)]
    assert all(len(s.token_ids) == s.num_tokens for s in samples)
    exact = continuation_log_probs(
        policy, prompts, [s.text for s in samples], token_ids=[s.token_ids for s in samples]
    )
    assert exact.tolist() == pytest.approx([s.logprob for s in samples], abs=1e-3)
    # The ids, not the text, are what is scored: row 0 given row 1's ids scores those ids.
    swapped = continuation_log_probs(policy, prompts[:1], [samples[0].text], token_ids=[samples[1].token_ids])
    by_text = continuation_log_probs(policy, prompts[:1], [policy.tokenizer.decode(samples[1].token_ids)])
    assert swapped.item() == pytest.approx(by_text.item(), abs=1e-4)
    assert swapped.item() != pytest.approx(exact[0].item(), abs=1e-2)


@pytest.mark.slow
def test_updates_change_the_parameters_and_checkpoint(two_iterations):
    out_dir, result = two_iterations
    assert (result.iterations, result.resumed_from) == (2, 0)
    assert result.checkpoint == str(out_dir / "checkpoint-2")
    assert sorted(p.name for p in out_dir.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert not _same(_weights("tiny"), _weights(result.checkpoint))
    assert all(m.loss != 0.0 and m.grad_norm > 0 for m in result.metrics)
    saved = json.loads((out_dir / "metrics.json").read_text())
    assert [entry["mean_reward"] for entry in saved["iterations"]] == [m.mean_reward for m in result.metrics]


@pytest.mark.slow
def test_seeded_runs_repeat_and_a_resumed_run_matches_an_uninterrupted_one(
    two_iterations, tmp_path, sandbox_factory
):
    _, uninterrupted = two_iterations
    box = sandbox_factory("local")
    first = train_policy_gradient(tmp_path / "run", iterations=1, seed=3, sandbox=box, **BUDGET)
    assert _figures(first.metrics) == _figures(uninterrupted.metrics[:1])
    (tmp_path / "run" / "checkpoint-7").mkdir()  # what a crash mid-save would leave: no trainer state
    resumed = train_policy_gradient(tmp_path / "run", iterations=2, seed=3, sandbox=box, **BUDGET)
    assert (resumed.resumed_from, resumed.iterations) == (1, 2)
    assert resumed.metrics[0] == first.metrics[0]  # iteration 0 was not rerun
    assert _figures(resumed.metrics) == _figures(uninterrupted.metrics)
    assert _same(_weights(resumed.checkpoint), _weights(uninterrupted.checkpoint))
    again = train_policy_gradient(tmp_path / "run", iterations=2, seed=3, sandbox=box, **BUDGET)
    assert again.resumed_from == 2 and again.metrics == resumed.metrics  # nothing left to do
    with pytest.raises(ValueError, match="other settings"):
        train_policy_gradient(tmp_path / "run", iterations=3, seed=4, sandbox=box, **BUDGET)


@pytest.mark.slow
def test_the_reward_argument_reaches_the_env(tmp_path, sandbox_factory, stub_prm):
    box = sandbox_factory("local")
    budget = {**BUDGET, "tasks_per_iteration": 1}
    runs = {
        scheme: train_policy_gradient(
            tmp_path / scheme, iterations=1, reward=scheme, process_reward=stub_prm, sandbox=box, **budget
        )
        for scheme in ("terminal", "dense")
    }
    terminal, dense = (runs[scheme].metrics[0] for scheme in ("terminal", "dense"))
    assert terminal.hidden_pass_rate == dense.hidden_pass_rate  # the same episodes...
    assert dense.mean_reward >= terminal.mean_reward + 0.2 * dense.mean_steps  # ...paid a PRM score per step


@pytest.mark.slow
def test_reinforce_with_a_running_baseline_updates_too(tmp_path, sandbox_factory):
    budget = {**BUDGET, "group_size": 1, "tasks_per_iteration": 4}  # a group of 1 is fine without GRPO
    result = train_policy_gradient(
        tmp_path, iterations=1, advantage="reinforce", seed=3, sandbox=sandbox_factory("local"), **budget
    )
    assert result.metrics[0].grad_norm > 0
    assert not _same(_weights("tiny"), _weights(result.checkpoint))
    state = torch.load(tmp_path / "checkpoint-1" / "trainer_state.pt", weights_only=True)
    # o1coder pays once, at the end, so every step's return is its episode's reward.
    assert state["baseline"] == pytest.approx(result.metrics[0].mean_reward)


def _gradients(policy) -> list[torch.Tensor]:
    return [parameter.grad.clone() for parameter in policy.model.parameters()]


def test_steps_of_zero_advantage_are_left_out_and_the_gradient_is_the_same():
    policy = load_policy("tiny", device="cpu")
    steps = ("Outline: add one to x.", "```python\nreturn x + 1\n```")
    episodes = [
        Episode("t", steps, None, (0.0, 1.0), None, 1.0, True, "code", Spend(), "sampled"),
        Episode("t", steps[:1], None, (0.0,), None, 0.0, False, "max_steps", Spend(), "sampled"),
    ]
    problems = {"t": "Return x plus one."}
    advantages = [[0.5, 0.0], [0.0]]  # the second step and the second episode weigh nothing
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.0)  # the gradient, without moving
    loss, _, _ = _update(policy, optimizer, episodes, problems, advantages, 1e9)
    # The loss over all three steps, every one scored, divided by the three steps taken.
    prompts = [policy_prompt(render_state(problems["t"], steps[:t]), t) for t in (0, 1, 0)]
    policy.model.zero_grad()
    logprobs = continuation_log_probs(policy, prompts, [steps[0], steps[1], steps[0]])
    everything = -(torch.tensor([0.5, 0.0, 0.0]) * logprobs).sum() / 3
    everything.backward()
    assert loss == pytest.approx(everything.item(), rel=1e-5)
    expected = _gradients(policy)
    policy.model.zero_grad()
    _update(policy, optimizer, episodes, problems, advantages, 1e9)
    for got, want in zip(_gradients(policy), expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-4)
    # With every advantage 0 nothing is scored, yet the optimizer still steps on zero gradients (AdamW's
    # momentum moves the weights then, as it would have on the zeros a full pass computes).
    _update(policy, optimizer, episodes, problems, [[0.0, 0.0], [0.0]], 1e9)
    assert all(not grad.any() for grad in _gradients(policy))


def test_the_kl_penalty_pulls_the_policy_back_to_its_reference():
    policy = load_policy("tiny", device="cpu")
    reference = _frozen_copy(policy.model)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in policy.model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    episode = Episode(
        "t", ("Outline: add one to x.",), None, (0.0,), None, 0.0, False, "max_steps", Spend(), "greedy"
    )
    problems = {"t": "Return x plus one."}
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=1e-5)
    # Zero advantages: the penalty alone moves the weights, so the log-ratio must shrink towards 0.
    ratios = [
        _update(policy, optimizer, [episode], problems, [[0.0]], 1e9, reference, 1.0)[2] for _ in range(4)
    ]
    assert ratios[0] != 0.0
    assert abs(ratios[-1]) < 0.05 * abs(ratios[0])
    _, _, without = _update(policy, optimizer, [episode], problems, [[0.0]], 1e9)
    assert without == 0.0  # no reference, no KL measured


@pytest.mark.slow
def test_a_kl_coefficient_changes_the_update_but_not_the_first_episodes(tmp_path, sandbox_factory):
    box = sandbox_factory("local")
    runs = {
        coef: train_policy_gradient(
            tmp_path / str(coef),
            iterations=2,
            seed=3,
            kl_coef=coef,
            learning_rate=1e-3,
            sandbox=box,
            **BUDGET,
        )
        for coef in (0.0, 5.0)
    }
    plain, penalized = runs[0.0].metrics, runs[5.0].metrics
    assert plain[0].mean_reward == penalized[0].mean_reward  # the same policy played the first episodes
    assert penalized[0].kl == pytest.approx(0.0, abs=1e-4)  # identical to its reference before any update
    assert penalized[1].kl != 0.0 and plain[1].kl == 0.0
    assert not _same(_weights(runs[0.0].checkpoint), _weights(runs[5.0].checkpoint))


def test_the_replay_term_raises_the_likelihood_of_the_supervised_steps():
    policy = load_policy("tiny", device="cpu")
    episode = Episode(
        "t", ("Outline: add one to x.",), None, (0.0,), None, 0.0, False, "max_steps", Spend(), "greedy"
    )
    problems = {"t": "Return x plus one."}
    replay = [("Return the list reversed.", ("Outline: reverse the list.", "```python\nx = 1\n```"))]
    prompts = [policy_prompt(render_state(replay[0][0], replay[0][1][:t]), t) for t in range(2)]

    def likelihood() -> float:
        with torch.no_grad():
            return float(continuation_log_probs(policy, prompts, list(replay[0][1])).sum())

    optimizer = torch.optim.SGD(policy.model.parameters(), lr=1e-3)
    start = likelihood()
    # Zero advantages: only the replay's term moves the weights.
    for _ in range(3):
        _update(policy, optimizer, [episode], problems, [[0.0]], 1e9, None, 0.0, replay, 1.0)
    assert likelihood() > start + 1.0
    before = likelihood()
    _update(policy, optimizer, [episode], problems, [[0.0]], 1e9, None, 0.0, replay, 0.0)
    assert likelihood() == pytest.approx(before)  # a zero coefficient adds nothing


@pytest.mark.slow
def test_a_replay_changes_the_update_and_is_part_of_the_runs_settings(tmp_path, sandbox_factory):
    box = sandbox_factory("local")
    replay = synthetic_episodes(4, seed=0)
    plain = train_policy_gradient(tmp_path / "plain", iterations=1, seed=3, sandbox=box, **BUDGET)
    mixed = train_policy_gradient(
        tmp_path / "mixed", iterations=1, seed=3, replay=replay, sandbox=box, **BUDGET
    )
    assert plain.metrics[0].mean_reward == mixed.metrics[0].mean_reward  # the same first episodes
    assert not _same(_weights(plain.checkpoint), _weights(mixed.checkpoint))
    with pytest.raises(ValueError, match="other settings"):  # a different run in the same folder
        train_policy_gradient(tmp_path / "plain", iterations=2, seed=3, replay=replay, sandbox=box, **BUDGET)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"group_size": 1}, ValueError, "group_size must be an int >= 2"),
        ({"advantage": "ppo"}, ValueError, "advantage must be one of"),
        ({"gamma": 0.0}, ValueError, "gamma must be in"),
        ({"iterations": 0}, ValueError, "iterations must be an int >= 1"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"kl_coef": -0.1}, ValueError, "kl_coef"),
        ({"temperature": 0}, ValueError, "temperature must be a number > 0"),
        ({"negative_weight": 1.5}, ValueError, "negative_weight must be in \\[0, 1\\]"),
        ({"replay_coef": -1.0}, ValueError, "replay_coef must be >= 0"),
        ({"replay": ["Return x."]}, ValueError, "replay must hold \\(problem, steps\\) pairs"),
        ({"replay": [("Return x.", "one step")]}, ValueError, "replay must hold"),
        ({"env_options": {"reward": "dense"}}, ValueError, "env_options must not set"),
        ({"policy": object()}, TypeError, "policy must be a model spec or an HFPolicy"),
    ],
)
def test_bad_arguments_raise(tmp_path, overrides, error, match):
    with pytest.raises(error, match=match):
        train_policy_gradient(tmp_path, **{**BUDGET, **overrides})
