"""Worker isolation and process hygiene, set up once per worker so that each job only pays for a fork.

Local mode as root: new mount, network and PID namespaces, the worker being the first process of its
PID namespace (so every process it or a job started dies with it), a minimal root filesystem
(``filesystem``: system folders and the standard library, read-only; no installed packages, no home
folders, no project checkout; a /proc of its own), no network. Container mode: Docker isolated the
container and the worker is its PID 1. In both, candidates and judges run under two unprivileged uids
that the host chose for this worker alone, so a job's processes can all be killed at once by uid, and a
candidate can neither signal its judge nor read its judge's files. As a normal user: a user namespace
where the kernel allows it, else nothing but rlimits, with a warning. The worker is non-dumpable and a
child subreaper in every mode. Standard library only: this module is shipped into the sandbox with the
runner.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
import tempfile
import time

from codegym.sandbox.filesystem import enter_minimal_root, libc_call, mount

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


class Isolation:
    """What this worker managed to set up, and the uids its children will run as."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.warnings: list[str] = []
        self.child_uid: int | None = None  # the candidate's uid (None: keep the worker's)
        self.judge_uid: int | None = None  # the judge's, distinct so that a candidate cannot signal it
        self.workroot = tempfile.gettempdir()
        self.oom_counters: list[int] = []  # descriptors of the memory cgroup's counters, opened early
        self.dies_with_parent = False  # PR_SET_PDEATHSIG is armed, and must be again after a uid change

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _become_namespace_init() -> None:
    """Fork after ``unshare(CLONE_NEWPID)``: the child, the first process of the new PID namespace,
    returns and goes on as the worker; this process only waits for it and exits with its status.

    When the first process of a PID namespace ends, the kernel kills every other process in it at once,
    so nothing a job started (a forking native binary included) can outlive its worker. Its parent here
    is what the host started: killing that one's process group kills the child too.
    """
    pid = os.fork()
    if pid == 0:
        # (getppid() is 0 here, the parent being outside the namespace: a parent killed before this line
        # is noticed by the host instead, whose end of our stdin then closes and ends us.)
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        return
    os.closerange(0, 1 << 16)  # the child alone talks to the host; its end of file must be the host's
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 1)


def setup_isolation(config: dict) -> Isolation:
    """Isolate this worker once.

    ``config["isolation"]`` is "local" (namespaces, a minimal root, uid drops) or "container" (Docker
    isolated the container; the worker only drops uids); ``config["uids"]`` is the pair of unprivileged
    uids (candidate, judge) the host chose for this worker, unique on the host.
    """
    iso = Isolation()
    mode = config["isolation"]
    # Non-dumpable: a same-uid child cannot open /proc/<worker>/fd or mem to reach the host channel.
    libc_call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)
    iso.oom_counters = _open_oom_counters()
    if os.geteuid() == 0 and config.get("uids"):
        iso.child_uid, iso.judge_uid = (int(uid) for uid in config["uids"])
    if mode == "container":
        iso.workroot = config.get("workroot") or iso.workroot
        iso.applied.append("container (network none, read-only root, limits set by the host)")
    elif os.geteuid() == 0:
        try:
            libc_call("unshare", CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID)
            _become_namespace_init()
            iso.dies_with_parent = True
            iso.applied.append("network namespace (no network)")
            iso.applied.append("PID namespace of its own (every process of the worker ends with it)")
            iso.applied.extend(enter_minimal_root())
            iso.workroot = "/tmp"
        except OSError as exc:
            if iso.applied:  # half built: the worker cannot tell what a candidate would see
                raise OSError(f"could not isolate the local worker: {exc}") from exc
            iso.warn(
                f"namespaces unavailable ({exc}): the host filesystem, its processes and the network stay "
                "reachable to candidates; use the docker sandbox for untrusted code"
            )
    else:
        _isolate_unprivileged(iso)
    # Orphans of a job are re-parented to us, so we can find and reap every one of them.
    libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if iso.child_uid is not None:
        iso.applied.append("unprivileged uids per worker (one for candidates, one for their judges)")
        iso.applied.append("a job's processes all end with it (SIGKILL to every process of its uid)")
    return iso


def _isolate_unprivileged(iso: Isolation) -> None:
    uid, gid = os.getuid(), os.getgid()
    try:
        libc_call("unshare", CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET)
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
        iso.applied.append("user and network namespace (no network)")
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        _remount_everything_read_only(iso)
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=512m,mode=1777")
        iso.workroot = "/tmp"
        iso.applied.append("read-only host filesystem (mount namespace), private tmpfs /tmp")
    except OSError as exc:
        iso.warn(
            f"user namespaces unavailable ({exc}); candidates run as your user with rlimits only: "
            "use the docker sandbox for untrusted code"
        )
    iso.warn(
        "not root: candidates keep your uid, can signal your processes, read what you can read and leave "
        "processes behind; use the docker sandbox, or run as root, for untrusted code"
    )


_MOUNT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": 0x8,
    "noatime": 0x400,
    "nodiratime": 0x800,
    "relatime": 1 << 21,
}


def _remount_everything_read_only(iso: Isolation) -> None:
    failed = []
    with open("/proc/self/mountinfo") as mountinfo:
        entries = [line.split() for line in mountinfo]
    for fields in entries:
        target = fields[4].encode().decode("unicode_escape")
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for option in fields[5].split(","):
            flags |= _MOUNT_FLAGS.get(option, 0)
        try:
            mount(None, target, None, flags)
        except OSError:
            failed.append(target)
    if "/" in failed:
        raise OSError("could not remount / read-only")
    if failed:
        iso.warn(f"left writable (remount refused): {', '.join(failed[:5])}")


