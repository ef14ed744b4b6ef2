"""The timing of a fixed-rate frame source driven by a timer: which frame is due, and its stamp.

Frame ``k`` is due at ``start + k / rate``, where ``start`` is the clock at the first tick, and
carries exactly that stamp, so stamp differences are exact multiples of the period whatever
the timer's jitter. ``k`` follows the clock: a tick more than a period late skips the frames it
missed (as a real camera drops them), so stamps never fall behind the clock, and never run
ahead of it either. Pure arithmetic on integer nanoseconds; any clock (wall, ROS or sim time).
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["DueFrame", "FrameSchedule"]


class DueFrame(NamedTuple):
    """The frame a tick should produce.

    Attributes:
        index: frame number since the first tick (0, 1, ...); never repeats.
        stamp_ns: its stamp, ``start + round(index / rate * 1e9)``, ns.
        skipped: frames passed over since the previous tick (0 when on time).
    """

    index: int
    stamp_ns: int
    skipped: int


class FrameSchedule:
    """Frames at ``rate`` Hz from the first tick on (see the module docstring).

    Args:
        rate: frames per second, > 0.
    """

    def __init__(self, rate: float) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number > 0 Hz, got {rate!r}")
        self.rate = rate
        self._start_ns: int | None = None
        self._index = -1

    @property
    def start_ns(self) -> int | None:
        """Clock at the first tick, ns; None before it."""
        return self._start_ns

    def next_frame(self, now_ns: int) -> DueFrame:
        """The frame due at clock ``now_ns`` (ns): the latest due, never one already given."""
        if self._start_ns is None:
            self._start_ns = now_ns
        # floor, not round: a frame is due once its time has come, so a late tick never
        # takes the next frame's stamp, which would run ahead of the clock.
        due = math.floor((now_ns - self._start_ns) * 1e-9 * self.rate + 1e-9)
        index = max(self._index + 1, due)
        skipped = index - self._index - 1
        self._index = index
        return DueFrame(index, self._start_ns + round(index / self.rate * 1e9), skipped)
