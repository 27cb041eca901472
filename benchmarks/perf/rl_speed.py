"""Tiny-policy RL speed: episodes per second of ``train_policy_gradient``, this tree against a baseline.

What it measures: ``train_policy_gradient`` on the built-in tiny policy with the same settings in two
trees, this checkout (its working tree, uncommitted changes included) and a baseline git revision (by
default aba2d2c, before the lean forward and the one-pass scoring), each exported into a temporary
folder with ``sandbox/`` and ``agents/`` placed as ``codegym.sandbox`` and ``codegym.agents`` (what
pyproject's package-dir does for an install) and run in a fresh process with that folder first on
PYTHONPATH. Each repeat runs both trees, in alternating order, so machine noise hits both alike. A run
loads the policy and starts a local sandbox before its timer, then times the whole
``train_policy_gradient`` call (rollouts, updates, checkpoints). It also counts the tokens the policy
generated, times the rollout and the update apart, and decodes a few prompts greedily: their tokens must
be the same in both trees.

What it reports (JSON on stdout and in --out, a bar plot in --plot): per tree, median episodes/s, tokens
generated per second of rollout, seconds per iteration and the per-repeat figures; the ratio of
episodes/s (this tree over the baseline) per repeat, its median, min and max; whether the greedy tokens
and the training figures (loss, rewards) agree.

Run it:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/perf/rl_speed.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/perf/rl_speed.py --repeats 5 --iterations 3
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

from codegym.options import parse_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    baseline_rev: str = "aba2d2c"
    """the git revision this tree is compared with"""
    repeats: int = 3
    """runs of each tree; the median is reported"""
    iterations: int = 2
    """policy-gradient iterations per run"""
    tasks_per_iteration: int = 8
    """distinct tasks per iteration"""
    group_size: int = 4
    """episodes per task"""
    learning_rate: float = 3e-5
    """AdamW's learning rate"""
    reward: str = "terminal"
    """the env's reward scheme"""
    max_steps: int = 4
    """steps per episode"""
    max_new_tokens: int = 256
    """the longest step, in tokens"""
    seed: int = 0
    """the runs' seed (the same in both trees)"""
    threads: int = 1
    """torch threads in each run (1: a second thread spin-waits against other processes on a shared CPU)"""
    greedy_prompts: int = 16
    """prompts decoded greedily in each tree, whose tokens must agree"""
    out: str = "benchmarks/results/rl_speed.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/rl_speed.png"
    """where to write the bar chart"""


# Runs inside the exported tree (first on PYTHONPATH); prints one JSON line.
RUN = r"""
import json, sys, tempfile, time
settings = json.loads(sys.argv[1])
import torch
torch.set_num_threads(settings.pop("threads"))
import codegym, os
# The trainer moved from codegym.agents to codegym.training; import it from the tree under test (the
# installed checkout would answer for a package the tree lacks).
here = os.path.dirname(codegym.__file__)
if os.path.exists(os.path.join(here, "training", "policy_gradient.py")):
    from codegym.training import policy_gradient
else:
    from codegym.agents import policy_gradient
train_policy_gradient = policy_gradient.train_policy_gradient
from codegym.models import load_policy
from codegym.sandbox import make_sandbox
from codegym.steps import policy_prompt, render_state
from codegym.tasks.synthetic import SyntheticTasks

policy = load_policy("tiny", device="cpu")
spent = {"tokens": 0, "rollout_s": 0.0, "update_s": 0.0}
sample = policy.sample
def counted(*args, **kwargs):
    samples = sample(*args, **kwargs)
    spent["tokens"] += sum(s.num_tokens for row in samples for s in row)
    return samples
policy.sample = counted
for name, key in (("rollout", "rollout_s"), ("_update", "update_s")):
    original = getattr(policy_gradient, name)
    def timed(*args, _original=original, _key=key, **kwargs):
        start = time.perf_counter()
        try:
            return _original(*args, **kwargs)
        finally:
            spent[_key] += time.perf_counter() - start
    setattr(policy_gradient, name, timed)

greedy_count = settings.pop("greedy_prompts")
tasks = SyntheticTasks("test").tasks(greedy_count, seed=7)
prompts = [policy_prompt(render_state(t.problem, t.reference_steps[: i % 3]), i % 3) for i, t in enumerate(tasks)]
greedy = [s.token_ids for [s] in policy.sample(prompts, temperature=0, max_new_tokens=96, seed=0)]
spent["tokens"] = 0

with make_sandbox("local") as box, tempfile.TemporaryDirectory() as out_dir:
    start = time.perf_counter()
    result = train_policy_gradient(out_dir, policy=policy, sandbox=box, progress=False, **settings)
    seconds = time.perf_counter() - start
print(json.dumps({
    "module": codegym.__file__,
    "trainer_module": policy_gradient.__file__,
    "seconds": seconds,
    "episodes": result.iterations * settings["tasks_per_iteration"] * settings["group_size"],
    **spent,
    "greedy": [list(ids) for ids in greedy],
    "metrics": [{k: m[k] for k in ("loss", "mean_reward", "solve_rate", "mean_steps", "grad_norm")}
                for m in map(vars, result.metrics)],
}))
"""


