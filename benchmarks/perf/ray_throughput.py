"""Ray sandbox throughput: the ray backend against the direct local pool on the same cores, and a model.

What it measures, side by side in one run, on a simulated Ray cluster (``ray.cluster_utils.Cluster``:
a head and ``--nodes - 1`` more nodes, all on this machine):
  1. the direct pool: ``make_sandbox("local", workers=W)`` with W = one worker per simulated node;
  2. ``make_sandbox("ray")`` with one actor per node, each owning a one-worker local sandbox, with one
     program per remote call (``chunk_size=1``), ``--chunk`` programs per call, and the automatic chunk;
  3. the ray sandbox against the number of actors (1 to ``--nodes``);
  4. recovery: the extra seconds a batch takes when one actor is SIGKILLed in its middle, and the seconds
     until a replacement actor serves;
  5. the driver's CPU time per chunked remote call, pipelined trivial calls per second, and the bytes a
     job and a report take: the inputs of the scaling model.
The workload is HumanEval's 164 canonical solutions and 164 broken ones (``return None``) against their
hidden tests, repeated ``--repeats`` times in a rotating order so machine noise hits every harness alike.

The scaling model (nothing here can show scaling: every simulated node shares this machine's cores):
throughput(nodes) = min(nodes x per-node rate, driver ceiling, object-store ceiling), where the per-node
rate is the direct pool's programs/s per worker times ``--workers-per-node``, the driver ceiling is
(programs per call) / (the driver's CPU seconds per chunked call, measured on the chunked run: submitting,
waiting, unpickling reports), and the object-store ceiling is the assumed
bandwidth (``--bandwidth-mb-s``, not measured) over the bytes one job and its report take. Actor calls
go from the driver straight to the actors; the head (GCS) only places actors, so the driver, not the
head, is what saturates.

Run it:
    .venv/bin/python benchmarks/perf/ray_throughput.py
    .venv/bin/python benchmarks/perf/ray_throughput.py --nodes 3 --repeats 5 --chunk 10
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import ray
from ray.cluster_utils import Cluster

from codegym.options import parse_args
from codegym.sandbox import Sandbox, make_sandbox
from codegym.tasks.humaneval import broken_program, load_humaneval

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    nodes: int = 3
    """simulated nodes (the head included), one CPU and one sandbox worker each"""
    chunk: int = 10
    """programs per remote call for the chunked ray run"""
    repeats: int = 3
    """how many times each harness runs the workload; medians are reported"""
    kills: int = 3
    """batches run with one actor SIGKILLed in the middle, for the recovery figures"""
    workers_per_node: int = 16
    """sandbox workers per node of the modelled cluster (a typical cluster node's cores)"""
    bandwidth_mb_s: float = 1000.0
    """ASSUMED object-store/network bandwidth of the driver, MB/s, for the model's ceiling (not measured)"""
    out: str = "benchmarks/results/ray_throughput.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/ray_throughput.png"
    """where to write the plot"""


@ray.remote(num_cpus=0)
class Echo:
    def echo(self, value: int) -> int:
        return value


def main() -> None:
    args = parse_args(Args, __doc__)
    tasks = load_humaneval()
    jobs = [(t.reference_solution, t.hidden_tests) for t in tasks] + [
        (broken_program(t), t.hidden_tests) for t in tasks
    ]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def timed(box: Sandbox) -> tuple[float, list]:
        start = time.perf_counter()
        reports = box.run_batch(jobs)
        return time.perf_counter() - start, reports

    def verdicts(reports: list) -> list:
        return [tuple(r.status for r in report.tests) for report in reports]

    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(args.nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    log(
        f"cluster of {args.nodes} nodes up in {time.perf_counter() - started:.1f} s; {len(jobs)} programs per run"
    )

    boxes: dict[str, Sandbox] = {
        "direct pool": make_sandbox("local", workers=args.nodes),
        "ray, 1 per call": make_sandbox("ray", backend="local", workers=1, chunk_size=1),
        f"ray, {args.chunk} per call": make_sandbox("ray", backend="local", workers=1, chunk_size=args.chunk),
        "ray, automatic chunk": make_sandbox("ray", backend="local", workers=1),
    }
    by_actors = {n: make_sandbox("ray", backend="local", workers=1, actors=n) for n in range(1, args.nodes)}
    by_actors[args.nodes] = boxes["ray, automatic chunk"]
    reference = verdicts(boxes["direct pool"].run_batch(jobs))  # also warms every pool once
    for box in [*boxes.values(), *by_actors.values()]:
        assert verdicts(box.run_batch(jobs)) == reference, f"{box!r} disagrees with the direct pool"

    rates: dict[str, list[float]] = {name: [] for name in boxes}
    driver_cpu_per_call: list[float] = []  # the driver process's CPU seconds per remote call, chunked run
    actor_rates: dict[int, list[float]] = {n: [] for n in by_actors}
    for repeat in range(args.repeats):
        names = list(boxes)
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            cpu = time.process_time()
            seconds, _ = timed(boxes[name])
            if name == f"ray, {args.chunk} per call":
                driver_cpu_per_call.append((time.process_time() - cpu) / -(-len(jobs) // args.chunk))
            rates[name].append(len(jobs) / seconds)
            log(f"repeat {repeat + 1}/{args.repeats} {name:>22}: {len(jobs) / seconds:7.1f} programs/s")
        for n, box in by_actors.items():
            seconds, _ = timed(box)
            actor_rates[n].append(len(jobs) / seconds)
    median = {name: statistics.median(values) for name, values in rates.items()}
    direct = median["direct pool"]

    # Recovery: the same batch with one actor killed at a third of its usual duration.
    box = boxes["ray, automatic chunk"]
    clean = [timed(box)[0] for _ in range(args.kills)]
    with_kill, replaced_after = [], []
    for attempt in range(args.kills):
        victim = box.actor_infos()[attempt % args.nodes].pid
        killed_at: list[float] = []

        def kill(pid: int = victim, at: list[float] = killed_at) -> None:
            os.kill(pid, signal.SIGKILL)
            at.append(time.perf_counter())

        timer = threading.Timer(statistics.median(clean) / 3, kill)
        timer.start()
        seconds, reports = timed(box)
        timer.join()
        assert verdicts(reports) == reference, "a kill changed a verdict"
        while victim in {info.pid for info in box.actor_infos()} or len(box.actor_infos()) < args.nodes:
            time.sleep(0.01)
        replaced_after.append(time.perf_counter() - killed_at[0])
        with_kill.append(seconds)
        log(
            f"kill {attempt + 1}/{args.kills}: batch {seconds:.2f} s (clean {statistics.median(clean):.2f} s)"
        )

    nodes_after_kills = len({info.node_id for info in box.actor_infos()})

    # Model inputs: the driver's pipelined calls per second to one actor, and the bytes per job and report.

    actor = Echo.remote()
    ray.get(actor.echo.remote(0))
    calls = 500
    start = time.perf_counter()
    ray.get([actor.echo.remote(i) for i in range(calls)])
    calls_per_s = calls / (time.perf_counter() - start)
    job_bytes = statistics.mean(len(pickle.dumps(job)) for job in jobs)
    report_bytes = statistics.mean(len(pickle.dumps(report)) for report in box.run_batch(jobs))
    per_worker = direct / args.nodes  # programs/s one sandbox worker sustains here
    auto_chunk = box.chunk_size_for(len(jobs))
    model = []
    for nodes in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        workers_per_node = args.workers_per_node
        compute = nodes * workers_per_node * per_worker
        driver_ceiling = args.chunk / statistics.median(driver_cpu_per_call)
        store_ceiling = args.bandwidth_mb_s * 1e6 / (job_bytes + report_bytes)
        model.append(
            {
                "nodes": nodes,
                "workers_per_node": workers_per_node,
                "compute_programs_per_s": round(compute, 1),
                "driver_ceiling_programs_per_s": round(driver_ceiling, 1),
                "object_store_ceiling_programs_per_s": round(store_ceiling, 1),
                "predicted_programs_per_s": round(min(compute, driver_ceiling, store_ceiling), 1),
            }
        )
    saturates_at = next(
        (row["nodes"] for row in model if row["predicted_programs_per_s"] < row["compute_programs_per_s"]),
        None,
    )

    for sandbox in [*boxes.values(), *by_actors.values()]:
        sandbox.close()
    ray.shutdown()
    cluster.shutdown()

    results: dict[str, Any] = {
        "machine": machine(cpu_count=os.cpu_count()),  # cpu_count: the key this script's earlier results use
        "args": dataclasses.asdict(args),
        "programs_per_run": len(jobs),
        "verdicts_equal_direct_pool": True,  # asserted for every harness and after every kill
        "programs_per_s_median": {name: round(value, 1) for name, value in median.items()},
        "programs_per_s_runs": {name: [round(v, 1) for v in values] for name, values in rates.items()},
        "ratio_vs_direct_pool": {name: round(value / direct, 3) for name, value in median.items()},
        "target_ratio_with_chunking": 0.9,
        "automatic_chunk_size": auto_chunk,
        "by_actors_programs_per_s_median": {
            str(n): round(statistics.median(v), 1) for n, v in actor_rates.items()
        },
        "recovery": {
            "clean_batch_s_median": round(statistics.median(clean), 3),
            "killed_batch_s_median": round(statistics.median(with_kill), 3),
            "extra_s_median": round(statistics.median(with_kill) - statistics.median(clean), 3),
            "replacement_serving_after_s_median": round(statistics.median(replaced_after), 3),
            "replacement_serving_after_s_runs": [round(v, 3) for v in replaced_after],
            "nodes_with_an_actor_after_the_kills": nodes_after_kills,
        },
        "model_inputs": {
            "programs_per_s_per_worker": round(per_worker, 1),
            "driver_cpu_ms_per_chunked_call": round(1000 * statistics.median(driver_cpu_per_call), 3),
            "driver_trivial_calls_per_s": round(calls_per_s, 1),
            "job_bytes_mean": round(job_bytes),
            "report_bytes_mean": round(report_bytes),
            "assumed_bandwidth_mb_s": args.bandwidth_mb_s,
        },
        "model": model,
        "model_saturates_at_nodes": saturates_at,
    }
    print(write_json(args.out, results))

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.5))
    names = list(median)
    left.bar(
        range(len(names)), [median[n] for n in names], color=["grey", "tab:red", "tab:blue", "tab:green"]
    )
    left.set_xticks(range(len(names)), [f"{n}\n{median[n] / direct:.2f}x" for n in names], fontsize=8)
    left.set_ylabel("programs / s")
    left.set_title(f"{len(jobs)} HumanEval programs, {args.nodes} workers on {os.cpu_count()} cores")
    counts = sorted(actor_rates)
    middle.plot(counts, [statistics.median(actor_rates[n]) for n in counts], "o-")
    middle.set_xticks(counts)
    middle.set_xlabel("actors (one worker each)")
    middle.set_ylabel("programs / s")
    middle.set_title("ray sandbox against actors (shared cores)")
    xs = [row["nodes"] for row in model]
    right.loglog(xs, [row["compute_programs_per_s"] for row in model], "--", label="nodes x per-node rate")
    right.loglog(
        xs,
        [row["driver_ceiling_programs_per_s"] for row in model],
        ":",
        label=f"driver ceiling ({args.chunk}/call)",
    )
    right.loglog(
        xs,
        [row["object_store_ceiling_programs_per_s"] for row in model],
        "-.",
        label="object-store ceiling (assumed bw)",
    )
    right.loglog(xs, [row["predicted_programs_per_s"] for row in model], "k-", label="predicted")
    right.set_xlabel(f"nodes ({args.workers_per_node} workers each)")
    right.set_ylabel("programs / s")
    right.set_title("scaling model")
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.plot, dpi=120)
    log(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
