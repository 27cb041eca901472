"""The Ray backend: the sandbox API over a pool of Ray actors, each owning a local or Docker sandbox.

``make_sandbox("ray")`` connects to a Ray cluster (``address``, else ``RAY_ADDRESS``, else it starts
Ray on this machine) and starts one actor per node, each running a sandbox of that node's CPU count
built inside the actor (a running sandbox holds processes and pipes, so it cannot be shipped).
``run_batch`` cuts the jobs into chunks, keeps a couple of chunks in flight per actor, and puts the
reports back in order.

Failures: when an actor dies (its process was killed, its node went away, or a chunk overran its
deadline and was killed here), every chunk it held runs again on a fresh actor. A job is never run by
two actors at once and each report is taken once, so each verdict arrives exactly once. Jobs that were
in two dead chunks run alone, one per actor, so the job that kills its actor is found; after
``max_job_attempts`` deaths it is reported as ``CRASHED`` (error type ``SandboxActorDied``) rather than
retried forever. Retries are ours, not Ray's (``max_restarts=0``): Ray's own task retries would re-run
such a job without end (``max_task_retries=-1``) and ``ActorPool`` does not route around a dead actor.

Example:
    >>> from codegym.sandbox import make_sandbox, CallTest
    >>> with make_sandbox("ray", workers=1) as box:  # doctest: +SKIP
    ...     box.run("def neg(x):\\n    return -x", [CallTest("neg", (3,), expected=-3)]).passed
    1
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from codegym.errors import UserError
from codegym.sandbox.base import HOST_SLACK_S, Sandbox, SandboxError, SandboxUnavailable, WorkerChannel
from codegym.sandbox.cases import Test
from codegym.sandbox.node_sandbox import NODE_BACKENDS
from codegym.sandbox.ray_connection import import_ray, join_ray, leave_ray
from codegym.sandbox.report import ExecutionReport, TestResult, TestStatus

logger = logging.getLogger("codegym.sandbox")

INNER_BACKENDS = NODE_BACKENDS
STARTUP_TIMEOUT_S = 120.0
IN_FLIGHT_PER_ACTOR = 2  # one chunk running, one queued: the actor's workers never wait for the network
MAX_AUTO_CHUNK = 32


@dataclasses.dataclass(frozen=True)
class ActorInfo:
    """One sandbox actor.

    Attributes:
        node_id: the Ray node it runs on (hex).
        pid: its process id on that node.
        workers: how many jobs its sandbox runs at once.
        backend: the sandbox it owns ("local" or "docker").
        isolation: what isolation that sandbox's workers applied.
    """

    node_id: str
    pid: int
    workers: int
    backend: str
    isolation: tuple[str, ...]


class SandboxActor:
    """The code inside each Ray actor: a sandbox built on the actor's node, and calls into it."""

    def __init__(self, backend: str, workers: int, options: dict[str, Any]) -> None:
        from codegym.sandbox.node_sandbox import make_node_sandbox

        self.sandbox = make_node_sandbox(backend, workers=workers, **options)

    def info(self) -> dict[str, Any]:
        import ray

        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "workers": self.sandbox.workers,
            "backend": self.sandbox.name,
            "isolation": tuple(self.sandbox.isolation),
        }

    def run_batch(
        self, jobs: list[tuple[str, tuple[Test, ...]]], timeout_s: float, memory_mb: int
    ) -> list[ExecutionReport]:
        return self.sandbox.run_batch(jobs, timeout_s=timeout_s, memory_mb=memory_mb)

    def close(self) -> None:
        self.sandbox.close()


class _Slot:
    """An actor and what it is doing; replaced in place when the actor dies."""

    def __init__(self, node_id: str, workers: int) -> None:
        self.node_id = node_id
        self.workers = workers
        self.actor: Any = None
        self.info: ActorInfo | None = None
        self.busy = 0
        self.exclusive = False  # running a suspect job alone


@dataclasses.dataclass
class _Chunk:
    indices: list[int]
    suspect: bool = False


