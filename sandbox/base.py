"""The sandbox interface and the pool of warm workers that both backends share.

A backend only says how to start one worker and talk to it (a :class:`WorkerChannel`); this module
validates input, answers syntax errors without running anything, spreads a batch over the workers in
parallel, replaces a worker that dies or hangs, and turns raw worker replies into reports.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from codegym.errors import UserError
from codegym.sandbox.cases import AssertTest, CallTest, StdioTest, Test, judge
from codegym.sandbox.framing import dumps_line, loads_line
from codegym.sandbox.report import ExecutionReport, TestResult, TestStatus
from codegym.sandbox.runner import PROTOCOL_VERSION

logger = logging.getLogger("codegym.sandbox")

# The modules a worker needs, in dependency order; all standard-library only.
_SHIPPED_MODULES = ("plain", "framing", "filesystem", "isolation", "candidate", "judge", "runner")
_BOOTSTRAP = """
import sys, types
for name in ("codegym", "codegym.sandbox"):
    package = types.ModuleType(name)
    package.__path__ = []
    sys.modules[name] = package
for name, source in MODULES:
    module = types.ModuleType(name)
    module.__file__ = name.replace(".", "/") + ".py"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
sys.modules["codegym.sandbox.runner"].serve(CONFIG)
"""


def worker_command(
    python: str, isolation: str, slot: int | None = None, workroot: str | None = None
) -> list[str]:
    """The argv that starts a worker: the interpreter with the runner's own modules sent inline.

    Shipping the source (rather than importing an installed copy) means a Docker image needs nothing
    but python3, and a worker always runs exactly the code of the library that started it. ``slot``
    (the worker's place in its pool) pins the worker to one CPU, slot by slot over the CPUs it may use;
    None leaves it free. ``workroot`` is the folder the worker makes job folders in (default: its /tmp).
    """
    config = {"isolation": isolation, "cpu_slot": slot, "uids": worker_uids(), "workroot": workroot}
    source = _BOOTSTRAP.replace("MODULES", _shipped_sources()).replace("CONFIG", repr(config))
    return [python, "-s", "-B", "-c", source]


def worker_uids() -> list[int]:
    """Two unprivileged uids (candidates, judge) for one worker, drawn at random from a range no system
    account uses, so that no two workers on a host share one: a job's processes are then exactly the
    processes of its candidate uid, and RLIMIT_NPROC counts them alone."""
    candidate = (1 << 28) + 2 * secrets.randbelow(1 << 27)
    return [candidate, candidate + 1]


@functools.cache
def _shipped_sources() -> str:
    folder = Path(__file__).parent
    return repr(
        [(f"codegym.sandbox.{name}", (folder / f"{name}.py").read_text()) for name in _SHIPPED_MODULES]
    )


# Extra seconds the host waits past the worker's own worst case before it declares the worker hung.
HOST_SLACK_S = 30.0
# The largest reply a worker may send: the values a job returned are capped at 64 MiB in the worker.
MAX_REPLY_BYTES = 256 << 20
# How long the pool keeps trying to replace a dead worker before it declares itself broken.
RESTART_PATIENCE_S = 60.0


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the candidate): a worker could not start or broke the protocol."""


class SandboxUnavailable(SandboxError):
    """The requested backend cannot run here; the message says how to make it available."""


class WorkerGone(SandboxError):
    """The worker died or stopped answering in the middle of a job."""


class WorkerChannel(ABC):
    """One warm worker: a byte pipe to a running ``runner.py`` fork server."""

    hello: dict
    slot: int = 0  # the worker's place in its pool (see worker_command)

    @abstractmethod
    def send(self, data: bytes) -> None: ...

    @abstractmethod
    def read_line(self, deadline: float) -> bytes:
        """One reply line; raises :class:`WorkerGone` at end of stream or past ``deadline``."""

    @abstractmethod
    def close(self) -> None:
        """Stop the worker and everything it started."""

    def has_pending(self) -> bool:
        """True when the worker wrote more than was read (a protocol violation after a whole reply)."""
        return False

    def death_status(self) -> TestStatus:
        """How to score a job whose worker died under it."""
        return TestStatus.CRASHED

    def handshake(self, deadline: float) -> dict:
        try:
            hello = json.loads(self.read_line(deadline))
        except (ValueError, RecursionError):
            raise SandboxError("the sandbox worker did not start with a hello") from None
        if type(hello) is not dict:
            raise SandboxError("the sandbox worker did not start with a hello")
        if "fatal" in hello:
            raise SandboxError(
                f"the sandbox worker cannot confine programs here: {str(hello['fatal'])[:2000]}"
            )
        if hello.get("hello") != PROTOCOL_VERSION:
            raise SandboxError(
                f"sandbox worker speaks protocol {hello.get('hello')}, expected {PROTOCOL_VERSION}"
            )
        self.hello = hello
        return hello


class Sandbox(ABC):
    """Runs untrusted programs against tests on a pool of warm workers.

    Use it as a context manager, or call :meth:`close`. ``run`` and ``run_batch`` are thread-safe.

    Example:
        >>> from codegym.sandbox import make_sandbox, CallTest
        >>> with make_sandbox("local", workers=1) as box:
        ...     box.run("def add(a, b):\\n    return a + b", [CallTest("add", (2, 3), expected=5)]).pass_rate
        1.0
    """

    name: str = "abstract"

    def __init__(
        self,
        workers: int,
        *,
        report_bytes: int = 16_384,
        max_output_bytes: int = 1 << 20,
        pin_cpus: bool = True,
    ):
        if workers < 1:
            raise UserError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.pin_cpus = pin_cpus
        self.report_bytes = report_bytes
        self.max_output_bytes = max_output_bytes
        self._idle: queue.Queue[WorkerChannel | None] = queue.Queue()
        self._all: list[WorkerChannel] = []
        self._lock = threading.Lock()
        self._closed = False
        self._job_ids = 0
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"codegym-{self.name}")
        self._warned: set[str] = set()
        self._broken: str | None = None
        try:
            for channel in self._start_many(workers):
                self._idle.put(channel)
        except BaseException:
            self.close()
            raise

    # -- what a backend provides ---------------------------------------------------------------------

    @abstractmethod
    def _start_worker(self, slot: int | None) -> WorkerChannel:
        """Start one worker (pinned by ``slot``, see :func:`worker_command`) and complete its handshake."""

    def _start_many(self, count: int) -> list[WorkerChannel]:
        return list(self._executor.map(self._start_in_slot, range(count)))

    def _start_in_slot(self, slot: int) -> WorkerChannel:
        channel = self._start_worker(slot if self.pin_cpus else None)
        channel.slot = slot
        return self._adopt(channel)

    def _adopt(self, channel: WorkerChannel) -> WorkerChannel:
        with self._lock:
            self._all.append(channel)
        for warning in channel.hello.get("warnings", []):
            if warning not in self._warned:
                self._warned.add(warning)
                logger.warning("%s sandbox: %s", self.name, warning)
        return channel

    @property
    def isolation(self) -> list[str]:
        """What isolation the workers applied (from their handshake)."""
        return list(self._all[0].hello.get("applied", [])) if self._all else []

    # -- public API ----------------------------------------------------------------------------------

    def run(
        self, program: str, tests: Sequence[Test], *, timeout_s: float = 3.0, memory_mb: int = 512
    ) -> ExecutionReport:
        """Run ``program`` against ``tests``.

        Args:
            program: Python source of the candidate.
            tests: AssertTest, CallTest and StdioTest instances, in any mix.
            timeout_s: wall-clock limit for loading the program and, separately, for each test.
            memory_mb: address-space limit of the candidate's process.

        Returns:
            An :class:`ExecutionReport` with one result per test, in order.
        """
        return self.run_batch([(program, tests)], timeout_s=timeout_s, memory_mb=memory_mb)[0]

    def run_batch(
        self,
        jobs: Sequence[tuple[str, Sequence[Test]]],
        *,
        timeout_s: float = 3.0,
        memory_mb: int = 512,
    ) -> list[ExecutionReport]:
        """Run many ``(program, tests)`` pairs in parallel on the worker pool; reports come back in order."""
        if self._closed:
            raise SandboxError("this sandbox is closed; create a new one with make_sandbox(...)")
        checked = self._check_batch(jobs, timeout_s, memory_mb)
        futures = [
            self._executor.submit(self._run_one, program, tests, timeout_s, memory_mb)
            for program, tests in checked
        ]
        return [future.result() for future in futures]

    def close(self) -> None:
        """Stop every worker. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            channels, self._all = self._all, []
        for channel in channels:
            try:
                channel.close()
            except Exception:  # closing must go on for the other workers
                logger.exception("could not close a %s sandbox worker", self.name)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers}, isolation={self.isolation})"

    def __deepcopy__(self, memo: dict) -> Sandbox:
        # A sandbox is a running pool of workers, shared by whoever holds it: a copy is the same pool.
        # (Gymnasium deep-copies an env's keyword arguments, e.g. when check_env remakes the env.)
        return self

    def __reduce__(self):
        raise TypeError(
            f"a running {type(self).__name__} cannot be sent to another process; pass the sandbox by name "
            "(sandbox='local', 'docker', 'auto' or 'ray') so that each process starts its own"
        )

    # -- internals -----------------------------------------------------------------------------------

    @classmethod
    def _check_batch(cls, jobs, timeout_s, memory_mb) -> list[tuple[str, tuple[Test, ...]]]:
        """``run_batch``'s arguments checked (every backend's), the jobs as (program, tests) tuples."""
        if not (isinstance(timeout_s, int | float) and 0 < timeout_s <= 3600):
            raise UserError(f"timeout_s must be a number of seconds in (0, 3600], got {timeout_s!r}")
        if not (isinstance(memory_mb, int) and memory_mb >= 64):
            raise UserError(f"memory_mb must be an int of at least 64 (MiB), got {memory_mb!r}")
        return [cls._check_job(index, job) for index, job in enumerate(jobs)]

    @staticmethod
    def _check_job(index: int, job) -> tuple[str, tuple[Test, ...]]:
        try:
            program, tests = job
        except (TypeError, ValueError):
            raise UserError(
                f"job {index} must be a (program, tests) pair, got {type(job).__name__}"
            ) from None
        if not isinstance(program, str):
            raise TypeError(
                f"job {index}: program must be a str of Python source, got {type(program).__name__}"
            )
        if isinstance(tests, AssertTest | CallTest | StdioTest):
            raise TypeError(f"job {index}: tests must be a list of tests; wrap the single test in [ ]")
        tests = tuple(tests)
        if not tests:
            raise UserError(f"job {index}: no tests given; a program with no tests can neither pass nor fail")
        for test in tests:
            if not isinstance(test, AssertTest | CallTest | StdioTest):
                raise TypeError(
                    f"job {index}: {test!r:.80} is not a test; use AssertTest, CallTest or StdioTest"
                )
        return program, tests

    def _run_one(
        self, program: str, tests: tuple[Test, ...], timeout_s: float, memory_mb: int
    ) -> ExecutionReport:
        try:
            compile(program, "solution.py", "exec")
        except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
            # Compiling runs none of the candidate's code, so the host may do it itself and skip a round trip.
            result = TestResult(TestStatus.ERROR, type(exc).__name__, f"the program does not compile: {exc}")
            return ExecutionReport(compiled=False, tests=(result,) * len(tests), backend=self.name)
        job = {
            "program": program,
            "tests": [test.to_wire() for test in tests],
            "timeout_s": float(timeout_s),
            "memory_mb": memory_mb,
            "max_output_bytes": self.max_output_bytes,
            "report_bytes": self.report_bytes,
        }
        # The worker enforces the real limits; this watchdog only catches a worker that stopped answering.
        budget_s = timeout_s * (2 * len(tests) + 2) + HOST_SLACK_S
        reply = self._exchange(job, budget_s, len(tests))
        if "dead" in reply:
            # No program can kill its worker (it runs under another uid, or as PID 1 of its container): a
            # worker killed from outside, or lost with its container, takes the job with it. Run it again
            # once on the fresh worker; a job that loses that one too is reported, not retried forever.
            logger.warning("%s sandbox: running a job again on a fresh worker (%s)", self.name, reply["why"])
            reply = self._exchange(job, budget_s, len(tests))
        if "fault" in reply:
            # Nothing a program does should get here; if one does, it must not pass, nor stop the caller.
            # A second try on a fresh worker tells a passing fault from one this program causes.
            logger.warning(
                "%s sandbox: %s; trying the job again on a fresh worker", self.name, reply["fault"]
            )
            reply = self._exchange(job, budget_s, len(tests))
        if "fault" in reply:
            logger.error("%s sandbox: %s (a CodeGym bug, please report it)", self.name, reply["fault"])
            raw = {"status": "error", "error_type": "SandboxFault", "message": reply["fault"]}
            return ExecutionReport(
                compiled=True, tests=tuple(judge(t, raw) for t in tests), backend=self.name
            )
        if "dead" in reply:
            raw = {"status": reply["dead"], "error_type": "WorkerDied", "message": reply["why"]}
            return ExecutionReport(
                compiled=True, tests=tuple(judge(t, raw) for t in tests), backend=self.name
            )
        results = tuple(judge(test, raw) for test, raw in zip(tests, reply["results"], strict=True))
        return ExecutionReport(
            compiled=True,
            tests=results,
            stdout=reply["stdout"],
            stderr=reply["stderr"],
            duration_s=float(reply["duration_s"]),
            backend=self.name,
        )

    def _exchange(self, job: dict, budget_s: float, count: int) -> dict:
        """Send one job to an idle worker and read its reply, as untrusted input.

        Returns the reply, ``{"dead": status, "why": ...}`` when the worker died or hung, or
        ``{"fault": why}`` when it broke the protocol (a malformed, foreign or extra message). A worker
        that did not answer cleanly is replaced. Raises SandboxError only for the sandbox's own failures
        (closed, a worker that cannot be restarted or cannot confine a job), never for a program's doing.
        """
        channel = self._idle.get()
        if channel is None:  # closed, or a worker could not be restarted: pass the news on to other waiters
            self._idle.put(None)
            raise SandboxError(self._broken or "the sandbox was closed during the run")
        with self._lock:
            self._job_ids += 1
            job = dict(job, id=self._job_ids)
        healthy = False
        try:
            channel.send(dumps_line(job))
            line = channel.read_line(time.monotonic() + budget_s)
            reply = _check_reply(line, job["id"], count)
            if "fatal" in reply:
                return {"fault": f"the worker failed: {reply['fatal']}"}
            if channel.has_pending():
                return {"fault": "the worker sent more than one reply to a job"}
            healthy = True
            return reply
        except _BadReply as exc:
            return {"fault": str(exc)}
        except WorkerGone as exc:
            status = channel.death_status()
            logger.warning("%s sandbox: a worker died (%s); replacing it", self.name, exc)
            return {"dead": status.value, "why": f"the sandbox worker died or hung: {exc}"}
        finally:
            self._idle.put(channel if healthy else self._replace(channel))

    def _replace(self, channel: WorkerChannel) -> WorkerChannel | None:
        with self._lock:
            if channel in self._all:
                self._all.remove(channel)
        try:
            channel.close()
        except Exception as exc:  # e.g. its Docker daemon is restarting: nothing more to release here
            logger.warning("could not close a broken %s sandbox worker: %s", self.name, exc)
        # A worker that cannot start at once may be waiting for its backend (a Docker daemon restarting):
        # try for a while, more and more slowly, before the pool gives up and says why.
        give_up = time.monotonic() + RESTART_PATIENCE_S
        delay = 0.5
        while not self._closed:
            try:
                return self._start_in_slot(channel.slot)
            except Exception as exc:
                if time.monotonic() + delay > give_up:
                    self._broken = f"a {self.name} sandbox worker died and could not be restarted: {exc}"
                    logger.error("%s", self._broken)
                    return None
                logger.warning("%s sandbox: could not restart a worker (%s); trying again", self.name, exc)
                time.sleep(delay)
                delay = min(2 * delay, 8.0)
        return None


class _BadReply(Exception):
    """A worker's reply that breaks the protocol."""


