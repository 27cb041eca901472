"""What does the loop's SFT stage learn from: the policy's own solved paths, or the replayed reference
episodes? One search, several training sets, each fine-tuned from the shipped tiny policy.

What it runs: the loop's first search (``codegym loop --until 1/search`` with the demo's configuration and
``train_tasks`` k = 2 training tasks; skipped when ``run_dir`` already has it), then one SFT per arm and
training seed, from the shipped tiny policy, with the given learning rate and epochs:

- ``start``: no training (the shipped policy);
- ``replay``: ``replay`` reference episodes of fresh training-split tasks only;
- ``paths``: the search's solved paths only;
- ``paths+replay``: both;
- ``correct_paths+replay``: only the solved paths whose outline is the reference's, with the replay: an
  oracle filter (the loop cannot use it) that says what the paths would be worth if their reasoning
  were right.

Each model plays greedy episodes on ``eval_tasks`` held-out k = 2 tasks (test-split compositions, the
loop's evaluation tasks and more) and on ``indist_tasks`` in-distribution ones (training-split k = 2
tasks the search did not see); hidden tests judge. It also reports how many solved paths have the
reference's outline and refinement.

Output: JSON (stdout and --out) and a bar plot (--plot).

Run it (about 2 minutes per arm and seed on 2 cores at the defaults):
    .venv/bin/python benchmarks/loop_sft_data.py
    .venv/bin/python benchmarks/loop_sft_data.py --learning-rate 1e-4 --epochs 1 --replay 256   # the old SFT
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

from codegym.evaluation import rollout
from codegym.loop import run_loop
from codegym.loop.config import from_dict
from codegym.loop.demo import DEMO_SETTINGS
from codegym.loop.stages import eval_tasks, iteration_seed
from codegym.loop.stats import pass_rate
from codegym.models import load_policy
from codegym.models.tiny import tiny_checkpoint
from codegym.models.train_policy import synthetic_episodes, train_policy
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

ARMS = ("start", "replay", "paths", "paths+replay", "correct_paths+replay")


@dataclass
class Args:
    arms: str = ",".join(ARMS)
    """comma-separated arms to train and evaluate"""
    train_tasks: int = 512
    """k = 2 training tasks the search runs on"""
    replay: int = 1000
    """reference episodes in the replay arms"""
    learning_rate: float = 3e-4
    """SFT's peak learning rate"""
    epochs: float = 3.0
    """SFT's passes over its data"""
    train_seeds: str = "0"
    """comma-separated training seeds (data order, dropout) per arm"""
    eval_tasks: int = 1000
    """held-out k = 2 tasks greedy plays"""
    indist_tasks: int = 600
    """in-distribution k = 2 tasks (training split, not searched) greedy plays; 0 skips them"""
    seed: int = 0
    """the loop's seed: the search's tasks and the evaluation's"""
    sandbox: str = "local"
    """sandbox: local, docker or auto"""
    run_dir: str = "runs/loop_sft_data"
    """the loop run whose first search supplies the paths (made if missing), and the trained models"""
    out: str = "benchmarks/results/loop_sft_data.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/loop_sft_data.png"
    """where to write the plot"""


