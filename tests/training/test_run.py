"""The run folder every trainer shares: seeding, whole-or-nothing metrics, the saved policy, resume checks."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from codegym.errors import UserError
from codegym.training.run import check_same_settings, run_folder, save_policy, seed_everything, write_metrics


def test_one_seed_repeats_every_global_generator():
    def draws() -> tuple:
        return random.random(), float(np.random.random()), float(torch.rand(1))

    seed_everything(11)
    first = draws()
    seed_everything(11)
    assert draws() == first
    seed_everything(12)
    assert draws() != first


def test_metrics_are_replaced_whole_and_leave_no_partial_file(tmp_path):
    folder = run_folder(tmp_path / "a" / "run")
    assert folder.is_dir()
    write_metrics(folder, {"loss": 1.0})
    path = write_metrics(folder, {"loss": 0.5, "settings": {"seed": 0}}, "training.json", indent=None)
    assert json.loads((folder / "metrics.json").read_text()) == {"loss": 1.0}
    assert json.loads(path.read_text()) == {"loss": 0.5, "settings": {"seed": 0}}
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "training.json"]


def test_a_metrics_value_json_cannot_hold_fails_before_the_old_file_is_touched(tmp_path):
    folder = run_folder(tmp_path)
    write_metrics(folder, {"loss": 1.0})
    with pytest.raises(TypeError):
        write_metrics(folder, {"loss": object()})
    assert json.loads((folder / "metrics.json").read_text()) == {"loss": 1.0}


def test_a_saved_policy_loads_back_and_keeps_its_protocol(tmp_path):
    from codegym.models import load_policy
    from codegym.models.protocol import get_protocol, read_protocol

    tiny = load_policy("tiny")
    save_policy(run_folder(tmp_path / "native"), tiny.model, tiny.tokenizer, get_protocol("native"))
    again = load_policy(str(tmp_path / "native"))
    assert again.protocol.name == "native" and read_protocol(tmp_path / "native") is None
    assert again.model.num_parameters() == tiny.model.num_parameters()
    save_policy(run_folder(tmp_path / "think"), tiny.model, tiny.tokenizer, get_protocol("think"))
    assert read_protocol(tmp_path / "think") == get_protocol("think")


def test_resuming_with_other_settings_names_what_differs(tmp_path):
    check_same_settings(tmp_path, {"seed": 0, "lr": 1e-4}, {"seed": 0, "lr": 1e-4})
    with pytest.raises(UserError, match=r"other settings \(\{'lr': \(0\.0001, 0\.001\)\}.*new out_dir"):
        check_same_settings(tmp_path, {"seed": 0, "lr": 1e-4}, {"seed": 0, "lr": 1e-3})
