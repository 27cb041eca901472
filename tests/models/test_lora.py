"""LoRA adapters: SFT and policy gradient train an adapter that saves and loads through load_policy."""

from __future__ import annotations

import json

import pytest
import torch

from codegym.models import HFPolicy, add_lora, get_protocol, load_policy
from codegym.models.lora import adapter_base, is_adapter
from codegym.models.tiny import tiny_checkpoint
from codegym.training import train_policy_gradient
from codegym.training.policy_sft import protocol_example, synthetic_episodes, train_policy


def _weights(policy: HFPolicy) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in policy.model.state_dict().items()}


@pytest.mark.slow
def test_sft_with_lora_saves_an_adapter_that_load_policy_puts_back_on_its_base(tmp_path):
    base = tiny_checkpoint("policy")
    result = train_policy(
        tmp_path / "adapter", base=str(base), n_tasks=32, epochs=1, batch_size=8, lora_r=2, progress=False
    )
    assert is_adapter(tmp_path / "adapter") and adapter_base(tmp_path / "adapter") == str(base)
    assert not (tmp_path / "adapter" / "model.safetensors").exists()  # the adapter alone
    # rank 2 on 7 projections x 4 layers of width 128: a small share of the ~1M weights
    assert 0 < result.parameters < 40_000
    settings = json.loads((tmp_path / "adapter" / "training.json").read_text())["settings"]
    assert settings["lora_r"] == 2 and settings["protocol"] == "native"

    tuned, plain = load_policy(str(tmp_path / "adapter"), device="cpu"), load_policy("tiny", device="cpu")
    assert tuned.protocol.name == "native"
    changed = [k for k, v in _weights(tuned).items() if not torch.equal(v, _weights(plain)[k])]
    assert changed and all("proj" in key for key in changed)  # merged adapters moved the projections only
    [[sample]] = tuned.sample(
        ["### Problem\nReturn the list sorted.\n\n### Step 1\n"], max_new_tokens=8, seed=0
    )
    assert sample.num_tokens > 0


def test_lora_rank_and_targets_are_checked():
    model = load_policy("tiny", device="cpu").model
    with pytest.raises(ValueError, match="LoRA rank must be an int >= 1"):
        add_lora(model, 0)
    with pytest.raises(ValueError, match="none of the LoRA target modules"):
        add_lora(model, 1, target_modules=["c_attn"])
    with pytest.raises(ValueError, match="lora_r needs a base model"):
        train_policy("/tmp/never", lora_r=1)


@pytest.mark.slow
def test_policy_gradient_with_lora_trains_only_the_adapter(tmp_path, sandbox_factory):
    result = train_policy_gradient(
        tmp_path / "pg",
        iterations=1,
        tasks_per_iteration=2,
        group_size=2,
        max_steps=3,
        max_new_tokens=48,
        task_options={"max_ops": 1},
        lora_r=1,
        seed=0,
        progress=False,
        sandbox=sandbox_factory("local"),
    )
    checkpoint = result.checkpoint
    assert is_adapter(checkpoint)
    assert result.metrics[0].grad_norm > 0
    tuned = load_policy(checkpoint, device="cpu")
    plain = load_policy("tiny", device="cpu")
    differ = [k for k, v in _weights(tuned).items() if not torch.equal(v, _weights(plain)[k])]
    assert differ and all("proj" in key for key in differ)


def test_sft_rows_in_the_think_protocol_continue_the_assistant_turn():
    def template(messages, tokenize, add_generation_prompt):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    steps = ["Outline: add", "Refine: a + b", "```python\ndef add(a, b):\n    return a + b\n```"]
    row = protocol_example(get_protocol("think"), "Add.", steps, "<eos>", template)
    assert row["prompt"].endswith("<user>Problem:\nAdd.<assistant>Step 1:\nOutline:")
    assert row["completion"] == (
        " add\n\nStep 2:\nRefine: a + b\n\nStep 3:\n```python\ndef add(a, b):\n    return a + b\n```<eos>"
    )
    # Every later prompt of the episode is a prefix of prompt + completion: what the policy sees.
    later = get_protocol("think").build_steps("Add.", steps[:2]).render(template)
    assert (row["prompt"] + row["completion"]).startswith(later)
    with pytest.raises(ValueError, match="do not open as the 'think' protocol forces"):
        protocol_example(get_protocol("think"), "Add.", ["Plan: x", "y", "z"], "<eos>", template)
    assert len(synthetic_episodes(2)) == 2


def test_a_lora_policy_embeds_through_its_adapter(tmp_path):
    """The candidate env's model embedding goes through HFPolicy.embed, which a PEFT-wrapped model serves
    (reading model.base_model, as before, got the LM head's output of a PeftModel)."""
    from codegym.agents.candidate_env import model_embedding

    policy = load_policy("tiny", device="cpu")
    texts = ["### Problem\nReturn the list sorted.", "def f(x):\n    return sorted(x)"]
    plain = model_embedding(policy, texts, max_tokens=32)
    policy.model = add_lora(policy.model, 2)
    assert policy.embedding_size == plain.shape[1] == 128
    # A fresh adapter's B matrices are zero: the same vectors as the plain model.
    assert torch.allclose(
        torch.from_numpy(model_embedding(policy, texts, max_tokens=32)), torch.from_numpy(plain)
    )
    for name, weight in policy.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.5, generator=torch.Generator().manual_seed(0))
    moved = model_embedding(policy, texts, max_tokens=32)
    assert not torch.allclose(torch.from_numpy(moved), torch.from_numpy(plain))  # the adapter counts
