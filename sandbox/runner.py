"""The fork server that runs inside every sandbox worker, local or in a Docker container.

This module, with ``plain``, ``framing``, ``isolation``, ``candidate`` and ``judge``, is the whole
in-sandbox program. They use only the standard library, because the host ships their source to the
worker (see ``base.worker_command``): a Docker image then needs nothing but python3, and the runner
never drifts from the host library.

A worker is a warm interpreter. For each job it forks two processes: the candidate's (``candidate``),
which loads the untrusted program and answers calls into it, and the judge's (``judge``), which runs
the tests, calls into the candidate through a pipe with plain data only, and alone reports verdicts
to the worker. A ``StdioTest`` forks the candidate alone and is judged by its exit status and the
stdout the worker captured. The worker, outside both, enforces wall-clock deadlines (SIGKILL to the
whole process group: a loop that swallows an exception or ignores signals cannot outlive it), caps
the output, reaps anything a job left behind, and answers the host with one JSON line per job.

What the worker returns is raw: ``CallTest`` values and ``StdioTest`` output go back to the host,
which compares them with expected values that never enter the sandbox.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import select
import shutil
import signal
import socket
import sys
import time

from codegym.sandbox.candidate import candidate_main
from codegym.sandbox.framing import LineReader, dumps_line, loads_line, write_all
from codegym.sandbox.isolation import (
    SAFE_ENV,
    Isolation,
    end_job_processes,
    oom_kills,
    pin_to_cpu,
    setup_isolation,
)
from codegym.sandbox.judge import judge_server

__all__ = ["PROTOCOL_VERSION", "SAFE_ENV", "serve"]

PROTOCOL_VERSION = 3

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
MAX_MESSAGE_BYTES = 128 << 20
# What the values a job's calls returned may weigh together in the reply to the host; past it a result
# becomes an error. Every buffer a candidate can fill is bounded like this one.
MAX_RESULT_BYTES = 64 << 20
# A stdio program's side channel carries two frames (ready, and its exception if it raised): what it
# may write there before the worker stops listening.
MAX_SIDE_BYTES = 1 << 20
RECURSION_LIMIT = 10_000
# Checked once before the worker says hello: a worker that cannot confine a job fails to start, so a
# setup failure later on can only be one job's error, never a reason to stop the caller.
SELF_CHECK = {
    "id": 0,
    "program": "def twice(x):\n    return 2 * x\nif __name__ == '__main__':\n    print(twice(21))\n",
    "tests": [
        {"kind": "call", "entry_point": "twice", "args": [1], "kwargs": {"d": []}},
        {"kind": "assert", "code": "assert twice(2) == 4", "entry_point": "twice"},
        {"kind": "stdio", "stdin": ""},
    ],
    "timeout_s": 30.0,
    "memory_mb": 256,
    "max_output_bytes": 1 << 16,
    "report_bytes": 1024,
}


def _fork(main, ctx: dict) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            main(ctx)
        finally:
            os._exit(70)
    return pid


class _Watched:
    """A forked process whose end the worker notices at once (a pidfd) and whose status it keeps."""

    def __init__(self, pid: int):
        self.pid = pid
        self.status: int | None = None
        self.died_on_its_own = False
        try:
            self.fd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):  # before Linux 5.3: poll instead
            self.fd = None

    def poll(self) -> bool:
        """True once the process has ended (and was reaped)."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                self.died_on_its_own = True
                self.close()
        return self.status is not None

    def kill_and_wait(self, grace_s: float = 0.0) -> None:
        """End the process (after ``grace_s`` seconds to end by itself) and its group."""
        give_up = time.monotonic() + grace_s
        while not self.poll() and time.monotonic() < give_up:
            time.sleep(0.002)
        if self.status is None:
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            self.status = os.waitpid(self.pid, 0)[1]
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Judge:
    """The worker's judge process (``judge.judge_server``): forked once, it judges job after job.

    One per worker rather than one per job: a fork and exit of a warm interpreter costs about as much
    CPU as a whole small job. It is killed and started again whenever a job does not end cleanly.
    """

    def __init__(self, iso: Isolation):
        worker_end, judge_end = socket.socketpair()
        null_r = os.open(os.devnull, os.O_RDONLY)
        null_w = os.open(os.devnull, os.O_WRONLY)
        # A folder of the judge's own: it never sees a candidate's files, and imports nothing from there.
        self.workdir = _private_dir(iso.workroot, "judge", iso.judge_uid)
        try:
            self.pid = _fork(
                judge_server,
                {
                    "stdin": null_r,
                    "stdout": null_w,
                    "stderr": null_w,
                    "verdicts": judge_end.fileno(),
                    "workdir": self.workdir,
                    "uid": iso.judge_uid,
                    # Memory is set per job; no CPU limit, since rlimits add up over a process's life: the
                    # worker's wall-clock deadline bounds each job instead.
                    "limits": {"memory_bytes": None, "cpu_s": None, "file_bytes": 64 << 20, "processes": 16},
                    "recursion_limit": RECURSION_LIMIT,
                },
            )
        finally:
            for fd in (null_r, null_w):
                os.close(fd)
            judge_end.close()
        self.sock = worker_end
        self.fd = worker_end.fileno()
        self.reader = LineReader(self.fd, max_line=MAX_MESSAGE_BYTES)

    def start(self, tests: list, memory_mb: int, to_candidate: int, from_candidate: int) -> None:
        """Hand the judge a job: the pipes to and from its candidate, then the tests."""
        payload = dumps_line({"tests": tests, "memory_mb": memory_mb})
        try:
            sent = socket.send_fds(self.sock, [payload], [to_candidate, from_candidate])
            if sent < len(payload):
                self.sock.sendall(payload[sent:])
        except OSError:
            self.reader.eof = True  # it died between jobs: the job's loop reports it

    def kill(self) -> int:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        try:
            status = os.waitpid(self.pid, 0)[1]
        except ChildProcessError:  # it died earlier and was reaped with a job's leftovers
            status = signal.SIGKILL
        self.sock.close()
        _remove_workdir(self.workdir)
        return status


