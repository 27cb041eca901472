"""What does the loop's PRM stage learn from: the search trees' step labels, or the replayed
execution-labelled steps? One search, several training sets, each trained from the shipped tiny PRM.

What it runs: the loop's first search (``codegym loop --until 1/search`` with the demo's configuration;
skipped when ``run_dir`` already has it), then one PRM training per arm and training seed, from the shipped
PRM, with the loop's PRM settings (``codegym.loop.config.PRMConfig``: point-wise, hard labels, its epochs
and learning rate). An arm is ``start`` (no training) or parts joined by ``+``:

- ``trees``: every row of the search's trees (a node's step, labelled good when a path through it passed
  every visible test);
- ``balanced``: the tree rows with as many good as bad among code steps and among reasoning steps
  (``codegym.models.prm_data.balance_labels``, the loop's ``prm_training.balance``);
- ``code``: the trees' code-step rows only (their label is the tests' verdict on that very code);
- ``failed``: the trees' bad rows only (no path through the step passed);
- ``replayN``: N training-split synthetic tasks labelled by execution (the shipped PRM's own kind of data,
  the loop's ``prm_training.replay``).

Each PRM is scored on the execution-labelled steps of ``heldout_tasks`` test-split tasks (held-out
compositions; reference steps and corrupted ones, labelled by running the completed code on hidden tests),
the same steps for every arm: the step AUC, and within each step kind. It also reports the trees' labels:
rows and the share labelled good, by kind.

Output: JSON (stdout and --out) and a bar plot of the AUCs (--plot).

Run it (about 1 to 2 minutes per arm and seed on 2 cores, and 1 for the search):
    .venv/bin/python benchmarks/studies/loop_prm_data.py
    .venv/bin/python benchmarks/studies/loop_prm_data.py --arms start,replay100,trees+replay100 --train-seeds 0,1
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
from datasets import concatenate_datasets

from codegym.loop import run_loop
from codegym.loop.config import PRMConfig, from_dict
from codegym.loop.demo import DEMO_SETTINGS
from codegym.loop.stages import train_loop_prm
from codegym.models import load_prm
from codegym.models.prm_data import balance_labels, load_step_labels, synthetic_step_labels
from codegym.models.prm_eval import evaluate_prm
from codegym.models.tiny import tiny_checkpoint
from codegym.options import parse_args
from codegym.steps import StepKind, classify_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

TREE_PARTS = ("trees", "balanced", "code", "failed")
HELDOUT_SEED = 12_345  # the held-out steps: other tasks than any check of the loop's


@dataclass
class Args:
    arms: str = "start,trees,replay100,trees+replay100,replay400,trees+replay400,balanced+replay400"
    """comma-separated arms: "start", or parts joined by "+" (trees, balanced, code, failed, replayN)"""
    train_tasks: int = 128
    """k = 2 training tasks the search runs on (the demo's)"""
    train_seeds: str = "0"
    """comma-separated training seeds (data order, the replay's tasks, the balancing's draw) per arm"""
    heldout_tasks: int = 200
    """test-split tasks whose execution-labelled steps score every PRM"""
    seed: int = 0
    """the loop's seed: the search's tasks"""
    sandbox: str = "local"
    """sandbox: local, docker or auto"""
    run_dir: str = "runs/loop_prm_data"
    """the loop run whose first search supplies the trees (made if missing), and the trained PRMs"""
    out: str = "benchmarks/results/loop_prm_data.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/loop_prm_data.png"
    """where to write the plot"""


def parse_arm(arm: str) -> list[str]:
    """The parts of an arm, checked; ``[]`` for "start"."""
    if arm == "start":
        return []
    parts = arm.split("+")
    for part in parts:
        if part not in TREE_PARTS and not (part.startswith("replay") and part[6:].isdigit()):
            raise SystemExit(f"unknown part {part!r} in arm {arm!r}; parts: {list(TREE_PARTS)} and replayN")
    return parts


def main() -> None:
    args = parse_args(Args, __doc__)
    arms = {arm: parse_arm(arm) for arm in args.arms.split(",") if arm}
    started = time.perf_counter()
    run_dir = Path(args.run_dir)
    settings = json.loads(json.dumps(DEMO_SETTINGS))  # a deep copy
    settings["tasks"]["train_tasks"] = args.train_tasks
    config = from_dict({**settings, "seed": args.seed, "sandbox": args.sandbox})
    run_loop(config, run_dir, progress=False, until=(1, "search"))
    trees = load_step_labels(run_dir / "iter-1" / "2-search" / "trees")
    kinds = [classify_step(step) for step in trees["step"]]
    tree_labels = {
        kind.value: {
            "rows": count,
            "good": sum(k is kind and h >= 0.5 for k, h in zip(kinds, trees["hard_label"], strict=True)),
        }
        for kind, count in Counter(kinds).items()
    }
    held_out = synthetic_step_labels(
        "test", n_tasks=args.heldout_tasks, seed=HELDOUT_SEED, sandbox=args.sandbox
    )
    prm_config: PRMConfig = config.prm_training
    base = str(tiny_checkpoint("prm"))
    replays: dict[tuple[int, int], object] = {}

    def training_data(parts: list[str], train_seed: int):
        chosen = []
        for part in parts:
            if part == "trees":
                chosen.append(trees)
            elif part == "balanced":
                chosen.append(balance_labels(trees, seed=train_seed))
            elif part == "code":
                chosen.append(trees.select([i for i, k in enumerate(kinds) if k is StepKind.CODE]))
            elif part == "failed":
                chosen.append(trees.filter(lambda row: row["hard_label"] < 0.5))
            else:
                n = int(part[6:])
                if (n, train_seed) not in replays:
                    labels = synthetic_step_labels("train", n_tasks=n, seed=train_seed, sandbox=args.sandbox)
                    replays[n, train_seed] = labels.cast(trees.features)
                chosen.append(replays[n, train_seed])
        return concatenate_datasets(chosen)

    results: dict = {}
    for arm, parts in arms.items():
        runs = []
        for train_seed in [0] if not parts else [int(s) for s in args.train_seeds.split(",")]:
            t0 = time.perf_counter()
            spec, rows = base, 0
            if parts:
                data = training_data(parts, train_seed)
                rows = len(data)
                spec = str(run_dir / "prm" / f"{arm}-seed{train_seed}")
                train_loop_prm(Path(spec), prm_config, data, base, seed=train_seed, progress=False)
            evaluation = evaluate_prm(load_prm(spec), held_out)
            run = {
                "train_seed": train_seed,
                "rows": rows,
                "auc": evaluation.auc,
                "auc_by_kind": evaluation.auc_by_kind,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            runs.append(run)
            print(f"{arm} seed {train_seed}: {json.dumps(run)}", file=sys.stderr, flush=True)
        results[arm] = {"runs": runs, "mean_auc": sum(r["auc"] for r in runs) / len(runs)}
    output = {
        "trees": {"tasks": args.train_tasks, "rows": len(trees), "by_kind": tree_labels},
        "held_out": {"tasks": args.heldout_tasks, "steps": len(held_out)},
        "prm_settings": asdict(prm_config),
        "arms": results,
        "args": asdict(args),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    write_json(args.out, output)
    print(json.dumps(output, indent=2))
    plot(output, args)


def plot(output: dict, args: Args) -> None:
    arms = list(output["arms"])
    fig, ax = plt.subplots(figsize=(max(8, 1.4 * len(arms)), 4.5))
    means = [output["arms"][arm]["mean_auc"] for arm in arms]
    bars = ax.bar(
        range(len(arms)), means, color=["grey"] + ["C0"] * (len(arms) - 1) if arms[0] == "start" else "C0"
    )
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    for i, arm in enumerate(arms):  # each training seed as a dot
        aucs = [r["auc"] for r in output["arms"][arm]["runs"]]
        ax.scatter([i] * len(aucs), aucs, color="black", s=10, zorder=3)
    if "start" in output["arms"]:
        ax.axhline(output["arms"]["start"]["mean_auc"], color="grey", linestyle="--", linewidth=1)
    low = min(means) - 0.05
    ax.set(ylabel="held-out step AUC", ylim=(max(0.0, low), 1.0))
    ax.set_xticks(range(len(arms)), arms, fontsize=8, rotation=15)
    held = output["held_out"]
    ax.set_title(
        f"PRM from the shipped one, on {held['steps']} steps of {held['tasks']} held-out tasks "
        f"(trees: {output['trees']['rows']} rows of {output['trees']['tasks']} searched tasks)",
        fontsize=10,
    )
    fig.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
