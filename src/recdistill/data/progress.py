"""Progress of a long read, readable on a terminal and in a log file.

tqdm redraws one line with carriage returns, which turns into one very long line (or thousands of
lines) in a log file; here a terminal gets the redrawn line and anything else gets one plain line at a
steady interval. Reads shorter than the interval print nothing.
"""

from __future__ import annotations

import io
import sys
import time
from typing import TextIO


class ReadProgress:
    """Reports ``done`` of ``total`` bytes of ``label`` every ``interval_s`` seconds."""

    def __init__(self, label: str, total: int, interval_s: float = 5.0, stream: TextIO | None = None):
        self.label, self.total, self.interval_s = label, max(int(total), 1), float(interval_s)
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = self.last = time.monotonic()
        self.reported = False

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s:
            return
        self.last, self.reported = now, True
        elapsed = now - self.start
        line = (f"reading {self.label}: {100 * done / self.total:5.1f}% ({done / 1e6:,.0f} of "
                f"{self.total / 1e6:,.0f} MB, {done / 1e6 / max(elapsed, 1e-9):,.0f} MB/s)")
        self.stream.write(("\r" + line) if self.terminal else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.reported and self.terminal:
            self.stream.write("\n")
            self.stream.flush()


class ProgressStream(io.RawIOBase):
    """A read-only stream over ``data`` that reports how far the reader (pyarrow) has got."""

    def __init__(self, data: bytes, progress: ReadProgress):
        self.view, self.position, self.progress = memoryview(data), 0, progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.view[self.position:self.position + len(buffer)]
        buffer[:len(chunk)] = chunk
        self.position += len(chunk)
        self.progress.update(self.position)
        return len(chunk)