def _private_dir(root: str, kind: str, uid: int | None) -> str:
    """A new folder under ``root`` with a name nobody can guess, created exclusively, owned by ``uid``."""
    path = os.path.join(root, f"{kind}-{secrets.token_hex(12)}")
    os.mkdir(path, 0o700)  # fails if anything, of anyone's, is already there
    if uid is not None:
        os.chown(path, uid, uid)
    return path


class Worker:
    def __init__(self, iso: Isolation):
        self.iso = iso
        self.judge: _Judge | None = None

    def _workdir(self) -> str:
        return _private_dir(self.iso.workroot, "job", self.iso.child_uid)

    def _end_processes(self) -> None:
        """Kill and reap everything the job started; the judge, between jobs, stays."""
        end_job_processes(self.iso, keep=self.judge.pid if self.judge else None)

    @staticmethod
    def _limits(job: dict, count: int) -> dict:
        return {
            "memory_bytes": job["memory_mb"] << 20,
            "cpu_s": math.ceil(job["timeout_s"] * count) + 1,
            "file_bytes": 64 << 20,
            "processes": 64,
        }

    def _judge(self) -> _Judge:
        if self.judge is None:
            self.judge = _Judge(self.iso)
        return self.judge

    def _drop_judge(self) -> int | None:
        """Kill the judge (it is started again for the next job); its wait status."""
        judge, self.judge = self.judge, None
        return judge.kill() if judge else None

    def run_tests(self, job: dict, tests: list, output: dict) -> dict:
        """Run the program in a candidate process and ``tests`` (``(index, wire test)`` pairs) in the judge.

        Returns {"load": result-or-None, "results": {index: result}, "stopped": result-or-None}:
        ``stopped`` describes why the job ended before the judge reported every test.
        """
        timeout_s = job["timeout_s"]
        judge = self._judge()
        to_candidate_r, to_candidate_w = os.pipe()
        from_candidate_r, from_candidate_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null_r = os.open(os.devnull, os.O_RDONLY)
        workdir = self._workdir()
        oom_before = oom_kills(self.iso)
        candidate = _Watched(
            _fork(
                candidate_main,
                {
                    "stdin": null_r,
                    "stdout": out_w,
                    "stderr": err_w,
                    "requests": to_candidate_r,
                    "replies": from_candidate_w,
                    "workdir": workdir,
                    "uid": self.iso.child_uid,
                    "limits": self._limits(job, len(tests) + 1),
                    "recursion_limit": RECURSION_LIMIT,
                    "program": job["program"],
                    "stdio": False,
                },
            )
        )
        for fd in (to_candidate_r, from_candidate_w, out_w, err_w, null_r):
            os.close(fd)
        try:
            judge.start(tests, job["memory_mb"], to_candidate_w, from_candidate_r)
        finally:
            os.close(to_candidate_w)
            os.close(from_candidate_r)

        outcome = {"load": None, "results": {}, "stopped": None}
        pending = [index for index, _ in tests]
        loaded = ended = False
        streams = {out_r: "stdout", err_r: "stderr"}
        item_started = time.monotonic()
        deadline = item_started + timeout_s
        stopped = gone = None
        try:
            while not ended and not judge.reader.eof and not (stopped or gone):
                watch = [judge.fd, *streams]
                if candidate.fd is not None:
                    watch.append(candidate.fd)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    stopped = _timeout(timeout_s, item_started)
                    break
                polling = candidate.fd is None and candidate.status is None
                ready = select.select(watch, [], [], min(remaining, 0.02) if polling else remaining)[0]
                if (candidate.fd in ready or polling) and candidate.status is None and candidate.poll():
                    # Whatever the candidate left running may hold its pipe open: end it, so that the judge
                    # sees the end of the pipe at once instead of waiting for the deadline.
                    self._end_processes()
                if judge.fd in ready:
                    try:
                        judge.reader.feed()
                        lines = judge.reader.pop_lines()
                    except ValueError as exc:
                        stopped = _sandbox_error(
                            "ProtocolError", f"the judge sent an oversized message ({exc})"
                        )
                        break
                    for line in lines:
                        message = _parse_or_none(line)
                        if message is None:
                            stopped = _sandbox_error("ProtocolError", "the judge sent a malformed message")
                        elif "setup_error" in message:
                            stopped = _sandbox_error(
                                "SandboxSetup",
                                f"a sandbox process could not confine itself: {message['setup_error']}",
                            )
                        elif message.get("end") is True:
                            ended = True
                        elif "gone" in message:  # the candidate died or broke the pipe (while loading too)
                            gone = message
                        elif not loaded:
                            if "load" not in message or not (
                                message["load"] is None or type(message["load"]) is dict
                            ):
                                stopped = _sandbox_error("ProtocolError", "the judge sent no load status")
                            else:
                                loaded = True
                                outcome["load"] = message["load"]
                                if message["load"] is not None:
                                    pending = []
                        elif (
                            not pending
                            or message.get("i") != pending[0]
                            or type(message.get("r")) is not dict
                        ):
                            stopped = _sandbox_error("ProtocolError", "the judge reported a test out of turn")
                        else:
                            outcome["results"][pending.pop(0)] = self._bounded(message["r"], len(line))
                        if stopped or gone:
                            break
                        item_started = time.monotonic()
                        deadline = item_started + timeout_s
                for fd in list(streams):
                    if fd in ready and not stopped:
                        stopped = _pump(fd, streams, output, job["max_output_bytes"])
        finally:
            # A judge that lost the candidate's pipe was usually told so by the candidate's exit: give that
            # exit a moment to be seen, so the verdict names the cause (a signal, the OOM killer, exit(0)).
            candidate.kill_and_wait(grace_s=0.5 if gone and gone.get("gone") else 0.0)
            # A judge cut off mid-job, or one that broke the protocol, starts afresh for the next job.
            judge_status = None if ended and not stopped else self._drop_judge()
            self._end_processes()
            _drain(streams, output, job["max_output_bytes"])
            for fd in (out_r, err_r):
                os.close(fd)
            _remove_workdir(workdir)
        if pending:
            if stopped is None and gone is not None and not gone.get("gone"):
                stopped = {
                    "status": "error",
                    "error_type": "ProtocolError",
                    "message": str(gone.get("message"))[:2000],
                }
            elif stopped is None:
                stopped = self._end_of_pair(candidate, judge_status, gone, oom_before)
            outcome["stopped"] = stopped
            if not loaded:
                outcome["load"] = stopped
        return outcome

    def _bounded(self, result: dict, size: int) -> dict:
        """``result``, or an error once the job's returned values weigh more than MAX_RESULT_BYTES."""
        self.result_bytes += size
        if self.result_bytes <= MAX_RESULT_BYTES:
            return result
        return {
            "status": "error",
            "error_type": "OutputLimitExceeded",
            "message": f"the values this program returned exceed {MAX_RESULT_BYTES >> 20} MiB together",
            "duration_s": 0.0,
        }

    def _end_of_pair(self, candidate: _Watched, judge_status: int, gone: dict | None, oom_before) -> dict:
        """Why a candidate and judge pair ended with tests left: the candidate's death, or the judge's."""
        if candidate.died_on_its_own:
            return self._death(candidate.status, oom_before)
        if gone is not None:
            return {
                "status": "crashed",
                "error_type": "ChannelClosed",
                "message": f"the program closed the pipe to its judge: {gone.get('message')}",
            }
        if judge_status is None:  # the judge ended the job cleanly yet left tests unreported
            return {"status": "error", "error_type": "ProtocolError", "message": "the judge skipped tests"}
        death = self._death(judge_status, oom_before)
        if death["status"] == "crashed":
            death["message"] = "the judge process died under the program: " + death["message"]
        return death

    def run_stdio(self, job: dict, stdin_data: str, output: dict) -> dict:
        """Run the whole program once on ``stdin_data``; its verdict comes from its exit and its stdout."""
        timeout_s = job["timeout_s"]
        info_r, info_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stdin_fd = os.memfd_create("stdin")
        write_all(stdin_fd, stdin_data.encode("utf-8"))
        os.lseek(stdin_fd, 0, os.SEEK_SET)
        workdir = self._workdir()
        oom_before = oom_kills(self.iso)
        candidate = _Watched(
            _fork(
                candidate_main,
                {
                    "stdin": stdin_fd,
                    "stdout": out_w,
                    "stderr": err_w,
                    "replies": info_w,
                    "workdir": workdir,
                    "uid": self.iso.child_uid,
                    "limits": self._limits(job, 1),
                    "recursion_limit": RECURSION_LIMIT,
                    "program": job["program"],
                    "stdio": True,
                },
            )
        )
        for fd in (info_w, out_w, err_w, stdin_fd):
            os.close(fd)
        started = time.monotonic()
        deadline = started + timeout_s
        side = _SideChannel(info_r)
        streams = {out_r: "stdout", err_r: "stderr"}
        stopped = None
        try:
            while candidate.status is None and not stopped:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    stopped = _timeout(timeout_s, started)
                    break
                watch = [*streams] + ([info_r] if side.open else [])
                if candidate.fd is not None:
                    watch.append(candidate.fd)
                polling = candidate.fd is None
                ready = select.select(watch, [], [], min(remaining, 0.02) if polling else remaining)[0]
                if info_r in ready:
                    side.read()
                for fd in list(streams):
                    if fd in ready and not stopped:
                        stopped = _pump(fd, streams, output, job["max_output_bytes"])
                if candidate.fd in ready or polling:
                    candidate.poll()
        finally:
            candidate.kill_and_wait()
            self._end_processes()
            _drain(streams, output, job["max_output_bytes"])
            side.drain()
            for fd in (info_r, out_r, err_r):
                os.close(fd)
            _remove_workdir(workdir)
        if stopped:
            return stopped
        messages = side.messages
        if messages and "setup_error" in messages[0]:
            return _sandbox_error(
                "SandboxSetup", f"a sandbox process could not confine itself: {messages[0]['setup_error']}"
            )
        status = candidate.status
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return {"status": "exited", "exit_code": 0, "duration_s": time.monotonic() - started}
        if os.WIFEXITED(status):
            # The program's own account of its error only explains a failure, so it may be believed.
            for message in messages[1:]:
                raw = message.get("exit")
                if type(raw) is dict and raw.get("status") in ("error", "memory"):
                    return {
                        "status": raw["status"],
                        "error_type": str(raw.get("error_type", "Exit"))[:200],
                        "message": str(raw.get("message", ""))[:4000],
                        "duration_s": time.monotonic() - started,
                    }
            return {
                "status": "exited",
                "exit_code": os.WEXITSTATUS(status),
                "duration_s": time.monotonic() - started,
            }
        return self._death(status, oom_before)

    def _death(self, wait_status: int, oom_before: int | None) -> dict:
        oom_after = oom_kills(self.iso)
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
        self.result_bytes = 0
        results: list[dict | None] = [None] * len(tests)
        output = {"stdout": bytearray(), "stderr": bytearray()}
        pending = [i for i, test in enumerate(tests) if test["kind"] != "stdio"]
        while pending:
            outcome = self.run_tests(job, [(i, tests[i]) for i in pending], output)
            if outcome["load"]:
                # Loading failed: every test shares that fate, so do not retry the program.
                for i in pending:
                    results[i] = dict(
                        outcome["load"],
                        message="while loading the program: " + str(outcome["load"].get("message", "")),
                    )
                break
            for i, result in outcome["results"].items():
                results[i] = result
            pending = [i for i in pending if results[i] is None]
            if pending and outcome["stopped"]:
                # The test that was running when the pair stopped takes the blame; the rest get a fresh
                # pair so that one crash does not sink tests that were never tried.
                results[pending.pop(0)] = outcome["stopped"]
        for i, test in enumerate(tests):
            if test["kind"] != "stdio":
                continue
            stream = {"stdout": bytearray(), "stderr": output["stderr"]}
            result = self.run_stdio(job, test["stdin"], stream)
            if result["status"] == "exited":
                result["stdout"] = stream["stdout"].decode("utf-8", errors="replace")
                result = self._bounded(result, len(stream["stdout"]))
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


