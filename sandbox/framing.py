"""Framing: one JSON object per line, on every pipe of the sandbox (host <-> worker <-> judge <-> candidate).

Standard library only: this module is shipped into the sandbox with the runner.
"""

from __future__ import annotations

import json
import os
import select
import time

_encode = json.JSONEncoder(separators=(",", ":")).encode


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
