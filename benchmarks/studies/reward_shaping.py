"""Reward schemes at one RL budget, several seeds: which rewards raise the tiny policy's held-out greedy
pass@1, which do no better than noise, and which differ from each other.

What it runs: ``benchmarks/studies/rl_diagnose.py`` once per (scheme, seed), every run with the same
budget and settings (``--jobs`` runs at a time, each on one thread): policy gradient from the shipped
tiny policy on training-split synthetic tasks (Dr. GRPO, uniform groups skipped, episodes sampled at
``--temperature`` and scored at it), then greedy pass@1 of every ``--eval-every``-th checkpoint on two
held-out sets of 2-op tasks: ``train2`` (training compositions, instances never trained on) and
``test2`` (compositions never trained on). A given seed draws the same training tasks and sampling
seeds under every scheme, so schemes differ by their rewards alone. Each run's JSON is kept in
``--runs-out``; a run found there with the same settings is not run again, so a killed study resumes,
and a scheme added later runs alone and joins the table.

What it reports (JSON in --out, a table on stdout, a plot in --plot), per scheme and held-out set:

- ``pooled``: greedy pass@1 before and after, and the paired gain over every (seed, task) pair with a
  95% interval cluster-robust over the task's function (a function's verdicts across seeds are one unit);
- ``seeds``: each seed's gain and interval;
- ``curve``: pass@1 at every evaluated iteration, pooled over seeds, with its interval;
- ``versus``: this scheme's pass@1 after training minus every other scheme's, paired by seed and task,
  with ``differs`` true when the interval excludes 0.

The same evaluation tasks judge every seed, so their draw is much of each interval;
``reward_shaping_recheck.py`` judges the runs' trained policies again on a fresh, larger draw.

Adding a scheme: add an entry to ``SCHEMES`` below. ``reward`` is a scheme name, a ``RewardScheme`` or a
callable ``fn(context, **kwargs) -> float`` (``codegym.rewards.RewardContext``: ``step_index``,
``process_rewards``, ``outcome`` on the last step, ``is_last``, ``training_step``...), ``reward_options``
go to the scheme's constructor or as keywords to the callable, ``uses_prm`` says whether the env scores
steps with the PRM. For example, the outcome plus a PRM bonus on the code step only:

    def code_step_bonus(context, weight=0.2, **kwargs):
        return context.outcome + weight * context.process_reward if context.is_last else 0.0

    SCHEMES["code_bonus"] = {"reward": code_step_bonus, "reward_options": {"weight": 0.2}, "uses_prm": True}

then ``--schemes code_bonus,terminal,noise`` runs it (the finished terminal and noise runs are reused)
and prints the same table.

Run it (the defaults: six schemes x 3 seeds, 60 iterations of 16 tasks x 16 episodes at temperature 0.5,
lr 3e-5; about 20 minutes a run on one core of 2, so about 3 hours for all 18 runs on 2 cores; shrink
with the arguments):
    .venv/bin/python benchmarks/studies/reward_shaping.py
    .venv/bin/python benchmarks/studies/reward_shaping.py --schemes terminal,noise
    .venv/bin/python benchmarks/studies/reward_shaping.py --schemes terminal --seeds 0 --iterations 2 \\
        --tasks-per-iteration 2 --group-size 2 --eval-tasks 10 --runs-out /tmp/rs --out /tmp/rs.json --plot /tmp/rs.png
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json
from loop_rl import noise_reward  # benchmarks/studies/loop_rl.py

from codegym.loop.stats import paired_gain, pass_rate
from codegym.options import parse_args

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


def length_reward(context, **kwargs) -> float:
    """On the last step, minus the episode's characters / 100: shorter is better, whatever the task."""
    return -sum(len(step) for step in context.steps) / 100 if context.is_last else 0.0


# The rewards compared: name -> the reward arguments of train_policy_gradient, plus whether the env
# needs the PRM. Adding a scheme is adding an entry (see the module docstring for a callable).
SCHEMES: dict[str, dict[str, Any]] = {
    # O1-Coder's phi = alpha(t) R + (1 - alpha(t)) (1/m) sum_j gamma^j r_j, paid at the end (their defaults).
    "o1coder": {"reward": "o1coder", "reward_options": {"alpha": "linear", "gamma": 0.9}, "uses_prm": True},
    # r_t on every step, plus R on the last.
    "dense": {
        "reward": "dense",
        "reward_options": {"process_weight": 1.0, "outcome_weight": 1.0},
        "uses_prm": True,
    },
    # R plus Phi(s') - Phi(s), Phi the last PRM score (gamma 1, the trainer's, keeps it policy-invariant).
    "potential": {
        "reward": "potential",
        "reward_options": {"gamma": 1.0, "aggregation": "last"},
        "uses_prm": True,
    },
    # R on the last step alone: no PRM.
    "terminal": {"reward": "terminal", "reward_options": None, "uses_prm": False},
    # R times the PRM's lowest step score, on the last step.
    "gated": {"reward": "gated", "reward_options": {"aggregation": "min"}, "uses_prm": True},
    # Hashed uniform noise on the last step: what an update's noise alone does to the policy.
    "noise": {"reward": noise_reward, "reward_options": None, "uses_prm": False},
    # Minus the episode's length: not a task reward, the check that the update follows the reward.
    "length": {"reward": length_reward, "reward_options": None, "uses_prm": False},
}
DEFAULT_SCHEMES = ("o1coder", "dense", "potential", "terminal", "gated", "noise")

