"""Choosing a backend, failing clearly, replacing dead workers, and leaving no containers behind."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time

import pytest

from codegym.sandbox import CallTest, SandboxUnavailable, TestStatus, make_sandbox
from codegym.sandbox.local_sandbox import LocalSandbox

OK = ("def ok():\n    return 1\n", [CallTest("ok", expected=1)])
SLOW = ("import time\ndef ok():\n    time.sleep(30)\n    return 1\n", [CallTest("ok", expected=1)])


def test_auto_falls_back_to_local_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="codegym.sandbox"):
        box = make_sandbox("auto", workers=1, image="codegym-no-such-image:never")
    with box:
        assert isinstance(box, LocalSandbox)
        assert box.run(*OK).passed == 1
    assert "chose local" in caplog.text


@pytest.mark.docker
def test_auto_chooses_docker_when_it_can(sandbox_factory):
    sandbox_factory("docker")  # skips (or fails under CODEGYM_REQUIRE_DOCKER=1) without Docker
    with make_sandbox("auto", workers=1) as box:
        assert box.name == "docker"


@pytest.mark.docker
def test_missing_image_says_how_to_build_it(sandbox_factory):
    sandbox_factory("docker")
    with pytest.raises(SandboxUnavailable, match="build-image --offline"):
        make_sandbox("docker", image="codegym-no-such-image:never")


def test_unreachable_daemon_says_how_to_start_it(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SandboxUnavailable, match="Start it"):
        make_sandbox("docker")


def test_a_killed_local_worker_is_replaced():
    with make_sandbox("local", workers=1) as box:
        worker = box._all[0]
        os.kill(worker.process.pid, signal.SIGKILL)
        # The job that found its worker dead runs again on the replacement and gets its real verdict.
        assert box.run(*OK).passed == 1
        assert box._all[0] is not worker


def test_a_job_whose_workers_keep_dying_is_reported_not_retried_forever():
    slow = ("import time\ndef ok():\n    time.sleep(2)\n    return 1\n", [CallTest("ok", expected=1)])
    with make_sandbox("local", workers=1) as box:
        killed: list[int] = []

        def kill_two_workers():
            deadline = time.monotonic() + 20
            while len(killed) < 2 and time.monotonic() < deadline:
                channels = list(box._all)
                if channels and channels[0].process.pid not in killed:
                    time.sleep(0.3)  # let the job start on it
                    os.kill(channels[0].process.pid, signal.SIGKILL)
                    killed.append(channels[0].process.pid)
                time.sleep(0.01)

        killer = threading.Thread(target=kill_two_workers)
        killer.start()
        report = box.run(*slow, timeout_s=5.0)
        killer.join()
        assert len(killed) == 2
        assert report.tests[0].status is TestStatus.CRASHED
        assert "died" in report.tests[0].message
        assert box.run(*OK).passed == 1


@pytest.mark.docker
def test_a_killed_container_is_replaced_and_none_are_left(sandbox_factory):
    sandbox_factory("docker")
    import docker

    client = docker.from_env()
    label = {"label": "codegym.sandbox"}
    before = {c.id for c in client.containers.list(all=True, filters=label)}
    with make_sandbox("docker", workers=1) as box:
        first = box._all[0].container
        first.kill()
        assert box.run(*OK).passed == 1  # run again on the replacement container
        assert box._all[0].container.id != first.id
    after = {c.id for c in client.containers.list(all=True, filters=label)}
    assert after <= before  # everything this sandbox started is gone


@pytest.mark.slow
def test_a_hung_worker_is_replaced(monkeypatch):
    with make_sandbox("local", workers=1) as box:
        worker = box._all[0]
        # Alive but silent: only the host's watchdog can tell. (The worker's group: the process the host
        # started and the first process of its PID namespace, which does the work.)
        os.killpg(worker.process.pid, signal.SIGSTOP)
        monkeypatch.setattr("codegym.sandbox.base.HOST_SLACK_S", 1.0)
        started = time.monotonic()
        assert box.run(*OK, timeout_s=0.5).passed == 1  # given up on, then run again on a fresh worker
        assert time.monotonic() - started < 30
        assert box._all[0] is not worker


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("kind", ["local", pytest.param("docker", marks=pytest.mark.docker)])
@pytest.mark.slow
def test_closing_a_sandbox_releases_everything_it_opened(sandbox_factory, kind):
    sandbox_factory(kind)  # skips (or fails under CODEGYM_REQUIRE_DOCKER=1) when the backend cannot run
    with make_sandbox(kind, workers=2) as box:  # the first start loads modules and opens log files
        box.run(*OK)
    gc.collect()
    descriptors, threads = _open_descriptors(), threading.active_count()
    for _ in range(3):
        with make_sandbox(kind, workers=2) as box:
            assert box.run(*OK).passed == 1
    gc.collect()
    assert _open_descriptors() <= descriptors and threading.active_count() <= threads


def test_auto_without_docker_leaks_no_client(monkeypatch):
    make_sandbox("auto", workers=1, image="codegym-no-such-image:never").close()
    gc.collect()
    descriptors = _open_descriptors()
    for _ in range(3):
        make_sandbox("auto", workers=1, image="codegym-no-such-image:never").close()
    gc.collect()
    assert _open_descriptors() <= descriptors


def test_local_workers_are_pinned_one_cpu_each_and_spread_out():
    allowed = sorted(os.sched_getaffinity(0))
    with make_sandbox("local", workers=2 * len(allowed)) as box:
        pinned = [os.sched_getaffinity(channel.process.pid) for channel in box._all]
        assert box.run(*OK).passed == 1
    assert all(len(cpus) == 1 for cpus in pinned)
    assert sorted(cpu for cpus in pinned for cpu in cpus) == sorted(allowed * 2)
    with make_sandbox("local", workers=1, pin_cpus=False) as box:
        assert os.sched_getaffinity(box._all[0].process.pid) == set(allowed)


OWNER = """
import sys
from codegym.sandbox import CallTest, make_sandbox
box = make_sandbox(sys.argv[1], workers=2)
print("ready", flush=True)
box.run_batch([("import time\\ndef f():\\n    time.sleep(0.2)\\n    return 1\\n", [CallTest("f", expected=1)])] * 200)
"""


def _descendants(pid: int) -> set[int]:
    found, queue = set(), [pid]
    while queue:
        parent = queue.pop()
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children = {int(child) for child in f.read().split()}
                found |= children
                queue.extend(children)
        except OSError:
            continue
    return found


def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None for a process gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()


def _living(pids: set[int]) -> set[int]:
    return {pid for pid in pids if (fields := _stat(pid)) is not None and fields[0] != b"Z"}


@pytest.mark.parametrize("kind", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_sigkill_of_the_owning_process_leaves_no_worker_job_or_container(sandbox_factory, kind):
    import socket
    import subprocess
    import sys

    sandbox_factory(kind)
    owner = subprocess.Popen([sys.executable, "-c", OWNER, kind], stdout=subprocess.PIPE, text=True)
    label = f"label=codegym.sandbox.owner={socket.gethostname()}:{owner.pid}"

    def containers() -> list[str]:
        if kind != "docker":
            return []
        return subprocess.run(
            ["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True
        ).stdout.split()

    try:
        assert owner.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # the batch is running
        processes, containers_during = _descendants(owner.pid), containers()
    finally:
        owner.kill()
        owner.wait()
    # Both workers (and their jobs) were there: as local processes, or as containers.
    assert len(containers_during) == 2 if kind == "docker" else len(processes) >= 2
    deadline = time.monotonic() + 20
    while (_living(processes) or containers()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (_living(processes), containers()) == (set(), [])
