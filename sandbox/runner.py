"""The fork server that runs inside every sandbox worker, local or in a Docker container.

This file is the whole in-sandbox program. It uses only the standard library, because the host ships
its source to the worker as ``python3 -c <source>`` (a Docker image then needs nothing but python3,
and the runner can never drift from the host library's version).

A worker is a warm interpreter. For each job it forks a child, and the child applies the per-job
limits, loads the candidate program and runs the tests, reporting each result over a private pipe
with a per-child random token. The worker, outside the candidate's process, enforces wall-clock
deadlines (SIGKILL to the child's whole process group: a loop that swallows an exception or ignores
signals cannot outlive it), caps the output, reaps anything the child left behind, and answers the
host with one JSON line per job.

What the worker returns is raw: ``CallTest`` values and ``StdioTest`` output go back to the host,
which compares them with expected values that never enter the sandbox.
"""

from __future__ import annotations

import base64
import builtins
import ctypes
import json
import math
import os
import resource
import secrets
import select
import shutil
import signal
import sys
import tempfile
import time

PROTOCOL_VERSION = 1

# ---------------------------------------------------------------------------------------------------
# Plain data: the only values that cross a process boundary. Exact types only, so an object with a
# lying __eq__ (or an int subclass) cannot travel and be compared as if it were a real answer.
# ---------------------------------------------------------------------------------------------------


class NotPlainDataError(TypeError):
    """Raised when a value is not plain data (None, bool, int, float, complex, str, bytes, and
    list, tuple, dict, set, frozenset of those)."""


_SCALARS = (type(None), bool, int, str)


def encode_plain(value, *, max_depth: int = 100, max_items: int = 1_000_000):
    """Encode plain data as a JSON-able tree that keeps tuples, sets, bytes and non-finite floats."""
    budget = [max_items]

    def enc(obj, depth):
        budget[0] -= 1
        if budget[0] < 0:
            raise NotPlainDataError(f"value has more than {max_items} elements")
        if depth > max_depth:
            raise NotPlainDataError(f"value is nested deeper than {max_depth} levels")
        kind = type(obj)
        if kind in _SCALARS:
            return obj
        if kind is float:
            return obj if math.isfinite(obj) else {"f": repr(obj)}
        if kind is list:
            return [enc(item, depth + 1) for item in obj]
        if kind is tuple:
            return {"t": [enc(item, depth + 1) for item in obj]}
        if kind is dict:
            return {"d": [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in obj.items()]}
        if kind is set:
            return {"s": [enc(item, depth + 1) for item in obj]}
        if kind is frozenset:
            return {"fs": [enc(item, depth + 1) for item in obj]}
        if kind is bytes:
            return {"b": base64.b64encode(obj).decode("ascii")}
        if kind is complex:
            return {"c": [enc(obj.real, depth + 1), enc(obj.imag, depth + 1)]}
        raise NotPlainDataError(
            f"value of type {kind.__qualname__} is not plain data (expected None, bool, int, float, "
            "complex, str, bytes or a list/tuple/dict/set of those)"
        )

    return enc(value, 0)