def _timeout(timeout_s: float, since: float) -> dict:
    return {
        "status": "timeout",
        "error_type": "Timeout",
        "message": f"no result within {timeout_s:g} s (wall clock)",
        "duration_s": time.monotonic() - since,
    }


def _pump(fd: int, streams: dict, output: dict, cap: int) -> dict | None:
    """Move what a job printed on ``fd`` into ``output``; a result when it printed more than ``cap`` bytes.

    A stream at its end leaves ``streams``: select() calls it ready forever, and a worker still watching
    it would spin until the job ends (which a program that closes its stdout could stretch to its limit).
    """
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        del streams[fd]
        return None
    name = streams[fd]
    output[name] += chunk
    if len(output[name]) > cap:
        return {
            "status": "error",
            "error_type": "OutputLimitExceeded",
            "message": f"{name} exceeded {cap} bytes",
        }
    return None


def _drain(streams: dict, output: dict, cap: int) -> None:
    """Collect what a job wrote just before it ended (bounded by the cap)."""
    for fd, name in streams.items():
        while len(output[name]) <= cap and select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            output[name] += chunk


def _remove_workdir(path: str) -> None:
    """Remove a job's work dir; most jobs leave it empty, which one rmdir settles."""
    try:
        os.rmdir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def _sandbox_error(error_type: str, message: str) -> dict:
    """A job's result when the sandbox's own processes failed it: an error, for this job alone."""
    return {"status": "error", "error_type": error_type, "message": message[:2000]}


