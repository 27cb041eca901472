"""The judge's process: it runs a job's tests and alone decides their verdicts, outside the candidate.

The judge is forked from the worker beside the candidate's process (``candidate``), under a uid of
its own where the worker can give one, non-dumpable, with no access to the candidate's files. Every
name of the program that a test uses is a :class:`Remote` here: calling it sends the arguments to the
candidate as plain data and brings the result back as plain data, or as another :class:`Remote` for an
object that is not plain data. A :class:`Remote` never asks the candidate how to compare itself, so an
object with a lying ``__eq__`` compares by identity and cannot satisfy an assertion.

So nothing the candidate can do, to its own process or to the pipe between the two, produces a
verdict: it can only send other answers, which an honest program could also have computed, or break
the pipe, which ends the test as ``error`` or ``crashed``.

Standard library only: this module is shipped into the sandbox with the runner.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import resource
import signal
import socket
import sys
import time

from codegym.sandbox.framing import LineReader, dumps_line, loads_line, write_all
from codegym.sandbox.isolation import confine
from codegym.sandbox.plain import NotPlainDataError, decode_plain, encode_plain, error_result

MAX_REPLY_BYTES = 64 << 20
# Exceptions a call into the candidate may raise in the judge under their own name; any other type the
# candidate names arrives as CandidateError (a SystemExit or KeyboardInterrupt must not end the judge).
_NOT_RERAISED = (SystemExit, KeyboardInterrupt, GeneratorExit)


class CandidateError(Exception):
    """The candidate raised an exception that the judge does not recreate as it is."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


class ChannelBroken(BaseException):  # not an Exception, so that no test code can catch it
    """The candidate died, or broke the protocol; the test cannot have a verdict but error or crashed."""

    def __init__(self, message: str, gone: bool):
        super().__init__(message)
        self.gone = gone


class Channel:
    """The judge's end of the pipes to the candidate: one request, one reply, in order."""

    def __init__(self, requests: int, replies: int):
        self.requests = requests
        self.reader = LineReader(replies, max_line=MAX_REPLY_BYTES)
        self.sequence = 0
        self.broken: ChannelBroken | None = None

    def receive(self) -> dict:
        try:
            line = self.reader.read_line()
        except ValueError as exc:
            self.fail(f"the candidate sent an oversized frame ({exc})", gone=False)
        except OSError as exc:
            self.fail(f"lost the pipe from the candidate: {exc}", gone=True)
        if line is None:
            self.fail("the candidate's process ended", gone=True)
        try:
            message = loads_line(line)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            self.fail("the candidate sent a frame that is not JSON", gone=False)
        if type(message) is not dict:
            self.fail("the candidate sent a frame that is not an object", gone=False)
        return message

    def request(self, message: dict) -> dict:
        """Send one request and return the candidate's reply (raising what the candidate raised)."""
        return self.reply_to(self.send(message))

    def send(self, message: dict) -> int:
        if self.broken:
            raise self.broken
        self.sequence += 1
        message["id"] = self.sequence
        try:
            write_all(self.requests, dumps_line(message))
        except OSError as exc:
            self.fail(f"lost the pipe to the candidate: {exc}", gone=True)
        return self.sequence

    def reply_to(self, sequence: int) -> dict:
        reply = self.receive()
        if reply.get("id") != sequence:
            self.fail("the candidate answered out of turn", gone=False)
        if "raise" in reply:
            raise _exception(reply["raise"])
        return reply

    def fail(self, message: str, gone: bool):
        self.broken = ChannelBroken(message, gone)
        raise self.broken

    def decode(self, tree, kinds: dict | None = None):
        def ref(handle: int) -> Remote:
            return Remote(self, handle, str((kinds or {}).get(str(handle), "object")))

        try:
            return decode_plain(tree, ref=ref)
        except ValueError as exc:
            self.fail(f"the candidate sent malformed data: {exc}", gone=False)

    def encode(self, value):
        return encode_plain(value, other=self._handle_of)

    def _handle_of(self, obj) -> dict:
        if isinstance(obj, Remote) and obj._channel is self:
            return {"r": obj._handle}
        raise NotPlainDataError(
            f"a test passed a {type(obj).__qualname__} to the candidate; only plain data and the "
            "candidate's own objects can cross into its process"
        )


