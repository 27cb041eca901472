"""Sandbox soak and faults: many hostile executions, then count what is left; faults in the middle of a batch.

Soak: ``--executions`` mixed jobs per backend (passing, failing, raising, looping, forking, exiting,
forging a verdict; AssertTests and CallTests), in batches. Every verdict is checked against what that kind
of program must get, and before and after the soak it counts the sandbox's processes on this machine,
this process's open descriptors and threads, the sandbox's containers, and job directories in /tmp. All
must be back where they started.

Faults, each while a batch of ``--fault-jobs`` jobs runs (every job must come back, with its correct
verdict or a clear status, within ``--fault-deadline-s``):
  worker-sigkill   SIGKILL to one local worker;
  container-kill   ``docker kill`` of one sandbox container;
  dockerd-restart  the Docker daemon is stopped and started again (only with --restart-dockerd 1: it stops
                   every container on this machine);
  owner-sigkill    SIGKILL to a Python process that owns a pool in the middle of a batch, then a check that
                   no worker, job process or container of it is left after a grace period.
It prints a JSON object (also written to --out) and draws the leak counts and fault outcomes (--plot).

Run it:
    .venv/bin/python benchmarks/perf/sandbox_soak.py
    .venv/bin/python benchmarks/perf/sandbox_soak.py --executions 2000 --backends local
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
import tqdm

from codegym.options import parse_args
from codegym.sandbox import AssertTest, CallTest, Sandbox, TestStatus, make_sandbox

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

tqdm.tqdm.monitor_interval = 0  # no monitor thread: the census counts this process's threads


@dataclass
class Args:
    executions: int = 10_000
    """mixed jobs per backend in the soak"""
    batch: int = 200
    """jobs per run_batch call"""
    workers: int = 4
    """workers per sandbox"""
    timeout_s: float = 0.5
    """per-test time limit (the looping programs spend it)"""
    backends: str = "local,docker"
    """comma-separated backends to soak"""
    faults: str = "worker-sigkill,container-kill,owner-sigkill"
    """comma-separated faults to inject (also: dockerd-restart)"""
    restart_dockerd: int = 0
    """1: allow the dockerd-restart fault (it stops every container on this machine)"""
    fault_jobs: int = 120
    """jobs in the batch a fault hits"""
    fault_deadline_s: float = 180.0
    """a batch hit by a fault must come back within this many seconds"""
    out: str = "benchmarks/results/sandbox_soak.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/sandbox_soak.png"
    """where to write the chart"""


P, F, E, T, C, M = (TestStatus.PASSED, TestStatus.FAILED, TestStatus.ERROR, TestStatus.TIMEOUT,
                    TestStatus.CRASHED, TestStatus.MEMORY)  # fmt: skip
FORGE = (
    "import gc, os\n"
    "def f(x):\n"
    "    for obj in gc.get_objects():\n"
    "        if callable(obj) and getattr(obj, '__closure__', None) and getattr(obj, '__name__', '') in ('send', 'report'):\n"
    "            try:\n"
    "                obj({'i': 0, 'r': {'status': 'passed'}})\n"
    "            except BaseException:\n"
    "                pass\n"
    "    return -1\n"
)
# kind: (program, statuses it may get). Every test asks f(x) == x + 1.
KINDS = {
    "pass": ("def f(x):\n    return x + 1\n", {P}),
    "fail": ("def f(x):\n    return x\n", {F}),
    "raise": ("def f(x):\n    raise ValueError(x)\n", {E}),
    "loop": ("def f(x):\n    while True:\n        pass\n", {T}),
    "fork": (
        "import os, time\ndef f(x):\n    if os.fork() == 0:\n        time.sleep(60)\n    return x + 1\n",
        {P},
    ),
    "exit": ("import os\ndef f(x):\n    os._exit(0)\n", {C}),
    "sys_exit": ("import sys\ndef f(x):\n    sys.exit(3)\n", {E}),
    "forge": (FORGE, {E, F}),
}
KIND_NAMES = list(KINDS)


def job(index: int) -> tuple[str, list, set]:
    """The index-th job of the soak: kinds in turn, AssertTests and CallTests alternating."""
    kind = KIND_NAMES[index % len(KIND_NAMES)]
    if kind == "loop" and index % (len(KIND_NAMES) * 10) != index % len(KIND_NAMES):
        kind = "pass"  # loops cost a whole timeout each: one in ten rounds
    program, allowed = KINDS[kind]
    x = index % 97
    if (index // len(KIND_NAMES)) % 2:
        tests = [AssertTest(f"assert f({x}) == {x + 1}")]
    else:
        tests = [CallTest("f", (x,), expected=x + 1)]
    return kind, [(program, tests)], allowed


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (through /proc/PID/task/TID/children)."""
    found, queue = set(), [pid]
    while queue:
        parent = queue.pop()
        children = []
        try:
            for task in os.listdir(f"/proc/{parent}/task"):  # a child belongs to the thread that forked it
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children += [int(child) for child in f.read().split()]
        except OSError:
            continue
        found.update(children)
        queue.extend(children)
    return found


