"""Does outcome-reward RL raise held-out greedy pass@1 where a noise reward does not? One arm per call.

What it runs: the shipped tiny policy (``load_policy("tiny")``), trained by ``train_policy_gradient`` on
training-split synthetic tasks with one reward, ``terminal`` (the outcome alone: the share of hidden
tests passed, on the last step) or ``noise`` (``benchmarks/studies/loop_rl.py``'s: a number in [0, 1) hashed from
the task and the steps, the yardstick for what an update's noise alone does), with the issue-29 knobs
(Dr. GRPO advantages, DAPO's filter of groups whose returns are all equal, larger groups, small KL).
Training stops at ``iterations`` or when ``time_budget_s`` is spent, whichever comes first (checked
between chunks of ``chunk`` iterations; the run folder resumes).

What it reports (JSON on stdout and in --out): greedy pass@1 with hidden tests on ``eval_tasks``
test-split tasks of ``eval_ops`` ops (held-out compositions), before and after, and the paired gain with
its 95% interval, cluster-robust over compositions (``codegym.loop.stats.paired_gain``); the training
iterations' solve rate, skipped groups and KL; seconds for training and evaluation.

Run the two arms side by side, one core each (about 25 minutes each on 2 shared cores):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/rl_pilot.py --arm terminal &
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/rl_pilot.py --arm noise &
"""

from __future__ import annotations

import json
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

EVAL_SEED = 31_337  # the held-out tasks: the same for every arm and seed


@dataclass
class Args:
    arm: str = "terminal"
    """the reward: "terminal" (the outcome alone) or "noise" (uniform noise on the last step)"""
    seed: int = 0
    """seeds the training tasks and sampling"""
    iterations: int = 200
    """the most policy-gradient iterations (the time budget may stop it sooner)"""
    time_budget_s: float = 1200.0
    """stop training after the chunk that passes this many seconds of training"""
    chunk: int = 5
    """iterations between time checks"""
    tasks_per_iteration: int = 8
    """distinct training tasks per iteration"""
    group_size: int = 8
    """episodes per task (the group)"""
    advantage: str = "dr_grpo"
    """"grpo", "dr_grpo" or "reinforce\""""
    skip_uniform_groups: bool = True
    """leave groups whose returns are all equal out of the update (DAPO's filter)"""
    learning_rate: float = 3e-5
    """AdamW's learning rate"""
    kl_coef: float = 0.0
    """weight of the KL penalty towards the starting policy (0: none)"""
    min_ops: int = 1
    """fewest ops in a training task"""
    max_ops: int = 3
    """most ops in a training task"""
    max_steps: int = 6
    """steps per episode (training and evaluation), the code step included"""
    eval_tasks: int = 200
    """held-out test-split tasks for greedy pass@1 before and after"""
    eval_ops: int = 2
    """ops in the held-out tasks (the loop's evaluation difficulty)"""
    out_root: str = "runs/rl_pilot"
    """where the training runs go (resumable)"""
    out: str = ""
    """where to write the JSON ("": benchmarks/results/rl_pilot_{arm}_seed{seed}.json)"""


def greedy(policy: str, tasks: list, max_steps: int, box) -> list[int]:
    episodes = rollout(load_policy(policy, device="cpu"), tasks, max_steps=max_steps, sandbox=box, seed=0)
    return [int(episode.hidden_all_passed) for episode in episodes]


def main() -> None:
    args = parse_args(Args, __doc__)
    rewards = {"terminal": "terminal", "noise": noise_reward}
    if args.arm not in rewards:
        raise SystemExit(f"--arm must be one of {sorted(rewards)}, got {args.arm!r}")
    out = args.out or f"benchmarks/results/rl_pilot_{args.arm}_seed{args.seed}.json"
    box = make_sandbox("local")
    try:
        tasks = draw_tasks(
            SyntheticTasks("test", min_ops=args.eval_ops, max_ops=args.eval_ops), args.eval_tasks, EVAL_SEED
        )
        groups = [task_group(task) for task in tasks]
        started = time.perf_counter()
        before = greedy("tiny", tasks, args.max_steps, box)
        eval_seconds = time.perf_counter() - started
        run_dir = Path(args.out_root) / f"{args.arm}-seed{args.seed}"
        train_started, done, result = time.perf_counter(), 0, None
        while done < args.iterations and time.perf_counter() - train_started < args.time_budget_s:
            done = min(done + args.chunk, args.iterations)
            result = train_policy_gradient(
                run_dir,
                policy="tiny",
                split="train",
                task_options={"min_ops": args.min_ops, "max_ops": args.max_ops},
                iterations=done,
                tasks_per_iteration=args.tasks_per_iteration,
                group_size=args.group_size,
                reward=rewards[args.arm],
                advantage=args.advantage,
                skip_uniform_groups=args.skip_uniform_groups,
                learning_rate=args.learning_rate,
                kl_coef=args.kl_coef,
                max_steps=args.max_steps,
                checkpoint_every=args.chunk,
                seed=args.seed,
                sandbox=box,
                progress=False,
                device="cpu",
            )
            last = result.metrics[-1]
            print(
                f"{args.arm} seed {args.seed}: {done} iterations, "
                f"{time.perf_counter() - train_started:.0f} s, solve rate of the last chunk "
                f"{sum(m.solve_rate for m in result.metrics[-args.chunk :]) / args.chunk:.3f}, "
                f"skipped {last.skipped_groups}, kl {last.kl:.4f}",
                file=sys.stderr,
                flush=True,
            )
        assert result is not None
        train_seconds = time.perf_counter() - train_started
        after = greedy(result.checkpoint, tasks, args.max_steps, box)
    finally:
        box.close()
    output = {
        "arm": args.arm,
        "before": sum(before) / len(before),
        "after": sum(after) / len(after),
        "gain": asdict(paired_gain(before, after, groups)),
        "eval_tasks": len(tasks),
        "eval_functions": len(set(groups)),
        "iterations": result.iterations,
        "episodes": result.iterations * args.tasks_per_iteration * args.group_size,
        # Per iteration, from the episodes it trained on (new tasks each time: noisy).
        "solve_rate": [round(m.solve_rate, 4) for m in result.metrics],
        "skipped_groups": [m.skipped_groups for m in result.metrics],
        "kl": [round(m.kl, 5) for m in result.metrics],
        # The iterations' own times: a resumed (finished) run still reports what it took.
        "train_seconds": round(sum(m.seconds for m in result.metrics), 1),
        "train_wall_seconds": round(train_seconds, 1),
        "eval_seconds_each": round(eval_seconds, 1),
        "verdicts": {"before": before, "after": after},
        "args": asdict(args),
        "machine": machine(),
    }
    write_json(out, output)
    print(json.dumps({k: v for k, v in output.items() if k != "verdicts"}, indent=2))


if __name__ == "__main__":
    main()