def export(rev: str | None, folder: Path) -> Path:
    """The tree at ``rev`` (None: this working tree) under ``folder``, laid out as installed."""
    root = Path(__file__).resolve().parents[2]
    folder.mkdir(parents=True)
    if rev is None:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "codegym", "sandbox", "agents"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        for name in listed:
            if (root / name).is_file():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / name, folder / name)
    else:
        archive = subprocess.run(
            ["git", "archive", rev, "codegym", "sandbox", "agents"], cwd=root, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    for package in ("sandbox", "agents"):
        (folder / package).rename(folder / "codegym" / package)
    return folder


def run(folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
    environment = {**os.environ, "PYTHONPATH": str(folder), "OMP_NUM_THREADS": str(settings["threads"])}
    completed = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(settings)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=folder,  # `python -c` puts the working folder first on sys.path: not this checkout's
    )
    if completed.returncode:
        raise RuntimeError(f"the run in {folder} failed:\n{completed.stderr[-4000:]}")
    result = json.loads(completed.stdout.splitlines()[-1])
    for module in (result["module"], result["trainer_module"]):
        if not module.startswith(str(folder)):
            raise RuntimeError(f"the run imported {module}, not the tree in {folder}")
    return result


def main() -> None:
    args = parse_args(Args, __doc__)
    settings = {
        key: getattr(args, key)
        for key in ("iterations", "tasks_per_iteration", "group_size", "learning_rate", "reward", "max_steps",
                    "max_new_tokens", "seed", "threads", "greedy_prompts")
    }  # fmt: skip
    trees = {"baseline": args.baseline_rev, "this tree": None}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as scratch:
        folders = {name: export(rev, Path(scratch) / name.replace(" ", "_")) for name, rev in trees.items()}
        for repeat in range(args.repeats):
            order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
            for name in order:
                print(f"repeat {repeat + 1}/{args.repeats}: {name}...", file=sys.stderr)
                result = run(folders[name], settings)
                result["episodes_per_s"] = result["episodes"] / result["seconds"]
                result["tokens_per_rollout_s"] = result["tokens"] / result["rollout_s"]
                runs[name].append(result)
                print(
                    f"  {result['episodes_per_s']:.2f} episodes/s, {result['tokens']} tokens, "
                    f"rollout {result['rollout_s']:.1f} s, update {result['update_s']:.1f} s",
                    file=sys.stderr,
                )
    ratios = [
        new["episodes_per_s"] / old["episodes_per_s"]
        for old, new in zip(runs["baseline"], runs["this tree"], strict=True)
    ]

    def summary(name: str) -> dict[str, Any]:
        entries = runs[name]
        per_iteration = [e["seconds"] / args.iterations for e in entries]
        return {
            "revision": trees[name] or "working tree",
            "episodes_per_s": statistics.median(e["episodes_per_s"] for e in entries),
            "tokens_per_rollout_s": statistics.median(e["tokens_per_rollout_s"] for e in entries),
            "seconds_per_iteration": statistics.median(per_iteration),
            "rollout_s_per_iteration": statistics.median(e["rollout_s"] / args.iterations for e in entries),
            "update_s_per_iteration": statistics.median(e["update_s"] / args.iterations for e in entries),
            "tokens_per_run": [e["tokens"] for e in entries],
            "per_repeat_episodes_per_s": [e["episodes_per_s"] for e in entries],
            "metrics": entries[0]["metrics"],
        }

    old_greedy, new_greedy = runs["baseline"][0]["greedy"], runs["this tree"][0]["greedy"]
    output = {
        "benchmark": "rl_speed",
        "args": asdict(args),
        "machine": machine(),
        "trees": {name: summary(name) for name in trees},
        "speedup": {
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
            "per_repeat": ratios,
        },
        "greedy_tokens_identical": old_greedy == new_greedy,
        "greedy_tokens": sum(len(ids) for ids in new_greedy),
        "greedy_rows_differing": sum(a != b for a, b in zip(old_greedy, new_greedy, strict=True)),
        "same_tokens_sampled": [e["tokens"] for e in runs["baseline"]]
        == [e["tokens"] for e in runs["this tree"]],
    }
    write_json(args.out, output)
    print(json.dumps(output, indent=2))

    figure, axis = plt.subplots(figsize=(5, 3.5))
    names = list(trees)
    medians = [output["trees"][name]["episodes_per_s"] for name in names]
    axis.bar([f"{trees[n] or 'this tree'}" for n in names], medians, color=["#999999", "#3b7dd8"])
    for index, name in enumerate(names):
        axis.scatter(
            [index] * args.repeats, runs[name] and [e["episodes_per_s"] for e in runs[name]], color="k", s=10
        )
    axis.set_ylabel("episodes / s (train_policy_gradient)")
    axis.set_title(f"tiny-policy RL, {args.threads} thread(s): x{output['speedup']['median']:.1f}")
    figure.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