def _exception(raw) -> BaseException:
    if type(raw) is not dict:
        return ChannelBroken("the candidate sent a malformed exception", gone=False)
    error_type, message = str(raw.get("error_type", "Exception"))[:200], str(raw.get("message", ""))[:4000]
    cls = getattr(builtins, error_type, None)
    if isinstance(cls, type) and issubclass(cls, BaseException) and not issubclass(cls, _NOT_RERAISED):
        try:
            return cls(message)
        except Exception:  # a builtin exception whose constructor wants other arguments
            pass
    return CandidateError(error_type, message)


class Remote:
    """An object that lives in the candidate's process: a function, a class, an instance, an iterator.

    Calls, attribute reads, ``len``, ``iter``, ``next``, ``bool``, ``[]`` and ``in`` cross to the
    candidate as plain data; equality, hashing, ``repr`` and ``str`` stay here and never ask it.
    """

    def __init__(self, channel: Channel, handle: int, label: str):
        self._channel = channel
        self._handle = handle
        self.__name__ = label

    def __call__(self, *args, **kwargs):
        channel = self._channel
        encoded_args = channel.encode(list(args))
        mutable = [type(arg) in (list, dict, set) for arg in args]
        request = {"op": "call", "ref": self._handle, "args": encoded_args, "after": any(mutable)}
        if kwargs:
            request["kwargs"] = channel.encode(kwargs)
        reply = channel.request(request)
        if any(mutable):
            after = reply.get("after")
            if type(after) is not list or len(after) != len(args):
                channel.fail("the candidate did not send back the arguments it was given", gone=False)
            for arg, changed, tree in zip(args, mutable, after, strict=True):
                if changed:
                    _update_in_place(arg, channel.decode(tree, reply.get("kinds")))
        return channel.decode(reply.get("ok"), reply.get("kinds"))

    def _operate(self, op: str, *operands):
        channel = self._channel
        reply = channel.request({"op": op, "ref": self._handle, "args": channel.encode(list(operands))})
        return channel.decode(reply.get("ok"), reply.get("kinds"))

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        reply = self._channel.request({"op": "getattr", "ref": self._handle, "name": name})
        return self._channel.decode(reply.get("ok"), reply.get("kinds"))

    def __len__(self) -> int:
        value = self._operate("__len__")
        if type(value) is not int:
            raise TypeError("the candidate's __len__ did not return an int")
        return value

    def __iter__(self):
        return self._operate("__iter__")

    def __next__(self):
        return self._operate("__next__")

    def __bool__(self) -> bool:
        value = self._operate("__bool__")
        if type(value) is not bool:
            raise TypeError("the candidate's __bool__ did not return a bool")
        return value

    def __getitem__(self, key):
        return self._operate("__getitem__", key)

    def __contains__(self, item) -> bool:
        return self._operate("__contains__", item) is True

    def __repr__(self) -> str:
        return f"<candidate {self.__name__}>"

    __str__ = __repr__


def _update_in_place(original, changed) -> None:
    """Give a list, dict or set argument the contents the candidate left in its copy."""
    if type(changed) is not type(original):
        raise TypeError(
            f"the candidate turned a {type(original).__name__} argument into {type(changed).__name__}"
        )
    if type(original) is list:
        original[:] = changed
    else:
        original.clear()
        original.update(changed)


_COMPILED: dict[str, tuple] = {}  # test code -> (code object, names it reads); the judge outlives jobs


def compile_test(code: str) -> tuple:
    """A test's code object and the global names it reads (so the judge asks the candidate for those
    alone), cached: a training run judges the same tests over and over."""
    compiled = _COMPILED.get(code)
    if compiled is None:
        program = compile(code, "test.py", "exec")
        # The names the code and the functions, classes and comprehensions in it look up globally (with
        # attribute names, which at worst fetch a program name no test uses). Builtins and dunder names are
        # the judge's own: a program that defines `abs = lambda x: 0` must not make
        # `assert abs(f(x) - y) < 1e-6` true, nor one that sets `__name__` switch off a test's
        # `if __name__ == ...` block. (A test whose function is named like a builtin names it as its entry
        # point, which the judge then takes from the program.)
        names: set[str] = set()
        pending = [program]
        while pending:
            code_object = pending.pop()
            names.update(code_object.co_names)
            pending.extend(const for const in code_object.co_consts if type(const) is type(program))
        compiled = (
            program,
            frozenset(n for n in names if not n.startswith("__") and not hasattr(builtins, n)),
        )
        if len(_COMPILED) >= 512:
            _COMPILED.clear()
        _COMPILED[code] = compiled
    return compiled


