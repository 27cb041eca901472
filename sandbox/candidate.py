"""The candidate's process: it loads the untrusted program and answers calls into it, nothing more.

It decides no verdict. For ``AssertTest`` and ``CallTest`` it is a server: the judge process (see
``judge``) asks it to look up names, call functions, read attributes and iterate, and it answers with
plain data (``plain``), or with a numbered handle for an object that is not plain data. Whatever the
candidate does to this process, forged frames included, it can only change those answers, which is no
more than an honest program computing other values could do. For a ``StdioTest`` it runs the program
as ``__main__`` and the worker judges by the exit status and the captured stdout.

Standard library only: this module is shipped into the sandbox with the runner.
"""

from __future__ import annotations

import builtins
import os
import sys
import time

from codegym.sandbox.framing import compact_json_encoder, json_line_decoder
from codegym.sandbox.isolation import confine
from codegym.sandbox.plain import decode_plain, encode_plain, error_result

# The dunder operations a judge may apply to a handle; everything else stays on the judge's side.
OPERATIONS = {
    "__len__": len,
    "__iter__": iter,
    "__next__": next,
    "__bool__": bool,
    "__getitem__": lambda obj, key: obj[key],
    "__contains__": lambda obj, item: item in obj,
}
MAX_REQUEST_BYTES = 64 << 20


def candidate_main(ctx: dict) -> None:
    """Runs in the forked candidate process; never returns.

    ``ctx`` holds the program, the descriptors to keep (``stdin``, ``stdout``, ``stderr``, ``requests``
    when a judge talks to it, ``replies``), the work dir, the uid and the limits.
    """
    exit_ = os._exit
    # Taken before the candidate runs, so that patching json or os in the program changes nothing here.
    write, read, loads, dumps = os.write, os.read, json_line_decoder(), compact_json_encoder()

    def send(*messages: dict) -> None:
        data = "".join([dumps(message) + "\n" for message in messages]).encode("utf-8")
        written = write(replies, data)
        if written < len(data):
            view = memoryview(data)[written:]
            while view:
                view = view[write(replies, view) :]

    replies = ctx["replies"]
    try:
        confine(ctx)
    except BaseException as exc:
        send({"setup_error": f"candidate: {type(exc).__name__}: {exc}"})
        exit_(70)
    stdio = ctx["stdio"]
    requests = ctx.get("requests")
    program = ctx.pop("program")
    # Sent before any candidate code runs: the first frame is the only one its reader may trust.
    send({"ready": True})
    stdout, stderr = sys.stdout, sys.stderr

    def flush() -> None:
        # Called after every request, so kept cheap: the program may have replaced sys.stdout and stderr.
        current_out, current_err = sys.stdout, sys.stderr
        streams = (stdout, stderr)
        if current_out is not stdout or current_err is not stderr:
            streams = (current_out, current_err, stdout, stderr)
        for stream in streams:
            try:  # noqa: SIM105 - contextlib.suppress costs a microsecond more each time
                stream.flush()
            except BaseException:
                pass

    started = time.monotonic()
    namespace = {"__builtins__": builtins, "__name__": "__main__" if stdio else "solution"}
    ctx = None  # drop the job description before any candidate code runs
    try:
        exec(compile(program, "solution.py", "exec"), namespace)
    except BaseException as exc:
        flush()
        if stdio and isinstance(exc, SystemExit):  # how a stdio program may end cleanly
            code = exc.code
            if code is not None and not isinstance(code, int):
                stderr.write(f"{code}\n")
                flush()
                code = 1
            exit_((code or 0) & 0xFF)
        result = error_result(exc, started)
        send({"exit": result} if stdio else {"load": result})
        exit_(1 if stdio else 0)
    flush()
    if stdio:
        exit_(0)
    _serve(namespace, requests, send, read, loads, flush)
    exit_(0)


def _serve(namespace: dict, requests: int, send, read, loads, flush) -> None:
    """Report the program loaded, then answer the judge's requests until it closes the pipe."""
    handles: list = []
    kinds: dict[int, str] = {}

    def register(obj) -> dict:
        handles.append(obj)
        kinds[len(handles) - 1] = type(obj).__qualname__
        return {"r": len(handles) - 1}

    def lookup(handle):
        if type(handle) is not int or not 0 <= handle < len(handles):
            raise LookupError(f"no object #{handle!r:.20}")
        return handles[handle]

    def encode(value):
        return encode_plain(value, other=register)

    # The load status goes out with the first reply, in one write: the judge asked for the program's names
    # before it loaded, so one wake-up of the judge serves both.
    preface = [{"load": None}]
    buffer = bytearray()
    while True:
        line = None
        if not buffer:
            chunk = read(requests, 1 << 16)
            if not chunk:
                return
            if chunk.find(b"\n") == len(chunk) - 1:  # the usual case: one read brings one request
                line = chunk[:-1]
            else:
                buffer += chunk
        if line is None:
            cut = buffer.find(b"\n")
            while cut < 0:
                chunk = read(requests, 1 << 16)
                if not chunk:
                    return
                buffer += chunk
                if len(buffer) > MAX_REQUEST_BYTES:
                    return
                cut = buffer.find(b"\n")
            line = bytes(buffer[:cut])
            del buffer[: cut + 1]
        request = loads(line)
        kinds.clear()
        started = time.monotonic()
        reply: dict = {"id": request["id"]}
        try:
            op = request["op"]
            if op == "names":
                reply["names"] = {
                    name: _describe(namespace[name], encode) for name in request["names"] if name in namespace
                }
            elif op == "call":
                args = decode_plain(request["args"], ref=lookup)
                kwargs = decode_plain(request["kwargs"], ref=lookup) if "kwargs" in request else {}
                value = lookup(request["ref"])(*args, **kwargs)
                reply["ok"] = encode(value)
                if request.get("after"):
                    # Arguments the call may have changed in place travel back, so a test can see them.
                    reply["after"] = [encode(arg) if type(arg) in (list, dict, set) else None for arg in args]
            elif op == "getattr":
                reply["ok"] = encode(getattr(lookup(request["ref"]), request["name"]))
            else:
                operands = decode_plain(request["args"], ref=lookup)
                reply["ok"] = encode(OPERATIONS[op](lookup(request["ref"]), *operands))
        except BaseException as exc:
            reply.pop("ok", None)
            reply["raise"] = error_result(exc, started)
        flush()
        if kinds:
            reply["kinds"] = {str(k): v for k, v in kinds.items()}
        send(*preface, reply)
        preface = []


def _describe(value, encode) -> dict:
    """How a top-level name of the program reaches the judge: as data, as a module name, or as a handle."""
    if type(value) is type(os):
        name = getattr(value, "__name__", None)
        return {"module": name if type(name) is str else ""}
    try:
        return {"value": encode_plain(value)}
    except (TypeError, ValueError, RecursionError):
        return encode(value)
