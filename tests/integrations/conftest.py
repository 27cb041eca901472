"""Fixtures for the integration tests: real ``codegym serve`` processes on loopback, and a few tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TOKEN = "test-token-3b9f"
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Server:
    """A running ``codegym serve`` on 127.0.0.1."""

    url: str
    process: subprocess.Popen
    token: str | None


def start_server(*options: str, log: Path, token: str | None = None) -> Server:
    """Start ``codegym serve --host 127.0.0.1 --port 0 --sandbox local OPTIONS`` and wait for its URL.

    Its output goes to the file ``log``, never to an unread pipe, which would stall the server once full.
    """
    pytest.importorskip("openenv", reason="codegym serve needs openenv-core: pip install 'codegym[serve]'")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("CODEGYM_SERVE_TOKEN", None)
    if token is not None:
        env["CODEGYM_SERVE_TOKEN"] = token
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codegym.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--sandbox",
            "local",
            *options,
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        started = [line for line in log.read_text().splitlines() if line.startswith("serving CodeReason-v0")]
        if started:
            return Server(url=started[0].split()[-1], process=process, token=token)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"codegym serve did not start: {log.read_text()[-2000:]}")


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """An open server: no token, room for 10 sessions."""
    running = start_server("--max-sessions", "10", log=tmp_path_factory.mktemp("serve") / "server.log")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory) -> Iterator[Server]:
    """A server with a token, 2 sessions, a 1 s idle timeout, 16 KiB requests and the tiny PRM."""
    running = start_server(
        "--max-sessions",
        "2",
        "--idle-timeout-s",
        "1",
        "--max-body-bytes",
        "16384",
        "--process-reward",
        "tiny",
        token=TOKEN,
        log=tmp_path_factory.mktemp("serve") / "server.log",
    )
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def synthetic_tasks():
    """Six k = 1 synthetic training tasks (their reference episodes pass every test)."""
    from codegym.tasks.synthetic import SyntheticTasks

    return SyntheticTasks("train", min_ops=1, max_ops=1).tasks(6, seed=0)


def reference_completion(task) -> str:
    """A task's reference episode as one completion: steps after the first carry ``### Step N`` headers."""
    steps = list(task.reference_steps)
    return steps[0] + "".join(f"\n\n### Step {i}\n{step}" for i, step in enumerate(steps[1:], start=2))
