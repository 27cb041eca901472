"""Framing: one JSON object per line, on every pipe of the sandbox (host <-> worker <-> judge <-> candidate).

Standard library only: this module is shipped into the sandbox with the runner.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import os
import select
import time


class FrameError(ValueError):
    """Bytes on a sandbox pipe that are not one JSON frame (not JSON, two values, longer than the cap).

    They come from another process (untrusted), so this is not the caller's mistake and not a
    ``UserError``; it is a ``ValueError`` like the JSON and UTF-8 errors raised on the same bytes, so one
    ``except ValueError`` treats every malformed frame alike.
    """


def compact_json_encoder():
    """A function from an object to compact JSON text, as ``json.dumps(obj, separators=(",", ":"))``.

    The C encoder is built once: ``JSONEncoder.encode`` builds it anew for every call, which is a third
    of the cost of a small frame, and every call into a candidate sends two. Without cycle checks (the
    frames are built by this code, and plain data is depth-limited); Python's own encoder where the C
    one is missing or differs.
    """
    fallback = json.JSONEncoder(separators=(",", ":")).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return fallback

    def default(obj):
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    try:
        encoder = make(
            None, default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
        )
        sample = {"a": [1, 2.5, None, True, "\u00e9\n"], "b": {"c": -3}}
        if "".join(encoder(sample, 0)) != fallback(sample):
            return fallback
    except Exception:  # another interpreter's signature
        return fallback

    def encode(obj) -> str:
        return "".join(encoder(obj, 0))

    return encode


def json_line_decoder():
    """A function from one frame's bytes (without its newline) to its value; ``ValueError`` when the
    bytes are not exactly one JSON value (``RecursionError`` when nested too deep), as ``json.loads``.

    It calls the decoder's scanner directly, skipping ``json.loads``'s type checks and whitespace
    matching (frames hold none).
    """
    scan = json.scanner.make_scanner(json.JSONDecoder())

    def loads(line: bytes):
        text = line.decode("utf-8")
        try:
            value, end = scan(text, 0)
        except StopIteration:
            raise FrameError("not a JSON value") from None
        if end != len(text):
            raise FrameError("more than one JSON value")
        return value

    return loads


_encode = compact_json_encoder()
loads_line = json_line_decoder()


def dumps_line(obj) -> bytes:
    """One frame: ``obj`` as compact JSON and a newline."""
    return _encode(obj).encode("utf-8") + b"\n"


def write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written == len(data):  # the usual case: a small frame goes in one write
        return
    view = memoryview(data)[written:]
    while view:
        written = os.write(fd, view)
        view = view[written:]


class LineReader:
    """Reads newline-terminated frames from a file descriptor, with a size cap per frame.

    Linear in what it reads: a long frame arriving in many chunks is scanned once, not once per chunk
    (a frame's newline is searched for only in the bytes that came since the last search).
    """

    def __init__(self, fd: int, max_line: int = 1 << 30):
        self.fd = fd
        self.max_line = max_line
        self.buffer = bytearray()
        self.eof = False
        self._scanned = 0  # no newline in buffer[:_scanned]

    def append(self, data: bytes) -> None:
        """Add bytes read elsewhere (a demultiplexed stream); ValueError once a frame is over the cap."""
        self.buffer += data
        self._check_size()

    def _check_size(self) -> None:
        if len(self.buffer) <= self.max_line:
            return
        cut = self.buffer.find(b"\n", self._scanned)
        if cut < 0:
            self._scanned = len(self.buffer)
        if cut < 0 or cut > self.max_line:
            raise FrameError(f"frame longer than {self.max_line} bytes")

    def take_line(self) -> bytes | None:
        """One complete frame from the buffer, or None if there is none yet."""
        cut = self.buffer.find(b"\n", self._scanned)
        if cut < 0:
            self._scanned = len(self.buffer)
            if len(self.buffer) > self.max_line:
                raise FrameError(f"frame longer than {self.max_line} bytes")
            return None
        if cut > self.max_line:
            raise FrameError(f"frame longer than {self.max_line} bytes")
        line = bytes(self.buffer[:cut])
        del self.buffer[: cut + 1]
        self._scanned = 0
        return line

    def pop_lines(self) -> list[bytes]:
        lines = []
        while (line := self.take_line()) is not None:
            lines.append(line)
        return lines

    def feed(self) -> None:
        """Read what is there (one read); ValueError once a frame is over the cap."""
        chunk = os.read(self.fd, 1 << 16)
        if chunk:
            self.append(chunk)
        else:
            self.eof = True

    def read_line(self, deadline: float | None = None) -> bytes | None:
        """Read one frame; None at end of file; TimeoutError past ``deadline`` (time.monotonic)."""
        if deadline is None and not self.buffer and not self.eof:
            # The usual case of a request and its reply: one read brings exactly one frame.
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.eof = True
                return None
            if chunk.find(b"\n") == len(chunk) - 1:
                return chunk[:-1]
            self.append(chunk)
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