def decode_plain(tree):
    """Inverse of :func:`encode_plain`."""
    if isinstance(tree, list):
        return [decode_plain(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    if len(tree) != 1:
        raise ValueError(f"malformed plain-data node: {tree!r:.200}")
    ((tag, body),) = tree.items()
    if tag == "t":
        return tuple(decode_plain(item) for item in body)
    if tag == "d":
        return {decode_plain(k): decode_plain(v) for k, v in body}
    if tag == "s":
        return {decode_plain(item) for item in body}
    if tag == "fs":
        return frozenset(decode_plain(item) for item in body)
    if tag == "b":
        return base64.b64decode(body)
    if tag == "c":
        return complex(decode_plain(body[0]), decode_plain(body[1]))
    if tag == "f":
        return float(body)
    raise ValueError(f"unknown plain-data tag {tag!r}")


# ---------------------------------------------------------------------------------------------------
# Framing: one JSON object per line, both host <-> worker and child -> worker.
# ---------------------------------------------------------------------------------------------------


def dumps_line(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class LineReader:
    """Reads newline-terminated frames from a file descriptor, with a size cap per frame."""

    def __init__(self, fd: int, max_line: int = 1 << 30):
        self.fd = fd
        self.max_line = max_line
        self.buffer = bytearray()
        self.eof = False

    def take_line(self) -> bytes | None:
        """One complete frame from the buffer, or None if there is none yet."""
        cut = self.buffer.find(b"\n")
        if cut < 0:
            if len(self.buffer) > self.max_line:
                raise ValueError(f"frame longer than {self.max_line} bytes")
            return None
        line = bytes(self.buffer[:cut])
        del self.buffer[: cut + 1]
        return line

    def pop_lines(self) -> list[bytes]:
        lines = []
        while (line := self.take_line()) is not None:
            lines.append(line)
        return lines

    def feed(self) -> None:
        chunk = os.read(self.fd, 1 << 16)
        if chunk:
            self.buffer += chunk
        else:
            self.eof = True

    def read_line(self, deadline: float | None = None) -> bytes | None:
        """Read one frame; None at end of file; TimeoutError past ``deadline`` (time.monotonic)."""
        while True:
            line = self.take_line()
            if line is not None:
                return line
            if self.eof:
                return None
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                    raise TimeoutError("no frame before the deadline")
            self.feed()


# ---------------------------------------------------------------------------------------------------
# Worker isolation, set up once per worker so that each job only pays for a fork.
# ---------------------------------------------------------------------------------------------------

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
# Modules most solutions import, loaded before any fork so that children start warm, and so that a
# sandbox user who cannot read the interpreter's own directories still has them.
PRELOAD = [
    "array",
    "bisect",
    "calendar",
    "cmath",
    "collections",
    "collections.abc",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "io",
    "itertools",
    "json",
    "math",
    "numbers",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "struct",
    "textwrap",
    "typing",
    "unicodedata",
]
SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

_libc = ctypes.CDLL(None, use_errno=True)


def _libc_call(name: str, *args) -> None:
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else s.encode()
    _libc_call("mount", enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))


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
        self.child_sys_path: list[str] = list(sys.path)
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


def _expose_sys_path(iso: Isolation) -> None:
    """Bind interpreter directories that the sandbox user could not reach (say under a 0700 /root)
    into the private /tmp, read-only, and point the children's sys.path there."""
    libroot = "/tmp/.codegym-lib"
    os.mkdir(libroot, 0o755)
    new_path = []
    for index, entry in enumerate(sys.path):
        if not entry or not os.path.isdir(entry) or _reachable_by_others(entry):
            new_path.append(entry)
            continue
        target = f"{libroot}/{index}"
        os.mkdir(target, 0o755)
        _mount(entry, target, None, MS_BIND | MS_REC)
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        new_path.append(target)
    iso.child_sys_path = new_path


def setup_isolation(mode: str) -> Isolation:
    """Isolate this worker once; ``mode`` is "local" (namespaces, uid drop) or "container"."""
    iso = Isolation()
    # Non-dumpable: a same-uid child cannot open /proc/<worker>/fd or mem to reach the host channel.
    _libc_call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)
    # Orphans of a job are re-parented to us, so we can find and kill every one of them.
    _libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    iso.applied.append("subreaper (no process outlives its job)")
    if mode == "container":
        iso.applied.append("container (network none, read-only root, limits set by the host)")
        return iso
    if os.geteuid() == 0:
        try:
            _libc_call("unshare", CLONE_NEWNS | CLONE_NEWNET)
            iso.applied.append("network namespace (no network)")
            _setup_private_filesystem(iso)
            _expose_sys_path(iso)
        except OSError as exc:
            iso.warn(f"namespaces unavailable ({exc}); the host filesystem and network stay reachable")
        # A uid of our own per worker: candidates cannot signal the worker, the host or each other.
        iso.child_uid = (1 << 20) + os.getpid()
        iso.applied.append("unprivileged uid per worker")
        return iso
    uid, gid = os.getuid(), os.getgid()
    try:
        _libc_call("unshare", CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET)
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
# ---------------------------------------------------------------------------------------------------


def _set_limit(which: int, value: int) -> None:
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))


def _describe_exit(code) -> tuple[int, str]:
    if code is None:
        return 0, ""
    if isinstance(code, int):
        return code, ""
    return 1, str(code)