def _resolve(name: str, described, channel: Channel, modules: dict):
    """The judge's value for a top-level name of the program (one the judge asked for).

    Plain data is copied. A module the program imported under its own name (``import math`` as
    ``math``) is the judge's own copy, and only if the judge had loaded that module before it judged
    anything (``modules``): so a test that uses ``math`` gets the real one, and the judge never imports
    a module because a program named it (an import runs code: ``unittest.__main__`` runs test discovery).
    Everything else, functions and classes included (also ones imported from the standard library:
    ``decode = exec`` must not run in the judge), is a :class:`Remote`.
    """
    if type(described) is not dict:
        channel.fail(f"the candidate described {name!r} in a malformed way", gone=False)
    if "module" in described:
        if described["module"] == name and name in modules:
            return modules[name]
        return Remote(channel, -1, f"module {name}")  # any use of it fails
    if "value" in described:
        return channel.decode(described["value"])
    if type(described.get("r")) is not int:
        channel.fail(f"the candidate described {name!r} in a malformed way", gone=False)
    return Remote(channel, described["r"], name)


def judge_server(ctx: dict) -> None:
    """Runs in the worker's judge process, forked once per worker; never returns.

    It confines itself (``ctx``: its uid, descriptors and limits), then judges one job after another:
    each arrives on the ``verdicts`` socket as two descriptors (the pipes to and from that job's
    candidate) and one line (the tests as ``(index, wire test)`` pairs and the memory limit). It
    answers with one line per event of the job and ``{"end": true}`` after the last one.
    """
    sock = socket.socket(fileno=ctx["verdicts"])

    held: list[bytes] = []

    def report(message: dict, hold: bool = False) -> None:
        # A job's last verdict is held and sent with its end: one wake-up of the worker less per job.
        held.append(dumps_line(message))
        if not hold:
            sock.sendall(b"".join(held))
            held.clear()

    # The modules a test may get for a name the program imported: what the judge holds now, before any
    # job. Taken here because a module a test imports later is the test's doing, never the program's.
    modules = {name: module for name, module in sys.modules.items() if "." not in name}
    try:
        confine(ctx)
        # A candidate that shares the judge's uid (in a container) may signal it: SIGINT must not become a
        # KeyboardInterrupt raised into test code. Any other signal can only kill it (crashed, never passed).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(AttributeError, OSError):
            # The judge never needs the CPU at once: woken by its candidate's reply, it waits until the
            # candidate blocks instead of preempting it, which saves a switch per wake-up.
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        sys.path[:] = [entry for entry in sys.path if entry and os.path.isabs(entry)]
        sys.dont_write_bytecode = True
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except BaseException as exc:
        report({"setup_error": f"judge: {type(exc).__name__}: {exc}"})
        os._exit(70)
    jobs = LineReader(sock.fileno(), max_line=MAX_REPLY_BYTES)
    while True:
        data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 2)
        jobs.buffer += data
        line = jobs.read_line() if data else None
        if line is None or len(fds) != 2:
            os._exit(0)
        job = loads_line(line)
        # Room for this job's data on top of what the judge already holds; only trusted code may raise it.
        resource.setrlimit(resource.RLIMIT_AS, (_address_space() + (job["memory_mb"] << 20), hard))
        channel = Channel(*fds)
        try:
            _judge_job(job["tests"], channel, report, modules)
            # The end goes out while the candidate's pipes are still open: closing them ends the candidate,
            # and the worker should hear that the job is over before it sees the candidate go.
            report({"end": True})
        finally:
            # A handle a test kept past its job must not reach the next job's candidate through a reused fd.
            channel.broken = ChannelBroken("the job is over", gone=True)
            for fd in fds:
                os.close(fd)