DIAGNOSE = Path(__file__).with_name("rl_diagnose.py")
# The settings every run of the study shares, passed to rl_diagnose.py as --<name with dashes>.
SHARED = (
    "policy",
    "iterations",
    "tasks_per_iteration",
    "group_size",
    "learning_rate",
    "temperature",
    "negative_weight",
    "kl_coef",
    "outcome",
    "eval_tasks",
    "eval_every",
    "process_reward",
)
TARGET = 0.05  # the gain the study looks for, drawn as a dotted line


@dataclass
class Args:
    schemes: str = ",".join(DEFAULT_SCHEMES)
    """comma-separated names from SCHEMES at the top of this script"""
    seeds: str = "0,1,2"
    """comma-separated training seeds"""
    jobs: int = 2
    """runs at a time (each on one thread)"""
    policy: str = "tiny"
    """the policy every run starts from: "tiny" (the shipped one) or a checkpoint folder"""
    iterations: int = 60
    """policy-gradient iterations per run (the RL budget, the same for every scheme)"""
    tasks_per_iteration: int = 16
    """distinct training tasks per iteration"""
    group_size: int = 16
    """episodes per task (the group)"""
    learning_rate: float = 3e-5
    """AdamW's learning rate"""
    temperature: float = 0.5
    """the sampling temperature of the training episodes (the loss scores the same distribution)"""
    negative_weight: float = 1.0
    """the weight of negative advantages (1: the plain policy gradient)"""
    kl_coef: float = 0.0
    """weight of the KL penalty towards the starting policy"""
    outcome: str = "pass_rate"
    """the outcome R: "pass_rate" (the share of tests passed) or "all_pass" (0 or 1)"""
    eval_tasks: int = 300
    """tasks in each greedy evaluation set"""
    eval_every: int = 20
    """iterations between the curve's greedy evaluations"""
    process_reward: str = "tiny"
    """the PRM of the schemes that read one: "tiny", a local path or a hub id"""
    runs_out: str = "benchmarks/results/reward_shaping"
    """where each run's JSON goes (<scheme>_seed<k>.json); a run found there with these settings is reused"""
    out_root: str = "runs/reward_shaping"
    """where the training runs' checkpoints go"""
    out: str = "benchmarks/results/reward_shaping.json"
    """the pooled JSON"""
    plot: str = "benchmarks/results/reward_shaping.png"
    """the plot ("" for none)"""


def run_once(args: Args, scheme: str, seed: int) -> dict:
    """One rl_diagnose.py run, or its JSON from an earlier run with the same settings."""
    path = Path(args.runs_out) / f"{scheme}_seed{seed}.json"
    wanted = {name: getattr(args, name) for name in SHARED}
    if path.exists():
        done = json.loads(path.read_text())
        # Runs from before a setting existed ran at its default ("policy": the shipped tiny one).
        if {name: done["args"].get(name, getattr(Args, name)) for name in SHARED} == wanted:
            return done
    command = [sys.executable, str(DIAGNOSE), "--arm", scheme, "--seed", str(seed), "--out", str(path)]
    command += ["--out-root", args.out_root]
    for name in SHARED:
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if args.jobs > 1 else {})}
    log = path.with_suffix(".log")
    path.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stream:
        finished = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, env=env, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"{scheme} seed {seed} failed (exit {finished.returncode}); its log: {log}")
    log.unlink()
    print(f"finished {scheme} seed {seed}", file=sys.stderr, flush=True)
    return json.loads(path.read_text())


def _pooled(runs: list[dict], name: str, key: str) -> list:
    return [value for run in runs for value in run["greedy"][name][key]]


def summarize(runs: list[dict], names: list[str]) -> dict:
    """One scheme's pooled gains, per-seed gains and pooled curve."""
    entry: dict[str, Any] = {"pooled": {}, "seeds": {}, "curve": {}}
    for name in names:
        before, after = _pooled(runs, name, "before_verdicts"), _pooled(runs, name, "after_verdicts")
        groups = _pooled(runs, name, "groups")
        entry["pooled"][name] = {
            "before": float(np.mean(before)),
            "after": float(np.mean(after)),
            "gain": asdict(paired_gain(before, after, groups)),
        }
        entry["seeds"][name] = [run["greedy"][name]["gain"] for run in runs]
        points = len(runs[0]["curve"][f"{name}_verdicts"])
        entry["curve"][name] = [
            pass_rate([v for run in runs for v in run["curve"][f"{name}_verdicts"][point]], groups)
            for point in range(points)
        ]
    entry["curve"]["iterations"] = runs[0]["curve"]["iterations"]
    entry["train_seconds"] = [run["train_seconds"] for run in runs]
    entry["solve_rate"] = [run["solve_rate"] for run in runs]
    return entry


