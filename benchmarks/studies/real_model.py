"""A real model (by default the built-in SmolLM2-135M-Instruct) on HumanEval or CodeIO: protocols, sampling
and search.

What it measures, on the first ``--tasks`` problems of ``--task-source`` (``humaneval``: 164 is all;
``codeio``: the test split, in its order, numpy-free problems), hidden tests judging:

- greedy pass@1 and ASPR with the ``direct`` protocol (code at once) and with ``think`` (outline, refine,
  code; O1-Coder's think-before-acting);
- ``think`` sampled ``--samples`` times per task: pass@1, pass@4, pass@8 and ASPR;
- best-of-N with generated visible tests as the verifier (the oracle test generator: inputs from the
  signature and the docstring's examples, outputs from the reference): scored from the sampled arm's
  first N samples of each task (N = 2, 4, 8, at exactly those samples' tokens), by the rule of
  ``BestOfNAgent``; the ``bon-think`` arm runs the agent itself (N = ``--bon``), on its own samples;
- MCTS (``think``, UCT with rollouts) on the same tests: does search help a real model, per token spent?

Every arm records seconds, tokens per task and episodes per task. ASPR (O1-Coder): of the episodes whose
last step was code, the share that passed. Results are written to JSON after every arm, so a run cut
short keeps what it measured; the plot shows pass rate against tokens per task.

Run it (the whole thing is hours on 2 shared cores; ``--arms`` picks a subset):
    .venv/bin/python benchmarks/studies/real_model.py --tasks 164 --arms greedy-direct,greedy-think
    .venv/bin/python benchmarks/studies/real_model.py --tasks 20
    .venv/bin/python benchmarks/studies/real_model.py --model qwen2.5-coder-0.5b-instruct --task-source codeio \
        --tasks 300 --arms greedy-direct,greedy-think --max-new-tokens 512 --out benchmarks/results/real_model_qwen_codeio.json
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib
import torch

import codegym  # noqa: F401  (registers CodeReason-v0)
from codegym.agents import BestOfNAgent, MCTSAgent, Spend, rollout
from codegym.evaluation import aspr, summarize
from codegym.models import load_policy
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks import load_tasks
from codegym.tcg import OracleTCG
from codegym.tcg.base import UnsupportedTask, with_visible_tests

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine

ALL_ARMS = "greedy-direct,greedy-think,sampled-think,bon-think,mcts-think"
TASK_SOURCES = {"humaneval": None, "codeio": "test"}  # each source's split (None: it has one)


@dataclass
class Args:
    model: str = "smollm2-135m-instruct"
    """the policy spec (a built-in name, a path, a hub id or openai:<url>/<model>)"""
    task_source: str = "humaneval"
    """which problems: "humaneval" (164) or "codeio" (its test split)"""
    tasks: int = 20
    """how many problems, from --first on (164 from 0 is all of HumanEval)"""
    first: int = 0
    """the index of the first problem (to split a long run into parts)"""
    arms: str = ALL_ARMS
    """which arms to run, comma-separated, in this order"""
    samples: int = 8
    """samples per task of the sampled arm (pass@1, 4, 8 need 8)"""
    bon: int = 4
    """N of best-of-N"""
    mcts_sims: int = 4
    """MCTS simulations per task"""
    expansions: int = 2
    """MCTS candidate steps per expansion"""
    temperature: float = 0.8
    """sampling temperature of the sampled arms"""
    max_new_tokens: int = 256
    """token cap of a code step (the think protocol caps reasoning steps at 96)"""
    max_steps: int = 4
    """steps per episode (think forces code at step 3)"""
    batch_size: int = 32
    """rows decoded together (a row leaves the batch when it ends)"""
    threads: int = 1
    """torch threads (on a shared 2-core machine, 1 avoids spin-waiting against the sandbox)"""
    seed: int = 0
    """seed of every arm"""
    merge: str = ""
    """instead of measuring: comma-separated result files of parts (--first/--tasks) to merge, per arm"""
    out: str = "benchmarks/results/real_model.json"
    """where to write the JSON results"""
    plot: str = "benchmarks/results/real_model.png"
    """where to write the plot"""


def run_rollout(policy, tasks, args: Args, *, samples: int, temperature: float) -> dict:
    t0 = time.perf_counter()
    results = rollout(
        policy,
        tasks,
        samples_per_task=samples,
        temperature=temperature,
        seed=args.seed,
        max_steps=args.max_steps,
        max_new_tokens=args.max_new_tokens,
        sandbox="local",
    )
    seconds = time.perf_counter() - t0
    summary = summarize(results, ks=(1, 4, 8))
    return {
        "pass_at": {str(k): v for k, v in summary.pass_at.items()},
        "aspr": summary.aspr,
        "code_rate": summary.code_rate,
        "tokens_per_task": summary.tokens_per_task,
        "seconds": round(seconds, 1),
        "seconds_per_task": round(seconds / len(tasks), 2),
        "samples": samples,
        "steps_per_episode": sum(len(r.steps) for r in results) / len(results),
        "solved": sorted({r.task_id for r in results if r.hidden_all_passed}),
        "best_of": best_of_samples(results, samples) if samples > 1 else {},
    }


def best_of_samples(results, samples: int) -> dict:
    """Best-of-N scored from the first N samples of each task, by :class:`BestOfNAgent`'s rule with the
    visible-test verifier: paths with code first, then the visible pass rate, the earliest sample winning
    a tie. The chosen path is judged on the hidden tests. Its cost is the N samples' tokens."""
    by_task: dict[str, list] = {}
    for episode in results:
        by_task.setdefault(episode.task_id, []).append(episode)
    out = {}
    for n in (k for k in (2, 4, 8, 16) if k <= samples):
        chosen = [
            max(episodes[:n], key=lambda e: (e.code is not None, e.visible_pass_rate or 0.0))
            for episodes in by_task.values()
        ]
        tokens = sum(e.spend.tokens for episodes in by_task.values() for e in episodes[:n])
        out[str(n)] = {
            "pass_at_1": sum(e.hidden_all_passed for e in chosen) / len(chosen),
            "tokens_per_task": tokens / len(chosen),
            "visible_sources": sorted({e.visible_source for e in chosen if e.visible_source}),
            "gamed_visible_tests": sum(
                (e.visible_pass_rate or 0.0) == 1.0 and not e.hidden_all_passed for e in chosen
            ),
            "solved": sorted(e.task_id for e in chosen if e.hidden_all_passed),
        }
    return out


