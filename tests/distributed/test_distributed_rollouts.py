"""Rollouts over Ray workers on the simulated cluster: the same numbers as one process, deaths or not."""

from __future__ import annotations

import functools
import json
import operator
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from codegym.cli import main
from tests.distributed.processes import all_pids

pytestmark = pytest.mark.slow


def _eval_results(path) -> dict:
    results = json.loads(path.read_text())
    results.pop("seconds")
    results["settings"].pop("ray_address")
    return results


def test_distributed_eval_equals_the_single_process_one(ray_cluster, tmp_path, capsys):
    argv = ["eval", "--n-tasks", "12", "--temperature", "0", "--samples", "1", "--sandbox", "local"]
    argv += ["--max-steps", "4", "--max-new-tokens", "48", "--seed", "5"]
    assert main([*argv, "--out", str(tmp_path / "one.json")]) == 0
    remote = [*argv, "--ray-address", ray_cluster.address, "--ray-chunk", "3", "--ray-workers", "3"]
    assert main([*remote, "--out", str(tmp_path / "ray.json")]) == 0
    single, distributed = _eval_results(tmp_path / "one.json"), _eval_results(tmp_path / "ray.json")
    assert distributed == single
    assert len(single["per_task"]) == 12 and sum(t["correct"] for t in single["per_task"]) >= 1
    assert "episodes: 100%" in capsys.readouterr().err  # the progress bar reached the end


def _kill_a_busy_worker(killed: list[int], after_s: float) -> threading.Thread:
    """SIGKILL the first Ray worker seen running a chunk once ``after_s`` has passed."""

    def kill() -> None:
        deadline = time.monotonic() + after_s + 60
        time.sleep(after_s)
        while not killed and time.monotonic() < deadline:
            for pid in all_pids():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        title = cmdline.read()
                except OSError:
                    continue
                if title.startswith(b"ray::ChunkWorker.run"):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_sampled_rollouts_do_not_depend_on_workers_or_on_a_worker_dying(ray_cluster):
    from codegym.play import distributed_rollout
    from codegym.tasks import load_tasks

    tasks = list(load_tasks("synthetic", split="test").tasks(6, seed=1))
    options = {"temperature": 1.0, "samples_per_task": 2, "seed": 9, "max_steps": 3, "max_new_tokens": 32}
    one = distributed_rollout("tiny", tasks, workers=1, tasks_per_chunk=2, sandbox="local", **options)
    killed: list[int] = []
    killer = _kill_a_busy_worker(killed, after_s=0.5)
    three = distributed_rollout("tiny", tasks, workers=3, tasks_per_chunk=2, sandbox="local", **options)
    killer.join()
    assert len(killed) == 1  # a worker died in the middle of the second run
    assert three == one
    assert [(e.task_id, e.sample) for e in one] == [(t.task_id, s) for t in tasks for s in range(2)]
    assert len({e.steps for e in one}) > 1  # sampled: the episodes differ from one another


def test_bad_distribution_options_name_the_fix(ray_cluster):
    from codegym.distributed import WorkerFailed, map_chunks
    from codegym.play import distributed_rollout

    with pytest.raises(ValueError, match="tasks_per_chunk must be an int >= 1"):
        distributed_rollout("tiny", [], tasks_per_chunk=0)
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        map_chunks(dict, lambda state, chunk: chunk, [[1]], workers=0)
    # A setup that raises is reported at once (it would raise on every worker), with its error.
    with pytest.raises(WorkerFailed, match=r"(?s)setup failed.*ZeroDivisionError"):
        map_chunks(functools.partial(operator.truediv, 1, 0), operator.add, [[1]], workers=1)
    # An error inside the work comes back as itself (int() / [1] on the worker).
    with pytest.raises(TypeError, match="unsupported operand"):
        map_chunks(int, operator.truediv, [[1]])


@pytest.mark.parametrize("command", ["solve", "search"])
def test_distributed_solve_and_search_equal_the_single_process_ones(command, ray_cluster, tmp_path):
    argv = [command, "--n-tasks", "6", "--batch-size", "2", "--sandbox", "local", "--max-steps", "3"]
    argv += ["--max-new-tokens", "32", "--seed", "4", "--visible-tests", "task"]
    argv += ["--agent", "sample"] if command == "solve" else ["--simulations", "3"]
    out = "--out"
    assert main([*argv, out, str(tmp_path / "one")]) == 0
    assert main([*argv, out, str(tmp_path / "ray"), "--ray-address", ray_cluster.address]) == 0
    single, remote = (_episodes(tmp_path / run, command) for run in ("one", "ray"))
    assert len(single) == 6 and remote == single
    assert {record["task_id"] for record in single} == {record["task_id"] for record in remote}


def _episodes(path, command: str) -> list[dict]:
    """The episode records, without the one field that is a measurement (wall-clock seconds)."""
    lines = (path / "episodes.jsonl" if command == "search" else path).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        record["spend"].pop("wall_s")
    return records


@pytest.mark.parametrize(
    ("address", "message"),
    [("127.0.0.1:1", "nothing answers at Ray address '127.0.0.1:1'"), ("nonsense", "is not 'auto', 'local'")],
)
def test_a_bad_ray_address_fails_fast_and_says_why(address, message):
    # A fresh process: this one is already connected to the test cluster, which an address cannot change.
    argv = ["eval", "--n-tasks", "1", "--temperature", "0", "--samples", "1", "--ray-address", address]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "codegym.cli", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and message in done.stderr
    assert time.monotonic() - started < 60  # Ray alone would retry such an address for minutes
