"""The local backend: fork-server workers started as plain processes on this machine.

Run as root, each worker puts itself in new mount, network and PID namespaces (a minimal read-only root
of system folders and the standard library, a private /tmp, its own /proc, no network) and runs
candidates and judges under two uids of its own. Run as a normal user it tries a user namespace for
part of that, and otherwise falls back to rlimits alone, with a warning.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from codegym.sandbox.base import MAX_REPLY_BYTES, Sandbox, WorkerChannel, WorkerGone, worker_command
from codegym.sandbox.framing import LineReader
from codegym.sandbox.isolation import SAFE_ENV

STARTUP_TIMEOUT_S = 30.0


class LocalWorkerChannel(WorkerChannel):
    def __init__(self, python: str, slot: int | None):
        # The worker's environment is the allow-list alone: nothing the host holds (tokens, keys) can
        # be read back from /proc/<pid>/environ by a candidate. A fixed hash seed keeps set order, and
        # so printed output, the same from run to run.
        env = dict(SAFE_ENV, PYTHONHASHSEED="0")
        self.process = subprocess.Popen(
            worker_command(python, "local", slot),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd="/",
            close_fds=True,
            start_new_session=True,
        )
        self._reader = LineReader(self.process.stdout.fileno(), max_line=MAX_REPLY_BYTES)
        try:
            self.handshake(time.monotonic() + STARTUP_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def send(self, data: bytes) -> None:
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerGone(f"could not send to the worker: {exc}") from None

    def read_line(self, deadline: float) -> bytes:
        try:
            line = self._reader.read_line(deadline)
        except TimeoutError:
            raise WorkerGone("the worker did not answer in time") from None
        except ValueError as exc:
            raise WorkerGone(f"the worker sent an oversized reply ({exc})") from None
        if line is None:
            raise WorkerGone(f"the worker exited (status {self.process.poll()})")
        return line

    def has_pending(self) -> bool:
        return bool(self._reader.buffer)

    def close(self) -> None:
        # The worker leads its own process group, with the first process of its PID namespace, which the
        # kill reaches too: when that one ends the kernel kills every process in the namespace, so a job's
        # processes, in sessions of their own and however many, cannot outlive the worker.
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()


class LocalSandbox(Sandbox):
    """Fork-server workers on this machine.

    Args:
        workers: how many jobs run at once (default: the number of CPU cores).
        python: the interpreter that runs candidates (default: this one, so installed packages import).
        report_bytes: how much stdout/stderr each report keeps.
        max_output_bytes: output past this is an error for the test that printed it.
        pin_cpus: pin each worker to one CPU, the pool spread evenly over the CPUs this process may use
            (a job's processes then talk without waking another CPU); False lets the scheduler move them.
    """

    name = "local"

    def __init__(self, workers: int | None = None, *, python: str | None = None, **kwargs):
        self.python = python or sys.executable
        super().__init__(workers or os.cpu_count() or 1, **kwargs)

    def _start_worker(self, slot: int | None) -> WorkerChannel:
        return LocalWorkerChannel(self.python, slot)
