"""One-pass scoring of episodes for the policy-gradient loss (codegym.training.pg_scoring): the same numbers
and gradients as scoring each step on its own."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from codegym.agents import rollout  # noqa: E402
from codegym.models import load_policy  # noqa: E402
from codegym.steps import STEP_STOP, policy_prompt, render_state  # noqa: E402
from codegym.tasks import load_tasks  # noqa: E402
from codegym.training.pg_scoring import (  # noqa: E402
    _buckets,
    carriers,
    row_token_ids,
    rowwise_log_probs,
    step_log_probs,
)
from codegym.training.policy_gradient import (  # noqa: E402
    _draw_tasks,
    _sampled_ids,
    _update,
    continuation_log_probs,
)


@pytest.fixture(scope="module")
def played(sandbox_factory):
    """Twelve sampled episodes (3 tasks x 4) of the tiny policy, and each step's prompt and the ids the
    update scores (the step's, then the token that ended it)."""
    policy = load_policy("tiny", device="cpu")
    tasks = _draw_tasks(load_tasks("synthetic", split="train"), 3, np.random.default_rng(4))
    episodes = rollout(
        policy, tasks, samples_per_task=4, temperature=1.0, seed=9, max_steps=4, max_new_tokens=96,
        sandbox=sandbox_factory("local"), env_options={"reward": "terminal"},
    )  # fmt: skip
    problems = {task.task_id: task.problem for task in tasks}
    prompts, steps, ids, chains = [], [], [], []
    for episode in episodes:
        chains.append(list(range(len(prompts), len(prompts) + len(episode.steps))))
        for t, step in enumerate(episode.steps):
            prompts.append(policy_prompt(render_state(problems[episode.task_id], episode.steps[:t]), t))
            steps.append(step)
            ids.append(_sampled_ids(episode, t))
    return policy, episodes, problems, prompts, steps, ids, chains


def test_the_update_scores_the_token_that_ended_each_step(played):
    policy, episodes, *_ = played
    ends = [(e, t) for e in episodes for t in range(len(e.steps)) if e.step_end_token_ids[t] is not None]
    assert ends  # the tiny policy ends its steps at the step header or EOS
    for episode, t in ends:
        end = episode.step_end_token_ids[t]
        assert _sampled_ids(episode, t) == (*episode.step_token_ids[t], end)
        if end not in policy.eos_token_ids:  # else the token where the next step's header starts
            assert policy.tokenizer.decode([end]) in STEP_STOP
    episode = episodes[0]  # without the end tokens (a backend that cannot tell), the step's ids alone
    bare = dataclasses.replace(episode, step_end_token_ids=())
    assert _sampled_ids(bare, 0) == episode.step_token_ids[0]


def test_episodes_ride_on_one_sequence_when_their_tokens_allow(played):
    policy, _, _, prompts, steps, ids, chains = played
    prompt_ids, continuation_ids = row_token_ids(policy, prompts, steps, ids)
    sequences = carriers(prompt_ids, continuation_ids, chains)
    assert len(sequences) < len(prompts)  # steps did merge
    scored = sorted(row for carrier in sequences for row, _, _ in carrier.spans)
    assert scored == list(range(len(prompts)))  # every row scored exactly once
    for carrier in sequences:
        for row, start, end in carrier.spans:
            assert (
                carrier.tokens[:start] == prompt_ids[row]
                and carrier.tokens[start:end] == continuation_ids[row]
            )


def test_a_row_whose_tokens_do_not_continue_gets_its_own_sequence():
    sequences = carriers([[1, 2], [1, 2, 3, 9], [5]], [[3, 4], [6], [7]], [[0, 1], [2]])
    assert [c.tokens for c in sequences] == [[1, 2, 3, 9, 6], [1, 2, 3, 4], [5, 7]]


def test_sequences_are_split_into_passes_of_similar_length():
    lengths = [300, 10, 12, 290, 11, 305]
    assert _buckets(lengths, limit=4) == [[1, 4, 2], [3, 0, 5]]  # short with short, long with long
    assert _buckets([100, 101, 102], limit=8) == [[0, 1, 2]]  # a pass more would save too little
    assert _buckets(lengths, limit=1) == [[1], [4], [2], [3], [0], [5]]


@pytest.mark.slow
def test_one_pass_log_probs_and_gradients_are_the_per_step_ones(played):
    policy, _, _, prompts, steps, ids, chains = played
    weights = torch.linspace(-1.0, 1.0, len(prompts))
    results = []
    for scorer in ("per step", "one pass"):
        policy.model.zero_grad(set_to_none=True)
        if scorer == "per step":
            logprobs = torch.cat(
                [continuation_log_probs(policy, prompts[i : i + 1], steps[i : i + 1], token_ids=ids[i : i + 1])
                 for i in range(len(prompts))]
            )  # fmt: skip
        else:
            logprobs = step_log_probs(policy, *row_token_ids(policy, prompts, steps, ids), chains)
        (weights * logprobs).sum().backward()
        results.append((logprobs.detach(), {n: p.grad.clone() for n, p in policy.model.named_parameters()}))
    policy.model.zero_grad(set_to_none=True)
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-4)
    for name, grad in results[0][1].items():  # float sums in another order: within 1e-5 of the largest
        scale = float(grad.abs().max())
        torch.testing.assert_close(
            results[1][1][name], grad, rtol=1e-4, atol=1e-5 * max(scale, 1.0), msg=name
        )


