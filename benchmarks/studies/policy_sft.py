"""The tiny SFT policy on held-out synthetic tasks: greedy pass@1 by difficulty, and pass@k with sampling.

What it measures: episodes played through CodeReason-v0 (``codegym.agents.rollout``: one batched
policy call per depth, the env's sandbox verdict on the hidden tests) on test-split synthetic tasks of
difficulty k = 1, 2, 3 (k ops composed; for k >= 2 the compositions never appear in training, k = 1
ops are shared by both splits, with fresh inputs). Greedy decoding gives pass@1; ``samples`` episodes
per task at ``temperature`` give pass@k for k = 1, 2, 4, ... (the unbiased estimator). The gap between
greedy pass@1 and sampled pass@k is the room search has to help.

Output: a JSON object on stdout (also written to --out) and a two-panel plot (--plot).

Run it (uses the shipped checkpoint; --policy takes any path, hub id or ``openai:`` spec):
    .venv/bin/python benchmarks/studies/policy_sft.py
    .venv/bin/python benchmarks/studies/policy_sft.py --tasks-per-difficulty 100 --samples 16
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

from codegym.agents import rollout
from codegym.evaluation import pass_at_k
from codegym.models import load_policy
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    policy: str = "tiny"
    """the policy: "tiny" (the shipped checkpoint), a local path, a hub id or openai:<url>/<model>"""
    tasks_per_difficulty: int = 100
    """held-out synthetic tasks per difficulty k = 1, 2, 3"""
    samples: int = 8
    """sampled episodes per task for pass@k"""
    temperature: float = 1.0
    """sampling temperature for pass@k"""
    sandbox: str = "local"
    """sandbox: local, docker or auto"""
    seed: int = 0
    """seed for choosing the tasks and for sampling"""
    out: str = "benchmarks/results/policy_sft.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/policy_sft.png"
    """where to write the plot"""


def main() -> None:
    args = parse_args(Args, __doc__)
    policy = load_policy(args.policy)
    tasks_by_k = {
        k: SyntheticTasks("test", min_ops=k, max_ops=k).tasks(args.tasks_per_difficulty, seed=args.seed)
        for k in (1, 2, 3)
    }
    ks = [k for k in (1, 2, 4, 8, 16, 32) if k <= args.samples]
    results: dict = {"by_difficulty": {}}
    started = time.perf_counter()
    with make_sandbox(args.sandbox) as box:
        for difficulty, tasks in tasks_by_k.items():
            t0 = time.perf_counter()
            greedy = rollout(policy, tasks, temperature=0.0, seed=args.seed, sandbox=box, progress=True)
            sampled = rollout(
                policy,
                tasks,
                samples_per_task=args.samples,
                temperature=args.temperature,
                seed=args.seed,
                sandbox=box,
                progress=True,
            )
            correct = [
                sum(e.hidden_all_passed for e in sampled[i * args.samples : (i + 1) * args.samples])
                for i in range(len(tasks))
            ]
            results["by_difficulty"][str(difficulty)] = {
                "tasks": len(tasks),
                "greedy_pass@1": sum(e.hidden_all_passed for e in greedy) / len(tasks),
                "greedy_mean_hidden_pass_rate": sum(e.hidden_pass_rate for e in greedy) / len(tasks),
                "greedy_ended_without_code": sum(e.end != "code" for e in greedy),
                "sampled_pass@k": {
                    str(k): sum(pass_at_k(args.samples, c, k) for c in correct) / len(tasks) for k in ks
                },
                "sampled_tasks_solved_at_least_once": sum(c > 0 for c in correct),
                "seconds": round(time.perf_counter() - t0, 1),
            }
    results.update(
        args=asdict(args),
        seconds=round(time.perf_counter() - started, 1),
        machine=machine(),
    )
    print(write_json(args.out, results))
    plot(results, ks, args)


def plot(results: dict, ks: list[int], args: Args) -> None:
    by_k = results["by_difficulty"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    labels = list(by_k)
    left.bar(labels, [by_k[k]["greedy_pass@1"] for k in labels], color="tab:blue")
    left.set(xlabel="difficulty k (ops composed)", ylabel="greedy pass@1 (hidden tests)", ylim=(0, 1))
    left.set_title(f"{args.policy}: greedy, {args.tasks_per_difficulty} held-out tasks per k")
    for k in labels:
        right.plot(ks, [by_k[k]["sampled_pass@k"][str(x)] for x in ks], marker="o", label=f"k={k} ops")
    right.set(xscale="log", xlabel="samples k", ylabel="pass@k (hidden tests)", ylim=(0, 1))
    right.set_xticks(ks, [str(x) for x in ks])
    right.set_title(f"sampling at T={args.temperature}, n={args.samples}")
    right.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
