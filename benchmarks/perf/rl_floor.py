"""Where tiny-policy RL's time goes, set beside what its arithmetic alone costs on this CPU.

Why: ``rl_speed.py`` measures episodes per second of ``train_policy_gradient`` against aba2d2c, and the
target is 5x. This script says how far from the hardware this tree is at the same settings, so a reader
can tell what a further speed-up would have to remove.

What it runs: ``train_policy_gradient`` on the built-in tiny policy with ``rl_speed.py``'s settings, in
this checkout, twice with the same seed (so the same tokens): once timed (seconds per iteration, its
rollout and its update, as ``rl_speed.py`` times them), once counted under ``torch.profiler``: the
matrix-product FLOPs of the rollout and of the update (the profiler's count for ``aten::mm``, ``addmm``
and ``bmm``: the forward and backward products; attention inside ``scaled_dot_product_attention`` is not
counted, so the floor below is lower than the true one), and, for every decoding step, its rows and
the bytes of keys and values it reads (rows x keys x layers x 2 x kv heads x head dim x 4 bytes). Then
it measures this core: the best fp32 matrix-product rate over the update's shapes and a 512x512x512
product (GFLOP/s), and a streaming read of 256 MB (GB/s).

What it reports (JSON on stdout and in --out, a bar chart in --plot): the measured seconds per
iteration and its parts; the arithmetic floor (all matrix-product FLOPs at the best rate); the cache
reads as decoding does them now (bytes at the read rate); the decoding steps and the seconds one
decoding step of one row costs (what each step pays whatever its size); and, from ``--speed-json``
(``rl_speed.py``'s result at the same settings), the baseline's seconds per iteration and the seconds
per iteration the target ratio asks for.

Run it (about a minute; on a quiet machine, the rates are this core's):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/perf/rl_floor.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

from codegym.options import parse_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

SETTINGS = ("iterations", "tasks_per_iteration", "group_size", "learning_rate", "reward", "max_steps",
            "max_new_tokens", "seed")  # fmt: skip
MATRIX_PRODUCTS = {"aten::mm", "aten::addmm", "aten::bmm"}


@dataclass
class Args:
    iterations: int = 2
    """policy-gradient iterations per run"""
    tasks_per_iteration: int = 8
    """distinct tasks per iteration"""
    group_size: int = 4
    """episodes per task"""
    learning_rate: float = 3e-5
    """AdamW's learning rate"""
    reward: str = "terminal"
    """the env's reward scheme"""
    max_steps: int = 4
    """steps per episode"""
    max_new_tokens: int = 256
    """the longest step, in tokens"""
    seed: int = 0
    """the runs' seed"""
    threads: int = 1
    """torch threads"""
    speed_json: str = "benchmarks/results/rl_speed.json"
    """rl_speed.py's result at the same settings: the baseline's seconds per iteration ("" to skip)"""
    target: float = 5.0
    """the speed-up over that baseline the target asks for"""
    out: str = "benchmarks/results/rl_floor.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/rl_floor.png"
    """where to write the bar chart"""


def train(args: Args, *, counted: bool) -> dict[str, Any]:
    """One ``train_policy_gradient`` run at ``args``'s settings: its seconds and parts, and with
    ``counted`` the FLOPs and cache reads (under the profiler, whose seconds are then not reported)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from codegym.models import load_policy
    from codegym.models.lean_llama import LeanLlama
    from codegym.sandbox import make_sandbox
    from codegym.training import policy_gradient

    policy = load_policy("tiny", device="cpu")
    spent: dict[str, Any] = {"rollout_s": 0.0, "update_s": 0.0, "rollout_gflop": 0.0, "update_gflop": 0.0}
    spent.update(decoding_steps=0, decoded_rows=0, cache_bytes_read=0)
    originals = {name: getattr(policy_gradient, name) for name in ("rollout", "_update")}
    hidden = LeanLlama.hidden

    def wrapped(name: str):
        part = "rollout" if name == "rollout" else "update"

        def call(*positional, **keywords):
            start = time.perf_counter()
            if not counted:
                try:
                    return originals[name](*positional, **keywords)
                finally:
                    spent[f"{part}_s"] += time.perf_counter() - start
            with profile(activities=[ProfilerActivity.CPU], with_flops=True) as profiler:
                result = originals[name](*positional, **keywords)
            flops = sum(e.flops for e in profiler.key_averages() if e.key in MATRIX_PRODUCTS)
            spent[f"{part}_gflop"] += flops / 1e9
            return result

        return call

    def counting_hidden(self, input_ids, positions, mask, *, cache=None, **keywords):
        if input_ids.shape[1] == 1 and cache is not None:  # a decoding step: one new token per row
            rows, keys = input_ids.shape[0], cache.length + 1
            itemsize = cache.buffer.element_size()
            spent["decoding_steps"] += 1
            spent["decoded_rows"] += rows
            spent["cache_bytes_read"] += (
                rows * keys * len(self.layers) * 2 * self.kv_heads * self.head_dim * itemsize
            )
        return hidden(self, input_ids, positions, mask, cache=cache, **keywords)

    for name in originals:
        setattr(policy_gradient, name, wrapped(name))
    LeanLlama.hidden = counting_hidden
    try:
        settings = {key: getattr(args, key) for key in SETTINGS}
        with make_sandbox("local") as box, tempfile.TemporaryDirectory() as out_dir:
            start = time.perf_counter()
            policy_gradient.train_policy_gradient(
                out_dir, policy=policy, sandbox=box, progress=False, **settings
            )
            spent["seconds"] = time.perf_counter() - start
    finally:
        for name, original in originals.items():
            setattr(policy_gradient, name, original)
        LeanLlama.hidden = hidden
    spent["step_s_one_row"] = one_row_step_seconds(policy, torch)
    return spent


def one_row_step_seconds(policy: Any, torch: Any) -> float:
    """The best time of one decoding step of one row over a 64-position cache: what a step pays
    whatever its rows (operator dispatch and Python), the model's arithmetic being ~2 MFLOP."""
    from codegym.models.lean_llama import lean_llama

    lean = lean_llama(policy.model)
    if lean is None:
        raise SystemExit("the tiny policy is not served by LeanLlama; this script measures that forward")
    cache = lean.new_cache(1, 128)
    cache.buffer.zero_()
    ids, positions = torch.zeros(1, 1, dtype=torch.long), torch.full((1, 1), 64)
    mask = torch.ones(1, 1, 1, 65, dtype=torch.bool)
    best = float("inf")
    with torch.no_grad():
        for _ in range(300):
            cache.length = 64
            start = time.perf_counter()
            lean.logits(lean.hidden(ids, positions, mask, cache=cache)[:, -1])
            best = min(best, time.perf_counter() - start)
    return best