_RESULT_STATUSES = frozenset({"passed", "returned", "exited", *(status.value for status in TestStatus)})


def _check_reply(line: bytes, job_id: int, count: int) -> dict:
    """Parse a worker's reply to job ``job_id`` with ``count`` tests; _BadReply for anything malformed."""
    try:
        reply = loads_line(line)
    except (ValueError, RecursionError):
        raise _BadReply(f"the worker sent a reply that is not JSON: {line[:80]!r}") from None
    if type(reply) is not dict:
        raise _BadReply(f"the worker sent {type(reply).__name__} instead of a reply object")
    if reply.get("id") != job_id:
        raise _BadReply(f"the worker answered job {reply.get('id')!r:.40} to job {job_id}")
    if "fatal" in reply:
        reply["fatal"] = str(reply["fatal"])[:2000]
        return reply
    results = reply.get("results")
    if type(results) is not list or len(results) != count:
        raise _BadReply(
            f"the worker sent {'no' if type(results) is not list else len(results)} results for {count} tests"
        )
    for raw in results:
        if type(raw) is not dict or raw.get("status") not in _RESULT_STATUSES:
            raise _BadReply(f"the worker sent a malformed result: {str(raw)[:80]}")
    if not (type(reply.get("stdout")) is str and type(reply.get("stderr")) is str):
        raise _BadReply("the worker sent a reply without its output")
    if type(reply.get("duration_s")) not in (int, float):
        raise _BadReply("the worker sent a reply without its duration")
    return reply
