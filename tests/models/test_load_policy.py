"""load_policy picks the backend from the spec."""

from __future__ import annotations

import pytest

from codegym.models import HFPolicy, OpenAIPolicy, Policy, load_policy
from codegym.models.tiny import create_tiny


def test_openai_spec_gives_the_http_client():
    policy = load_policy("openai:http://127.0.0.1:8000/v1/Qwen/Qwen2.5-0.5B", timeout_s=5.0)
    assert isinstance(policy, OpenAIPolicy) and isinstance(policy, Policy)
    assert (policy.base_url, policy.model) == ("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-0.5B")


def test_local_directory_gives_a_transformers_policy(tmp_path):
    path = create_tiny(tmp_path / "tiny", n_tasks=50)
    policy = load_policy(str(path), batch_size=2)
    assert isinstance(policy, HFPolicy)
    [[sample]] = policy.sample(["### Problem\nAdd.\n\n### Step 1\n"], max_new_tokens=4, temperature=0)
    assert sample.num_tokens <= 4


def test_bad_spec_is_named():
    with pytest.raises(TypeError, match="policy spec"):
        load_policy("")


def test_tiny_is_the_shipped_trained_checkpoint():
    from codegym.steps import policy_prompt, render_state
    from codegym.tasks.synthetic import SyntheticTasks

    policy = load_policy("tiny")
    assert isinstance(policy, HFPolicy)
    task = SyntheticTasks("train", min_ops=1, max_ops=1).tasks(1, seed=11)[0]
    [[first]] = policy.sample([policy_prompt(render_state(task.problem, []), 0)], temperature=0)
    # trained, it writes an O1-Coder outline and stops at the end of the step
    assert first.text.startswith("Outline:\n1. ") and "### Step" not in first.text
    assert first.finish_reason == "stop"
