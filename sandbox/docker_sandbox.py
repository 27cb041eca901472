"""The Docker backend: a warm pool of locked-down, long-lived containers, each a fork server.

Each container runs ``runner.py`` as its PID 1 (so a candidate cannot kill it: PID 1 of a namespace
ignores signals it has no handler for), with no network, a read-only root, a tmpfs work dir that only
the worker writes to, no shared memory, memory, swap, pid and CPU limits, no-new-privileges, and every
capability dropped but the few the worker needs to run each job's candidate and judge under two
unprivileged uids of their own. A job costs
a fork inside a warm container, not a container start. Containers are labelled, started with
``--rm`` and ``stdin_once`` (if this process dies, their stdin closes and they remove themselves), and
removed on close and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import socket
import struct
import time
import weakref

from codegym.sandbox.base import (
    MAX_REPLY_BYTES,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    WorkerChannel,
    WorkerGone,
    worker_command,
)
from codegym.sandbox.docker_client import connect
from codegym.sandbox.framing import LineReader
from codegym.sandbox.image import DEFAULT_IMAGE, build_instructions
from codegym.sandbox.report import TestStatus

logger = logging.getLogger("codegym.sandbox")

LABEL = "codegym.sandbox"
WORKROOT = "/sandbox"
WORKER_CAPABILITIES = ("SETUID", "SETGID", "CHOWN", "KILL", "DAC_OVERRIDE", "FOWNER")
OWNER_LABEL = "codegym.sandbox.owner"
STARTUP_TIMEOUT_S = 60.0
_live_sandboxes: weakref.WeakSet[DockerSandbox] = weakref.WeakSet()


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _AttachDemux:
    """Splits Docker's multiplexed attach stream (8-byte headers) into stdout and stderr bytes."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.raw = bytearray()
        self.stdout = LineReader(sock.fileno(), max_line=MAX_REPLY_BYTES)  # fed by us, never reads the fd
        self.stderr = bytearray()

    def pump(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.sock], [], [], remaining)[0]:
            raise TimeoutError
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            self.stdout.eof = True
            return
        self.raw += chunk
        while len(self.raw) >= 8:
            stream, size = self.raw[0], struct.unpack(">I", self.raw[4:8])[0]
            if len(self.raw) < 8 + size:
                break
            payload = bytes(self.raw[8 : 8 + size])
            del self.raw[: 8 + size]
            if stream == 1:
                self.stdout.append(payload)
            else:
                self.stderr += payload
                del self.stderr[:-65536]