# ---------------------------------------------------------------------------------------------------
# A job's processes (the candidate and its judge): descriptors, limits, uid.

SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
_STANDARD_FDS = ("stdin", "stdout", "stderr")


def pin_to_cpu(slot: int | None) -> None:
    """Pin this worker, and so every process of its jobs, to the ``slot``-th CPU it may use (modulo).

    A job's candidate and judge hand control to each other on every call: on one CPU a pipe round trip
    costs about 3 us of CPU, across two CPUs of a virtual machine about 75 us (the wake-up of the other
    CPU). Pinning by slot keeps each job on one CPU and spreads the pool's workers evenly.
    """
    if slot is None:
        return
    try:
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {allowed[slot % len(allowed)]})
    except (AttributeError, OSError):  # no affinity here: the scheduler decides
        pass


def _set_limit(which: int, value: int) -> None:
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))


def confine(ctx: dict) -> None:
    """Turn a freshly forked process into a confined one: its own session, only the descriptors named
    in ``ctx`` (``stdin``, ``stdout``, ``stderr`` become 0, 1, 2; ``requests``, ``replies`` and
    ``verdicts`` stay open as they are), the job's rlimits, ``ctx["uid"]`` when one is given, death with
    its worker, a clean environment and ``ctx["workdir"]`` as its directory. A limit given as None is
    left as it is. It ends non-dumpable, so a process of the same uid cannot read or write its memory or
    descriptors through /proc or ptrace.
    """
    os.setsid()
    for target, name in enumerate(_STANDARD_FDS):
        os.dup2(ctx[name], target)
    keep = sorted(ctx[name] for name in ("requests", "replies", "verdicts") if ctx.get(name) is not None)
    low = 3
    for fd in keep:
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)
    os.chdir(ctx["workdir"])
    limits = ctx["limits"]
    for which, key in (
        (resource.RLIMIT_AS, "memory_bytes"),
        (resource.RLIMIT_CPU, "cpu_s"),
        (resource.RLIMIT_FSIZE, "file_bytes"),
    ):
        if limits.get(key) is not None:
            _set_limit(which, limits[key])
    _set_limit(resource.RLIMIT_NOFILE, 256)
    _set_limit(resource.RLIMIT_CORE, 0)
    uid = ctx["uid"]
    if uid is not None:
        _set_limit(resource.RLIMIT_NPROC, limits["processes"])
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    libc_call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)  # a uid change resets it: set it last
    os.environ.clear()
    os.environ.update(SAFE_ENV, HOME=ctx["workdir"], TMPDIR=ctx["workdir"])
    sys.argv[:] = ["solution.py"]
    sys.setrecursionlimit(ctx["recursion_limit"])


# ---------------------------------------------------------------------------------------------------
# After a job: what it left behind.


_OOM_COUNTERS = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


def _open_oom_counters() -> list[int]:
    """Descriptors of the memory cgroup's OOM-kill counters (v2, v1), opened before the root changes."""
    descriptors = []
    for path in _OOM_COUNTERS:
        with contextlib.suppress(OSError):
            descriptors.append(os.open(path, os.O_RDONLY))
    return descriptors


def oom_kills(iso: Isolation) -> int | None:
    """The memory cgroup's OOM-kill count, or None outside a memory cgroup."""
    for fd in iso.oom_counters:
        try:
            text = os.pread(fd, 1 << 16, 0)
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition(b" ")
            if name == b"oom_kill":
                return int(value)
    return None


def _read_small(path: str) -> bytes:
    """A small /proc file, read raw: a Python file object costs four syscalls more, every job."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def children_of(pid: int) -> list[int]:
    """The live children of ``pid``'s main thread (one small /proc read; a scan of /proc where the
    kernel lacks the ``children`` file)."""
    try:
        return [int(child) for child in _read_small(f"/proc/{pid}/task/{pid}/children").split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = _read_small(f"/proc/{entry}/stat")
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields resume after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def kill_uid(uid: int, dies_with_parent: bool = False) -> None:
    """SIGKILL every process that runs as ``uid``, at once; the caller is root.

    With its real and effective uid set to ``uid`` for the call (the saved uid stays 0, to come back),
    ``kill(-1)`` reaches exactly the processes of that uid. The kernel signals them all under one lock
    that fork also takes, so a process cannot fork a child that escapes: a fork chain, native or not,
    ends here whatever it does. A uid change disarms PR_SET_PDEATHSIG: ``dies_with_parent`` arms it again.
    """
    os.setresuid(uid, uid, 0)
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:  # nothing was left
        pass
    finally:
        os.setresuid(0, 0, 0)
        if dies_with_parent:
            libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def end_job_processes(iso: Isolation, keep: int | None = None, patience_s: float = 10.0) -> int:
    """Kill and reap every process a job left (its candidate's uid, and any child of ours but ``keep``).

    Returns how many processes were reaped. Raises RuntimeError if some would not go within
    ``patience_s`` seconds (a process stuck in the kernel): the worker is then no longer clean.
    """
    if iso.child_uid is not None:
        kill_uid(iso.child_uid, iso.dies_with_parent)
    reaped = 0
    give_up = time.monotonic() + patience_s
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                reaped += 1
        except ChildProcessError:
            return reaped
        leftovers = [pid for pid in children_of(os.getpid()) if pid != keep]
        if not leftovers:
            return reaped
        if time.monotonic() > give_up:
            raise RuntimeError(f"{len(leftovers)} processes of a job would not end")
        for pid in leftovers:  # without a uid of its own (not root), one by one
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(OSError):
                    kill(pid, signal.SIGKILL)
        if iso.child_uid is not None:
            kill_uid(iso.child_uid, iso.dies_with_parent)
        time.sleep(0.001)