def _truncate(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def _error_result(exc: BaseException, started: float) -> dict:
    if isinstance(exc, MemoryError):
        status = "memory"
    elif isinstance(exc, AssertionError):
        status = "failed"
    else:
        status = "error"
    try:
        message = str(exc)
    except BaseException:  # a candidate's exception may have a __str__ that raises
        message = "<unprintable exception>"
    if isinstance(exc, SystemExit):
        message = f"the program called exit({message}) instead of returning"
    return {
        "status": status,
        "error_type": type(exc).__name__,
        "message": _truncate(message),
        "duration_s": time.monotonic() - started,
    }


def _guarded(function):
    """Wrap the entry point so assertions see its result rebuilt from plain data."""

    def guarded(*args, **kwargs):
        return decode_plain(encode_plain(function(*args, **kwargs)))

    guarded.__name__ = getattr(function, "__name__", "candidate")
    guarded.__doc__ = getattr(function, "__doc__", None)
    return guarded


def _child_main(ctx: dict) -> None:
    """Runs in the forked child; never returns."""
    exit_ = os._exit
    write = os.write
    dumps = json.dumps
    monotonic = time.monotonic
    token = ctx["token"]
    verdict_fd = ctx["verdict_fd"]

    def send(message: dict) -> None:
        message["t"] = token
        data = dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"
        view = memoryview(data)
        while view:
            view = view[write(verdict_fd, view) :]

    try:
        os.setsid()
        os.dup2(ctx["stdin_fd"], 0)
        os.dup2(ctx["stdout_fd"], 1)
        os.dup2(ctx["stderr_fd"], 2)
        os.closerange(3, verdict_fd)
        os.closerange(verdict_fd + 1, 1 << 16)
        os.chdir(ctx["workdir"])
        limits = ctx["limits"]
        _set_limit(resource.RLIMIT_AS, limits["memory_bytes"])
        _set_limit(resource.RLIMIT_CPU, limits["cpu_s"])
        _set_limit(resource.RLIMIT_FSIZE, limits["file_bytes"])
        _set_limit(resource.RLIMIT_NOFILE, 256)
        _set_limit(resource.RLIMIT_CORE, 0)
        uid = ctx["uid"]
        if uid is not None:
            _set_limit(resource.RLIMIT_NPROC, limits["processes"])
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.environ.clear()
        os.environ.update(SAFE_ENV, HOME=ctx["workdir"], TMPDIR=ctx["workdir"])
        sys.path[:] = ctx["sys_path"]
        sys.argv[:] = ["solution.py"]
        sys.setrecursionlimit(ctx["recursion_limit"])
    except BaseException as exc:
        send({"setup_error": f"{type(exc).__name__}: {exc}"})
        exit_(70)

    stdout, stderr = sys.stdout, sys.stderr

    def flush() -> None:
        for stream in {id(s): s for s in (sys.stdout, sys.stderr, stdout, stderr)}.values():
            try:
                stream.flush()
            except BaseException:
                pass

    tests = ctx["tests"]
    started = monotonic()
    namespace = {"__builtins__": builtins, "__name__": "__main__" if ctx["stdio"] else "solution"}
    try:
        code = compile(ctx["program"], "solution.py", "exec")
        ctx = None  # drop the job description before any candidate code runs
        exec(code, namespace)
    except BaseException as exc:
        if tests is None:  # stdio: a clean exit() is how such programs may end
            if isinstance(exc, SystemExit):
                exit_code, message = _describe_exit(exc.code)
                if message:
                    stderr.write(message + "\n")
                flush()
                send(
                    {
                        "i": -1,
                        "r": {
                            "status": "exited",
                            "exit_code": exit_code,
                            "duration_s": monotonic() - started,
                        },
                    }
                )
                exit_(0)
        flush()
        send({"load": _error_result(exc, started)})
        exit_(0)
    flush()
    if tests is None:
        send({"i": -1, "r": {"status": "exited", "exit_code": 0, "duration_s": monotonic() - started}})
        exit_(0)
    send({"load": None})

    for index, test in tests:
        started = monotonic()
        try:
            if test["kind"] == "assert":
                scope = dict(namespace)
                entry_point = test.get("entry_point")
                if entry_point and callable(scope.get(entry_point)):
                    scope[entry_point] = _guarded(scope[entry_point])
                exec(compile(test["code"], "test.py", "exec"), scope)
                result = {"status": "passed", "duration_s": monotonic() - started}
            else:
                entry_point = test["entry_point"]
                if entry_point not in namespace:
                    raise NameError(f"the program does not define {entry_point!r}")
                args = decode_plain(test["args"])
                kwargs = decode_plain(test["kwargs"])
                value = encode_plain(namespace[entry_point](*args, **kwargs))
                result = {"status": "returned", "value": value, "duration_s": monotonic() - started}
        except BaseException as exc:
            result = _error_result(exc, started)
        flush()
        send({"i": index, "r": result})
    exit_(0)


# ---------------------------------------------------------------------------------------------------
# The worker side of one child: deadlines, output caps, verdict checking, clean-up.
# ---------------------------------------------------------------------------------------------------

_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}


