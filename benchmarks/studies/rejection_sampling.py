"""Rejection-sampling fine-tuning (expert iteration) against its noise control, several seeds: does
learning one's own rewarded episodes raise the tiny policy's held-out greedy pass@1, where the policy
gradient's small steps gained +0.02 to +0.04 (``reward_shaping*.json``)?

What it runs: ``codegym.training.rejection_sampling.train_rejection_sampling`` from the shipped tiny
policy, once per (arm, seed), each in its own process (``--jobs`` at a time, each on one thread):
``--rounds`` rounds, each playing ``--samples-per-task`` episodes at ``--temperature`` of
``--tasks-per-round`` fresh training-split synthetic tasks (1 to 3 ops, drawn from ``(seed, round)``: the
same tasks and sampling seeds for both arms of a seed), then one supervised pass (``--epochs`` at
``--learning-rate``) over the episodes kept. Two arms:

- ``terminal``: the outcome reward on the last step (the share of the paying tests passed); an episode is
  kept when it passed them all (return 1);
- ``noise``: ``loop_rl.py``'s hashed uniform noise in [0, 1) on the last step, kept above a threshold set
  so it keeps the same share of its episodes as the same seed's ``terminal`` run did: fine-tuning on as
  many of its own samples, chosen without regard to the task. What ``terminal`` gains beyond it is the
  reward's doing.

With ``--greedy-failures-only`` both arms keep episodes only of the tasks whose greedy episode falls
short of the arm's threshold (``train_rejection_sampling``'s ``greedy_failures_only``). The noise arm's
greedy episode then passes its filter with chance t and each sample with chance 1 - t, so its threshold t
solves t (1 - t) = the terminal run's kept share (the root above 1/2, which like ``terminal`` keeps a
few samples of many tasks). ``--from-start`` has every round fine-tune the start policy on all the
episodes kept so far (``train_rejection_sampling``'s ``from_start``).

Then greedy pass@1 of the start and of every round's policy on the held-out sets of ``rl_diagnose.py``
(``train2``: training compositions of 2 ops, instances never trained on; ``test2``: compositions never
trained on; hidden tests, the local sandbox). Each run's JSON is kept in ``--runs-out`` and reused when
its settings match, so a killed study resumes. The policies in ``--out-root`` resume too: with a larger
``--rounds`` and a new ``--runs-out``, every run goes on from its last round (a noise run keeps the
threshold it started with).

What it reports (JSON in --out, a table on stdout, a plot in --plot), the same fields as
``reward_shaping.py``: per arm and held-out set the pooled gain with its 95% interval (cluster-robust
over the task's function, pooled over seeds), each seed's gain, the curve over rounds, and each arm
against the other, paired by seed and task; plus per run the episodes kept each round.

Run it (the defaults: 3 seeds x 2 arms, 3 rounds of 1,000 tasks x 4 episodes; about 15 minutes a run
on one core of 2, so about 45 minutes on 2 cores):
    .venv/bin/python benchmarks/studies/rejection_sampling.py
    .venv/bin/python benchmarks/studies/rejection_sampling.py --seeds 0 --rounds 1 --tasks-per-round 16 \\
        --samples-per-task 2 --eval-tasks 10 --runs-out /tmp/rft --out-root /tmp/rft-runs --out /tmp/rft.json \\
        --plot /tmp/rft.png
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json
from loop_rl import noise_reward  # benchmarks/studies/loop_rl.py
from reward_shaping import draw, summarize, versus  # benchmarks/studies/reward_shaping.py
from rl_diagnose import EVAL_SEEDS, greedy, judge  # benchmarks/studies/rl_diagnose.py

from codegym.agents import rollout
from codegym.loop.task_sets import draw_tasks
from codegym.models import load_policy
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks
from codegym.training.rejection_sampling import ROUND_PREFIX, ROUNDS_FILE, train_rejection_sampling

ARMS = ("terminal", "noise")
# The settings every run shares; a run's JSON is reused only when they match.
SHARED = (
    "policy",
    "rounds",
    "tasks_per_round",
    "samples_per_task",
    "temperature",
    "epochs",
    "learning_rate",
    "eval_tasks",
    "greedy_failures_only",
    "from_start",
)


@dataclass
class Args:
    seeds: str = "0,1,2"
    """comma-separated training seeds"""
    jobs: int = 2
    """runs at a time (each on one thread)"""
    policy: str = "tiny"
    """the policy every run starts from: "tiny" (the shipped one) or a checkpoint folder"""
    rounds: int = 3
    """rounds of sampling then fine-tuning"""
    tasks_per_round: int = 1000
    """fresh training tasks per round"""
    samples_per_task: int = 4
    """episodes per task"""
    temperature: float = 0.5
    """the sampling temperature"""
    epochs: float = 1.0
    """passes over each round's kept episodes"""
    learning_rate: float = 3e-4
    """the fine-tuning's peak learning rate (sft_plateau.py's)"""
    eval_tasks: int = 300
    """tasks in each greedy evaluation set"""
    greedy_failures_only: bool = False
    """keep episodes only of tasks whose greedy episode falls short (in both arms)"""
    from_start: bool = False
    """each round fine-tunes the start policy on every episode kept so far (in both arms)"""
    runs_out: str = "benchmarks/results/rejection_sampling"
    """where each run's JSON goes (<arm>_seed<k>.json); a run found there with these settings is reused"""
    out_root: str = "runs/rejection_sampling"
    """where the runs' policies go"""
    out: str = "benchmarks/results/rejection_sampling.json"
    """the pooled JSON"""
    plot: str = "benchmarks/results/rejection_sampling.png"
    """the plot ("" for none)"""
    only: str = ""
    """run one "<arm>:<seed>:<min_return>" in this process and write its JSON (how the study starts each
    run; by hand, one arm alone, e.g. terminal:0:1.0)"""


