"""The benchmark scripts: each has a main(), finds the harness, and parses its arguments from the checkout."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
MODULES = {"harness.py", "_report.py"}  # imported by the scripts, not run
SCRIPTS = sorted(
    path
    for path in [*BENCHMARKS.glob("*.py"), *BENCHMARKS.glob("*/*.py")]
    if path.name not in MODULES and path.parent.name != "results"
)
GROUPED = [path for path in SCRIPTS if path.parent.name in ("perf", "studies")]


def script_id(path: Path) -> str:
    return str(path.relative_to(BENCHMARKS))


def load_harness():
    spec = importlib.util.spec_from_file_location("benchmark_harness", BENCHMARKS / "harness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scripts_are_split_into_perf_and_studies_with_unique_names():
    assert {path.parent.name for path in GROUPED} == {"perf", "studies"}
    assert len(GROUPED) >= 14
    names = [path.stem for path in SCRIPTS]
    assert len(names) == len(set(names)), "codegym bench runs a script by its name alone"


@pytest.mark.parametrize("path", SCRIPTS, ids=script_id)
def test_every_script_has_a_main_behind_the_main_guard(path):
    tree = ast.parse(path.read_text())
    assert any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)
    guards = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
    ]
    assert [ast.unparse(guard.body[0]) for guard in guards] == ["main()"]


@pytest.mark.parametrize("path", GROUPED, ids=script_id)
def test_every_grouped_script_writes_its_machine_entry_through_the_harness(path):
    tree = ast.parse(path.read_text())
    imported = [
        node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "harness"
    ]
    assert imported and "machine" in [alias.name for alias in imported[0].names]
    assert "platform.platform()" not in path.read_text(), "the machine entry is harness.machine()'s"


@pytest.mark.slow
@pytest.mark.parametrize("path", SCRIPTS, ids=script_id)
def test_every_script_runs_from_the_checkout_root_and_parses_its_arguments(path):
    done = subprocess.run(
        [sys.executable, str(path.relative_to(ROOT)), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {path.name} [-h]")


def test_the_machine_entry_has_the_keys_results_use():
    import torch

    import codegym

    harness = load_harness()
    info = harness.machine(cpu_count=3)
    assert info["codegym"] == codegym.__version__
    assert info["python"] == sys.version.split()[0]
    assert isinstance(info["platform"], str) and info["platform"]
    assert isinstance(info["cpus"], int) and info["cpus"] >= 1
    assert info["torch"] == torch.__version__  # torch is loaded here
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["cpu_count"] == 3  # extra entries a script's earlier results use


def test_write_json_makes_the_folder_and_returns_what_it_wrote(tmp_path):
    harness = load_harness()
    output = {"benchmark": "x", "rates": [1.5, 2.0], "nested": {"a": None}}
    path = tmp_path / "new" / "result.json"
    text = harness.write_json(path, output)
    assert json.loads(path.read_text()) == output
    assert path.read_text() == text + "\n" and text == json.dumps(output, indent=2)
    assert harness.write_json(path, output, indent=1) == json.dumps(output, indent=1)


def test_loop_versus_control_pairs_the_tasks_both_runs_played_and_names_what_else_differs(tmp_path):
    """A loop run with more in-distribution tasks than its control pairs on the control's tasks (a shorter
    set is the longer one's start), and the settings the two runs do not share are listed."""

    def run(verdicts: list[int], groups: list[str], **args) -> dict:
        iterations = {"0": {"greedy": verdicts}, "1": {"greedy": verdicts}}
        seed = {"verdicts": {"in_distribution": iterations}, "groups": {"in_distribution": groups}}
        return {"per_seed": {"0": seed}, "args": {"indist_tasks": len(verdicts), **args}}

    loop = run([1, 1, 0, 1], ["f", "g", "h", "i"], solved_paths=True, sft_from_start=True)
    control = run([0, 1], ["f", "g"], solved_paths=False, sft_from_start=False)
    for name, result in (("loop", loop), ("control", control)):
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
    command = [
        sys.executable,
        "benchmarks/studies/loop_versus_control.py",
        "--loop",
        str(tmp_path / "loop.json"),
    ]
    command += ["--control", str(tmp_path / "control.json"), "--out", str(tmp_path / "out.json")]
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    out = json.loads((tmp_path / "out.json").read_text())
    gain = out["sets"]["in_distribution"]["1"]["greedy"]["loop_minus_control"]
    assert gain["tasks"] == 2 and gain["mean"] == pytest.approx(0.5)
    assert out["differs"] == {"indist_tasks": [4, 2], "sft_from_start": [True, False]}

    control = run([0, 1], ["f", "x"], solved_paths=False)  # the second task is another function's
    (tmp_path / "control.json").write_text(json.dumps(control))
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "evaluated other tasks" in done.stderr
