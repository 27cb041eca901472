"""Train stable-baselines3's PPO to choose among the policy LM's candidate steps (:class:`CandidateChoiceEnv`).

A run lives in one folder::

    out_dir/
      checkpoints/ppo_000000064_steps.zip   # the PPO model (weights, optimizer, num_timesteps)
      checkpoints/ppo_000000064_steps.json  # the episodes finished by then; written last, it commits the zip
      tensorboard/PPO_1/events.out.tfevents.*
      model.zip, metrics.json               # the final model and the run's episode curve

Calling :func:`train_ppo` again on the same folder resumes from the newest committed checkpoint (SB3's
``PPO.load(..., env=...)`` then ``learn(..., reset_num_timesteps=False)``), so a crash loses at most
the steps since the last checkpoint.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor

from codegym.agents.candidate_env import CandidateChoiceEnv
from codegym.errors import UserError
from codegym.models import Policy
from codegym.tasks import check_task_options
from codegym.training.run import run_folder, write_metrics

_CHECKPOINT = re.compile(r"ppo_(\d+)_steps\.json")
CURVE_WINDOW = 10  # episodes averaged at each end of the reward curve in the summary


@dataclass(frozen=True)
class PPOEpisode:
    """One finished episode: when it ended, its return and length, and how its code did."""

    timestep: int
    reward: float
    length: int
    ended_with_code: bool
    hidden_pass_rate: float | None  # None when it was truncated without code


@dataclass(frozen=True)
class PPORun:
    """What :func:`train_ppo` left in ``out_dir``.

    Attributes:
        out_dir: the run's folder.
        model_path: the final model (``PPO.load(model_path)``).
        metrics_path: ``metrics.json``: settings, every episode, the summary and the compute spent.
        tensorboard_dir: SB3's TensorBoard logs (``rollout/ep_rew_mean``, ``codegym/*``, ``train/*``).
        num_timesteps: env steps taken in all, resumed ones included.
        resumed_from: the checkpoint's timesteps this call resumed from, or None for a fresh run.
        episodes: every finished episode of the run, in order (those of resumed parts included).
    """

    out_dir: Path
    model_path: Path
    metrics_path: Path
    tensorboard_dir: Path
    num_timesteps: int
    resumed_from: int | None
    episodes: tuple[PPOEpisode, ...]

    def mean_reward(self, part: str = "last", window: int = CURVE_WINDOW) -> float | None:
        """The mean return of the ``"first"`` or ``"last"`` ``window`` episodes (None with none)."""
        chosen = self.episodes[:window] if part == "first" else self.episodes[-window:]
        return sum(e.reward for e in chosen) / len(chosen) if chosen else None


def train_ppo(
    out_dir: str | os.PathLike[str],
    *,
    policy: Policy | str = "tiny",
    candidates: int = 3,
    total_timesteps: int = 512,
    n_steps: int = 64,
    batch_size: int | None = None,
    n_epochs: int = 4,
    learning_rate: float = 3e-4,
    gamma: float = 0.99,
    seed: int = 0,
    tasks: Any = "synthetic",
    split: str | None = None,
    task_options: dict[str, Any] | None = None,
    sandbox: Any = "local",
    env_options: dict[str, Any] | None = None,
    embedding: str = "auto",
    temperature: float = 1.0,
    max_new_tokens: int = 128,
    checkpoint_every: int | None = None,
    resume: bool = True,
    device: str = "cpu",
    verbose: int = 0,
    protocol: str | None = None,
) -> PPORun:
    """Train PPO (``"MlpPolicy"``) on :class:`CandidateChoiceEnv` over CodeReason-v0.

    Args:
        out_dir: the run's folder (made if missing); see the module docstring for its layout.
        policy: the LM that proposes candidates: a :class:`~codegym.models.Policy` or a spec
            (``"tiny"``, a path, a hub id, ``"openai:..."``).
        candidates: K, the candidates per state (the size of the action space).
        total_timesteps: env steps to reach in all (a resumed run counts the steps already taken);
            rounded up to a multiple of ``n_steps``, as SB3 collects whole rollouts.
        n_steps, batch_size, n_epochs, learning_rate, gamma: PPO's settings (``batch_size=None``: one
            minibatch of ``n_steps``).
        seed: seeds PPO, the env's task draws and the candidates' sampling; a resumed part is seeded
            with ``seed + checkpoint timesteps``.
        tasks, split, task_options, sandbox: CodeReason-v0's arguments (``split=None`` is the source's
            default, ``"train"`` for synthetic); ``env_options`` adds any other (``reward``,
            ``process_reward``, ``max_steps``, ...).
        embedding, temperature, max_new_tokens: :class:`CandidateChoiceEnv`'s arguments.
        checkpoint_every: env steps between checkpoints, rounded up to a multiple of ``n_steps`` (a
            checkpoint is taken between rollouts, after the update); default ``n_steps``.
        resume: continue from the newest checkpoint in ``out_dir`` if there is one; False starts over
            and deletes the folder's old checkpoints (TensorBoard logs stay; the new run gets ``PPO_2``).
        device: torch device for PPO's networks (SB3 advises the CPU for an MLP policy).
        verbose: SB3's verbosity.
        protocol: the prompt protocol of a policy given by spec (``native``, ``think``, ``direct``; None:
            the model's own).

    Returns:
        A :class:`PPORun`; the reward curve is also in TensorBoard and ``metrics.json``.

    Example:
        >>> run = train_ppo("runs/ppo", total_timesteps=256, task_options={"max_ops": 1})  # doctest: +SKIP
        >>> run.mean_reward("first"), run.mean_reward("last")  # doctest: +SKIP
    """
    for name, value in (("total_timesteps", total_timesteps), ("n_steps", n_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name} must be an int >= 1, got {value!r}")
    every = n_steps if checkpoint_every is None else checkpoint_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise UserError(f"checkpoint_every must be an int >= 1 (env steps) or None, got {checkpoint_every!r}")
    out = run_folder(out_dir)
    checkpoints, tensorboard_dir = run_folder(out / "checkpoints"), out / "tensorboard"
    env_kwargs = {"tasks": tasks, "split": split, "task_options": task_options, "sandbox": sandbox}
    env_kwargs.update(env_options or {})
    check_task_options(tasks, split=split, **(task_options or {}))  # before the policy loads
    proposer = policy
    if protocol is not None:
        if not isinstance(policy, str):
            raise UserError("protocol applies to a policy given by spec; set it on your policy object")
        from codegym.models import load_policy

        proposer = load_policy(policy, protocol=protocol)
    wrapper = CandidateChoiceEnv(
        policy=proposer,
        candidates=candidates,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        embedding=embedding,
        env_kwargs=env_kwargs,
    )
    env = Monitor(wrapper)  # adds info["episode"], which SB3 logs as rollout/ep_rew_mean
    if not resume:
        for stale in checkpoints.glob("ppo_*_steps.*"):
            stale.unlink()  # else a later resume could pick up a checkpoint of the run this one replaces
    latest = latest_checkpoint(checkpoints)
    try:
        if latest is None:
            model = PPO(
                "MlpPolicy",
                env,
                n_steps=n_steps,
                batch_size=n_steps if batch_size is None else batch_size,
                n_epochs=n_epochs,
                learning_rate=learning_rate,
                gamma=gamma,
                seed=seed,
                device=device,
                tensorboard_log=str(tensorboard_dir),
                verbose=verbose,
            )
            episodes: list[PPOEpisode] = []
        else:
            model = PPO.load(latest.with_suffix(".zip"), env=env, device=device)
            model.tensorboard_log = str(tensorboard_dir)
            model.set_random_seed(seed + model.num_timesteps)
            episodes = [PPOEpisode(**e) for e in json.loads(latest.read_text())["episodes"]]
        resumed_from = None if latest is None else model.num_timesteps
        callback = _CheckpointAndCurve(checkpoints, every, episodes)
        remaining = total_timesteps - model.num_timesteps
        if remaining > 0:
            # A resumed run keeps its step count and its TensorBoard folder (PPO_<n>); a fresh one opens a new one.
            model.learn(remaining, callback=callback, tb_log_name="PPO", reset_num_timesteps=latest is None)
        model_path = out / "model.zip"
        _atomic_save(model, model_path)
        metrics = {
            "settings": {
                "policy": policy if isinstance(policy, str) else type(policy).__name__,
                "candidates": candidates,
                "embedding": wrapper.embedding,
                "total_timesteps": total_timesteps,
                "n_steps": n_steps,
                "seed": seed,
                "tasks": tasks if isinstance(tasks, str) else type(tasks).__name__,
                "split": split,
                "task_options": task_options,
            },
            "num_timesteps": model.num_timesteps,
            "resumed_from": resumed_from,
            "summary": summarize(episodes),
            "compute_this_call": dict(wrapper.compute),
            "episodes": [asdict(e) for e in episodes],
        }
        metrics_path = write_metrics(out, metrics, indent=1)
    finally:
        env.close()
    return PPORun(
        out_dir=out,
        model_path=model_path,
        metrics_path=metrics_path,
        tensorboard_dir=tensorboard_dir,
        num_timesteps=model.num_timesteps,
        resumed_from=resumed_from,
        episodes=tuple(episodes),
    )


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The committed checkpoint (its ``.json``; the model is the ``.zip`` beside it) with the most steps."""
    found = []
    for path in Path(directory).glob("ppo_*_steps.json"):
        match = _CHECKPOINT.fullmatch(path.name)
        if match and path.with_suffix(".zip").exists():
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def summarize(episodes: Sequence[PPOEpisode], window: int = CURVE_WINDOW) -> dict[str, Any]:
    """The reward curve's ends and the hidden pass rate of the episodes that ended with code."""
    coded = [e.hidden_pass_rate for e in episodes if e.ended_with_code and e.hidden_pass_rate is not None]

    def mean(values: Sequence[float]) -> float | None:
        return sum(values) / len(values) if values else None

    return {
        "episodes": len(episodes),
        "window": window,
        "first_mean_reward": mean([e.reward for e in episodes[:window]]),
        "last_mean_reward": mean([e.reward for e in episodes[-window:]]),
        "code_rate": mean([float(e.ended_with_code) for e in episodes]),
        "hidden_pass_rate": mean(coded),
        "hidden_all_passed_rate": mean([float(rate == 1.0) for rate in coded]),
    }


def _atomic_save(model: Any, path: Path) -> None:
    # A crash while saving must not leave a truncated zip under a name that resume would trust.
    tmp = path.with_name(path.stem + ".tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


class _CheckpointAndCurve(BaseCallback):
    """Records each finished episode (to the curve and TensorBoard) and saves a checkpoint between
    rollouts, after PPO's update, every ``every`` env steps and at the end of training."""

    def __init__(self, directory: Path, every: int, episodes: list[PPOEpisode]) -> None:
        super().__init__()
        self.directory, self.every, self.episodes = directory, every, episodes
        self.last_saved: int | None = None

    def _on_training_start(self) -> None:
        self.last_saved = self.num_timesteps

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" not in info:
                continue
            episode = PPOEpisode(
                timestep=self.num_timesteps,
                reward=float(info["episode"]["r"]),
                length=int(info["episode"]["l"]),
                ended_with_code="code" in info,
                hidden_pass_rate=info.get("hidden_pass_rate"),
            )
            self.episodes.append(episode)
            self.logger.record_mean("codegym/episode_reward", episode.reward)
            self.logger.record_mean("codegym/code_rate", float(episode.ended_with_code))
            if episode.hidden_pass_rate is not None:
                self.logger.record_mean("codegym/hidden_pass_rate", episode.hidden_pass_rate)
        return True

    def _on_rollout_start(self) -> None:
        if self.num_timesteps - self.last_saved >= self.every:
            self._save()

    def _on_training_end(self) -> None:
        if self.num_timesteps != self.last_saved:
            self._save()

    def _save(self) -> None:
        stem = self.directory / f"ppo_{self.num_timesteps:09d}_steps"
        _atomic_save(self.model, stem.with_suffix(".zip"))
        write_metrics(
            self.directory, {"episodes": [asdict(e) for e in self.episodes]}, f"{stem.name}.json", indent=None
        )
        self.last_saved = self.num_timesteps