class _SideChannel:
    """A stdio program's side pipe: its first frame (written before the program runs, so trusted) and
    the frames after it, kept to a few and a bounded number of bytes; past that the worker stops
    reading and what the program writes there is lost, to it alone."""

    MAX_FRAMES = 2

    def __init__(self, fd: int):
        self.reader = LineReader(fd, max_line=MAX_SIDE_BYTES)
        self.messages: list[dict] = []
        self.open = True
        self.bytes_read = 0

    def read(self) -> None:
        try:
            before = len(self.reader.buffer)
            self.reader.feed()
            self.bytes_read += len(self.reader.buffer) - before
            lines = self.reader.pop_lines()
        except (ValueError, OSError):  # an oversized frame, or the pipe went away
            self.open = False
            return
        for line in lines:
            message = _parse_or_none(line)
            if len(self.messages) < self.MAX_FRAMES:
                self.messages.append(message if message is not None else {})
        if self.reader.eof or self.bytes_read > MAX_SIDE_BYTES:
            self.open = False

    def drain(self) -> None:
        """What the program wrote just before it ended, within the same bounds."""
        while self.open and select.select([self.reader.fd], [], [], 0)[0]:
            self.read()


def _parse_or_none(line: bytes) -> dict | None:
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return message if type(message) is dict else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def serve(config: dict) -> None:
    """Answer jobs read from stdin, one JSON line each, until stdin closes."""
    sys.dont_write_bytecode = True
    # As PID 1 of a container the worker ignores every signal it has no handler for; Python's SIGINT
    # handler would let a candidate of the same uid raise KeyboardInterrupt into it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in PRELOAD:
        __import__(name)
    hello = {"hello": PROTOCOL_VERSION, "python": sys.version.split()[0]}
    try:
        pin_to_cpu(config.get("cpu_slot"))  # first, so the process the host started is pinned as well
        iso = setup_isolation(config)
        worker = Worker(iso)
        _self_check(worker)
    except Exception as exc:  # the sandbox cannot confine programs here: the host must hear why
        write_all(1, dumps_line(dict(hello, fatal=f"{type(exc).__name__}: {exc}")))
        return
    hello.update(pid=os.getpid(), applied=iso.applied, warnings=iso.warnings)
    requests = LineReader(0)
    write_all(1, dumps_line(hello))
    while True:
        line = requests.read_line()
        if line is None:
            return
        job = loads_line(line)
        try:
            reply = worker.run_job(job)
        except Exception as exc:  # a runner bug: say so, and let the host replace this worker
            write_all(1, dumps_line({"id": job.get("id"), "fatal": f"{type(exc).__name__}: {exc}"}))
            return
        try:
            write_all(1, dumps_line(reply))
        except BrokenPipeError:  # the host is gone (killed, or closed the sandbox mid-job): nobody to tell
            return


def _self_check(worker: Worker) -> None:
    """Run SELF_CHECK; raise unless each of its tests came back as an honest sandbox returns them."""
    results = worker.run_job(SELF_CHECK)["results"]
    expected = [
        {"status": "returned", "value": 2},
        {"status": "passed"},
        {"status": "exited", "exit_code": 0},
    ]
    for result, wanted in zip(results, expected, strict=True):
        if any(result.get(key) != value for key, value in wanted.items()):
            raise RuntimeError(f"the self-check job failed: {str(result)[:500]}")
    if results[2].get("stdout") != "42\n":
        raise RuntimeError(f"the self-check program printed {results[2].get('stdout')!r:.100}, not 42")
