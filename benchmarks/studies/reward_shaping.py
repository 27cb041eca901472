"""Reward schemes at one RL budget: held-out hidden-test pass rate of the tiny policy after policy gradient
under O1-Coder's phi, dense PRM rewards, potential-based shaping and terminal-only, over several seeds.

What it measures: every (scheme, seed) run starts from the same policy and trains it with
``train_policy_gradient`` (GRPO by default) on synthetic train-split tasks with the same budget:
iterations, tasks per iteration, group size, learning rate. Only the env's reward differs (and whether it
consults the PRM, loaded once and shared by every run). Every ``--eval-every`` iterations the latest
checkpoint plays a fixed held-out set (synthetic test split, the same tasks for every run) greedily, and
the share of tasks whose code passes every hidden test is the curve's point; iteration 0 is the shared
starting policy, evaluated once. Training rewards are not comparable across schemes (dense sums a PRM
score per step, potential shaping telescopes, phi mixes in a discounted PRM mean), so the held-out pass
rate is the axis to compare on; the second panel shows the training episodes' solve rate (sampled at
T=1, also comparable). A given seed draws the same training tasks and sampling seeds under every scheme,
so iteration 0's episodes are identical across schemes and differences come from the rewards alone.

Notes: the synthetic tasks have no visible tests of their own, so the env pays on the hidden ones; the
held-out set is what keeps this an out-of-sample measure (k >= 2 compositions never appear in training).
O1-Coder's alpha(t) schedule (linear ``max(0.1, 1 - 0.01 t)``, t = iteration) stays above 0.85 within
a short budget, so at the default budget phi is mostly the outcome plus a small discounted PRM term.

Adding a scheme: add an entry to ``SCHEMES`` below. ``reward`` is a scheme name, a ``RewardScheme`` or a
callable ``fn(context, **kwargs) -> float`` (``codegym.rewards.RewardContext``: ``step_index``,
``process_rewards``, ``outcome`` on the last step, ``is_last``, ``training_step``...), ``reward_options``
go to the scheme's constructor or as keywords to the callable, ``uses_prm`` says whether the env scores
steps with the PRM. For example, the outcome plus a PRM bonus on the code step only:

    def code_step_bonus(context, weight=0.2, **kwargs):
        return context.outcome + weight * context.process_reward if context.is_last else 0.0

    SCHEMES["code_bonus"] = {"reward": code_step_bonus, "reward_options": {"weight": 0.2}, "uses_prm": True}

then run it alone or beside the others with ``--schemes code_bonus,terminal``.

Output: JSON on stdout and in --out (per scheme: each seed's curve and training metrics, the final
pass rate per seed, its mean and sample std over seeds, wall time; the base policy; all args), written
after every run so an interrupted benchmark keeps what finished, and a two-panel plot (--plot). Run
folders go to ``--runs-dir/<scheme>/seed<k>`` and are started afresh (an old one there is deleted).

Run it (22 minutes with the defaults on 2 CPU cores shared with another job; shrink with the arguments):
    .venv/bin/python benchmarks/studies/reward_shaping.py
    .venv/bin/python benchmarks/studies/reward_shaping.py --iterations 2 --eval-every 1 --seeds 0 --eval-tasks 10
    .venv/bin/python benchmarks/studies/reward_shaping.py --schemes dense,terminal --seeds 0,1,2,3,4 --iterations 24
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from codegym.agents import rollout
from codegym.models import load_policy, load_prm
from codegym.options import parse_args
from codegym.sandbox import Sandbox, make_sandbox
from codegym.tasks import Task
from codegym.tasks.synthetic import SyntheticTasks
from codegym.training.policy_gradient import IterationMetrics, train_policy_gradient

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend
from matplotlib.ticker import MaxNLocator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine

# The schemes compared: name -> the reward arguments of train_policy_gradient, plus whether the env
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
    # R plus gamma Phi(s') - Phi(s), Phi the last PRM score; gamma must equal --gamma to stay
    # policy-invariant (Ng et al. 1999), and --gamma defaults to 1.
    "potential": {
        "reward": "potential",
        "reward_options": {"gamma": 1.0, "aggregation": "last"},
        "uses_prm": True,
    },
    # R on the last step alone: no PRM.
    "terminal": {"reward": "terminal", "reward_options": None, "uses_prm": False},
}


@dataclass
class Args:
    schemes: str = ",".join(SCHEMES)
    """comma-separated names from SCHEMES at the top of this script"""
    seeds: str = "0,1,2"
    """comma-separated training seeds; each scheme trains once per seed"""
    policy: str = "tiny"
    """the starting policy: "tiny" (the shipped checkpoint), a local path or a hub id"""
    process_reward: str = "tiny"
    """the PRM for the schemes that use one: "tiny", a local path or a hub id"""
    iterations: int = 12
    """policy-gradient iterations per run (the RL budget, the same for every scheme)"""
    tasks_per_iteration: int = 8
    """distinct training tasks per iteration"""
    group_size: int = 4
    """episodes per training task (the GRPO group)"""
    advantage: str = "grpo"
    """advantage estimator: grpo or reinforce"""
    learning_rate: float = 1e-4
    """AdamW learning rate"""
    gamma: float = 1.0
    """discount of the returns-to-go"""
    max_steps: int = 4
    """steps per episode, the code step included (training and evaluation)"""
    max_new_tokens: int = 256
    """the longest step, in tokens"""
    train_max_ops: int = 2
    """training tasks compose 1 to this many ops (synthetic train split)"""
    eval_tasks: int = 50
    """held-out tasks (synthetic test split), the same for every run"""
    eval_min_ops: int = 1
    """held-out tasks compose at least this many ops"""
    eval_max_ops: int = 2
    """held-out tasks compose at most this many ops"""
    eval_seed: int = 1234
    """seed that draws the held-out tasks"""
    eval_every: int = 4
    """iterations between held-out evaluations (the last iteration is always evaluated)"""
    sandbox: str = "local"
    """sandbox: local, docker or auto (one is started and shared by every run)"""
    runs_dir: str = "runs/reward_shaping"
    """run folders (checkpoints) go to RUNS_DIR/<scheme>/seed<k>; each is deleted and started afresh"""
    out: str = "benchmarks/results/reward_shaping.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/reward_shaping.png"
    """where to write the plot"""


def main() -> None:
    import torch

    # The tiny model gains nothing from a second thread, and on a shared 2-core machine the idle one
    # spin-waits and slows every forward pass several times over.
    torch.set_num_threads(1)
    args = parse_args(Args, __doc__)
    schemes = _names(args.schemes, "schemes")
    unknown = [name for name in schemes if name not in SCHEMES]
    if unknown:
        raise SystemExit(
            f"unknown scheme(s) {unknown}: choose from {', '.join(SCHEMES)} or add one to SCHEMES"
        )
    seeds = [int(seed) for seed in _names(args.seeds, "seeds")]
    if args.eval_every < 1 or args.iterations < 1:
        raise SystemExit(
            f"--iterations and --eval-every must be >= 1, got {args.iterations}, {args.eval_every}"
        )
    checkpoints = [*range(args.eval_every, args.iterations, args.eval_every), args.iterations]

    started = time.perf_counter()
    prm = load_prm(args.process_reward) if any(SCHEMES[name]["uses_prm"] for name in schemes) else None
    held_out = SyntheticTasks("test", min_ops=args.eval_min_ops, max_ops=args.eval_max_ops).tasks(
        args.eval_tasks, seed=args.eval_seed
    )
    results: dict[str, Any] = {
        "held_out": {
            "tasks": len(held_out),
            "by_k": {str(k): sum(t.metadata["k"] == k for t in held_out) for k in _ks(held_out)},
            "metric": "share of held-out tasks whose greedy episode passes every hidden test",
        },
        "schemes": {},
    }
    with make_sandbox(args.sandbox) as box:
        base = evaluate(load_policy(args.policy), held_out, args, box)
        results["base"] = base
        _log(f"base policy: held-out pass rate {base['pass_rate']:.3f} ({base['seconds']:.0f} s)")
        for name in schemes:
            scheme = SCHEMES[name]
            runs = {}
            for seed in seeds:
                runs[str(seed)] = train_and_evaluate(
                    name, scheme, seed, checkpoints, args, prm if scheme["uses_prm"] else None, held_out, box
                )
                results["schemes"][name] = summarize(scheme, runs, base)
                _write(results, args, started, complete=False)
    _write(results, args, started, complete=True)
    print(json.dumps(results, indent=2, default=str))
    plot(results, args)


def train_and_evaluate(
    name: str,
    scheme: dict[str, Any],
    seed: int,
    checkpoints: Sequence[int],
    args: Args,
    prm: Any,
    held_out: list[Task],
    box: Sandbox,
) -> dict[str, Any]:
    """One run: train in chunks of ``eval_every`` iterations on one folder (each call resumes the last
    checkpoint) and evaluate the checkpoint after each chunk."""
    out_dir = Path(args.runs_dir) / name / f"seed{seed}"
    shutil.rmtree(out_dir, ignore_errors=True)  # a finished run there would be resumed, not retrained
    evaluations = []
    train_seconds = 0.0
    metrics: tuple[IterationMetrics, ...] = ()
    for target in checkpoints:
        t0 = time.perf_counter()
        result = train_policy_gradient(
            out_dir,
            policy=args.policy,
            tasks="synthetic",
            split="train",
            task_options={"max_ops": args.train_max_ops},
            iterations=target,
            tasks_per_iteration=args.tasks_per_iteration,
            group_size=args.group_size,
            reward=scheme["reward"],
            reward_options=scheme.get("reward_options"),
            process_reward=prm,
            advantage=args.advantage,
            learning_rate=args.learning_rate,
            gamma=args.gamma,
            max_steps=args.max_steps,
            max_new_tokens=args.max_new_tokens,
            checkpoint_every=args.eval_every,
            keep_checkpoints=1,  # each chunk's checkpoint is evaluated before the next chunk starts
            seed=seed,
            sandbox=box,
            progress=False,
        )
        train_seconds += time.perf_counter() - t0
        if result.iterations != target:
            raise RuntimeError(
                f"{out_dir}: expected {target} iterations after training, found {result.iterations}"
            )
        metrics = result.metrics
        evaluation = evaluate(load_policy(result.checkpoint), held_out, args, box)
        evaluations.append({"iteration": target, **evaluation})
        _log(
            f"{name} seed {seed} iteration {target}/{args.iterations}: held-out pass rate "
            f"{evaluation['pass_rate']:.3f}, last training solve rate {metrics[-1].solve_rate:.2f}"
        )
    return {
        "evaluations": evaluations,
        "final_pass_rate": evaluations[-1]["pass_rate"],
        "train": {key: [getattr(m, key) for m in metrics] for key in IterationMetrics.__dataclass_fields__},
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(sum(e["seconds"] for e in evaluations), 1),
        "checkpoint": result.checkpoint,
    }


def evaluate(policy: Any, tasks: list[Task], args: Args, box: Sandbox) -> dict[str, Any]:
    """Greedy episodes of the held-out tasks: the share solved (every hidden test passed), and more."""
    t0 = time.perf_counter()
    episodes = rollout(
        policy,
        tasks,
        temperature=0.0,
        seed=args.eval_seed,
        max_steps=args.max_steps,
        max_new_tokens=args.max_new_tokens,
        sandbox=box,
    )
    solved = {e.task_id: e.hidden_all_passed for e in episodes}
    return {
        "pass_rate": float(np.mean([e.hidden_all_passed for e in episodes])),
        "pass_rate_by_k": {
            str(k): float(np.mean([solved[t.task_id] for t in tasks if t.metadata["k"] == k]))
            for k in _ks(tasks)
        },
        "mean_hidden_pass_rate": float(np.mean([e.hidden_pass_rate for e in episodes])),
        "code_rate": float(np.mean([e.end == "code" for e in episodes])),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def summarize(
    scheme: dict[str, Any], runs: dict[str, dict[str, Any]], base: dict[str, Any]
) -> dict[str, Any]:
    """A scheme's runs and their statistics over seeds (std is the sample std, 0 for a single seed)."""
    finals = [run["final_pass_rate"] for run in runs.values()]
    iterations = [0] + [e["iteration"] for e in next(iter(runs.values()))["evaluations"]]
    curves = np.array(
        [[base["pass_rate"]] + [e["pass_rate"] for e in run["evaluations"]] for run in runs.values()]
    )
    return {
        "reward": _describe(scheme["reward"]),
        "reward_options": scheme.get("reward_options"),
        "uses_prm": scheme["uses_prm"],
        "final_pass_rate_mean": float(np.mean(finals)),
        "final_pass_rate_std": float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0,
        "final_pass_rate_per_seed": dict(zip(runs, finals, strict=True)),
        "curve": {
            "iteration": iterations,
            "mean": curves.mean(axis=0).tolist(),
            "min": curves.min(axis=0).tolist(),
            "max": curves.max(axis=0).tolist(),
        },
        "seconds": round(sum(run["train_seconds"] + run["eval_seconds"] for run in runs.values()), 1),
        "seeds": runs,
    }


