"""Search against sampling at equal spend: hidden-test pass rate against steps generated, per agent.

What it measures: on held-out synthetic tasks (test split, k ops composed; for k >= 2 the compositions
never appear in training) and with the tiny policy, each agent solves every task once
(``solve_many``: one policy call per depth or expansion carries all tasks). The visible tests that pay
and that verifiers see are written by the oracle test generator (inputs from the signature and the
examples, never a hidden input; outputs from the reference); the hidden tests only judge. For each agent
configuration it records the share of tasks whose answer passes every hidden test and the mean spend
per task: steps generated (policy samples, the x axis), policy calls, tokens, PRM calls, sandbox runs
and wall time. Greedy is one point; best-of-N (visible-test verifier and PRM verifier), PRM beam search
and MCTS (UCT with rollouts; PUCT with PRM+rollout mix) are curves over their size.

Every configuration gets a fresh env (its own verdict cache) on one shared sandbox, so sandbox runs are
not shared between agents. Seeds: one per configuration (``--seed``), fixed.

Output: JSON on stdout and in --out, and a plot of pass rate against steps generated (--plot).

Run it:
    .venv/bin/python benchmarks/studies/search_vs_sampling.py
    .venv/bin/python benchmarks/studies/search_vs_sampling.py --tasks 100 --ops 3 --mcts-sims 2,4,8,16,32
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib
import torch

import codegym  # noqa: F401  (registers CodeReason-v0)
from codegym.agents import BeamSearchAgent, BestOfNAgent, GreedyAgent, MCTSAgent, Spend
from codegym.models import load_policy, load_prm
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks
from codegym.tcg import OracleTCG
from codegym.tcg.base import with_visible_tests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    policy: str = "tiny"
    """the policy: "tiny", a local path, a hub id or openai:<url>/<model>"""
    prm: str = "tiny"
    """the process reward model: "tiny", a local path or a hub id"""
    tasks: int = 40
    """held-out synthetic tasks"""
    ops: int = 2
    """k, the ops composed in each task (the tiny policy: greedy solves about 18% at k=2, 10% at k=3)"""
    visible_tests: int = 10
    """visible tests per task from the oracle test generator"""
    bon_sizes: str = "2,4,8,16"
    """best-of-N sizes N (comma-separated)"""
    beam_sizes: str = "1x3,2x3,2x6,4x6"
    """beam search sizes, beam_width x expansions"""
    mcts_sims: str = "1,2,4,8,16"
    """MCTS simulations per task"""
    expansions: int = 3
    """MCTS candidate steps per expansion (O1-Coder: 3)"""
    temperature: float = 1.0
    """sampling temperature of best-of-N, beam and MCTS expansions"""
    sandbox: str = "local"
    """sandbox: local, docker or auto"""
    seed: int = 0
    """seed for choosing the tasks and for every agent"""
    out: str = "benchmarks/results/search_vs_sampling.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/search_vs_sampling.png"
    """where to write the plot"""


def sizes(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def configurations(args: Args, policy, prm) -> list[tuple[str, object]]:
    """(series, agent) pairs, in the order they run."""
    common = {"seed": args.seed, "max_new_tokens": 256}
    sampled = {**common, "temperature": args.temperature}
    runs: list[tuple[str, object]] = [("greedy", GreedyAgent(policy, **common))]
    for n in sizes(args.bon_sizes):
        runs.append(
            ("best-of-N (visible tests)", BestOfNAgent(policy, n=int(n), verifier="visible", **sampled))
        )
    for n in sizes(args.bon_sizes):
        runs.append(
            ("best-of-N (PRM, min)", BestOfNAgent(policy, n=int(n), verifier="prm", prm=prm, **sampled))
        )
    for size in sizes(args.beam_sizes):
        width, expansions = (int(x) for x in size.split("x"))
        runs.append(
            (
                "beam (PRM)",
                BeamSearchAgent(policy, prm=prm, beam_width=width, expansions=expansions, **sampled),
            )
        )
    for sims in sizes(args.mcts_sims):
        runs.append(
            (
                "MCTS (UCT, rollouts)",
                MCTSAgent(
                    policy, simulations=int(sims), expansions=args.expansions, evaluation="rollout", **sampled
                ),
            )
        )
    for sims in sizes(args.mcts_sims):
        runs.append(
            (
                "MCTS (PUCT, PRM+rollout mix)",
                MCTSAgent(
                    policy,
                    prm=prm,
                    simulations=int(sims),
                    expansions=args.expansions,
                    selection="puct",
                    evaluation="mix",
                    **sampled,
                ),
            )
        )
    return runs


def main() -> None:
    args = parse_args(Args, __doc__)
    # The tiny model gains nothing from a second thread, and on a shared 2-core machine that thread
    # spin-waits against the sandbox and other processes (up to 30x slower).
    torch.set_num_threads(1)
    policy, prm = load_policy(args.policy), load_prm(args.prm)
    tasks = SyntheticTasks("test", min_ops=args.ops, max_ops=args.ops).tasks(args.tasks, seed=args.seed)
    started = time.perf_counter()
    results: dict = {"runs": []}
    with make_sandbox(args.sandbox) as box:
        # The visible tests are written once, by the oracle generator, and shared by every agent.
        generator = OracleTCG(sandbox=box, seed=args.seed)
        tasks = [
            with_visible_tests(t, generator.generate(t, args.visible_tests), source="tcg") for t in tasks
        ]
        ids = [task.task_id for task in tasks]
        for series, agent in configurations(args, policy, prm):
            env = gym.make("CodeReason-v0", tasks=tasks, sandbox=box, max_steps=8)
            t0 = time.perf_counter()
            episodes = agent.solve_many(env, ids)
            env.close()
            spend = sum((e.spend for e in episodes), Spend())
            run = {
                "series": series,
                "agent": agent.name,
                "hidden_pass_rate": sum(e.hidden_all_passed for e in episodes) / len(episodes),
                "visible_pass_rate": sum((e.visible_pass_rate or 0.0) == 1.0 for e in episodes)
                / len(episodes),
                "gamed_visible_tests": sum(
                    (e.visible_pass_rate or 0.0) == 1.0 and not e.hidden_all_passed for e in episodes
                ),
                "ended_without_code": sum(e.code is None for e in episodes),
                "mean_spend_per_task": {k: v / len(episodes) for k, v in spend.as_dict().items()},
                "seconds": round(time.perf_counter() - t0, 1),
            }
            results["runs"].append(run)
            print(
                f"{agent.name:40s} pass {run['hidden_pass_rate']:.3f} "
                f"steps/task {run['mean_spend_per_task']['steps_generated']:6.1f} {run['seconds']:6.1f}s",
                file=sys.stderr,
            )
    results.update(
        args=asdict(args),
        seconds=round(time.perf_counter() - started, 1),
        machine=machine(),
    )
    print(write_json(args.out, results))
    plot(results, args)


def xs_all(results: dict) -> list[float]:
    return [run["mean_spend_per_task"]["steps_generated"] for run in results["runs"]]


def plot(results: dict, args: Args) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    series = list(dict.fromkeys(run["series"] for run in results["runs"]))
    for name in series:
        runs = [run for run in results["runs"] if run["series"] == name]
        xs = [run["mean_spend_per_task"]["steps_generated"] for run in runs]
        ys = [run["hidden_pass_rate"] for run in runs]
        ax.plot(
            xs, ys, marker="o" if len(runs) > 1 else "*", markersize=6 if len(runs) > 1 else 14, label=name
        )
    ax.set(
        xscale="log",
        xlabel="steps generated per task (policy samples, mean)",
        ylabel="tasks solved (every hidden test passes)",
        ylim=(0, 1),
    )
    ticks = [t for t in (3, 5, 10, 20, 50, 100, 200, 500) if t <= 1.5 * max(xs_all(results))]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_title(
        f"{args.policy} policy, {args.tasks} held-out synthetic tasks (k={args.ops}), seed {args.seed}"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