def run_path(args: Args, arm: str, seed: int) -> Path:
    return Path(args.runs_out) / f"{arm}_seed{seed}.json"


def run_one(args: Args, arm: str, seed: int, min_return: float) -> None:
    """Train one arm and seed, judge the start and every round greedily, and write the run's JSON."""
    run_dir = Path(args.out_root) / f"{arm}_seed{seed}"
    box = make_sandbox("local")
    try:
        started = time.perf_counter()
        result = train_rejection_sampling(
            run_dir,
            policy=args.policy,
            split="train",
            task_options={"min_ops": 1, "max_ops": 3},
            rounds=args.rounds,
            tasks_per_round=args.tasks_per_round,
            samples_per_task=args.samples_per_task,
            temperature=args.temperature,
            reward="terminal" if arm == "terminal" else noise_reward,
            env_options={"outcome": "pass_rate"},
            min_return=min_return,
            greedy_failures_only=args.greedy_failures_only,
            from_start=args.from_start,
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            max_steps=6,
            seed=seed,
            sandbox=box,
            progress=False,
        )
        train_seconds = time.perf_counter() - started
        policies = [args.policy] + [str(run_dir / f"{ROUND_PREFIX}{r.round}") for r in result.rounds]
        evaluations, curve = judge(policies, list(range(len(policies))), args.eval_tasks, box)
    finally:
        box.close()
    write_json(
        run_path(args, arm, seed),
        {
            "arm": arm,
            "seed": seed,
            "min_return": min_return,
            "greedy": evaluations,
            "curve": curve,
            "rounds": [asdict(r) for r in result.rounds],
            "kept_share": kept_share(result.rounds),
            "solve_rate": [r.solve_rate for r in result.rounds],
            "train_seconds": round(train_seconds, 1),
            "args": {name: getattr(args, name) for name in SHARED},
            "machine": machine(),
        },
    )


def headroom(args: Args) -> dict:
    """What the reward can teach at most, on each held-out set: the start policy's greedy verdicts beside
    whether any of ``samples_per_task`` episodes at ``temperature`` solves the task (pass@k). Rejection
    sampling only ever sees solutions the policy samples, so tasks solved by a sample but not greedily
    bound what it can add to greedy pass@1."""
    policy, box = load_policy(args.policy, device="cpu"), make_sandbox("local")
    found = {}
    try:
        for name, (split, draw_seed) in EVAL_SEEDS.items():
            tasks = draw_tasks(SyntheticTasks(split, min_ops=2, max_ops=2), args.eval_tasks, draw_seed)
            by_greedy = greedy(args.policy, tasks, box)
            sampled = []
            for start in range(0, len(tasks), 64):  # 64 tasks' episodes decode together
                sampled += rollout(
                    policy,
                    tasks[start : start + 64],
                    samples_per_task=args.samples_per_task,
                    temperature=args.temperature,
                    seed=start,
                    max_steps=6,
                    sandbox=box,
                )
            k = args.samples_per_task
            by_sample = [
                any(e.hidden_all_passed for e in sampled[i * k : (i + 1) * k]) for i in range(len(tasks))
            ]
            found[name] = {
                "greedy": sum(by_greedy) / len(tasks),
                f"pass@{k}": sum(by_sample) / len(tasks),
                "sampled_not_greedy": sum(s and not g for s, g in zip(by_sample, by_greedy, strict=True))
                / len(tasks),
                "greedy_not_sampled": sum(g and not s for s, g in zip(by_sample, by_greedy, strict=True))
                / len(tasks),
                "sample_solve_rate": sum(e.hidden_all_passed for e in sampled) / len(sampled),
            }
    finally:
        box.close()
    return found


def kept_share(rounds: Any) -> float:
    """The share of a run's episodes that its rounds kept."""
    return sum(r.kept for r in rounds) / sum(r.episodes for r in rounds)


def finished_run(args: Args, arm: str, seed: int) -> dict | None:
    """The run's earlier JSON when it was made with these settings (one saved before a setting existed
    counts as made with its default)."""
    path = run_path(args, arm, seed)
    if path.exists():
        done = json.loads(path.read_text())
        saved = {name: done["args"].get(name, getattr(Args, name)) for name in SHARED}
        if saved == {name: getattr(args, name) for name in SHARED}:
            return done
    return None


