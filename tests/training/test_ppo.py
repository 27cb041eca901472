"""train_ppo: SB3's PPO on CandidateChoiceEnv updates its parameters, logs to TensorBoard, checkpoints,
resumes (also after a crash) and repeats under a seed."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from codegym.tasks import load_tasks
from codegym.training.ppo import latest_checkpoint, train_ppo


@pytest.fixture(scope="module")
def train_tasks():
    return load_tasks("synthetic", split="train", max_ops=1).tasks(6, seed=0)


@pytest.fixture
def run(sandbox_factory, mixed_policy_factory, train_tasks):
    """train_ppo with the fast test policy, hashed embeddings and the shared local sandbox."""

    def train(out_dir, crash_after=None, **kwargs):
        settings = {
            "policy": mixed_policy_factory(train_tasks, crash_after=crash_after),
            "candidates": 3,
            "n_steps": 16,
            "n_epochs": 2,
            "seed": 0,
            "tasks": train_tasks,
            "sandbox": sandbox_factory("local"),
            "env_options": {"max_steps": 4},
            "embedding": "hashed",
            **kwargs,
        }
        return train_ppo(out_dir, **settings)

    return train


def parameters(path) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in PPO.load(path, device="cpu").policy.state_dict().items()}


@pytest.mark.slow
def test_updates_change_parameters_log_to_tensorboard_and_resume(run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = run(tmp_path, total_timesteps=48)
    assert first.num_timesteps == 48 and first.resumed_from is None
    names = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    assert names == [f"ppo_0000000{n}_steps.{ext}" for n in (16, 32, 48) for ext in ("json", "zip")]
    snapshots = [parameters(tmp_path / "checkpoints" / f"ppo_0000000{n}_steps.zip") for n in (16, 32, 48)]
    for before, after in itertools.pairwise(snapshots):  # each PPO update moved the weights
        assert any(not torch.equal(before[name], after[name]) for name in before)
    assert all(torch.equal(snapshots[-1][n], t) for n, t in parameters(first.model_path).items())

    [run_dir] = (tmp_path / "tensorboard").iterdir()
    events = EventAccumulator(str(run_dir)).Reload()
    assert {"rollout/ep_rew_mean", "codegym/episode_reward", "train/loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [
        32,
        48,
    ]  # PPO logs each update after its rollout
    curve = [e.value for e in events.Scalars("codegym/episode_reward")]
    assert len(curve) == 3 and all(0.0 <= value <= 1.0 for value in curve)

    metrics = json.loads(first.metrics_path.read_text())
    assert metrics["num_timesteps"] == 48 and len(metrics["episodes"]) == len(first.episodes) > 0
    rewards = [e.reward for e in first.episodes]
    assert metrics["summary"]["first_mean_reward"] == pytest.approx(np.mean(rewards[:10]))
    coded = [e.hidden_pass_rate for e in first.episodes if e.ended_with_code]
    assert metrics["summary"]["hidden_pass_rate"] == pytest.approx(np.mean(coded))

    resumed = run(tmp_path, total_timesteps=80)
    assert resumed.resumed_from == 48 and resumed.num_timesteps == 80
    assert resumed.episodes[: len(first.episodes)] == first.episodes  # the curve continues
    assert latest_checkpoint(tmp_path / "checkpoints").name == "ppo_000000080_steps.json"
    assert [p.name for p in (tmp_path / "tensorboard").iterdir()] == [run_dir.name]  # same TensorBoard run
    assert [e.step for e in EventAccumulator(str(run_dir)).Reload().Scalars("train/loss")][-1] == 80
    assert run(tmp_path, total_timesteps=80).resumed_from == 80  # nothing left to do: it loads and stops


@pytest.mark.slow
def test_a_crash_loses_at_most_one_interval(run, tmp_path):
    # 16 steps per rollout, a checkpoint every 32: the policy dies on its 45th call (a step near 40).
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path, total_timesteps=96, checkpoint_every=32, crash_after=44)
    assert latest_checkpoint(tmp_path / "checkpoints").name == "ppo_000000032_steps.json"
    assert not (tmp_path / "model.zip").exists()
    saved = json.loads((tmp_path / "checkpoints" / "ppo_000000032_steps.json").read_text())["episodes"]
    assert saved and max(episode["timestep"] for episode in saved) <= 32
    again = run(tmp_path, total_timesteps=96, checkpoint_every=32)
    assert again.resumed_from == 32 and again.num_timesteps == 96
    assert [dataclasses.asdict(e) for e in again.episodes[: len(saved)]] == saved
    assert all(episode.timestep > 32 for episode in again.episodes[len(saved) :])
    steps = sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "checkpoints").glob("*.zip"))
    assert steps == [32, 64, 96]


@pytest.mark.slow
def test_seeded_runs_repeat(run, tmp_path):
    one = run(tmp_path / "one", total_timesteps=32)
    two = run(tmp_path / "two", total_timesteps=32)
    other = run(tmp_path / "other", total_timesteps=32, seed=1)
    first, second = parameters(one.model_path), parameters(two.model_path)
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert one.episodes == two.episodes
    assert any(not torch.equal(first[name], t) for name, t in parameters(other.model_path).items())


@pytest.mark.slow
def test_resume_false_starts_over(run, tmp_path):
    run(tmp_path, total_timesteps=32)
    fresh = run(tmp_path, total_timesteps=16, resume=False)
    assert fresh.resumed_from is None and fresh.num_timesteps == 16
    assert latest_checkpoint(tmp_path / "checkpoints").name == "ppo_000000016_steps.json"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_steps": 0}, "n_steps"),
        ({"total_timesteps": -1}, "total_timesteps"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_ppo(tmp_path, **kwargs)


@pytest.mark.slow
def test_tiny_policy_on_synthetic_tasks(tmp_path, sandbox_factory):
    result = train_ppo(
        tmp_path,
        policy="tiny",
        total_timesteps=32,
        n_steps=16,
        task_options={"max_ops": 1},
        split="train",
        sandbox=sandbox_factory("local"),
    )
    metrics = json.loads(result.metrics_path.read_text())
    assert metrics["settings"]["embedding"] == "model" and result.num_timesteps == 32
    assert result.episodes and all(0.0 <= e.reward <= 1.0 for e in result.episodes)
    assert (
        metrics["compute_this_call"]["candidates_sampled"] == 3 * metrics["compute_this_call"]["policy_calls"]
    )
