"""Env overhead: what CodeReason-v0 itself costs per step, with a stub PRM and a warm verdict cache.

What it measures: episodes that replay the reference steps of held-out synthetic tasks (an outline, a
refinement, the code), side by side in one run, through
  1. ``gym.make("CodeReason-v0")`` (with Gymnasium's checker and order wrappers), and unwrapped;
  2. ``gym.make_vec(..., num_envs=N)``: CodeGym's vector env (one process, one sandbox batch per step);
  3. ``gym.make_vec(..., vectorization_mode="async")``: one process per env, text through shared memory;
  4. ``get_state`` + ``set_state``, the snapshot pair tree search calls at every node.
Every mode first plays all episodes once (cold: the sandbox runs each program, reported for context),
then plays them ``repeats`` more times with every verdict cached, so the timed loop holds only the env:
text rendering, step parsing, the PRM stub, the reward scheme and ``info`` ("unwrapped" is the same env
as "gym.make", so its cold pass is already warm). The target from our issue:
under 1 ms per step. Output: a JSON object on stdout (also written to --out) and a bar chart (--plot).

Run it:
    .venv/bin/python benchmarks/perf/env_overhead.py
    .venv/bin/python benchmarks/perf/env_overhead.py --episodes 64 --num-envs 8 --repeats 5
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib
import numpy as np

from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.steps import classify_step
from codegym.tasks.synthetic import SyntheticTasks

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    episodes: int = 32
    """held-out synthetic tasks, one episode each per pass"""
    repeats: int = 5
    """timed passes over the episodes with a warm cache; the median is reported"""
    num_envs: int = 8
    """envs in the vector modes (async uses min(num_envs, cpu count) processes)"""
    sandbox: str = "local"
    """sandbox for the cold pass: local, docker or auto"""
    seed: int = 0
    """seed for choosing the tasks"""
    out: str = "benchmarks/results/env_overhead.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/env_overhead.png"
    """where to write the bar chart"""


TARGET_US = 1000.0  # the target: the env adds under 1 ms per step


class StubPRM:
    """Scores by step kind, as a scripted PRM in the tests does: what a model would cost is not the env's."""

    scores = {"outline": 0.8, "refine": 0.6, "code": 0.9, "free": 0.2}  # noqa: RUF012

    def score(self, problem: str, steps: list[str]) -> list[float]:
        return [self.scores[classify_step(step).value] for step in steps]


def main() -> None:
    args = parse_args(Args, __doc__)
    source = SyntheticTasks("test")
    rng = np.random.default_rng(args.seed)
    tasks = []
    while len(tasks) < args.episodes:
        task = source.sample(rng)
        if task.task_id not in {t.task_id for t in tasks}:
            tasks.append(task)
    steps_by_id = {task.task_id: task.reference_steps for task in tasks}
    total_steps = sum(len(task.reference_steps) for task in tasks)
    print(f"{len(tasks)} tasks, {total_steps} steps per pass, {args.repeats} warm repeats", file=sys.stderr)
    sandbox = make_sandbox(args.sandbox, workers=min(args.num_envs, os.cpu_count() or 1))
    env_kwargs = {"tasks": tasks, "process_reward": StubPRM(), "reward": "dense"}

    def play_single(env) -> tuple[int, float]:
        """One pass: every task's reference episode; returns (steps, seconds)."""
        steps = 0
        start = time.perf_counter()
        for task in tasks:
            env.reset(options={"task_id": task.task_id})
            for step in task.reference_steps:
                env.step(step)
                steps += 1
        return steps, time.perf_counter() - start

    def play_vector(envs, transitions: int) -> tuple[int, float]:
        """``transitions`` vector steps, each env replaying the reference steps of whatever task it drew."""
        _, infos = envs.reset(seed=args.seed)
        env_steps = 0
        start = time.perf_counter()
        for _ in range(transitions):
            actions = [
                steps_by_id[infos["task_id"][i]][
                    min(infos["step_index"][i], len(steps_by_id[infos["task_id"][i]]) - 1)
                ]
                for i in range(envs.num_envs)
            ]
            _observations, _rewards, _terminated, _truncated, infos = envs.step(actions)
            env_steps += envs.num_envs
        return env_steps, time.perf_counter() - start

    def measure(name: str, play, *play_args) -> dict:
        cold_steps, cold_s = play(*play_args)
        warm = [play(*play_args) for _ in range(args.repeats)]
        us_per_step = statistics.median(1e6 * seconds / steps for steps, seconds in warm)
        result = {
            "mode": name,
            "steps_per_pass": warm[0][0],
            "cold_us_per_step": 1e6 * cold_s / cold_steps,
            "warm_us_per_step": us_per_step,
            "warm_steps_per_s": 1e6 / us_per_step,
            "warm_us_per_step_all_repeats": [1e6 * seconds / steps for steps, seconds in warm],
            "meets_target": us_per_step < TARGET_US,
        }
        print(
            f"{name:>24}: {us_per_step:8.1f} us/step warm, {result['cold_us_per_step']:8.1f} cold",
            file=sys.stderr,
        )
        return result

    results = []
    wrapped = gym.make("CodeReason-v0", sandbox=sandbox, **env_kwargs)
    results.append(measure("gym.make", play_single, wrapped))
    results.append(measure("unwrapped", play_single, wrapped.unwrapped))

    vector = gym.make_vec("CodeReason-v0", num_envs=args.num_envs, sandbox=sandbox, **env_kwargs)
    results.append(measure(f"make_vec x{args.num_envs}", play_vector, vector, total_steps // args.num_envs))
    vector.close()

    async_envs = min(args.num_envs, os.cpu_count() or 1)
    async_vector = gym.make_vec(
        "CodeReason-v0",
        num_envs=async_envs,
        vectorization_mode="async",
        sandbox=args.sandbox,
        sandbox_workers=1,
        **env_kwargs,
    )
    results.append(measure(f"async x{async_envs}", play_vector, async_vector, total_steps // async_envs))
    async_vector.close()

    env = wrapped.unwrapped
    env.reset(options={"task_id": tasks[0].task_id})
    env.step(tasks[0].reference_steps[0])
    env.get_state()  # one untimed call before the timed rounds
    rounds = 100_000
    start = time.perf_counter()
    for _ in range(rounds):
        env.set_state(env.get_state())
    snapshot_us = 1e6 * (time.perf_counter() - start) / rounds
    print(f"{'get_state+set_state':>24}: {snapshot_us:8.2f} us", file=sys.stderr)
    wrapped.close()
    sandbox.close()

    report = {
        "benchmark": "env_overhead",
        "args": asdict(args),
        "target_us_per_step": TARGET_US,
        "modes": results,
        "snapshot_restore_us": snapshot_us,
        "machine": machine(),
    }
    print(write_json(args.out, report))

    figure, axis = plt.subplots(figsize=(7, 3.5))
    names = [result["mode"] for result in results]
    axis.barh(
        names,
        [result["warm_us_per_step"] for result in results],
        color="tab:blue",
        label="warm cache (env only)",
    )
    axis.axvline(TARGET_US, color="tab:red", linestyle="--", label="target: 1 ms per step")
    axis.set_xlabel("microseconds per env step (lower is better)")
    axis.set_title(f"CodeReason-v0 overhead, {len(tasks)} synthetic episodes, stub PRM")
    axis.legend(loc="lower right")
    figure.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=120)
    print(f"wrote {args.out} and {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
