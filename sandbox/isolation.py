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
        self.child_uid: int | None = None
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
        iso.applied.append("unprivileged uid per worker")
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
# The child: limits, then the candidate.


def oom_kills() -> int | None:
    """The container's OOM-kill counter (cgroup v2 or v1), or None outside a memory cgroup."""
    for path, key in (
        ("/sys/fs/cgroup/memory.events", "oom_kill"),
        ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
    ):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except OSError:
            continue
    return None


def _children_of(pid: int) -> list[int]:
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


def reap_leftovers(max_rounds: int = 500) -> int:
    """Kill and reap every process left by a job (they were re-parented to this subreaper)."""
    killed = 0
    for _ in range(max_rounds):
        try:
            while True:
                pid, _status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
        except ChildProcessError:
            return killed
        for pid in _children_of(os.getpid()):
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(OSError):
                    kill(pid, signal.SIGKILL)
            killed += 1
        time.sleep(0.001)
    raise RuntimeError("could not reap the processes a job left behind")
