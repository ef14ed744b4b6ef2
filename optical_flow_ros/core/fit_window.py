"""The timing of the tracker's velocity window: when the tracks' velocities were measured.

Stamps and durations in seconds (the images' stamps).

:class:`~optical_flow_ros.core.lk_tracker.LKTracker` fits each velocity over the
last ``velocity_window`` frames, so it describes the motion at the mean stamp of those frames,
``lag`` seconds before the image, at the track's mean position ``p - v lag``.
:class:`FitWindow` follows the frames the tracker fits over and gives each frame's
:class:`VelocityTiming`: what :func:`~optical_flow_ros.core.gyro_rates.gyro_rates` matches the
gyro to and :func:`~optical_flow_ros.core.velocity_estimator.estimate_velocity` estimates at.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

import numpy as np

from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.core.field_velocity import STALL_RATIO

__all__ = ["STALLED_FRAMES", "FitWindow", "VelocityTiming"]


class VelocityTiming(NamedTuple):
    """When the tracks' velocities were measured (see the module docstring).

    Attributes:
        start: stamp of the first frame of the tracker's velocity fit window, s.
        end: stamp of the image (the tracks' stamp), s.
        lag: ``end`` minus the mean stamp of the window's frames: the velocities describe the
            motion at ``end - lag``, s.
        samples: frames in the window; tracks younger than this have shorter fits and are
            not used.
        at_stamp: the velocities are estimated at ``end`` (the tracker's motion_field
            estimator; ``lag`` is 0); the estimate is then made where the gyro is best known
            (the middle of its samples in the window) from the tracker's motion field there,
            and carried to ``end``.
        stalled: one of the two frames after a stall (:class:`FitWindow`): no estimate.
    """

    start: float
    end: float
    lag: float
    samples: int
    at_stamp: bool = False
    stalled: bool = False


#: Frames from a stall on (the first after the gap included) without a velocity estimate.
STALLED_FRAMES = 2


class FitWindow:
    """Follows the frames :class:`~optical_flow_ros.core.lk_tracker.LKTracker` fits over.

    Mirrors the tracker's rule: a slope velocity is the least-squares slope over the last
    ``min(window, frames since the last restart)`` frames; a gap above ``max_dt`` or a stamp
    that does not increase restarts. Feed it every frame the tracker sees. With
    ``at_stamp`` (the tracker's motion_field estimator) the velocities are at the image stamp
    (lag 0, known after one interval) and the window only bounds the gyro samples fitted;
    then a stall also restarts it: a gap above :data:`STALL_RATIO` times the mean interval
    of the window. A straight line through the gyro samples of a window stretched over a
    stall (5 frames spanning 0.53 s at 30 Hz after a 0.43 s gap) misses a turning rate, and
    the field taken through it spans the gap; and the tracks' velocities of the first frames
    after it still rest on the field's interval across the gap. So the two frames after a
    stall are ``timing.stalled`` (:func:`~.velocity_estimator.estimate_velocity` reports
    status ``stalled``).
    The caller drops its acceleration estimate there too (fitted before the stall, stale).
    With ``at_stamp`` a gap above ``max_dt`` (or time going back) is flagged the same way:
    the tracker restarts its field there, and the acceleration from before the gap was
    used by the first estimates after it.
    Measured on tilting flights after a 0.43 s stall (30 Hz): the first estimates had
    NEES(vx, vy) 20-2159 (errors 0.1-0.5 m/s, stated 0.01-0.04 m/s); now <= 1.4 on the
    test's TRAIN flight and <= 8.8 over the next 0.5 s on four held-out flights.

    Args:
        window: the tracker's ``min(velocity_window, track_len)``, frames (>= 2).
        max_dt: the tracker's ``max_dt``, s.
        at_stamp: the velocities are estimated at the stamp.
    """

    def __init__(self, window: int, max_dt: float, *, at_stamp: bool = False) -> None:
        self._stamps: deque[float] = deque()
        self._since_stall = STALLED_FRAMES   # frames since the last stall
        self._max_dt = math.inf
        self._at_stamp = False
        self.configure(window, max_dt, at_stamp=at_stamp)

    def configure(self, window: int, max_dt: float, *, at_stamp: bool = False) -> None:
        """Follow a new tracker configuration; the recent stamps are kept.

        ``at_stamp``: the tracker's velocities are estimated at the image stamp (its
        motion_field estimator): no lag; the window then only bounds the gyro samples fitted.
        """
        if int(window) < 2 or not float(max_dt) > 0.0:
            raise ConfigError(f"window/max_dt: need >= 2 frames and > 0 s, got {window}, "
                              f"{max_dt}")
        self._stamps = deque(self._stamps, maxlen=int(window))
        self._max_dt = float(max_dt)
        self._at_stamp = bool(at_stamp)

    def update(self, stamp: float) -> VelocityTiming:
        """Record the frame at ``stamp`` (s) and return the timing of its tracks' velocities."""
        stamp = float(stamp)
        self._since_stall = min(self._since_stall + 1, STALLED_FRAMES)
        if self._stamps and not 0.0 < stamp - self._stamps[-1] <= self._max_dt:
            self._stamps.clear()   # the tracker restarts its velocities: with at_stamp its
            self._since_stall = 0  # field too, so the caller's acceleration is stale as well
        elif self._at_stamp and self._stalled(stamp):
            self._stamps.clear()
            self._since_stall = 0
        self._stamps.append(stamp)
        stamps = np.fromiter(self._stamps, np.float64, len(self._stamps))
        if self._at_stamp:
            return VelocityTiming(start=float(stamps[0]), end=stamp, lag=0.0,
                                  samples=min(2, int(stamps.size)), at_stamp=True,
                                  stalled=self._since_stall < STALLED_FRAMES)
        return VelocityTiming(start=float(stamps[0]), end=stamp,
                              lag=float(stamp - stamps.mean()), samples=int(stamps.size))

    def _stalled(self, stamp: float) -> bool:
        """Whether the gap before ``stamp`` exceeds STALL_RATIO times the window's mean.

        The mean interval, not the median: a stream that loses frames at random has gaps
        of 1 to 10+ frames (geometric), and against the median (1-3 frames at 3 in 4 lost)
        a stall was declared on 13 % of its frames (each costing two estimates and the
        acceleration) with no gain in accuracy measured (8 % against the mean); a steady
        stream's stall is judged as before (its intervals are equal).
        """
        if len(self._stamps) < 2:
            return False
        mean = (self._stamps[-1] - self._stamps[0]) / (len(self._stamps) - 1)
        return stamp - self._stamps[-1] > STALL_RATIO * mean