class DockerWorkerChannel(WorkerChannel):
    def __init__(self, sandbox: DockerSandbox, slot: int | None):
        self.client = sandbox.client
        api = self.client.api
        host_config = api.create_host_config(
            auto_remove=True,
            network_mode="none",
            read_only=True,
            # Owned by root, 0755: only the worker creates folders there (one per job, chowned to the
            # candidate), so no job leaves files for a later one. Not on /tmp: Docker gives a tmpfs on a
            # folder of the image that folder's mode (1777), and the read-only /tmp is then unwritable.
            tmpfs={WORKROOT: f"rw,nosuid,nodev,size={sandbox.tmpfs_mb}m,mode=0755"},
            ipc_mode="none",  # no /dev/shm shared between jobs
            mem_limit=f"{sandbox.container_memory_mb}m",
            memswap_limit=f"{sandbox.container_memory_mb}m",
            pids_limit=sandbox.pids_limit,
            nano_cpus=int(sandbox.cpus * 1e9),
            cap_drop=["ALL"],
            # The worker runs as root with only these, to run candidates and judges under two uids of their
            # own (a candidate cannot signal its judge, and a job's processes die together by uid);
            # setresuid to those uids drops every capability for the job's processes.
            cap_add=list(WORKER_CAPABILITIES),
            security_opt=["no-new-privileges"],
        )
        # The low-level API with detach=False sets StdinOnce (the model API cannot): when our attach
        # socket closes, for whatever reason, the runner sees end of input, exits, and --rm removes it.
        created = api.create_container(
            sandbox.image,
            command=worker_command("python3", "container", slot, workroot=WORKROOT),
            stdin_open=True,
            detach=False,
            tty=False,
            user="0:0",
            working_dir=WORKROOT,
            environment={"PYTHONHASHSEED": "0", "LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"},
            labels={LABEL: "1", OWNER_LABEL: _owner_id()},
            host_config=host_config,
        )
        self.container = self.client.containers.get(created["Id"])
        try:
            socket_io = self.client.api.attach_socket(
                self.container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            # docker-py returns a SocketIO wrapper, and its HTTP response keeps buffered readers over the
            # same socket that nothing ever closes, so the descriptor would outlive close(). Take the
            # descriptor over: the old socket object is detached and a socket of our own owns it.
            raw = getattr(socket_io, "_sock", socket_io)
            self.sock: socket.socket = socket.socket(fileno=raw.detach())
            self._demux = _AttachDemux(self.sock)
            self.container.start()
            self.handshake(time.monotonic() + STARTUP_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise WorkerGone(f"could not send to the container: {exc}") from None

    def read_line(self, deadline: float) -> bytes:
        demux = self._demux
        while True:
            line = demux.stdout.take_line()
            if line is not None:
                return line
            if demux.stdout.eof:
                tail = demux.stderr.decode("utf-8", errors="replace")[-500:]
                raise WorkerGone(f"the container's runner exited{': ' + tail if tail else ''}")
            try:
                demux.pump(deadline)
            except TimeoutError:
                raise WorkerGone("the container did not answer in time") from None
            except OSError as exc:
                raise WorkerGone(f"lost the container's stream: {exc}") from None
            except ValueError as exc:
                raise WorkerGone(f"the container sent an oversized reply ({exc})") from None

    def has_pending(self) -> bool:
        return bool(self._demux.stdout.buffer)

    def death_status(self) -> TestStatus:
        try:
            state = self.client.api.inspect_container(self.container.id)["State"]
        except Exception:  # already removed (--rm): nothing more to learn
            return TestStatus.CRASHED
        return TestStatus.MEMORY if state.get("OOMKilled") else TestStatus.CRASHED

    def close(self) -> None:
        import docker.errors

        sock = getattr(self, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):  # --rm got there first
                raise


class DockerSandbox(Sandbox):
    """A pool of warm, locked-down containers.

    Args:
        workers: how many containers, and so how many jobs at once (default: the number of CPU cores).
        image: the sandbox image; build it with ``codegym sandbox build-image`` (``--offline`` without a
            registry).
        container_memory_mb: memory and memory+swap limit of each container.
        cpus: CPU quota of each container.
        pids_limit: processes per container.
        tmpfs_mb: size of each container's work folder (a tmpfs holding the jobs' work dirs).
        report_bytes, max_output_bytes: as for :class:`~codegym.sandbox.local_sandbox.LocalSandbox`.
        pin_cpus: as for :class:`~codegym.sandbox.local_sandbox.LocalSandbox`, but off by default: under
            each container's CPU quota, pinned workers ran HumanEval at 210 programs/s against 300 unpinned.

    Raises:
        SandboxUnavailable: the daemon cannot be reached or the image is missing (the message says how
            to fix it).
    """

    name = "docker"

    def __init__(
        self,
        workers: int | None = None,
        *,
        image: str = DEFAULT_IMAGE,
        container_memory_mb: int = 1024,
        cpus: float = 1.0,
        pids_limit: int = 256,
        tmpfs_mb: int = 256,
        **kwargs,
    ):
        self.client = connect()
        try:
            self.client.images.get(image)
        except Exception as exc:
            self.client.close()
            raise SandboxUnavailable(
                f"the sandbox image {image!r} is not there ({type(exc).__name__}). {build_instructions(image)}"
            ) from None
        self.image = image
        self.container_memory_mb = container_memory_mb
        self.cpus = cpus
        self.pids_limit = pids_limit
        self.tmpfs_mb = tmpfs_mb
        remove_orphans(self.client)
        kwargs.setdefault("pin_cpus", False)
        super().__init__(workers or os.cpu_count() or 1, **kwargs)
        _live_sandboxes.add(self)

    def close(self) -> None:
        """Stop every container, then release the client's connections to the daemon. Safe to call twice."""
        super().close()
        client = getattr(self, "client", None)
        if client is not None:
            client.close()

    def _start_worker(self, slot: int | None) -> WorkerChannel:
        try:
            return DockerWorkerChannel(self, slot)
        except WorkerGone as exc:
            raise SandboxError(f"a sandbox container failed to start: {exc}") from None


def remove_orphans(client) -> int:
    """Remove sandbox containers left by processes on this host that no longer exist."""
    removed = 0
    host = socket.gethostname()
    # ignore_removed: another process's sandbox may remove one of these between the listing and its
    # inspection (two Ray actors starting Docker sandboxes at once did); that is not an error here.
    for container in client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True):
        owner_host, _, owner_pid = container.labels.get(OWNER_LABEL, ":").partition(":")
        if owner_host != host or not owner_pid.isdigit() or _pid_alive(int(owner_pid)):
            continue
        try:
            container.remove(force=True)
            removed += 1
        except Exception as exc:
            logger.warning("could not remove orphaned sandbox container %s: %s", container.short_id, exc)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@atexit.register
def _close_all() -> None:
    for sandbox in list(_live_sandboxes):
        sandbox.close()
