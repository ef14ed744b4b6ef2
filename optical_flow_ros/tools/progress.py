"""Progress on a terminal or a log."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Progress (frames done/total, frames/s, x real time) on a stream.

    One updating line on a terminal, a line every few seconds otherwise.
    """

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self._total = total
        self._stream = stream
        self._tty = bool(stream is not None and stream.isatty())
        self._period = 0.25 if self._tty else 5.0
        self._start = time.perf_counter()
        self._last = self._start
        self._width = 0

    def line(self, frames: int, bag_seconds: float) -> str:
        """The progress text."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        return (f"{frames}/{self._total} frames  {frames / elapsed:.1f} frames/s  "
                f"{bag_seconds / elapsed:.1f}x real time")

    def update(self, frames: int, bag_seconds: float) -> None:
        """Show progress if the period has passed."""
        now = time.perf_counter()
        if self._stream is None or now - self._last < self._period:
            return
        self._last = now
        self._write(self.line(frames, bag_seconds), "\r" if self._tty else "\n")

    def finish(self, frames: int, bag_seconds: float) -> None:
        """Final line."""
        if self._stream is not None:
            self._write(self.line(frames, bag_seconds), "\n")

    def _write(self, text: str, end: str) -> None:
        assert self._stream is not None
        width, self._width = self._width, len(text)
        self._stream.write((text.ljust(width) if self._tty else text) + end)   # blank leftovers
        self._stream.flush()