def plot(results: dict[str, Any], args: Args) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    base = results["base"]["pass_rate"]
    left.axhline(base, color="gray", linestyle=":", linewidth=1, label=f"start ({base:.2f})")
    for color, (name, summary) in zip(plt.cm.tab10.colors, results["schemes"].items(), strict=False):
        curve = summary["curve"]
        label = f"{name}: {summary['final_pass_rate_mean']:.2f} ± {summary['final_pass_rate_std']:.2f}"
        left.plot(curve["iteration"], curve["mean"], marker="o", color=color, label=label)
        left.fill_between(curve["iteration"], curve["min"], curve["max"], color=color, alpha=0.15)
        solve_rates = np.array(
            [run["train"]["solve_rate"] for run in summary["seeds"].values()]
        )  # (seeds, T)
        # Iteration i's episodes come from the policy after i updates, as the held-out point at i does.
        right.plot(np.arange(solve_rates.shape[1]), solve_rates.mean(axis=0), color=color, label=name)
    seeds = len(_names(args.seeds, "seeds"))
    left.set(xlabel="policy-gradient iteration", ylabel="held-out greedy pass rate (hidden tests)")
    tasks = results["held_out"]["tasks"]
    left.set_title(
        f"{tasks} held-out tasks (one task = {1 / tasks:.2f}); mean over {seeds} seeds, band min-max",
        fontsize=10,
    )
    left.legend(title="final mean ± std", fontsize=8)
    right.set(xlabel="policy-gradient iteration", ylabel="training solve rate (sampled, T=1)", ylim=(0, 1))
    right.set_title(
        f"training episodes: {args.tasks_per_iteration} tasks x {args.group_size}, mean over seeds",
        fontsize=10,
    )
    right.legend(fontsize=8)
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)


def _write(results: dict[str, Any], args: Args, started: float, *, complete: bool) -> None:
    results.update(
        complete=complete,
        args=asdict(args),
        seconds=round(time.perf_counter() - started, 1),
        machine=machine(),
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))


def _names(text: str, what: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise SystemExit(f"--{what} needs at least one comma-separated value, got {text!r}")
    return names


def _ks(tasks: list[Task]) -> list[int]:
    return sorted({task.metadata["k"] for task in tasks})


def _describe(reward: Any) -> str:
    return reward if isinstance(reward, str) else getattr(reward, "__qualname__", repr(reward))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
