"""What every trainer in :mod:`codegym.training` shares: seeding, the run folder, its metrics file, saving a
policy folder, and the check that a resumed run is the same run.

- :func:`seed_everything`: Python's, numpy's and torch's global generators from one seed. The trainers'
  own draws use seeded generators of their own; this makes what libraries draw (weight init, dropout,
  a trainer's shuffling) repeat too.
- :func:`run_folder`: the run's folder, made if missing.
- :func:`write_metrics`: a JSON file written beside its final name and renamed, so a crash never leaves
  half of one (a reader sees the old file or the new one).
- :func:`save_policy`: the model (or its LoRA adapter), its tokenizer and its prompt protocol, so that
  ``load_policy(folder)`` loads the policy as it was trained.
- :func:`check_same_settings`: a run folder resumed with other settings is refused, naming what differs.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> folder = run_folder(Path(tempfile.mkdtemp()) / "run")
    >>> path = write_metrics(folder, {"settings": {"seed": 0}, "loss": 0.5})
    >>> json.loads(path.read_text())["loss"]
    0.5
    >>> check_same_settings(folder, {"seed": 0, "lr": 1e-4}, {"seed": 0, "lr": 1e-4})  # the same: nothing
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codegym.errors import UserError

METRICS_FILE = "metrics.json"

__all__ = [
    "METRICS_FILE",
    "check_same_settings",
    "run_folder",
    "save_policy",
    "seed_everything",
    "write_metrics",
]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every GPU) with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # every device's generator too


def run_folder(out_dir: str | os.PathLike[str]) -> Path:
    """The run's folder ``out_dir``, made (with its parents) if missing."""
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_metrics(
    folder: Path, metrics: Mapping[str, Any], name: str = METRICS_FILE, *, indent: int | None = 2
) -> Path:
    """``metrics`` as JSON at ``folder / name``, whole or not at all; returns the path."""
    path = folder / name
    partial = folder / f".{name}.partial"
    partial.write_text(json.dumps(metrics, indent=indent) + "\n")
    os.replace(partial, path)
    return path


def save_policy(folder: Path, model: Any, tokenizer: Any, protocol: Any) -> None:
    """Save a policy LM so ``load_policy(folder)`` loads it: the model (with LoRA, the adapter alone,
    naming its base), its tokenizer and, unless it is ``native``, its prompt protocol."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if protocol.name != "native":
        from codegym.models.protocol import save_protocol

        save_protocol(protocol, folder)


def check_same_settings(folder: Path, saved: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """Refuse to resume the run in ``folder`` (made with ``saved`` settings) with other ``settings``.

    Raises:
        UserError: a setting differs; the message names each as (saved, now) and the two ways out.
    """
    changed = {key: (saved.get(key), value) for key, value in settings.items() if saved.get(key) != value}
    if changed:
        raise UserError(
            f"{folder} holds a run with other settings ({changed}, as (saved, now)); pass the same "
            "settings to resume it, or a new out_dir to start afresh"
        )
