"""A policy-gradient run's folder: checkpoints that exist whole or not at all, and resuming from them.

``out_dir/checkpoint-N/`` holds the policy (or its LoRA adapter) after iteration N, its tokenizer, its
prompt protocol and ``trainer_state.pt`` (the run's settings, optimizer, RNG, baseline and metrics);
``out_dir/metrics.json`` the metrics so far. A checkpoint is written beside its final name and renamed,
so a crash never leaves half of one; only the newest ``keep`` stay.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegym.training.run import METRICS_FILE, check_same_settings, save_policy, write_metrics

if TYPE_CHECKING:
    from codegym.models import HFPolicy

__all__ = [
    "CHECKPOINT_PREFIX",
    "METRICS_FILE",
    "STATE_FILE",
    "checkpoints",
    "latest_checkpoint",
    "resume",
    "save_checkpoint",
]

STATE_FILE = "trainer_state.pt"
CHECKPOINT_PREFIX = "checkpoint-"


def resume(out_path: Path, policy: HFPolicy, optimizer: Any, settings: dict, *, lora: bool) -> dict | None:
    """Load the newest checkpoint in ``out_path`` into ``policy`` and ``optimizer`` (and torch's RNG);
    its saved state, or None when there is none yet.

    Raises:
        UserError: the run there was made with other settings.
    """
    import torch

    latest = latest_checkpoint(out_path)
    if latest is None:
        return None
    state = torch.load(latest / STATE_FILE, weights_only=True)
    check_same_settings(out_path, state["settings"], settings)
    if lora:
        from peft import load_peft_weights, set_peft_model_state_dict

        set_peft_model_state_dict(policy.model, load_peft_weights(str(latest)))
    else:
        from transformers import AutoModelForCausalLM

        policy.model.load_state_dict(AutoModelForCausalLM.from_pretrained(latest).state_dict())
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return state


def checkpoints(out_path: Path) -> list[tuple[int, Path]]:
    found = []
    for path in out_path.glob(f"{CHECKPOINT_PREFIX}*"):
        suffix = path.name[len(CHECKPOINT_PREFIX) :]
        if suffix.isdigit() and (path / STATE_FILE).is_file():
            found.append((int(suffix), path))
    return sorted(found)


def latest_checkpoint(out_path: Path) -> Path | None:
    found = checkpoints(out_path)
    return found[-1][1] if found else None


def save_checkpoint(out_path: Path, iteration: int, policy: HFPolicy, state: dict, keep: int) -> None:
    import torch

    final = out_path / f"{CHECKPOINT_PREFIX}{iteration}"
    partial = out_path / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # left by a crash mid-save
    partial.mkdir(parents=True)
    shutil.rmtree(final, ignore_errors=True)  # an unfinished one from a crash; finished ones never rerun
    save_policy(partial, policy.model, policy.tokenizer, policy.protocol)
    torch.save(state, partial / STATE_FILE)
    os.replace(partial, final)  # a checkpoint exists whole or not at all
    write_metrics(out_path, {"settings": state["settings"], "iterations": state["metrics"]}, METRICS_FILE)
    for _, old in checkpoints(out_path)[:-keep]:
        shutil.rmtree(old)
