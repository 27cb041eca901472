"""Integrations: GRPO steps through each TRL route, and the OpenEnv server against the in-process env.

What it measures, side by side in one run:
  1. TRL: ``examples/trl_grpo.py`` for each route (``rewards``: CodeTestReward; ``tools``:
     environment_factory), the tiny policy on CPU in fp32: seconds per GRPO step and mean reward; and
     the rewards route once more with GRPOConfig's own defaults (bf16, gradient checkpointing).
  2. OpenEnv: a real ``codegym serve`` on 127.0.0.1 (local sandbox), played by 1 and by 8 concurrent
     ``CodeReasonClient`` sessions replaying reference episodes of synthetic tasks (outline, refinement,
     code): episodes per second; and the same episodes through the in-process env for comparison.
  3. Overhead per step: the median latency of a reasoning step (no sandbox run) remote minus local,
     i.e. what the wire, the JSON and the server add to a step.
The code steps run in the sandbox (each session has its own verdict cache, so a repeated task's code
runs once per session). Output: a JSON object on stdout (also written to --out) and a bar chart (--plot).

Run it:
    .venv/bin/python benchmarks/perf/integrations.py
    .venv/bin/python benchmarks/perf/integrations.py --episodes 64 --grpo-steps 2
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib

from codegym.integrations.openenv import CodeReasonClient
from codegym.options import parse_args
from codegym.tasks.synthetic import SyntheticTasks

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

ROOT = Path(__file__).resolve().parents[2]  # the checkout (this file is benchmarks/perf/integrations.py)


@dataclass
class Args:
    episodes: int = 256
    """reference episodes per server measurement (split among the clients)"""
    clients: int = 8
    """concurrent clients of the second server measurement"""
    grpo_steps: int = 2
    """GRPO steps per TRL route"""
    seed: int = 0
    """task seed"""
    out: str = "benchmarks/results/integrations.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/integrations.png"
    """where to save the bar chart"""


def main() -> None:
    args = parse_args(Args, __doc__)
    child_env = {**os.environ, "OMP_NUM_THREADS": "1"}

    # 1. TRL routes ------------------------------------------------------------------------------------------
    # The third run keeps GRPOConfig's defaults (bf16, gradient checkpointing) to measure what they cost here.
    trl = {}
    for name, route, extra in (
        ("rewards", "rewards", []),
        ("tools", "tools", []),
        ("rewards, bf16 + checkpointing", "rewards", ["--trl-cpu-defaults"]),
    ):
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "trl_grpo.py"), "--route", route, "--steps", str(args.grpo_steps),
             "--seed", str(args.seed), "--out", tempfile.mkdtemp(prefix="codegym-bench-grpo-"), *extra],
            capture_output=True, text=True, env=child_env, check=True,
        )  # fmt: skip
        result = json.loads(done.stdout.strip().splitlines()[-1])
        trl[name] = {
            "step_seconds": result["step_seconds"],
            "mean_step_seconds": round(statistics.mean(result["step_seconds"]), 3),
            "reward_per_step": result["reward"],
            "parameters_changed": result["parameters_changed"],
        }

    # 2. The server against the in-process env ----------------------------------------------------------------
    tasks = SyntheticTasks("train", min_ops=1, max_ops=3).tasks(args.episodes, seed=args.seed)
    log = Path(tempfile.mkdtemp(prefix="codegym-bench-serve-")) / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "codegym.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--sandbox", "local",
         "--max-sessions", str(max(16, args.clients))],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=child_env,
    )  # fmt: skip
    url = None
    for _ in range(1200):
        lines = [line for line in log.read_text().splitlines() if line.startswith("serving CodeReason-v0")]
        if lines:
            url = lines[0].split()[-1]
            break
        time.sleep(0.1)
    if url is None:
        server.kill()
        sys.exit(f"codegym serve did not start: {log.read_text()[-2000:]}")

    def play(env, chunk, latencies: list[float]) -> None:
        """Replay the reference episodes of ``chunk``; record each reasoning step's latency."""
        for task in chunk:
            env.reset(options={"task_id": task.task_id})
            for step in task.reference_steps:
                started = time.perf_counter()
                _, reward, terminated, _, _ = env.step(step)
                if not terminated:
                    latencies.append(time.perf_counter() - started)
            assert reward == 1.0, f"{task.task_id}: reference episode scored {reward}"

    def measure(clients: int) -> dict:
        chunks = [tasks[i::clients] for i in range(clients)]
        envs = [CodeReasonClient(url) for _ in range(clients)]
        for env in envs:  # open the sessions before the clock starts
            env.reset(options={"task_id": tasks[0].task_id})
        latencies: list[float] = []
        threads = [
            threading.Thread(target=play, args=(env, chunk, latencies))
            for env, chunk in zip(envs, chunks, strict=True)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        for env in envs:
            env.close()
        return {
            "clients": clients,
            "episodes": len(tasks),
            "seconds": round(seconds, 3),
            "episodes_per_s": round(len(tasks) / seconds, 2),
            "median_reasoning_step_ms": round(1000 * statistics.median(latencies), 3),
        }

    try:
        remote = [measure(1), measure(args.clients)]
    finally:
        server.terminate()
        server.wait(timeout=30)

    local_env = gym.make("CodeReason-v0", sandbox="local", sandbox_workers=2).unwrapped
    local_latencies: list[float] = []
    started = time.perf_counter()
    play(local_env, tasks, local_latencies)
    local_seconds = time.perf_counter() - started
    local_env.close()
    local = {
        "episodes": len(tasks),
        "seconds": round(local_seconds, 3),
        "episodes_per_s": round(len(tasks) / local_seconds, 2),
        "median_reasoning_step_ms": round(1000 * statistics.median(local_latencies), 3),
    }
    overhead_ms = round(remote[0]["median_reasoning_step_ms"] - local["median_reasoning_step_ms"], 3)

    report = {
        "benchmark": "integrations",
        "args": asdict(args),
        "trl": trl,
        "openenv_server": remote,
        "in_process_env": local,
        "server_overhead_per_step_ms": overhead_ms,
        "machine": machine(),
    }
    print(write_json(args.out, report))

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    names = ["in-process", "server, 1 client", f"server, {args.clients} clients"]
    rates = [local["episodes_per_s"], remote[0]["episodes_per_s"], remote[1]["episodes_per_s"]]
    left.bar(names, rates, color=["#555555", "#1f77b4", "#2ca02c"])
    left.set_ylabel("episodes per second")
    left.set_title(f"CodeReason-v0 reference episodes ({len(tasks)})")
    routes = list(trl)
    right.bar(routes, [trl[r]["mean_step_seconds"] for r in routes], color=["#ff7f0e", "#9467bd", "#8c564b"])
    for index, route in enumerate(routes):
        mean_reward = statistics.mean(trl[route]["reward_per_step"])
        right.annotate(
            f"reward {mean_reward:.2f}", (index, trl[route]["mean_step_seconds"]), ha="center", va="bottom"
        )
    right.set_ylabel("seconds per GRPO step")
    right.set_title("TRL GRPOTrainer, tiny policy, CPU")
    right.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=120)
    print(f"wrote {args.out} and {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