def _oom_kills() -> int | None:
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
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            killed += 1
        time.sleep(0.001)
    raise RuntimeError("could not reap the processes a job left behind")


class Worker:
    def __init__(self, iso: Isolation):
        self.iso = iso
        self.sequence = 0

    def _workdir(self) -> str:
        self.sequence += 1
        path = os.path.join(self.iso.workroot, f"job-{os.getpid()}-{self.sequence}")
        os.mkdir(path, 0o700)
        if self.iso.child_uid is not None:
            os.chown(path, self.iso.child_uid, self.iso.child_uid)
        return path

    def run_child(self, job: dict, tests, stdin_data: str | None, output: dict) -> dict:
        """Fork one child for the program (and ``tests``, or one stdio run when ``tests`` is None).

        Returns {"load": result-or-None, "results": {index: result}, "stopped": result-or-None}:
        ``stopped`` describes why the child ended before reporting everything.
        """
        timeout_s = job["timeout_s"]
        count = 1 if tests is None else len(tests) + 1
        token = secrets.token_hex(16)
        verdict_r, verdict_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if stdin_data is None:
            stdin_fd = os.open(os.devnull, os.O_RDONLY)
        else:
            stdin_fd = os.memfd_create("stdin")
            write_all(stdin_fd, stdin_data.encode("utf-8"))
            os.lseek(stdin_fd, 0, os.SEEK_SET)
        workdir = self._workdir()
        oom_before = _oom_kills()
        ctx = {
            "token": token,
            "verdict_fd": verdict_w,
            "stdin_fd": stdin_fd,
            "stdout_fd": out_w,
            "stderr_fd": err_w,
            "workdir": workdir,
            "uid": self.iso.child_uid,
            "sys_path": self.iso.child_sys_path,
            "program": job["program"],
            "tests": tests,
            "stdio": tests is None,
            "recursion_limit": 10_000,
            "limits": {
                "memory_bytes": job["memory_mb"] << 20,
                "cpu_s": math.ceil(timeout_s * count) + 1,
                "file_bytes": 64 << 20,
                "processes": 64,
            },
        }
        pid = os.fork()
        if pid == 0:
            try:
                _child_main(ctx)
            finally:
                os._exit(70)
        for fd in (verdict_w, out_w, err_w, stdin_fd):
            os.close(fd)

        outcome = {"load": None, "results": {}, "stopped": None}
        loaded = tests is None
        verdicts = LineReader(verdict_r, max_line=64 << 20)
        streams = {out_r: "stdout", err_r: "stderr"}
        open_fds = [verdict_r, out_r, err_r]
        item_started = time.monotonic()
        deadline = item_started + timeout_s
        expected = count
        killed_by_us = None
        try:
            while open_fds and expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    killed_by_us = {
                        "status": "timeout",
                        "error_type": "Timeout",
                        "message": f"no result within {timeout_s:g} s (wall clock)",
                        "duration_s": time.monotonic() - item_started,
                    }
                    break
                ready, _, _ = select.select(open_fds, [], [], remaining)
                for fd in ready:
                    if fd == verdict_r:
                        verdicts.feed()
                        if verdicts.eof:
                            open_fds.remove(fd)
                        for line in verdicts.pop_lines():
                            message = self._check(line, token)
                            if message is None:
                                killed_by_us = {
                                    "status": "error",
                                    "error_type": "VerdictTampered",
                                    "message": "the verdict channel received data the harness did not send",
                                }
                                break
                            if "setup_error" in message:
                                raise RuntimeError(f"sandbox child setup failed: {message['setup_error']}")
                            if "load" in message:
                                loaded = True
                                outcome["load"] = message["load"]
                                expected = 0 if message["load"] else expected - 1
                            else:
                                outcome["results"][message["i"]] = message["r"]
                                expected -= 1
                            item_started = time.monotonic()
                            deadline = item_started + timeout_s
                        if killed_by_us:
                            break
                    else:
                        chunk = os.read(fd, 1 << 16)
                        if not chunk:
                            open_fds.remove(fd)
                            continue
                        name = streams[fd]
                        output[name] += chunk
                        if len(output[name]) > job["max_output_bytes"]:
                            killed_by_us = {
                                "status": "error",
                                "error_type": "OutputLimitExceeded",
                                "message": f"{name} exceeded {job['max_output_bytes']} bytes",
                            }
                            break
                if killed_by_us:
                    break
            if killed_by_us or expected:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            _, wait_status = os.waitpid(pid, 0)
            # Drain what the child wrote just before it died (bounded by the cap).
            for fd in (out_r, err_r):
                while len(output[streams[fd]]) <= job["max_output_bytes"]:
                    if not select.select([fd], [], [], 0)[0]:
                        break
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break
                    output[streams[fd]] += chunk
        finally:
            for fd in (verdict_r, out_r, err_r):
                os.close(fd)
            reap_leftovers()
            shutil.rmtree(workdir, ignore_errors=True)
        if expected:
            outcome["stopped"] = killed_by_us or self._death(wait_status, oom_before)
            if not loaded and outcome["load"] is None:
                outcome["load"] = outcome["stopped"]
        return outcome

    @staticmethod
    def _check(line: bytes, token: str) -> dict | None:
        try:
            message = json.loads(line)
        except ValueError:
            return None
        if not isinstance(message, dict) or message.pop("t", None) != token:
            return None
        return message

    @staticmethod
    def _death(wait_status: int, oom_before: int | None) -> dict:
        oom_after = _oom_kills()
        if oom_before is not None and oom_after is not None and oom_after > oom_before:
            return {
                "status": "memory",
                "error_type": "OutOfMemory",
                "message": "killed by the out-of-memory killer",
            }
        if os.WIFSIGNALED(wait_status):
            number = os.WTERMSIG(wait_status)
            name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
            if number == signal.SIGXCPU:
                return {"status": "timeout", "error_type": "CPULimit", "message": "CPU time limit exceeded"}
            return {"status": "crashed", "error_type": name, "message": f"the process was killed by {name}"}
        code = os.WEXITSTATUS(wait_status)
        return {
            "status": "crashed",
            "error_type": "Exit",
            "message": f"the process exited with code {code} before reporting a result",
        }

    def run_job(self, job: dict) -> dict:
        """Run every test of one job; return one raw result per test, in order."""
        started = time.monotonic()
        tests = job["tests"]
        results: list[dict | None] = [None] * len(tests)
        output = {"stdout": bytearray(), "stderr": bytearray()}
        pending = [i for i, test in enumerate(tests) if test["kind"] != "stdio"]
        while pending:
            outcome = self.run_child(job, [(i, tests[i]) for i in pending], None, output)
            if outcome["load"]:
                # Loading failed: every test shares that fate, so do not retry the program.
                for i in pending:
                    results[i] = dict(
                        outcome["load"],
                        message="while loading the program: " + outcome["load"].get("message", ""),
                    )
                break
            for i, result in outcome["results"].items():
                results[i] = result
            pending = [i for i in pending if results[i] is None]
            if pending and outcome["stopped"]:
                # The test that was running when the child stopped takes the blame; the rest get a
                # fresh child so that one crash does not sink tests that were never tried.
                results[pending.pop(0)] = outcome["stopped"]
        for i, test in enumerate(tests):
            if test["kind"] != "stdio":
                continue
            stream = {"stdout": bytearray(), "stderr": output["stderr"]}
            outcome = self.run_child(job, None, test["stdin"], stream)
            result = outcome["results"].get(-1) or outcome["stopped"] or outcome["load"]
            if result["status"] == "exited":
                result["stdout"] = stream["stdout"].decode("utf-8", errors="replace")
            output["stdout"] += stream["stdout"][: max(0, job["report_bytes"] - len(output["stdout"]))]
            results[i] = result
        cap = job["report_bytes"]
        return {
            "id": job["id"],
            "results": results,
            "stdout": output["stdout"][:cap].decode("utf-8", errors="replace"),
            "stderr": output["stderr"][:cap].decode("utf-8", errors="replace"),
            "duration_s": time.monotonic() - started,
        }


def serve(config: dict) -> None:
    """Answer jobs read from stdin, one JSON line each, until stdin closes."""
    sys.dont_write_bytecode = True
    for name in PRELOAD:
        __import__(name)
    iso = setup_isolation(config["isolation"])
    worker = Worker(iso)
    requests = LineReader(0)
    hello = {
        "hello": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "applied": iso.applied,
        "warnings": iso.warnings,
        "python": sys.version.split()[0],
    }
    write_all(1, dumps_line(hello))
    while True:
        line = requests.read_line()
        if line is None:
            return
        job = json.loads(line)
        try:
            reply = worker.run_job(job)
        except Exception as exc:  # a runner bug: say so, and let the host replace this worker
            write_all(1, dumps_line({"id": job.get("id"), "fatal": f"{type(exc).__name__}: {exc}"}))
            return
        write_all(1, dumps_line(reply))


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
