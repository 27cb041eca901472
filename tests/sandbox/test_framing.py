"""Frames are read in linear time and their size is capped (issue 27: an 80 MB reply cost the host 5 s)."""

from __future__ import annotations

import os

import pytest

from codegym.sandbox.framing import LineReader


class CountingBuffer(bytearray):
    """A bytearray that counts how many bytes its ``find`` calls look at."""

    scanned = 0

    def find(self, sub, start=0, *rest):
        found = super().find(sub, start, *rest)
        CountingBuffer.scanned += (found if found >= 0 else len(self)) - start + 1
        return found


def _reader_over(data: bytes, max_line: int) -> LineReader:
    read_end, write_end = os.pipe()
    reader = LineReader(read_end, max_line=max_line)
    reader.buffer = CountingBuffer()
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    for chunk in chunks:  # fed as a pipe delivers it: 64 KiB at a time
        os.write(write_end, chunk)
        reader.feed()
    os.close(write_end)
    os.close(read_end)
    return reader


def test_a_long_frame_in_many_chunks_is_scanned_once():
    CountingBuffer.scanned = 0
    frame = b"x" * (8 << 20) + b"\n"
    reader = _reader_over(frame, max_line=16 << 20)
    assert reader.take_line() == frame[:-1]
    # Scanning from the start at every chunk would look at about 128 x 4 MiB; once is 8 MiB.
    assert CountingBuffer.scanned < 2 * len(frame)


def test_a_frame_over_the_cap_raises_before_it_is_whole():
    with pytest.raises(ValueError, match="frame longer than 1048576 bytes"):
        _reader_over(b"x" * (2 << 20), max_line=1 << 20)


def test_frames_after_a_long_one_come_out_whole_and_in_order():
    reader = _reader_over(b"a" * 200_000 + b"\nb\n" + b"c" * 70_000 + b"\n", max_line=1 << 20)
    assert [len(line) for line in reader.pop_lines()] == [200_000, 1, 70_000]