def difference(theirs: list[int], mine: list[int], groups: list[str]) -> dict:
    """``mine`` minus ``theirs`` (verdicts paired by position), its interval, and whether it excludes 0."""
    gain = asdict(paired_gain(theirs, mine, groups))
    return {**gain, "differs": gain["low"] > 0 or gain["high"] < 0}


def versus(mine: list[dict], theirs: list[dict], name: str) -> dict:
    """``mine``'s greedy verdicts after training minus ``theirs``, paired by seed and task."""
    return difference(
        _pooled(theirs, name, "after_verdicts"),
        _pooled(mine, name, "after_verdicts"),
        _pooled(mine, name, "groups"),
    )


def draw(results: dict, path: str, xlabel: str = "policy-gradient iteration") -> None:
    schemes = results["schemes"]
    names = list(next(iter(schemes.values()))["pooled"])
    figure, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        for index, (scheme, entry) in enumerate(schemes.items()):
            x = np.array(entry["curve"]["iterations"]) + (index - len(schemes) / 2) * 0.15
            points = entry["curve"][name]
            y = np.array([point["pass@1"] for point in points])
            low = y - np.array([point["low"] for point in points])
            high = np.array([point["high"] for point in points]) - y
            axis.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=scheme, color=f"C{index}")
        start = next(iter(schemes.values()))["pooled"][name]["before"]
        axis.axhline(start + TARGET, color="grey", linewidth=0.8, linestyle=":", label=f"start + {TARGET}")
        axis.set_xlabel(xlabel)
        axis.set_ylabel("greedy pass@1 (pooled over seeds, 95% interval)")
        axis.set_title(f"held-out {name}")
        axis.legend(fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main() -> None:
    args = parse_args(Args, __doc__)
    schemes = [scheme for scheme in args.schemes.split(",") if scheme]
    seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    unknown = sorted(set(schemes) - set(SCHEMES))
    if unknown or not schemes or not seeds or args.jobs < 1 or args.eval_every < 1:
        raise SystemExit(
            f"--schemes must name entries of SCHEMES {sorted(SCHEMES)} (unknown: {unknown}), --seeds at least "
            "one seed, --jobs and --eval-every must be >= 1"
        )
    if args.jobs == 1 and "OMP_NUM_THREADS" not in os.environ:
        # Each run then takes torch's default threads (every core): two studies side by side fight for
        # the cores and ran 4x slower here.
        print(
            "note: each run uses every core; to run another study beside this one, start both with "
            "OMP_NUM_THREADS=1",
            file=sys.stderr,
            flush=True,
        )
    with ThreadPoolExecutor(args.jobs) as pool:
        # Seed-major, so a study stopped early still has every scheme's first seeds.
        futures = {(s, seed): pool.submit(run_once, args, s, seed) for seed in seeds for s in schemes}
        runs = {scheme: [futures[scheme, seed].result() for seed in seeds] for scheme in schemes}
    names = list(runs[schemes[0]][0]["greedy"])
    results: dict[str, Any] = {"schemes": {}, "args": asdict(args), "machine": machine()}
    for scheme in schemes:
        results["schemes"][scheme] = summarize(runs[scheme], names)
        results["schemes"][scheme]["versus"] = {
            other: {name: versus(runs[scheme], runs[other], name) for name in names}
            for other in schemes
            if other != scheme
        }
    write_json(args.out, results)
    if args.plot:
        draw(results, args.plot)
    for name in names:
        print(
            f"held-out {name}: greedy pass@1 before -> after, gain (95% interval, pooled over seeds), each seed's gain"
        )
        for scheme, entry in results["schemes"].items():
            pooled = entry["pooled"][name]
            gain = pooled["gain"]
            per_seed = ", ".join(f"{seed['mean']:+.3f}" for seed in entry["seeds"][name])
            print(
                f"  {scheme:>10} {pooled['before']:.3f} -> {pooled['after']:.3f}  {gain['mean']:+.3f}"
                f" ({gain['low']:+.3f} to {gain['high']:+.3f})  seeds {per_seed}"
            )
        pairs = [
            f"{scheme} - {other} {entry['versus'][other][name]['mean']:+.3f}"
            for scheme, entry in results["schemes"].items()
            for other in entry["versus"]
            if scheme < other and entry["versus"][other][name]["differs"]
        ]
        print(f"  schemes that differ after training (interval excluding 0): {'; '.join(pairs) or 'none'}")


if __name__ == "__main__":
    main()