def test_the_models_own_forward_scores_the_same_where_the_lean_one_does_not_apply(played, monkeypatch):
    policy, _, _, prompts, steps, ids, chains = played
    prompt_ids, continuation_ids = row_token_ids(policy, prompts, steps, ids)
    with torch.no_grad():
        lean = step_log_probs(policy, prompt_ids, continuation_ids, chains[:5])
        monkeypatch.setattr("codegym.models.lean_llama.lean_llama", lambda model: None)
        fallback = step_log_probs(policy, prompt_ids, continuation_ids, chains[:5])
        alone = rowwise_log_probs(policy, policy.model, prompt_ids, continuation_ids, 8)
    rows = [row for chain in chains[:5] for row in chain]
    torch.testing.assert_close(fallback, lean, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(lean[rows], alone[rows], rtol=1e-5, atol=1e-4)
    assert not lean[len(rows) :].any()  # rows outside the chains are not scored


@pytest.mark.slow
def test_the_update_takes_the_same_loss_as_scoring_step_by_step(played):
    policy, episodes, problems, prompts, steps, ids, _ = played
    advantages = [
        [0.5 - 0.25 * t - 0.1 * (i % 4) for t in range(len(e.steps))] for i, e in enumerate(episodes)
    ]
    flat = torch.tensor([a for episode in advantages for a in episode])
    with torch.no_grad():
        expected = float(
            -(flat * continuation_log_probs(policy, prompts, steps, token_ids=ids)).sum() / len(prompts)
        )
    state = {name: value.clone() for name, value in policy.model.state_dict().items()}
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.0)
    try:
        loss, grad_norm, _ = _update(policy, optimizer, episodes, problems, advantages, 1e9)
    finally:
        policy.model.load_state_dict(state)
    assert loss == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert grad_norm > 0


def test_a_temperature_scores_the_tempered_distribution_on_both_paths(played, monkeypatch):
    """At temperature T the loss must score softmax(logits / T), the distribution a sampler at T drew
    from: checked against the model's own logits, token by token, for the lean and the fallback path."""
    policy, _, _, prompts, steps, ids, chains = played
    prompt_ids, continuation_ids = row_token_ids(policy, prompts, steps, ids)
    rows = [row for chain in chains[:3] for row in chain]
    expected = []
    with torch.no_grad():
        for row in rows:
            tokens = torch.tensor([[*prompt_ids[row], *continuation_ids[row]]])
            logits = policy.model(input_ids=tokens).logits[0, :-1].float() / 0.5
            picked = torch.log_softmax(logits, dim=-1).gather(1, tokens[0, 1:, None])[:, 0]
            expected.append(float(picked[len(prompt_ids[row]) - 1 :].sum()))
        lean = step_log_probs(policy, prompt_ids, continuation_ids, chains[:3], temperature=0.5)
        untempered = step_log_probs(policy, prompt_ids, continuation_ids, chains[:3])
        monkeypatch.setattr("codegym.models.lean_llama.lean_llama", lambda model: None)
        fallback = step_log_probs(policy, prompt_ids, continuation_ids, chains[:3], temperature=0.5)
    torch.testing.assert_close(lean[rows], torch.tensor(expected), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(fallback[rows], torch.tensor(expected), rtol=1e-5, atol=1e-4)
    assert not torch.allclose(untempered[rows], lean[rows])  # the temperature did change the scores