def main() -> None:
    args = parse_args(Args, __doc__)
    arms = [arm for arm in args.arms.split(",") if arm]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {list(ARMS)}")
    started = time.perf_counter()
    settings = json.loads(json.dumps(DEMO_SETTINGS))  # a deep copy
    settings["tasks"].update(train_tasks=args.train_tasks, eval_tasks=args.eval_tasks)
    config = from_dict({**settings, "seed": args.seed, "sandbox": args.sandbox})
    run_dir = Path(args.run_dir)
    run_loop(config, run_dir, progress=False, until=(1, "search"))
    search = run_dir / "iter-1" / "2-search"
    paths = [json.loads(line) for line in (search / "solved_paths.jsonl").read_text().splitlines()]
    source = SyntheticTasks("train")
    searched = [source.get(tree["task_id"]) for tree in json.loads((search / "trees.json").read_text())]
    references = {task.problem: task.reference_steps for task in searched}
    searched_ids = {task.task_id for task in searched}
    quality = path_quality(paths, references)
    correct = [row for row in paths if same_step(row["steps"], references[row["problem"]], 0)]
    held_out = eval_tasks(config)
    candidates = SyntheticTasks("train", min_ops=2, max_ops=2).tasks(
        3 * args.indist_tasks, seed=10_000 + args.seed
    )
    indist = [t for t in {t.task_id: t for t in candidates if t.task_id not in searched_ids}.values()]
    indist = indist[: args.indist_tasks]
    replay = synthetic_episodes(args.replay, seed=iteration_seed(args.seed, 1))
    own = [(row["problem"], row["steps"]) for row in paths]
    right = [(row["problem"], row["steps"]) for row in correct]
    data = {
        "replay": replay,
        "paths": own,
        "paths+replay": own + replay,
        "correct_paths+replay": right + replay,
    }
    results: dict = {}
    with make_sandbox(args.sandbox) as box:

        def score(spec: str, tasks: list) -> list[int]:
            episodes = rollout(
                load_policy(spec), tasks, max_steps=config.max_steps, sandbox=box, seed=args.seed
            )
            return [int(e.hidden_all_passed) for e in episodes]

        for arm in arms:
            seeds = [0] if arm == "start" else [int(s) for s in args.train_seeds.split(",")]
            runs = []
            for train_seed in seeds:
                t0 = time.perf_counter()
                if arm == "start":
                    spec = str(tiny_checkpoint("policy"))
                else:
                    spec = str(run_dir / "sft" / f"{arm}-seed{train_seed}")
                    train_policy(
                        spec,
                        base=str(tiny_checkpoint("policy")),
                        episodes=data[arm],
                        epochs=args.epochs,
                        learning_rate=args.learning_rate,
                        batch_size=config.sft.batch_size,
                        seed=train_seed,
                        progress=False,
                    )
                run = {"train_seed": train_seed, "held_out": pass_rate(score(spec, held_out))}
                if indist:
                    run["in_distribution"] = pass_rate(score(spec, indist))
                run["seconds"] = round(time.perf_counter() - t0, 1)
                runs.append(run)
                print(f"{arm} seed {train_seed}: {json.dumps(run)}", file=sys.stderr, flush=True)
            results[arm] = {"episodes": len(data.get(arm, [])), "runs": runs}
    output = {
        "search": {"tasks": args.train_tasks, "solved_paths": len(paths), **quality},
        "arms": results,
        "args": asdict(args),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(output, indent=2))
    print(json.dumps(output, indent=2))
    plot(output, args)


def same_step(steps: list[str], reference: tuple[str, ...], index: int) -> bool:
    return len(steps) > index and steps[index].strip() == reference[index].strip()


def path_quality(paths: list[dict], references: dict[str, tuple[str, ...]]) -> dict:
    """The share of solved paths whose outline (and refinement) is the reference's, word for word."""
    n = len(paths) or 1
    return {
        "outline_is_reference": sum(same_step(r["steps"], references[r["problem"]], 0) for r in paths) / n,
        "refine_is_reference": sum(same_step(r["steps"], references[r["problem"]], 1) for r in paths) / n,
    }


def plot(output: dict, args: Args) -> None:
    arms = list(output["arms"])
    splits = [s for s in ("held_out", "in_distribution") if s in output["arms"][arms[0]]["runs"][0]]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(splits)
    for offset, split in enumerate(splits):
        means = []
        for arm in arms:
            runs = output["arms"][arm]["runs"]
            means.append(sum(r[split]["pass@1"] for r in runs) / len(runs))
        bars = ax.bar(
            [i + offset * width for i in range(len(arms))], means, width, label=split.replace("_", " ")
        )
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks([i + width * (len(splits) - 1) / 2 for i in range(len(arms))], arms, fontsize=8)
    ax.set(ylabel="greedy pass@1, k = 2 (hidden tests)", ylim=(0, 1))
    ax.set_title(f"SFT from the shipped tiny policy: lr {args.learning_rate}, {args.epochs} epochs")
    ax.legend()
    fig.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
