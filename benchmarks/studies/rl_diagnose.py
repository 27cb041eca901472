"""One policy-gradient run of the tiny policy under one reward, and its held-out greedy pass@1 before,
during and after: the unit that ``benchmarks/studies/reward_shaping.py`` runs per (scheme, seed).

What it runs: ``train_policy_gradient`` from the shipped tiny policy on training-split synthetic tasks
(1 to 3 ops, fresh tasks every iteration, drawn from ``(seed, iteration)``: the same tasks for every
arm of a seed, so arms compare iteration by iteration), Dr. GRPO advantages with DAPO's filter of
uniform groups, with one reward, ``--arm``: any name of ``SCHEMES`` in ``reward_shaping.py``, among them

- ``terminal``: the outcome alone, on the last step: the share of the paying tests passed, or with
  ``--outcome all_pass`` 1 when all pass, else 0;
- ``noise``: ``benchmarks/studies/loop_rl.py``'s hashed uniform noise, the yardstick for what an update's
  noise alone does;
- ``length``: minus the episode's characters / 100, on the last step: a reward the policy can raise by
  itself whatever the task, the sanity check that the update moves the policy the way the reward asks;
- ``o1coder``, ``dense``, ``potential``, ``gated``: the env's schemes that read the tiny PRM.

What it reports (JSON on stdout and in --out): per iteration, the mean reward, the sampled solve rate,
the share of episodes ending with code and the mean steps; greedy pass@1 before and after on
``eval_tasks`` held-out test-split tasks of 2 ops (``test2``: compositions never trained on) and on as
many training-split tasks of 2 ops (``train2``: training compositions, instances drawn apart from
training), each with its paired gain and 95% interval, cluster-robust over compositions, and the
per-task verdicts; with ``--eval-every N``, greedy pass@1 of every N-th iteration's checkpoint too
(``curve``).

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
from reward_shaping import SCHEMES  # benchmarks/studies/reward_shaping.py

from codegym.agents import rollout
from codegym.loop.stats import paired_gain
from codegym.loop.task_sets import draw_tasks, task_group
from codegym.models import load_policy, load_prm
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks
from codegym.training.pg_checkpoints import checkpoints
from codegym.training.policy_gradient import train_policy_gradient

EVAL_SEEDS = {"test2": ("test", 31_337), "train2": ("train", 4_242)}  # split and draw seed of each eval set


@dataclass
class Args:
    arm: str = "terminal"
    """the reward: a name of SCHEMES in reward_shaping.py ("terminal", "noise", "length", "o1coder"...)"""
    seed: int = 0
    """seeds the training tasks and sampling"""
    policy: str = "tiny"
    """the policy RL starts from: "tiny" (the shipped one) or a checkpoint folder (e.g. sft_plateau.py's)"""
    iterations: int = 30
    """policy-gradient iterations"""
    tasks_per_iteration: int = 8
    """distinct training tasks per iteration"""
    group_size: int = 8
    """episodes per task (the group)"""
    learning_rate: float = 3e-4
    """AdamW's learning rate"""
    temperature: float = 1.0
    """the sampling temperature of the training episodes (the loss scores the same distribution)"""
    negative_weight: float = 1.0
    """the weight of negative advantages (0: reinforce only the episodes that beat their group)"""
    kl_coef: float = 0.0
    """weight of the KL penalty towards the starting policy (0: none)"""
    outcome: str = "pass_rate"
    """how the code's test report becomes the outcome: "pass_rate" (the share passed) or "all_pass" (0 or 1)"""
    eval_tasks: int = 150
    """tasks in each greedy evaluation set"""
    eval_every: int = 0
    """also evaluate every this many iterations' checkpoint (0: before and after only)"""
    process_reward: str = "tiny"
    """the PRM of the schemes that read one"""
    out_root: str = "runs/rl_diagnose"
    """where the training runs go (a run there is replaced)"""
    out: str = ""
    """where to write the JSON ("": benchmarks/results/rl_diagnose_{arm}_lr{learning_rate}_seed{seed}.json)"""


def run_name(args: dict) -> str:
    """The name of a run (its checkpoint folder, its default JSON) from its arguments."""
    temperature, negative_weight = args["temperature"], args["negative_weight"]
    kl_coef = args.get("kl_coef", 0.0)  # runs with and without the penalty must not share a folder
    return (
        f"{args['arm']}{'_all_pass' if args['outcome'] == 'all_pass' else ''}_lr{args['learning_rate']:g}"
        f"{f'_t{temperature:g}' if temperature != 1.0 else ''}"
        f"{f'_neg{negative_weight:g}' if negative_weight != 1.0 else ''}"
        f"{f'_kl{kl_coef:g}' if kl_coef else ''}"
        f"{'' if args.get('policy', 'tiny') == 'tiny' else '_from-' + Path(args['policy']).name}_seed{args['seed']}"
    )


def greedy(policy: str, tasks: list, box) -> list[int]:
    episodes = rollout(load_policy(policy, device="cpu"), tasks, max_steps=6, sandbox=box, seed=0)
    return [int(episode.hidden_all_passed) for episode in episodes]


def judge(policies: list[str], points: list[int], eval_tasks: int, box) -> tuple[dict, dict]:
    """Greedy pass@1 of each policy (the start first, the trained one last) on ``eval_tasks`` tasks of
    each held-out set: per set, the gain from first to last with its interval (``evaluations``), and
    every policy's pass rate and verdicts at its training point (``curve``)."""
    evaluations, curve = {}, {"iterations": points}
    for name, (split, draw_seed) in EVAL_SEEDS.items():
        tasks = draw_tasks(SyntheticTasks(split, min_ops=2, max_ops=2), eval_tasks, draw_seed)
        groups = [task_group(task) for task in tasks]
        verdicts = [greedy(policy, tasks, box) for policy in policies]
        before, after = verdicts[0], verdicts[-1]
        curve[name] = [sum(v) / len(v) for v in verdicts]
        curve[f"{name}_verdicts"] = verdicts
        evaluations[name] = {
            "before": sum(before) / len(before),
            "after": sum(after) / len(after),
            "gain": asdict(paired_gain(before, after, groups)),
            "tasks": len(tasks),
            # Per task, for pooling seeds (reward_shaping.py): the verdicts and the function.
            "before_verdicts": before,
            "after_verdicts": after,
            "groups": groups,
        }
    return evaluations, curve


def main() -> None:
    args = parse_args(Args, __doc__)
    if args.arm not in SCHEMES:
        raise SystemExit(
            f"--arm must be one of {sorted(SCHEMES)} (SCHEMES in reward_shaping.py), got {args.arm!r}"
        )
    if args.eval_every < 0:
        raise SystemExit(f"--eval-every must be >= 0 (0: no curve), got {args.eval_every}")
    scheme = SCHEMES[args.arm]
    name = run_name(asdict(args))
    out = args.out or f"benchmarks/results/rl_diagnose_{name}.json"
    run_dir = Path(args.out_root) / name
    shutil.rmtree(run_dir, ignore_errors=True)
    box = make_sandbox("local")
    every = args.eval_every or args.iterations
    try:
        started = time.perf_counter()
        result = train_policy_gradient(
            run_dir,
            policy=args.policy,
            split="train",
            task_options={"min_ops": 1, "max_ops": 3},
            iterations=args.iterations,
            tasks_per_iteration=args.tasks_per_iteration,
            group_size=args.group_size,
            reward=scheme["reward"],
            reward_options=scheme["reward_options"],
            process_reward=load_prm(args.process_reward) if scheme["uses_prm"] else None,
            advantage="dr_grpo",
            skip_uniform_groups=True,
            learning_rate=args.learning_rate,
            temperature=args.temperature,
            negative_weight=args.negative_weight,
            kl_coef=args.kl_coef,
            env_options={"outcome": args.outcome},
            max_steps=6,
            checkpoint_every=every,
            keep_checkpoints=args.iterations // every + 1,  # every checkpoint stays, for the curve
            seed=args.seed,
            sandbox=box,
            progress=False,
            device="cpu",
        )
        train_seconds = time.perf_counter() - started
        saved = checkpoints(Path(result.out_dir))
        evaluations, curve = judge(
            [args.policy] + [str(path) for _, path in saved],
            [0] + [i for i, _ in saved],
            args.eval_tasks,
            box,
        )
    finally:
        box.close()
    metrics = result.metrics
    output = {
        "arm": args.arm,
        "greedy": evaluations,
        "curve": curve,
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