def run_search_arm(arm: str, policy, verified, box, args: Args) -> dict:
    """An arm on the tasks with generated visible tests: sampling (best-of-N is scored from its samples),
    best-of-N by the agent, or MCTS."""
    if arm == "sampled-think":
        return run_rollout(policy, verified, args, samples=args.samples, temperature=args.temperature)
    sampled = {"seed": args.seed, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature}
    if arm == "bon-think":
        agent = BestOfNAgent(policy, n=args.bon, verifier="visible", **sampled)
    else:
        agent = MCTSAgent(
            policy, simulations=args.mcts_sims, expansions=args.expansions, evaluation="rollout", **sampled
        )
    return run_agent(agent, verified, box, args)


def run_agent(agent, tasks, box, args: Args) -> dict:
    env = gym.make("CodeReason-v0", tasks=tasks, sandbox=box, max_steps=args.max_steps)
    t0 = time.perf_counter()
    episodes = agent.solve_many(env, [t.task_id for t in tasks])
    seconds = time.perf_counter() - t0
    env.close()
    spend = sum((e.spend for e in episodes), Spend())
    return {
        "pass_at": {"1": sum(e.hidden_all_passed for e in episodes) / len(episodes)},
        "aspr": aspr(episodes),
        "code_rate": sum(e.code is not None for e in episodes) / len(episodes),
        "tokens_per_task": spend.as_dict()["tokens"] / len(episodes),
        "seconds": round(seconds, 1),
        "seconds_per_task": round(seconds / len(tasks), 2),
        "mean_spend_per_task": {k: v / len(episodes) for k, v in spend.as_dict().items()},
        "gamed_visible_tests": sum(
            (e.visible_pass_rate or 0.0) == 1.0 and not e.hidden_all_passed for e in episodes
        ),
        "solved": sorted(e.task_id for e in episodes if e.hidden_all_passed),
    }


def main() -> None:
    args = parse_args(Args, __doc__)
    if args.merge:
        merge_parts([Path(part) for part in args.merge.split(",") if part], args)
        return
    torch.set_num_threads(args.threads)
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    unknown = sorted(set(arms) - set(ALL_ARMS.split(",")))
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; choose from {ALL_ARMS}")
    if args.task_source not in TASK_SOURCES:
        raise SystemExit(f"unknown --task-source {args.task_source!r}; choose from {sorted(TASK_SOURCES)}")
    available = list(load_tasks(args.task_source, split=TASK_SOURCES[args.task_source]))
    tasks = available[args.first : args.first + args.tasks]
    if len(tasks) < args.tasks:
        raise SystemExit(
            f"--first {args.first} --tasks {args.tasks} asks for more than the {len(available)} problems of "
            f"{args.task_source}; lower --tasks"
        )
    policies = {
        name: load_policy(args.model, protocol=name, batch_size=args.batch_size)
        for name in ("direct", "think")
    }
    results: dict = {"args": asdict(args), "arms": {}}
    started = time.perf_counter()
    with make_sandbox("local") as box:
        verified = None
        for arm in arms:
            print(f"[{time.strftime('%H:%M:%S')}] {arm} on {len(tasks)} tasks", file=sys.stderr)
            if arm.startswith("greedy-"):
                protocol = arm.split("-", 1)[1]
                run = run_rollout(policies[protocol], tasks, args, samples=1, temperature=0.0)
            else:
                if verified is None:
                    verified = generated_tests(tasks, box, args.seed)
                run = run_search_arm(arm, policies["think"], verified, box, args)
            results["arms"][arm] = run
            print(f"  {json.dumps({k: v for k, v in run.items() if k != 'solved'})}", file=sys.stderr)
            write(results, args, started)
    print(json.dumps(results, indent=2))