class RaySandbox(Sandbox):
    """Sandboxes on a Ray cluster: one actor per node (by default), each owning a local or Docker sandbox.

    Args:
        workers: jobs each actor's sandbox runs at once (default: the CPUs of the actor's node).
        address: the Ray cluster to join ("auto", "ray://host:10001", "host:6379"); default
            ``RAY_ADDRESS``, else Ray is started on this machine. Ignored when Ray is already initialised.
        actors: how many actors (default: one per node that has CPUs), spread evenly over the nodes.
        backend: the sandbox each actor owns: "local", "docker" or "auto" (default).
        chunk_size: jobs per remote call (default: about four chunks per actor per batch, at most 32).
            One program per call costs a round trip each (0.77x of the direct pool's speed on the same
            cores, benchmarks/perf/ray_throughput.py); chunks of ten match it (1.01x).
        max_job_attempts: a job whose actor died under it this many times is reported as CRASHED.
        cpus_per_actor: Ray CPUs each actor reserves (default 0: sandbox actors run beside rollout
            workers; reserve them on a cluster that also schedules other CPU-heavy work).
        **sandbox_options: passed to each actor's sandbox (``image``, ``report_bytes``, ...).

    Raises:
        SandboxUnavailable: Ray is not installed, or the cluster cannot be reached.
        SandboxError: an actor could not start its sandbox (the message carries the actor's error).
    """

    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        actors: int | None = None,
        backend: str = "auto",
        chunk_size: int | None = None,
        max_job_attempts: int = 3,
        cpus_per_actor: float = 0.0,
        **sandbox_options: Any,
    ) -> None:
        # Sandbox.__init__ starts local worker channels; this backend has actors instead.
        if backend not in INNER_BACKENDS:
            raise UserError(
                f"backend must be one of {', '.join(INNER_BACKENDS)} (the sandbox each actor owns), got {backend!r}"
            )
        for label, value in (("workers", workers), ("actors", actors), ("chunk_size", chunk_size)):
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise UserError(f"{label} must be an int >= 1 or None (automatic), got {value!r}")
        if not (isinstance(max_job_attempts, int) and max_job_attempts >= 1):
            raise UserError(f"max_job_attempts must be an int >= 1, got {max_job_attempts!r}")
        if not (isinstance(cpus_per_actor, int | float) and cpus_per_actor >= 0):
            raise UserError(f"cpus_per_actor must be a number >= 0, got {cpus_per_actor!r}")
        self.backend = backend
        self.chunk_size = chunk_size
        self.max_job_attempts = max_job_attempts
        self.cpus_per_actor = float(cpus_per_actor)
        self.sandbox_options = dict(sandbox_options)
        self.report_bytes = sandbox_options.get("report_bytes", 16_384)
        self.max_output_bytes = sandbox_options.get("max_output_bytes", 1 << 20)
        self._lock = threading.Lock()
        self._closed = False
        self._slots: list[_Slot] = []
        self._owns_ray = False
        self.restarts = 0  # actors replaced after a death, over this sandbox's life
        self._ray = import_ray()
        self._owns_ray = join_ray(address)
        try:
            self._slots = self._plan(actors, workers)
            for slot in self._slots:
                slot.actor = self._spawn(slot)
            for slot in self._slots:
                slot.info = self._await_info(slot.actor)
        except BaseException:
            self.close()
            raise
        self.workers = sum(slot.workers for slot in self._slots)

    # -- set-up --------------------------------------------------------------------------------------

    def _plan(self, actors: int | None, workers: int | None) -> list[_Slot]:
        nodes = [
            (node["NodeID"], int(node["Resources"].get("CPU", 0)))
            for node in self._ray.nodes()
            if node.get("Alive") and node["Resources"].get("CPU", 0) >= 1
        ]
        if not nodes:
            raise SandboxUnavailable(
                "the Ray cluster has no alive node with a CPU; start one with `ray start --address=...`"
            )
        count = actors or len(nodes)
        return [
            _Slot(node_id, workers or max(1, cpus))
            for node_id, cpus in (nodes[i % len(nodes)] for i in range(count))
        ]

    def _spawn(self, slot: _Slot) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote_class = self._ray.remote(SandboxActor)
        # The actor goes to its home node while that node lives (hard: a soft preference was seen to
        # place replacements elsewhere, leaving a node without an actor), and anywhere once it is gone.
        home_alive = any(node["NodeID"] == slot.node_id and node.get("Alive") for node in self._ray.nodes())
        return remote_class.options(
            num_cpus=self.cpus_per_actor,
            max_concurrency=IN_FLIGHT_PER_ACTOR,
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(slot.node_id, soft=not home_alive),
        ).remote(self.backend, slot.workers, self.sandbox_options)

    def _await_info(self, actor: Any) -> ActorInfo:
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            info = self._ray.get(actor.info.remote(), timeout=STARTUP_TIMEOUT_S)
        except GetTimeoutError:
            self._ray.kill(actor)
            raise SandboxError(
                f"a Ray sandbox actor did not start within {STARTUP_TIMEOUT_S:.0f} s: the cluster may lack "
                "resources (lower cpus_per_actor) or a node cannot start its sandbox"
            ) from None
        except RayActorError as exc:
            raise SandboxError(
                f"a Ray sandbox actor could not start its {self.backend} sandbox: {exc}"
            ) from None
        return ActorInfo(**info)

    # -- public API ----------------------------------------------------------------------------------

    @property
    def isolation(self) -> list[str]:
        """What isolation the first actor's sandbox workers applied."""
        with self._lock:
            infos = [slot.info for slot in self._slots if slot.info is not None]
        return list(infos[0].isolation) if infos else []

    def actor_infos(self) -> list[ActorInfo]:
        """The actors now in the pool: node, pid, workers and the sandbox each owns."""
        with self._lock:
            return [slot.info for slot in self._slots if slot.info is not None]

    def run_batch(
        self,
        jobs: Sequence[tuple[str, Sequence[Test]]],
        *,
        timeout_s: float = 3.0,
        memory_mb: int = 512,
    ) -> list[ExecutionReport]:
        """Run many ``(program, tests)`` pairs over the actors in chunks; reports come back in order."""
        if self._closed:
            raise SandboxError("this sandbox is closed; create a new one with make_sandbox('ray')")
        checked = self._check_batch(jobs, timeout_s, memory_mb)
        if not checked:
            return []
        return _Batch(self, checked, float(timeout_s), memory_mb).run()

    def close(self) -> None:
        """Close every actor's sandbox, end the actors, and leave Ray if this sandbox joined it. Safe twice."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            actors = [slot.actor for slot in self._slots if slot.actor is not None]
            self._slots = []
        if actors:
            closing = [actor.close.remote() for actor in actors]
            # A dead or hung actor must not stop the others from closing; ray.kill ends it regardless.
            self._ray.wait(closing, num_returns=len(closing), timeout=30)
            for actor in actors:
                self._ray.kill(actor)
        if self._owns_ray:
            leave_ray()

    def __repr__(self) -> str:
        nodes = len({info.node_id for info in self.actor_infos()})
        return f"RaySandbox(actors={len(self._slots)}, nodes={nodes}, workers={self.workers}, backend={self.backend!r})"

    def _start_worker(self, slot: int | None) -> WorkerChannel:
        raise NotImplementedError("RaySandbox has actors, not worker channels")

    # -- what a batch needs from the pool --------------------------------------------------------------

    def chunk_size_for(self, jobs: int) -> int:
        """How many programs go in one remote call for a batch of ``jobs``."""
        if self.chunk_size:
            return self.chunk_size
        actors = max(1, len(self._slots))
        return max(1, min(MAX_AUTO_CHUNK, math.ceil(jobs / (4 * actors))))

    def _take_slot(self, suspect: bool) -> _Slot | None:
        """The least busy actor that can take a chunk now (a suspect chunk needs an idle one), or None."""
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox was closed during the run")
            if not self._slots:
                raise SandboxError("every Ray sandbox actor died and none could be restarted")
            free = [
                s
                for s in self._slots
                if s.actor is not None and not s.exclusive and s.busy < IN_FLIGHT_PER_ACTOR
            ]
            if suspect:
                free = [s for s in free if s.busy == 0]
            if not free:  # all busy, or the only idle ones are being replaced
                return None
            slot = min(free, key=lambda s: s.busy)
            slot.busy += 1
            slot.exclusive = suspect
            return slot

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.busy -= 1
            slot.exclusive = False

    def _replace(self, slot: _Slot, dead_actor: Any) -> None:
        """Start a fresh actor for ``slot`` unless another batch already did (or the sandbox closed)."""
        with self._lock:
            if slot.actor is not dead_actor or self._closed:
                return
            slot.actor, slot.info = None, None
        self._ray.kill(dead_actor)  # it may be hung rather than dead
        try:
            actor = self._spawn(slot)
            info = self._await_info(actor)
        except SandboxError as exc:
            logger.error("ray sandbox: could not replace a dead actor, continuing without it: %s", exc)
            with self._lock:
                if slot in self._slots:
                    self._slots.remove(slot)
            return
        with self._lock:
            slot.actor, slot.info = actor, info  # slot.node_id stays the home node the next one aims for
            self.restarts += 1
        logger.warning(
            "ray sandbox: an actor died; replaced it with pid %d on node %s", info.pid, info.node_id[:8]
        )


class _Batch:
    """One ``run_batch`` call: chunks out, reports in, re-runs after deaths."""

    def __init__(
        self, pool: RaySandbox, jobs: list[tuple[str, tuple[Test, ...]]], timeout_s: float, memory_mb: int
    ):
        self.pool, self.jobs, self.timeout_s, self.memory_mb = pool, jobs, timeout_s, memory_mb
        self.reports: list[ExecutionReport | None] = [None] * len(jobs)
        self.deaths = [0] * len(jobs)
        size = pool.chunk_size_for(len(jobs))
        self.pending = collections.deque(
            _Chunk(list(range(i, min(i + size, len(jobs))))) for i in range(0, len(jobs), size)
        )
        self.in_flight: dict[Any, tuple[_Slot, Any, _Chunk, float]] = {}

    def run(self) -> list[ExecutionReport]:
        ray = self.pool._ray
        try:
            while self.pending or self.in_flight:
                self._submit()
                if not self.in_flight:  # every actor is busy with other batches' chunks
                    time.sleep(0.01)
                    continue
                ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=1.0)
                for ref in ready:
                    self._collect(ref)
                self._kill_overdue()
        finally:
            for slot, *_ in self.in_flight.values():
                self.pool._release(slot)
        missing = [index for index, report in enumerate(self.reports) if report is None]
        if missing:
            raise SandboxError(f"the Ray sandbox lost the reports of jobs {missing[:10]} (a CodeGym bug)")
        return list(self.reports)

    def _submit(self) -> None:
        while self.pending:
            chunk = self.pending[0]
            slot = self.pool._take_slot(chunk.suspect)
            if slot is None:
                return
            self.pending.popleft()
            actor = slot.actor
            payload = [self.jobs[i] for i in chunk.indices]
            ref = actor.run_batch.remote(payload, self.timeout_s, self.memory_mb)
            # The actor's own sandbox catches a hung worker; this catches a hung actor.
            budget = sum(self.timeout_s * (2 * len(tests) + 2) for _, tests in payload) + 2 * HOST_SLACK_S
            self.in_flight[ref] = (slot, actor, chunk, time.monotonic() + budget)

    def _collect(self, ref: Any) -> None:
        from ray.exceptions import RayActorError

        slot, actor, chunk, _ = self.in_flight.pop(ref)
        self.pool._release(slot)
        try:
            reports = self.pool._ray.get(ref)
        except RayActorError as exc:
            self._after_death(slot, actor, chunk, exc)
            return
        except Exception as exc:  # the actor's sandbox raised: a broken sandbox, not a verdict
            raise SandboxError(f"a Ray sandbox actor failed: {exc}") from exc
        for index, report in zip(
            chunk.indices, _checked_reports(reports, [self.jobs[i] for i in chunk.indices]), strict=True
        ):
            self.reports[index] = dataclasses.replace(report, backend=self.pool.name)

    def _after_death(self, slot: _Slot, actor: Any, chunk: _Chunk, exc: Exception) -> None:
        self.pool._replace(slot, actor)
        retry, alone = [], []
        for index in chunk.indices:
            self.deaths[index] += 1
            if self.deaths[index] >= self.pool.max_job_attempts:
                self.reports[index] = _died_report(self.jobs[index][1], self.deaths[index], exc)
            elif self.deaths[index] >= 2:
                alone.append(_Chunk([index], suspect=True))
            else:
                retry.append(index)
        if retry:
            self.pending.appendleft(_Chunk(retry))
        self.pending.extendleft(reversed(alone))

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for _slot, actor, _chunk, deadline in list(self.in_flight.values()):
            if now > deadline:
                logger.warning("ray sandbox: an actor overran its chunk's deadline; killing it")
                self.pool._ray.kill(actor)  # its chunks come back as deaths and run again


def _checked_reports(reports: Any, jobs: list[tuple[str, tuple[Test, ...]]]) -> list[ExecutionReport]:
    """An actor's reply, checked: one ExecutionReport per job with one result per test."""
    if not isinstance(reports, list) or len(reports) != len(jobs):
        raise SandboxError(f"a Ray sandbox actor answered {len(jobs)} jobs with {type(reports).__name__}")
    for report, (_, tests) in zip(reports, jobs, strict=True):
        if not (
            isinstance(report, ExecutionReport)
            and len(report.tests) == len(tests)
            and all(isinstance(r, TestResult) and isinstance(r.status, TestStatus) for r in report.tests)
        ):
            raise SandboxError("a Ray sandbox actor returned a malformed report")
    return reports


def _died_report(tests: tuple[Test, ...], deaths: int, exc: Exception) -> ExecutionReport:
    why = (
        f"the sandbox actor running this program died {deaths} times (last: {type(exc).__name__}); "
        "it was not retried further"
    )
    result = TestResult(TestStatus.CRASHED, "SandboxActorDied", why)
    return ExecutionReport(compiled=True, tests=(result,) * len(tests), backend=RaySandbox.name)