def noise_threshold(kept_share: float, greedy_failures_only: bool) -> float:
    """The threshold at which uniform noise in [0, 1) keeps ``kept_share`` of the episodes: 1 - share,
    or with the greedy filter the root above 1/2 of t (1 - t) = share (1/2 when the share exceeds 1/4,
    the most the filter lets through)."""
    if not greedy_failures_only:
        return 1.0 - kept_share
    return (1.0 + max(0.0, 1.0 - 4.0 * kept_share) ** 0.5) / 2.0


def launch(args: Args, arm: str, seed: int) -> dict:
    """One run in its own process (one thread when runs share the cores), or its earlier JSON."""
    done = finished_run(args, arm, seed)
    if done is not None:
        return done
    # Noise is uniform in [0, 1): this threshold keeps the share of episodes the seed's terminal run kept.
    # A noise run with rounds already in --out-root keeps the threshold it started with, so a study
    # extended to more rounds resumes it (the trainer refuses another min_return).
    started = Path(args.out_root) / f"{arm}_seed{seed}" / ROUNDS_FILE
    if arm == "terminal":
        min_return = 1.0
    elif started.is_file():
        min_return = json.loads(started.read_text())["settings"]["min_return"]
    else:
        min_return = noise_threshold(launch(args, "terminal", seed)["kept_share"], args.greedy_failures_only)
    command = [sys.executable, __file__, "--only", f"{arm}:{seed}:{min_return!r}"]
    for name in ("runs_out", "out_root", *SHARED):
        value = getattr(args, name)
        if isinstance(value, bool):  # a flag: named when on
            command += [f"--{name.replace('_', '-')}"] if value else []
        else:
            command += [f"--{name.replace('_', '-')}", str(value)]
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if args.jobs > 1 else {})}
    log = run_path(args, arm, seed).with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stream:
        finished = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, env=env, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"{arm} seed {seed} failed (exit {finished.returncode}); its log: {log}")
    log.unlink()
    print(f"finished {arm} seed {seed}", file=sys.stderr, flush=True)
    return json.loads(run_path(args, arm, seed).read_text())


def main() -> None:
    args = parse_args(Args, __doc__)
    if args.only:
        arm, seed, min_return = args.only.split(":")
        run_one(args, arm, int(seed), float(min_return))
        return
    seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    if not seeds or args.jobs < 1:
        raise SystemExit("--seeds needs at least one seed and --jobs must be >= 1")
    with ThreadPoolExecutor(args.jobs) as pool:
        # A noise run waits for its seed's terminal run, so terminal runs go first.
        terminal = {seed: pool.submit(launch, args, "terminal", seed) for seed in seeds}
        noise = {
            seed: pool.submit(lambda s: (terminal[s].result(), launch(args, "noise", s))[1], seed)
            for seed in seeds
        }
        runs = {
            "terminal": [terminal[s].result() for s in seeds],
            "noise": [noise[s].result() for s in seeds],
        }
    names = list(runs["terminal"][0]["greedy"])
    results: dict[str, Any] = {
        "schemes": {},
        "headroom": headroom(args),
        "args": asdict(args),
        "machine": machine(),
    }
    for arm in runs:
        entry = summarize(runs[arm], names)
        entry["kept"] = [[r["kept"] for r in run["rounds"]] for run in runs[arm]]
        entry["min_return"] = [run["min_return"] for run in runs[arm]]
        entry["versus"] = {
            other: {name: versus(runs[arm], runs[other], name) for name in names}
            for other in runs
            if other != arm
        }
        results["schemes"][arm] = entry
    write_json(args.out, results)
    if args.plot:
        draw(results, args.plot, xlabel="round of rejection-sampling fine-tuning")
    for name in names:
        print(
            f"held-out {name}: greedy pass@1 before -> after, gain (95% interval, pooled over seeds), each seed's"
        )
        for arm, entry in results["schemes"].items():
            pooled, gain = entry["pooled"][name], entry["pooled"][name]["gain"]
            per_seed = ", ".join(f"{seed['mean']:+.3f}" for seed in entry["seeds"][name])
            print(
                f"  {arm:>10} {pooled['before']:.3f} -> {pooled['after']:.3f}  {gain['mean']:+.3f}"
                f" ({gain['low']:+.3f} to {gain['high']:+.3f})  seeds {per_seed}  kept {entry['kept']}"
            )
        room = results["headroom"][name]
        print(
            f"  the start policy: greedy {room['greedy']:.3f}, pass@{args.samples_per_task} at T={args.temperature:g}"
            f" {room[f'pass@{args.samples_per_task}']:.3f}; solved by a sample, not greedily: {room['sampled_not_greedy']:.3f}"
        )
        if len(runs) == 2:
            against = results["schemes"]["terminal"]["versus"]["noise"][name]
            print(
                f"  terminal - noise {against['mean']:+.3f} ({against['low']:+.3f} to {against['high']:+.3f})"
                f"{'  differs' if against['differs'] else ''}"
            )


if __name__ == "__main__":
    main()
