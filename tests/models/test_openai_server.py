"""OpenAIPolicy against a real ``transformers serve`` running the built-in model (offline, local port)."""

from __future__ import annotations

import pytest

from codegym.agents import rollout
from codegym.models import OpenAIPolicy, PolicyServerError, get_protocol, load_policy
from codegym.steps import StepKind, classify_step, policy_prompt, render_state
from codegym.tasks import load_tasks

pytestmark = pytest.mark.slow

PROBLEM = "def add(a: int, b: int) -> int:\n    '''Return a + b.'''"


def test_a_local_path_keeps_its_slash_and_an_episode_plays_through_the_server(
    transformers_server, smollm2_dir
):
    think = get_protocol("think", reasoning_max_tokens=32)  # short steps: the server is slow on 2 cores
    policy = load_policy(f"openai:{transformers_server}/{smollm2_dir}", protocol=think, timeout_s=300)
    assert policy.model == str(smollm2_dir) and policy.model.startswith("/")
    [result] = rollout(
        policy, list(load_tasks("humaneval"))[2:3], max_steps=4, max_new_tokens=64, sandbox="local"
    )
    assert [classify_step(step) for step in result.steps] == [
        StepKind.OUTLINE,
        StepKind.REFINE,
        StepKind.CODE,
    ]
    assert result.end == "code" and result.tokens > 0


def test_lists_and_n_are_emulated_when_the_server_ignores_them(transformers_server):
    policy = OpenAIPolicy(transformers_server, "smollm2-135m-instruct", protocol="think", timeout_s=300)
    prompts = [policy_prompt(render_state(PROBLEM, []), 0), policy_prompt(render_state("Negate x.", []), 0)]
    greedy = policy.sample(prompts, temperature=0, max_new_tokens=12)
    assert policy.batch_prompts is False  # the list was refused (HTTP 400), then one prompt per request
    assert [len(row) for row in greedy] == [1, 1] and all(
        row[0].text.startswith("Outline:") for row in greedy
    )
    assert greedy[0][0].logprob is None and greedy[0][0].num_tokens > 0  # the server sends no log-probs
    [samples] = policy.sample(prompts[:1], n=3, temperature=1.0, seed=11, max_new_tokens=12)
    assert policy.supports_n is False and len(samples) == 3
    assert len({s.text for s in samples}) > 1  # separate seeded requests differ
    assert policy.sample(prompts[:1], n=2, temperature=1.0, seed=11, max_new_tokens=12) == [samples[:2]]


def test_the_chat_endpoint_and_the_servers_error_text(transformers_server):
    policy = load_policy(f"openai:{transformers_server}/smollm2-135m-instruct", endpoint="chat/completions")
    [[sample]] = policy.sample(
        [policy_prompt(render_state(PROBLEM, []), 0)], temperature=0, max_new_tokens=32
    )
    assert sample.text.strip() and sample.num_tokens > 0
    continuing = OpenAIPolicy(
        transformers_server, "smollm2-135m-instruct", endpoint="chat/completions", continue_final_message=True
    )
    with pytest.raises(PolicyServerError, match=r"HTTP 422 .*Unexpected fields.*continue_final_message"):
        continuing.sample([policy_prompt(render_state(PROBLEM, ["Outline: a + b"]), 1)], max_new_tokens=8)
