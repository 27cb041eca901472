"""The oracle TCG on signatures no one wrote by hand: it may refuse a task, never crash on one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_generation_never_crashes_on_random_synthetic_or_humaneval_tasks(tmp_path):
    out = tmp_path / "robustness.json"
    command = [
        sys.executable, "benchmarks/studies/tcg_robustness.py", "--random-tasks", "300", "--synthetic-tasks", "160",
        "--seed", "7", "--out", str(out), "--plot", str(tmp_path / "robustness.png"),
    ]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=600)
    results = json.loads(out.read_text())
    families = results["families"]
    assert {name: family["crash_kinds"] for name, family in families.items()} == {
        "random": {},
        "synthetic": {},
        "humaneval": {},
    }
    assert families["humaneval"]["runs"] == 2 * 164 and families["humaneval"]["generated"] == 2 * 164
    # Random signatures include ones the generator must refuse (no annotation, no example) and ones it serves.
    assert families["random"]["unsupported"] > 0 and families["random"]["generated"] > 300
    assert (tmp_path / "robustness.png").stat().st_size > 0