def merge_parts(parts: list[Path], args: Args) -> None:
    """One result from parts of a run over consecutive task ranges: rates and per-task figures are
    weighted by each part's tasks, seconds and solved tasks add up."""
    loaded = [json.loads(part.read_text()) for part in parts]
    arms: dict[str, dict] = {}
    for arm in dict.fromkeys(name for result in loaded for name in result["arms"]):
        pieces = [(r["args"]["tasks"], r["arms"][arm]) for r in loaded if arm in r["arms"]]
        total = sum(count for count, _ in pieces)

        def weighted(value, pieces=pieces, total=total):
            values = [(count, value(run)) for count, run in pieces]
            if any(v is None for _, v in values):
                return None
            return sum(count * v for count, v in values) / total

        arms[arm] = {
            "tasks": total,
            "pass_at": {k: weighted(lambda run, k=k: run["pass_at"].get(k)) for k in pieces[0][1]["pass_at"]},
            "aspr": weighted(lambda run: run["aspr"]),
            "code_rate": weighted(lambda run: run["code_rate"]),
            "tokens_per_task": weighted(lambda run: run["tokens_per_task"]),
            "seconds": round(sum(run["seconds"] for _, run in pieces), 1),
            "seconds_per_task": weighted(lambda run: run["seconds_per_task"]),
            "solved": sorted(task for _, run in pieces for task in run["solved"]),
        }
        if "samples" in pieces[0][1]:
            arms[arm]["samples"] = pieces[0][1]["samples"]
        gamed = [run.get("gamed_visible_tests") for _, run in pieces]
        if all(count is not None for count in gamed):
            arms[arm]["gamed_visible_tests"] = sum(gamed)
        best_of = [(count, run.get("best_of") or {}) for count, run in pieces]
        if all(runs for _, runs in best_of):
            arms[arm]["best_of"] = {
                n: {
                    "pass_at_1": sum(count * runs[n]["pass_at_1"] for count, runs in best_of) / total,
                    "tokens_per_task": sum(count * runs[n]["tokens_per_task"] for count, runs in best_of)
                    / total,
                    "solved": sorted(task for _, runs in best_of for task in runs[n]["solved"]),
                }
                for n in best_of[0][1]
            }
    args.tasks = max(arm["tasks"] for arm in arms.values())
    args.task_source = loaded[0]["args"].get("task_source", "humaneval")
    results = {"args": asdict(args), "parts": [str(part) for part in parts], "arms": arms}
    write(results, args, time.perf_counter())
    print(json.dumps(results, indent=2))


def generated_tests(tasks, box, seed: int):
    """The tasks with visible tests from the oracle generator (tasks it cannot serve keep their own)."""
    generator = OracleTCG(sandbox=box, seed=seed)
    out = []
    for task in tasks:
        try:
            out.append(with_visible_tests(task, generator.generate(task, 10), source="tcg"))
        except UnsupportedTask:
            out.append(task)
    return out


def write(results: dict, args: Args, started: float) -> None:
    results.update(
        seconds=round(time.perf_counter() - started, 1),
        machine=machine(),
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    fig, ax = plt.subplots(figsize=(8, 5))
    for arm, run in results["arms"].items():
        best_of = run.get("best_of") or {}
        # A sampled arm's tokens are all its samples'; its pass@1 and ASPR are one sample's, at one
        # sample's cost (files written before "samples" was kept: the largest best-of-N is the count).
        samples = run.get("samples") or max((int(n) for n in best_of), default=1)
        tokens = run["tokens_per_task"] / samples
        ax.scatter(tokens, run["pass_at"]["1"], s=60, label=f"{arm} pass@1")
        if run.get("aspr") is not None:
            ax.scatter(tokens, run["aspr"], marker="x", s=60, label=f"{arm} ASPR")
        if best_of:
            ns = sorted(best_of, key=int)
            ax.plot(
                [best_of[n]["tokens_per_task"] for n in ns],
                [best_of[n]["pass_at_1"] for n in ns],
                marker="s",
                label=f"best-of-N from {arm} (N = {', '.join(ns)})",
            )
    ax.set(
        xlabel="tokens generated per task",
        ylabel="share of tasks (pass@1) / of code paths (ASPR)",
        title=f"{args.model} on {args.task_source} ({args.tasks} tasks from #{args.first}, hidden tests)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
