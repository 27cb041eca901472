"""Work spread over Ray workers: :func:`map_chunks`, the machinery under every distributed run.

:mod:`codegym.play` plays tasks (solving, search, the loop's stages, rollouts) through it. Each Ray worker sets itself up once (a policy replica, a sandbox on its node, an env) and then plays
chunks of tasks. Chunks go out to whichever worker is free, results stream back as chunks finish (so
progress bars move), and a chunk whose worker died runs again on a fresh worker. Results come back in
chunk order, whatever order they finished in.

Same seeds, same results: a chunk is played exactly as one machine plays that group of tasks, so the
result never depends on how many workers there are, which worker took a chunk, or whether one died.
Against a single-process run it is identical when the single-process unit of work is the same group:
``codegym solve`` and ``codegym search`` already play ``--batch-size`` tasks at a time, and greedy
``codegym eval`` (``--temperature 0``) does not depend on grouping. A sampled ``eval`` draws row seeds by
position in the policy's batch, so its episodes depend on ``tasks_per_chunk`` (fixed for a fixed value,
but not those of the one-batch single-process run).

Example:
    >>> from codegym.distributed import map_chunks
    >>> map_chunks(lambda: 10, lambda state, chunk: [state + x for x in chunk], [[1, 2], [3]], address="local")  # doctest: +SKIP
    [[11, 12], [13]]
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from codegym.errors import UserError

logger = logging.getLogger("codegym.distributed")

Item = TypeVar("Item")
Result = TypeVar("Result")

STARTUP_TIMEOUT_S = 300.0


class WorkerFailed(RuntimeError):
    """A chunk's worker died ``max_attempts`` times (the chunk is not retried further), or a worker's setup
    raised (the message carries its traceback)."""


class ChunkWorker:
    """The code inside each Ray worker: ``setup()`` once, then ``work(state, chunk)`` per chunk."""

    def __init__(self, setup: Callable[[], Any]) -> None:
        self.state = setup()

    def pid(self) -> int:
        import os

        return os.getpid()

    def run(self, work: Callable[[Any, list], list], chunk: list) -> list:
        return work(self.state, chunk)


def map_chunks(
    setup: Callable[[], Any],
    work: Callable[[Any, list[Item]], list[Result]],
    chunks: Sequence[list[Item]],
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    max_attempts: int = 3,
    on_chunk: Callable[[int, list[Result]], None] | None = None,
) -> list[list[Result]]:
    """``[work(state, chunk) for chunk in chunks]``, the chunks spread over Ray workers.

    Args:
        setup: builds a worker's state once (load the policy, start a sandbox); must pickle, so a
            module-level function or a ``functools.partial`` of one.
        work: plays one chunk with that state; must pickle likewise.
        chunks: the units of work; each runs on one worker, whole.
        address: the Ray cluster ("auto", "local", "host:port", "ray://..."); see
            :func:`codegym.sandbox.ray_connection.join_ray`.
        workers: how many workers (default: the cluster's CPUs divided by ``cpus_per_worker``, at most
            one per chunk).
        cpus_per_worker: Ray CPUs each worker reserves.
        max_attempts: a chunk whose worker died this many times raises :class:`WorkerFailed`.
        on_chunk: called as ``on_chunk(index, results)`` in the order chunks finish (progress bars).

    Returns:
        One result list per chunk, in the order of ``chunks``.

    Raises:
        WorkerFailed: a chunk kept killing its worker, or ``setup`` raised on a worker.
        Exception: whatever ``setup`` or ``work`` raised, re-raised here.
    """
    from codegym.sandbox.ray_connection import join_ray, leave_ray

    if not (isinstance(max_attempts, int) and max_attempts >= 1):
        raise UserError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    if workers is not None and not (isinstance(workers, int) and workers >= 1):
        raise UserError(f"workers must be an int >= 1 or None (one per CPU of the cluster), got {workers!r}")
    if not chunks:
        return []
    owns_ray = join_ray(address)
    try:
        return _ChunkRun(setup, work, list(chunks), workers, cpus_per_worker, max_attempts, on_chunk).run()
    finally:
        if owns_ray:
            leave_ray()


class _ChunkRun:
    def __init__(self, setup, work, chunks, workers, cpus_per_worker, max_attempts, on_chunk) -> None:
        import ray

        self.ray = ray
        self.setup, self.work, self.chunks = setup, work, chunks
        self.cpus_per_worker, self.max_attempts, self.on_chunk = cpus_per_worker, max_attempts, on_chunk
        cpus = ray.cluster_resources().get("CPU", 0)
        default = max(1, int(cpus // cpus_per_worker)) if cpus_per_worker > 0 else max(1, int(cpus))
        self.size = min(workers or default, len(chunks))
        self.results: list[list | None] = [None] * len(chunks)
        self.attempts = [0] * len(chunks)
        self.pending = collections.deque(range(len(chunks)))
        self.idle: list[Any] = []
        self.in_flight: dict[Any, tuple[Any, int]] = {}
        self.restarts = 0

    def _spawn(self) -> Any:
        remote_class = self.ray.remote(ChunkWorker)
        return remote_class.options(num_cpus=self.cpus_per_worker, max_restarts=0, max_task_retries=0).remote(
            self.setup
        )

    def run(self) -> list[list]:
        self.idle = [self._spawn() for _ in range(self.size)]
        try:
            # Workers that cannot even be placed (no free CPUs) would otherwise be waited for forever.
            started, _ = self.ray.wait(
                [worker.pid.remote() for worker in self.idle], timeout=STARTUP_TIMEOUT_S
            )
            if not started:
                raise WorkerFailed(
                    f"no Ray worker started within {STARTUP_TIMEOUT_S:.0f} s: the cluster may have no "
                    f"{self.cpus_per_worker:g} free CPUs per worker (see `ray status`), or setup is stuck"
                )
            while self.pending or self.in_flight:
                while self.pending and self.idle:
                    index = self.pending.popleft()
                    worker = self.idle.pop()
                    self.in_flight[worker.run.remote(self.work, self.chunks[index])] = (worker, index)
                ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=STARTUP_TIMEOUT_S)
                if not ready:
                    logger.warning("no chunk finished in %.0f s; still waiting", STARTUP_TIMEOUT_S)
                for ref in ready:
                    self._collect(ref)
        finally:
            for worker in self.idle + [worker for worker, _ in self.in_flight.values()]:
                self.ray.kill(worker)
        return list(self.results)  # type: ignore[arg-type]

    def _collect(self, ref: Any) -> None:
        from ray.exceptions import RayActorError, RayTaskError

        worker, index = self.in_flight.pop(ref)
        try:
            result = self.ray.get(ref)
        except RayActorError as exc:
            if exc.actor_init_failed:  # setup raised: it would on every worker, so do not retry
                raise WorkerFailed(f"a Ray worker's setup failed: {exc}") from None
            self.attempts[index] += 1
            if self.attempts[index] >= self.max_attempts:
                raise WorkerFailed(
                    f"chunk {index} ({len(self.chunks[index])} items) lost its Ray worker "
                    f"{self.attempts[index]} times (last: {exc}); check the workers' logs "
                    "(`ray logs`), e.g. for running out of memory"
                ) from None
            logger.warning(
                "a Ray worker died (%s); chunk %d runs again on a fresh worker", type(exc).__name__, index
            )
            self.ray.kill(worker)
            self.restarts += 1
            self.idle.append(self._spawn())
            self.pending.appendleft(index)
            return
        except RayTaskError as exc:  # setup or work raised: the same error on one machine
            raise exc.as_instanceof_cause() from None
        self.idle.append(worker)
        self.results[index] = result
        if self.on_chunk is not None:
            self.on_chunk(index, result)