def _address_space() -> int:
    fd = os.open("/proc/self/statm", os.O_RDONLY)  # read raw: a file object costs four syscalls more
    try:
        return int(os.read(fd, 256).split()[0]) * resource.getpagesize()
    finally:
        os.close(fd)


def _judge_job(tests: list, channel: Channel, report, modules: dict) -> None:
    """Judge one job's tests against the candidate at the other end of ``channel``."""
    wanted = set()
    for _, test in tests:
        wanted |= compile_test(test["code"])[1] if test["kind"] == "assert" else set()
        if test.get("entry_point"):
            wanted.add(test["entry_point"])
    try:
        # Asked at once: the candidate answers as soon as its program is loaded, with no round trip more.
        try:
            names = channel.send({"op": "names", "names": sorted(wanted)})
        except ChannelBroken as exc:
            # A program that ended while loading (sys.exit at import) may have closed its end before the
            # question arrived: what it said before it went, its load status, still names the cause.
            names, unsent, channel.broken = None, exc, None
        first = channel.receive()
        if "setup_error" in first:
            report({"setup_error": str(first["setup_error"])})
            return
        if first != {"ready": True}:
            channel.fail("the candidate did not start as expected", gone=False)
        started = time.monotonic()
        load = channel.receive()
        if "load" not in load:
            channel.fail("the candidate sent something else than its load status", gone=False)
        if load["load"] is not None:
            failed = load["load"]
            report(
                {"load": failed if _is_result(failed) else _broken_result("a malformed load status", started)}
            )
            return
        if names is None:
            raise unsent
        report({"load": None})
        described = channel.reply_to(names).get("names")
        if type(described) is not dict:
            channel.fail("the candidate sent a malformed list of names", gone=False)
        if not described.keys() <= wanted:
            # Only names a test reads may enter its scope: never a builtin it did not name as its entry
            # point, never a dunder, never anything the judge did not ask for.
            channel.fail("the candidate described names the judge did not ask for", gone=False)
        program_names = {name: _resolve(name, value, channel, modules) for name, value in described.items()}
    except ChannelBroken as exc:
        report({"i": tests[0][0], "gone": exc.gone, "message": str(exc)})
        return
    except BaseException as exc:  # e.g. the candidate raised while describing its names
        result = error_result(exc, time.monotonic())
        result["message"] = "while looking up the program's names: " + result["message"]
        for index, _ in tests:
            report({"i": index, "r": result})
        return
    last = tests[-1][0]
    for index, test in tests:
        result = _run_test(test, program_names, channel)
        if channel.broken:
            report({"i": index, "gone": channel.broken.gone, "message": str(channel.broken)})
            return
        report({"i": index, "r": result}, hold=index == last)


def _run_test(test: dict, program_names: dict, channel: Channel) -> dict:
    started = time.monotonic()
    try:
        if test["kind"] == "assert":
            scope = dict(program_names)
            scope.update(__builtins__=builtins, __name__="solution")
            exec(compile_test(test["code"])[0], scope)
            return {"status": "passed", "duration_s": time.monotonic() - started}
        function = program_names.get(test["entry_point"])
        if function is None:
            raise NameError(f"the program does not define {test['entry_point']!r}")
        value = function(*decode_plain(test["args"]), **decode_plain(test["kwargs"]))
        try:
            tree = encode_plain(value)
        except NotPlainDataError:
            raise NotPlainDataError(
                f"{test['entry_point']}(...) returned {value!r}, which is not plain data (expected None, bool, "
                "int, float, complex, str, bytes or a list/tuple/dict/set of those)"
            ) from None
        return {"status": "returned", "value": tree, "duration_s": time.monotonic() - started}
    except ChannelBroken:
        return {}
    except BaseException as exc:
        return error_result(exc, started)


def _is_result(raw) -> bool:
    return type(raw) is dict and raw.get("status") in ("error", "memory", "failed")


def _broken_result(what: str, started: float) -> dict:
    return {
        "status": "error",
        "error_type": "ProtocolError",
        "message": f"the candidate sent {what}",
        "duration_s": time.monotonic() - started,
    }
