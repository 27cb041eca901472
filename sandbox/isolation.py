"""Worker isolation and process hygiene, set up once per worker so that each job only pays for a fork.

Local mode as root: new mount and network namespaces (every host mount remounted read-only, a private
tmpfs on /tmp, no network), and a uid of the worker's own for its children. As a normal user: the
same through a user namespace where the kernel allows it, else nothing but rlimits, with a warning.
Container mode: Docker did the isolating. In every mode the worker is non-dumpable and a
child subreaper, so that whatever a job leaves behind is re-parented to it and killed.
Standard library only: this module is shipped into the sandbox with the runner.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys
import tempfile
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MNT_DETACH = 2
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
_MOUNT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}
_libc = ctypes.CDLL(None, use_errno=True)


def libc_call(name: str, *args) -> None:
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    def enc(s):
        return None if s is None else s.encode()

    libc_call("mount", enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))


def _reachable_by_others(path: str) -> bool:
    """True when a user that owns nothing and is in no group can list and read ``path``."""
    path = os.path.realpath(path)
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        ancestor = "/".join(parts[:depth]) or "/"
        try:
            mode = os.stat(ancestor).st_mode
        except OSError:
            return False
        if not mode & 0o001:
            return False
    return bool(os.stat(path).st_mode & 0o004)


class Isolation:
    """What this worker managed to set up, and the uid its children will run as."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.warnings: list[str] = []
        self.child_uid: int | None = None  # the candidate's uid (None: keep the worker's)
        self.judge_uid: int | None = None  # the judge's, distinct so that a candidate cannot signal it
        self.workroot = tempfile.gettempdir()

    def warn(self, message: str) -> None:
        self.warnings.append(message)


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
            _mount(None, target, None, flags)
        except OSError:
            failed.append(target)
    if "/" in failed:
        raise OSError("could not remount / read-only")
    if failed:
        iso.warn(f"left writable (remount refused): {', '.join(failed[:5])}")


def _setup_private_filesystem(iso: Isolation) -> None:
    # Private first: nothing below may propagate back to the host's mounts.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _remount_everything_read_only(iso)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=512m,mode=1777")
    iso.workroot = "/tmp"
    iso.applied.append("read-only host filesystem (mount namespace), private tmpfs /tmp")


def _first_closed_directory(path: str) -> str:
    """The outermost directory on ``path`` that a user in no group cannot enter or list."""
    parts = path.split("/")
    for depth in range(2, len(parts) + 1):
        ancestor = "/".join(parts[:depth])
        mode = os.stat(ancestor).st_mode
        if not mode & 0o001 or (ancestor == path and not mode & 0o004):
            return ancestor
    return path


def _expose_interpreter(iso: Isolation) -> None:
    """Make the interpreter's own directories readable to the sandbox user, without chmod on the host.

    Say Python lives under /root/.pyenv and /root is 0700: in this private mount namespace, /root
    becomes an empty read-only tmpfs holding only a bind of /root/.pyenv. The paths stay the same (so
    packages already imported keep working), and nothing else of /root is visible to candidates.
    """
    wanted = {
        os.path.realpath(entry)
        for entry in [*sys.path, sys.prefix, sys.base_prefix, sys.exec_prefix]
        if entry and os.path.isdir(entry)
    }
    stash_root = "/tmp/.codegym-stash"
    for round_ in range(8):
        blocked = sorted(path for path in wanted if not _reachable_by_others(path))
        if not blocked:
            return
        closed = _first_closed_directory(blocked[0])
        if closed in blocked:
            keep = sorted(os.listdir(closed))
        else:
            keep = sorted({p[len(closed) + 1 :].split("/")[0] for p in blocked if p.startswith(closed + "/")})
        stash = f"{stash_root}/{round_}"
        os.makedirs(stash, 0o755)
        for name in keep:
            _bind_point(os.path.join(closed, name), os.path.join(stash, name))
            _mount(os.path.join(closed, name), os.path.join(stash, name), None, MS_BIND | MS_REC)
        _mount("tmpfs", closed, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        for name in keep:
            _bind_point(os.path.join(stash, name), os.path.join(closed, name))
            _mount(os.path.join(stash, name), os.path.join(closed, name), None, MS_BIND | MS_REC)
            _mount(None, os.path.join(closed, name), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
            libc_call("umount2", os.path.join(stash, name).encode(), MNT_DETACH)
        _mount(None, closed, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        iso.applied.append(f"interpreter directories under {closed} exposed read-only, the rest hidden")
    iso.warn("some interpreter directories stay unreadable to the sandbox user: imports may fail")


def _bind_point(source: str, target: str) -> None:
    """Create an empty file or directory at ``target`` to bind ``source`` onto."""
    if os.path.isdir(source):
        os.makedirs(target, 0o755, exist_ok=True)
    else:
        with open(target, "a"):
            pass


def setup_isolation(mode: str) -> Isolation:
    """Isolate this worker once; ``mode`` is "local" (namespaces, uid drop) or "container"."""
    iso = Isolation()
    # Non-dumpable: a same-uid child cannot open /proc/<worker>/fd or mem to reach the host channel.
    libc_call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)
    # Orphans of a job are re-parented to us, so we can find and kill every one of them.
    libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    iso.applied.append("subreaper (no process outlives its job)")
    if mode == "container":
        iso.applied.append("container (network none, read-only root, limits set by the host)")
        return iso
    if os.geteuid() == 0:
        try:
            libc_call("unshare", CLONE_NEWNS | CLONE_NEWNET)
            iso.applied.append("network namespace (no network)")
            _setup_private_filesystem(iso)
            _expose_interpreter(iso)
        except OSError as exc:
            iso.warn(f"namespaces unavailable ({exc}); the host filesystem and network stay reachable")
        # A uid of our own per worker: candidates cannot signal the worker, the host or each other.
        iso.child_uid = (1 << 20) + os.getpid()
        iso.judge_uid = (1 << 23) + os.getpid()
        iso.applied.append("unprivileged uids per worker (one for candidates, one for their judges)")
        return iso
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
        _setup_private_filesystem(iso)
    except OSError as exc:
        iso.warn(
            f"user namespaces unavailable ({exc}); candidates run as your user with rlimits only: "
            "use the docker sandbox for untrusted code"
        )
    iso.warn("not root: candidates keep your uid and can signal your processes")
    return iso


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


_OOM_COUNTERS = ["/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"]


def _read_small(path: str) -> bytes:
    """A small /proc or /sys file, read raw: a Python file object costs four syscalls more, every job."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def oom_kills() -> int | None:
    """The container's OOM-kill counter (cgroup v2 or v1), or None outside a memory cgroup."""
    for path in list(_OOM_COUNTERS):
        try:
            text = _read_small(path)
        except OSError:
            _OOM_COUNTERS.remove(path)  # this cgroup layout does not have it: do not look again
            continue
        for line in text.splitlines():
            name, _, value = line.partition(b" ")
            if name == b"oom_kill":
                return int(value)
    return None


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
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields resume after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def reap_leftovers(keep: int | None = None, max_rounds: int = 500) -> int:
    """Kill and reap every process left by a job (they were re-parented to this subreaper), but ``keep``."""
    killed = 0
    for _ in range(max_rounds):
        try:
            while True:
                pid, _status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
        except ChildProcessError:
            return killed
        leftovers = [pid for pid in children_of(os.getpid()) if pid != keep]
        if not leftovers:
            return killed
        for pid in leftovers:
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(OSError):
                    kill(pid, signal.SIGKILL)
            killed += 1
        time.sleep(0.001)
    raise RuntimeError("could not reap the processes a job left behind")