def core_rates() -> dict[str, float]:
    """This core's best fp32 matrix-product rate (GFLOP/s) over the update's shapes and a cube, and its
    streaming-read rate (GB/s)."""
    import torch

    rates = {}
    for m, k, n in ((4096, 128, 384), (4096, 128, 768), (4096, 384, 128), (4096, 128, 1024), (512, 512, 512)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        best = float("inf")
        for _ in range(20):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        rates[f"{m}x{k}x{n}"] = 2 * m * k * n / best / 1e9
    data = torch.ones(64 * 1024 * 1024)  # 256 MB, far beyond any cache
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    return {"matmul_gflop_s": max(rates.values()), "matmul_gflop_s_by_shape": rates,
            "read_gb_s": data.numel() * data.element_size() / best / 1e9}  # fmt: skip


def main() -> None:
    args = parse_args(Args, __doc__)
    import torch

    torch.set_num_threads(args.threads)
    baseline = None
    if args.speed_json:
        try:
            speed = json.loads(Path(args.speed_json).read_text())
        except FileNotFoundError:
            raise SystemExit(
                f"{args.speed_json} does not exist: run rl_speed.py first, or pass --speed-json ''"
            ) from None
        differing = [key for key in (*SETTINGS, "threads") if speed["args"].get(key) != getattr(args, key)]
        if differing:
            raise SystemExit(
                f"{args.speed_json} was measured with other settings ({', '.join(differing)}); run this script "
                "with that file's settings, or rl_speed.py with these"
            )
        baseline = speed["trees"]["baseline"]
    print("timed run...", file=sys.stderr)
    timed = train(args, counted=False)
    print("counted run...", file=sys.stderr)
    counted = train(args, counted=True)
    rates = core_rates()
    per_iteration = {
        "measured_s": timed["seconds"] / args.iterations,
        "rollout_s": timed["rollout_s"] / args.iterations,
        "update_s": timed["update_s"] / args.iterations,
        "rollout_gflop": counted["rollout_gflop"] / args.iterations,
        "update_gflop": counted["update_gflop"] / args.iterations,
        "decoding_steps": counted["decoding_steps"] / args.iterations,
        "decoded_rows": counted["decoded_rows"] / args.iterations,
        "cache_gb_read": counted["cache_bytes_read"] / 1e9 / args.iterations,
    }
    per_iteration["arithmetic_floor_s"] = (
        per_iteration["rollout_gflop"] + per_iteration["update_gflop"]
    ) / rates["matmul_gflop_s"]
    per_iteration["update_arithmetic_floor_s"] = per_iteration["update_gflop"] / rates["matmul_gflop_s"]
    per_iteration["cache_read_s"] = per_iteration["cache_gb_read"] / rates["read_gb_s"]
    per_iteration["step_overhead_s"] = per_iteration["decoding_steps"] * timed["step_s_one_row"]
    output: dict[str, Any] = {
        "benchmark": "rl_floor",
        "args": asdict(args),
        "machine": machine(),
        "core": rates,
        "one_row_decoding_step_s": timed["step_s_one_row"],
        "per_iteration": per_iteration,
    }
    if baseline is not None:
        output["baseline"] = {
            "revision": baseline["revision"],
            "seconds_per_iteration": baseline["seconds_per_iteration"],
            "target_seconds_per_iteration": baseline["seconds_per_iteration"] / args.target,
            "target": args.target,
        }
    write_json(args.out, output)
    print(json.dumps(output, indent=2))
    plot(output, args.plot)


def plot(output: dict[str, Any], path: str) -> None:
    p = output["per_iteration"]
    figure, axis = plt.subplots(figsize=(9, 3))
    bars = {
        "measured": [("rollout", p["rollout_s"], "#3b7dd8"), ("update", p["update_s"], "#e08a2c"),
                     ("rest", p["measured_s"] - p["rollout_s"] - p["update_s"], "#999999")],
        "arithmetic + fixed costs": [("matrix products at peak", p["arithmetic_floor_s"], "#2a9d5b"),
                  ("cache reads, as decoded now", p["cache_read_s"], "#9fd3b0"),
                  ("per-step cost x decoding steps", p["step_overhead_s"], "#cccccc")],
    }  # fmt: skip
    for row, parts in enumerate(bars.values()):
        left = 0.0
        for label, seconds, color in parts:
            axis.barh(row, seconds, left=left, color=color, label=label)
            left += seconds
    axis.set_yticks(range(len(bars)), list(bars))
    if "baseline" in output:
        target = output["baseline"]["target_seconds_per_iteration"]
        axis.axvline(target, color="k", linestyle="--", label=f"x{output['baseline']['target']:g} target")
    axis.set_xlabel("seconds per iteration")
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axis.set_title("tiny-policy RL: where an iteration's time goes")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
