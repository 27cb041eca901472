"""SFT of a policy: the data format, a few real optimizer steps, seeded repeatability, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from codegym.cli import main
from codegym.models.hf_policy import HFPolicy
from codegym.models.tiny import EOS_TOKEN, create_tiny
from codegym.steps import render_state
from codegym.training.policy_sft import episode_example, synthetic_episodes, train_policy


def test_an_episode_splits_into_the_first_prompt_and_the_steps_to_learn():
    problem, steps = synthetic_episodes(1, seed=2)[0]
    row = episode_example(problem, steps, EOS_TOKEN)
    assert row["prompt"] + row["completion"] == render_state(problem, steps) + EOS_TOKEN
    assert row["prompt"].endswith("### Step 1\n") and row["completion"].startswith("Outline:")
    with pytest.raises(ValueError, match="at least one step"):
        episode_example(problem, [], EOS_TOKEN)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return create_tiny(tmp_path_factory.mktemp("base"), n_tasks=100, hidden_size=32, layers=1, heads=2)


def _weights(path):
    return {
        name: p.detach().clone() for name, p in AutoModelForCausalLM.from_pretrained(path).named_parameters()
    }


@pytest.mark.slow
def test_a_few_steps_change_the_parameters_and_the_same_seed_repeats(base, tmp_path):
    settings = dict(base=str(base), n_tasks=32, epochs=1, batch_size=16, progress=False, seed=3)
    first = train_policy(tmp_path / "a", **settings)
    second = train_policy(tmp_path / "b", **settings)
    assert first.steps == 2 and first.examples == 32 and second.loss_curve == first.loss_curve
    before, after, again = _weights(base), _weights(tmp_path / "a"), _weights(tmp_path / "b")
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert len(changed) == len(before)  # every tensor moved
    assert all(torch.equal(after[name], again[name]) for name in after)
    metrics = json.loads((tmp_path / "a" / "training.json").read_text())
    assert metrics["settings"]["seed"] == 3 and metrics["steps"] == 2 and metrics["parameters"] > 0
    # the result loads through the same path as any hub model and generates
    [[sample]] = HFPolicy(tmp_path / "a").sample(["### Problem\nx\n\n### Step 1\n"], max_new_tokens=3, seed=0)
    assert 1 <= sample.num_tokens <= 3


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="epochs must be > 0"):
        train_policy(tmp_path, epochs=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        train_policy(tmp_path, batch_size=0)


@pytest.mark.slow
def test_the_cli_trains_and_prints_a_summary(base, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["train", "policy", "--out", str(out), "--base", str(base), "--n-tasks", "16", "--epochs", "1"]
    assert main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"saved to         {out}" in printed and "optimizer steps  1" in printed
    assert (out / "model.safetensors").is_file()


def test_the_cli_turns_a_bad_value_into_a_message(capsys):
    assert main(["train", "policy", "--epochs", "-1"]) == 2
    assert "epochs must be > 0" in capsys.readouterr().err