def alive(pids: set[int]) -> set[int]:
    """The processes of ``pids`` that still exist and are not zombies."""
    living = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z":
            living.add(pid)
    return living


def containers(owner_pid: int | None = None) -> int:
    """Sandbox containers started by ``owner_pid`` (default: this process)."""
    owner = f"codegym.sandbox.owner={socket.gethostname()}:{owner_pid or os.getpid()}"
    try:
        out = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={owner}"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return -1
    return len(out.split())


def census() -> dict:
    tmp = Path(tempfile.gettempdir())
    return {
        "processes": len(descendants(os.getpid())),
        "descriptors": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "containers": containers(),
        "job_dirs": sum(1 for path in tmp.glob("job-*")),
    }


def settle(before: dict, seconds: float = 20.0) -> dict:
    """The census once it is back to ``before`` (workers take a moment to exit), or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        now = census()
        if all(now[key] <= before[key] for key in now) or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


def soak(backend: str, args: Args) -> dict:
    before = census()
    wrong, statuses = Counter(), Counter()
    started = time.monotonic()
    with make_sandbox(backend, workers=args.workers) as box:
        for first in tqdm.trange(0, args.executions, args.batch, desc=f"soak {backend}", file=sys.stderr):
            batch = [job(i) for i in range(first, min(first + args.batch, args.executions))]
            reports = box.run_batch([j for _, jobs, _ in batch for j in jobs], timeout_s=args.timeout_s)
            for (kind, _, allowed), report in zip(batch, reports, strict=True):
                status = report.tests[0].status
                statuses[f"{kind}:{status.value}"] += 1
                if status not in allowed:
                    wrong[f"{kind}:{status.value}"] += 1
    seconds = time.monotonic() - started
    after = settle(before)
    return {
        "executions": args.executions,
        "seconds": round(seconds, 1),
        "executions_per_s": round(args.executions / seconds, 1),
        "wrong_verdicts": dict(wrong),
        "statuses": dict(statuses),
        "before": before,
        "after": after,
        "left_behind": {key: after[key] - before[key] for key in before},
    }


def batch_under_fault(box: Sandbox, args: Args, inject, size: int | None = None) -> dict:
    """Run a batch, call ``inject`` a moment after it starts, and judge what comes back."""
    # Each job sleeps a little, so that the batch is still running when the fault hits.
    jobs = [
        (kind, [(program.replace("def f(x):\n", "import time\ndef f(x):\n    time.sleep(0.05)\n", 1), tests)
                for program, tests in js], allowed)
        for kind, js, allowed in (job(i) for i in range(size or args.fault_jobs))
    ]  # fmt: skip
    result: dict = {}

    def run() -> None:
        try:
            result["reports"] = box.run_batch([j for _, js, _ in jobs for j in js], timeout_s=args.timeout_s)
        except Exception as exc:  # counted: a fault may end a batch only with a clear error
            result["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    time.sleep(1.0)
    injected = inject()
    thread.join(args.fault_deadline_s)
    outcome = {
        "injected": injected,
        "seconds": round(time.monotonic() - started, 1),
        "hung": thread.is_alive(),
    }
    if "reports" in result:
        correct = affected = wrong = 0
        for (_, _, allowed), report in zip(jobs, result["reports"], strict=True):
            test = report.tests[0]
            if test.status in allowed:
                correct += 1
            elif test.status is TestStatus.CRASHED and "died" in test.message:
                affected += 1  # reported clearly as the sandbox's loss, never a pass
            else:
                wrong += 1
        outcome.update(correct=correct, reported_affected=affected, wrong=wrong)
    else:
        outcome["error"] = result.get("error")
    # The pool must still judge correctly afterwards.
    try:
        report = box.run("def f(x):\n    return x + 1\n", [CallTest("f", (1,), expected=2)], timeout_s=5.0)
        outcome["next_job_passes"] = report.tests[0].status is TestStatus.PASSED
    except Exception as exc:
        outcome["next_job_passes"] = False
        outcome["next_job_error"] = f"{type(exc).__name__}: {exc}"
    return outcome


def fault_worker_sigkill(args: Args) -> dict:
    with make_sandbox("local", workers=args.workers) as box:
        return batch_under_fault(
            box, args, lambda: os.kill(box._all[0].process.pid, signal.SIGKILL) or "SIGKILL"
        )


def fault_container_kill(args: Args) -> dict:
    with make_sandbox("docker", workers=args.workers) as box:
        return batch_under_fault(box, args, lambda: box._all[0].container.kill() or "docker kill")


def fault_dockerd_restart(args: Args) -> dict:
    def restart() -> str:
        subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=False)
        for _ in range(60):  # it stops its containers first
            if subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True).returncode != 0:
                break
            time.sleep(0.5)
        with open("/tmp/codegym-soak-dockerd.log", "ab") as log:
            subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
        for _ in range(60):
            if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
                return "dockerd restarted"
            time.sleep(1)
        return "dockerd did not come back"

    with make_sandbox("docker", workers=args.workers) as box:
        return batch_under_fault(box, args, restart, size=8 * args.fault_jobs)  # outlasts the restart


OWNER = """
import sys
from codegym.sandbox import CallTest, make_sandbox
box = make_sandbox(sys.argv[1], workers=2)
print("ready", flush=True)
box.run_batch([("import time\\ndef f():\\n    time.sleep(0.2)\\n    return 1\\n", [CallTest("f", expected=1)])] * 400)
"""


def fault_owner_sigkill(args: Args, backend: str) -> dict:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, backend], stdout=subprocess.PIPE, text=True)
    owner.stdout.readline()
    time.sleep(1.0)
    processes, started_containers = descendants(owner.pid), containers(owner.pid)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    killed = time.monotonic()
    while (alive(processes) or containers(owner.pid) > 0) and time.monotonic() - killed < 30:
        time.sleep(0.2)
    return {
        "backend": backend,
        "processes_during": len(processes),
        "containers_during": started_containers,
        "seconds_to_clean": round(time.monotonic() - killed, 1),
        "left_behind": {"processes": len(alive(processes)), "containers": containers(owner.pid)},
    }


def main() -> None:
    args = parse_args(Args, __doc__)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    faults = [name.strip() for name in args.faults.split(",") if name.strip()]
    results: dict = {"args": asdict(args), "soak": {}, "faults": {}}
    for backend in backends:
        results["soak"][backend] = soak(backend, args)
        print(f"soak {backend}: {json.dumps(results['soak'][backend]['left_behind'])}", file=sys.stderr)
    for fault in faults:
        if fault == "worker-sigkill":
            results["faults"][fault] = fault_worker_sigkill(args)
        elif fault == "container-kill" and "docker" in backends:
            results["faults"][fault] = fault_container_kill(args)
        elif fault == "dockerd-restart" and args.restart_dockerd:
            results["faults"][fault] = fault_dockerd_restart(args)
        elif fault == "owner-sigkill":
            for backend in backends:
                results["faults"][f"{fault}-{backend}"] = fault_owner_sigkill(args, backend)
        print(f"fault {fault}: done", file=sys.stderr)
    results["machine"] = machine()
    print(write_json(args.out, results, indent=1))
    draw(results, args)


def draw(results: dict, args: Args) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    keys = ["processes", "descriptors", "threads", "containers", "job_dirs"]
    bars = [(backend, when) for backend in results["soak"] for when in ("before", "after")]
    width = 0.8 / max(1, len(bars))
    for offset, (backend, when) in enumerate(bars):
        values = [results["soak"][backend][when][key] for key in keys]
        left.bar([i + width * offset for i in range(len(keys))], values, width=width, label=f"{backend} {when}",
                 hatch="//" if when == "after" else None)  # fmt: skip
    left.set_xticks([i + 0.4 - width / 2 for i in range(len(keys))], keys, rotation=20)
    left.set_title(f"before and after {args.executions} executions per backend")
    left.legend(fontsize=8)
    names = [name for name, fault in results["faults"].items() if "correct" in fault]
    for label, key in (
        ("correct", "correct"),
        ("reported affected", "reported_affected"),
        ("wrong", "wrong"),
    ):
        right.bar(names, [results["faults"][name][key] for name in names], label=label,
                  bottom=[sum(results["faults"][name][k] for k in ("correct", "reported_affected", "wrong")[
                      : ("correct", "reported_affected", "wrong").index(key)]) for name in names])  # fmt: skip
    right.set_title(f"jobs of a {args.fault_jobs}-job batch hit by a fault")
    right.legend()
    figure.tight_layout()
    figure.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
