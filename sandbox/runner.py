"""The fork server that runs inside every sandbox worker, local or in a Docker container.

This module, with ``plain`` and ``isolation``, is the whole in-sandbox program. The three use only the
standard library, because the host ships their source to the worker (see ``base.worker_command``): a
Docker image then needs nothing but python3, and the runner never drifts from the host library.

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

import builtins
import contextlib
import json
import math
import os
import resource
import secrets
import select
import shutil
import signal
import sys
import time

from codegym.sandbox.isolation import (
    PR_SET_PDEATHSIG,
    Isolation,
    libc_call,
    oom_kills,
    reap_leftovers,
    setup_isolation,
)
from codegym.sandbox.plain import decode_plain, encode_plain

PROTOCOL_VERSION = 1

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
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.environ.clear()
        os.environ.update(SAFE_ENV, HOME=ctx["workdir"], TMPDIR=ctx["workdir"])
        sys.argv[:] = ["solution.py"]
        sys.setrecursionlimit(ctx["recursion_limit"])
    except BaseException as exc:
        send({"setup_error": f"{type(exc).__name__}: {exc}"})
        exit_(70)

    stdout, stderr = sys.stdout, sys.stderr

    def flush() -> None:
        for stream in {id(s): s for s in (sys.stdout, sys.stderr, stdout, stderr)}.values():
            with contextlib.suppress(BaseException):
                stream.flush()

    tests = ctx["tests"]
    started = monotonic()
    namespace = {"__builtins__": builtins, "__name__": "__main__" if ctx["stdio"] else "solution"}
    try:
        code = compile(ctx["program"], "solution.py", "exec")
        ctx = None  # drop the job description before any candidate code runs
        exec(code, namespace)
    except BaseException as exc:
        if tests is None and isinstance(exc, SystemExit):  # how a stdio program may end cleanly
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
        oom_before = oom_kills()
        ctx = {
            "token": token,
            "verdict_fd": verdict_w,
            "stdin_fd": stdin_fd,
            "stdout_fd": out_w,
            "stderr_fd": err_w,
            "workdir": workdir,
            "uid": self.iso.child_uid,
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
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
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
        oom_after = oom_kills()
        if oom_before is not None and oom_after is not None and oom_after > oom_before:
            return {
                "status": "memory",
                "error_type": "OutOfMemory",
                "message": "killed by the out-of-memory killer",
            }
        if os.WIFSIGNALED(wait_status):
            number = os.WTERMSIG(wait_status)
            name = _signal_name(number)
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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
