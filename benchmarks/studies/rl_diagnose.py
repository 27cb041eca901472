"""Why does outcome-reward RL not lift the tiny policy's greedy pass@1? One short diagnostic run per call.

What it runs: ``train_policy_gradient`` from the shipped tiny policy on training-split synthetic tasks
(1 to 3 ops, fresh tasks every iteration, drawn from ``(seed, iteration)``: the same tasks for every
arm of a seed, so arms compare iteration by iteration), Dr. GRPO advantages with DAPO's filter of
uniform groups, with one reward:

- ``terminal``: the outcome alone, on the last step: the share of the paying tests passed, or with
  ``--outcome all_pass`` 1 when all pass, else 0;
- ``noise``: ``benchmarks/studies/loop_rl.py``'s hashed uniform noise, the yardstick for what an update's noise
  alone does;
- ``length``: minus the episode's characters / 100, on the last step: a reward the policy can raise by
  itself whatever the task, the sanity check that the update moves the policy the way the reward asks.

What it reports (JSON on stdout and in --out): per iteration, the mean reward, the sampled solve rate,
the share of episodes ending with code and the mean steps; greedy pass@1 before and after on
``eval_tasks`` held-out test-split tasks of 2 ops (``test2``: compositions never trained on, the pilot's
measure) and on as many training-split tasks of 2 ops (``train2``: training compositions, instances
drawn apart from training), each with its paired gain and 95% interval, cluster-robust over compositions.

Example (about 7 minutes on one core):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/rl_diagnose.py --arm terminal --learning-rate 3e-4 --iterations 30
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json
from loop_rl import noise_reward  # benchmarks/studies/loop_rl.py

from codegym.agents import rollout
from codegym.loop.stats import paired_gain
from codegym.loop.task_sets import draw_tasks, task_group
from codegym.models import load_policy
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks
from codegym.training.policy_gradient import train_policy_gradient

EVAL_SEEDS = {"test2": ("test", 31_337), "train2": ("train", 4_242)}  # split and draw seed of each eval set


@dataclass
class Args:
    arm: str = "terminal"
    """the reward: "terminal", "noise" or "length" (see the docstring)"""
    seed: int = 0
    """seeds the training tasks and sampling"""
    iterations: int = 30
    """policy-gradient iterations"""
    tasks_per_iteration: int = 8
    """distinct training tasks per iteration"""
    group_size: int = 8
    """episodes per task (the group)"""
    learning_rate: float = 3e-4
    """AdamW's learning rate"""
    kl_coef: float = 0.0
    """weight of the KL penalty towards the starting policy (0: none)"""
    outcome: str = "pass_rate"
    """how the code's test report becomes the outcome: "pass_rate" (the share passed) or "all_pass" (0 or 1)"""
    eval_tasks: int = 150
    """tasks in each greedy evaluation set"""
    out_root: str = "runs/rl_diagnose"
    """where the training runs go (a run there is replaced)"""
    out: str = ""
    """where to write the JSON ("": benchmarks/results/rl_diagnose_{arm}_lr{learning_rate}_seed{seed}.json)"""


def length_reward(context, **kwargs) -> float:
    """On the last step, minus the episode's characters / 100: shorter is better, whatever the task."""
    return -sum(len(step) for step in context.steps) / 100 if context.is_last else 0.0


def greedy(policy: str, tasks: list, box) -> list[int]:
    episodes = rollout(load_policy(policy, device="cpu"), tasks, max_steps=6, sandbox=box, seed=0)
    return [int(episode.hidden_all_passed) for episode in episodes]


def main() -> None:
    args = parse_args(Args, __doc__)
    rewards = {"terminal": "terminal", "noise": noise_reward, "length": length_reward}
    if args.arm not in rewards:
        raise SystemExit(f"--arm must be one of {sorted(rewards)}, got {args.arm!r}")
    name = f"{args.arm}{'_all_pass' if args.outcome == 'all_pass' else ''}_lr{args.learning_rate:g}_seed{args.seed}"
    out = args.out or f"benchmarks/results/rl_diagnose_{name}.json"
    run_dir = Path(args.out_root) / name
    shutil.rmtree(run_dir, ignore_errors=True)
    box = make_sandbox("local")
    try:
        started = time.perf_counter()
        result = train_policy_gradient(
            run_dir,
            policy="tiny",
            split="train",
            task_options={"min_ops": 1, "max_ops": 3},
            iterations=args.iterations,
            tasks_per_iteration=args.tasks_per_iteration,
            group_size=args.group_size,
            reward=rewards[args.arm],
            advantage="dr_grpo",
            skip_uniform_groups=True,
            learning_rate=args.learning_rate,
            kl_coef=args.kl_coef,
            env_options={"outcome": args.outcome},
            max_steps=6,
            checkpoint_every=args.iterations,
            seed=args.seed,
            sandbox=box,
            progress=False,
            device="cpu",
        )
        train_seconds = time.perf_counter() - started
        evaluations = {}
        for name, (split, draw_seed) in EVAL_SEEDS.items():
            tasks = draw_tasks(SyntheticTasks(split, min_ops=2, max_ops=2), args.eval_tasks, draw_seed)
            before, after = greedy("tiny", tasks, box), greedy(result.checkpoint, tasks, box)
            evaluations[name] = {
                "before": sum(before) / len(before),
                "after": sum(after) / len(after),
                "gain": asdict(paired_gain(before, after, [task_group(task) for task in tasks])),
                "tasks": len(tasks),
            }
    finally:
        box.close()
    metrics = result.metrics
    output = {
        "arm": args.arm,
        "greedy": evaluations,
        "mean_reward": [round(m.mean_reward, 4) for m in metrics],
        "solve_rate": [round(m.solve_rate, 4) for m in metrics],
        "code_rate": [round(m.code_rate, 4) for m in metrics],
        "mean_steps": [round(m.mean_steps, 3) for m in metrics],
        "skipped_groups": [m.skipped_groups for m in metrics],
        "kl": [round(m.kl, 5) for m in metrics],
        "train_seconds": round(train_seconds, 1),
        "args": asdict(args),
        "machine": machine(),
    }
    write_json(out, output)
    print(json.dumps({k: v for k, v in output.items() if k not in ("machine",)}))


if __name__ == "__main__":
    main()
