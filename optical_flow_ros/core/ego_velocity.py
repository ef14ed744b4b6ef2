"""The camera's velocity frame after frame: what one stream keeps between its estimates.

Frames and units as :func:`~optical_flow_ros.core.velocity_estimator.estimate_velocity`
(camera optical frame, m/s, rad/s; stamps s).

:func:`~optical_flow_ros.core.velocity_estimator.estimate_velocity` is one frame's estimate
from that frame's tracks and sensors. A stream also keeps, from frame to frame:

* the timing of the tracks' velocities (:class:`~.fit_window.FitWindow`: which stamps
  they rest on, and the stalls), which the gyro's rates are matched to;
* the camera's acceleration from its recent estimates
  (:class:`~optical_flow_ros.core.world_acceleration.AccelerationEstimator`): what the
  velocity changes between the instant it is measured and the image stamp. It is fed every
  valid estimate and dropped at a stall (fitted before the gap, stale after it: the first
  estimates after a 0.43 s stall were 10-40x overconfident with it);
* the recent frames' measure of the translation's curvature through the gyro's line
  (``VelocityEstimate.line_bias_excess``, over the last :data:`LINE_BIAS_WINDOW_S`): each
  frame's is a noisy difference, and where it happens to be small on a curving flight the
  median of the last frames is counted instead (``line_bias_floor`` of estimate_velocity);
* the distance: range readings given with :meth:`EgoVelocityEstimator.add_range` are
  filtered over time (:class:`~optical_flow_ros.core.distance_filter.DistanceFilter`,
  carried between readings by each estimate's ``distance_rate``) when the config's
  ``distance_filter`` is on, else the newest is used as it is.

:class:`EgoVelocityEstimator` holds them, so that every user (tracker_node, the benchmarks, a
library user replaying tracks) runs the stage the same way::

    ego = EgoVelocityEstimator(window, max_dt, at_stamp=True)
    for tracks in stream:
        for stamp, range_m, variance in readings_since_last_frame:
            ego.add_range(stamp, range_m, variance)
        timing = ego.timing(tracks.stamp)
        gyro = gyro_rates(times, rates, timing, max_age=0.1, covariance=imu_covariance)
        estimate = ego.estimate(tracks, camera, timing, gyro=gyro)

(``distance=`` in :meth:`~EgoVelocityEstimator.estimate` bypasses the readings: a fixed
distance, or one the caller filtered itself.)
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.distance_filter import DistanceFilter, FilteredDistance
from optical_flow_ros.core.fit_window import FitWindow, VelocityTiming
from optical_flow_ros.core.gyro_rates import GyroRates
from optical_flow_ros.core.track_types import Tracks
from optical_flow_ros.core.velocity_estimator import (
    VelocityConfig,
    VelocityEstimate,
    acceleration_covariance,
    estimate_velocity,
)
from optical_flow_ros.core.world_acceleration import AccelerationEstimator

__all__ = ["DEFAULT_RANGE_MAX_AGE_S", "LINE_BIAS_WINDOW_S", "EgoVelocityEstimator"]

#: The recent frames whose line-bias measure is taken (their median, from 3 of them on), s.
#: Chosen on the accelerating TRAIN-like flights of bench/velocity_flights.py (one gyro
#: sample per frame; median NEES without: 2.76 / 2.68): 0.3 s gave 2.20 / 2.53, 0.6 s 2.15 /
#: 2.54; the steady flights did not move. A median, not a mean: each frame's measure is the
#: squared difference less its modelled variance, which is larger than the real one where
#: frames are lost, and an exponential mean (0.3 s) widened the covariance under frame loss
#: (median NEES of 84 runs 0.64 -> 0.51; the median 0.55, more of them in 1-2: 20 against 18).
LINE_BIAS_WINDOW_S = 0.6
_MIN_BIAS_FRAMES = 3
#: Range readings further than this from the image stamp are not used, s (the tracker
#: node's ``sensor_max_age`` default).
DEFAULT_RANGE_MAX_AGE_S = 0.2
_DEFAULT_CONFIG = VelocityConfig()


class EgoVelocityEstimator:
    """One camera stream's ego-velocity stage (see the module docstring).

    Args:
        window: frames the tracker's velocities rest on (``min(velocity_window,
            track_len)``; the gyro's samples are fitted over the same frames).
        max_dt: the tracker's ``max_dt``, s: a longer gap restarts the window.
        at_stamp: the tracks' velocities are at the image stamp (the ``motion_field``
            per-track estimator) rather than slopes lagging it.
    """

    def __init__(self, window: int, max_dt: float, *, at_stamp: bool = False) -> None:
        self._window = FitWindow(window, max_dt, at_stamp=at_stamp)
        self._acceleration = AccelerationEstimator()
        self._lag = 0.0   # the last valid estimate's, s
        self._bias = _RecentMedian(LINE_BIAS_WINDOW_S)
        self._distance = DistanceFilter()
        self._ranges: list[tuple[float, float, float | None]] = []   # not yet filtered
        self._newest_range: tuple[float, float, float | None] | None = None

    def configure(self, window: int, max_dt: float, *, at_stamp: bool = False) -> None:
        """New tracker settings; the window's stamps and the acceleration are kept."""
        self._window.configure(window, max_dt, at_stamp=at_stamp)

    def reset(self) -> None:
        """Forget the acceleration and the line bias (a tracker reset: new tracks).

        The distance filter keeps its state but not its rate: the next reading restarts it.
        """
        self._acceleration.reset()
        self._bias.reset()
        self._distance.set_rate(None)

    @property
    def distance_filter(self) -> DistanceFilter:
        """The range readings' filter (its state, for diagnostics)."""
        return self._distance

    def add_range(self, stamp: float, distance: float, variance: float | None = None) -> None:
        """A range reading: ``distance`` m along the optical axis at ``stamp`` s.

        ``variance``: what the sensor states, m^2; None or <= 0: ``distance_rel_std`` of the
        config the next estimate gets. Readings are taken in stamp order by the next
        :meth:`estimate` (invalid ones, non-finite or <= 0, are refused with ValueError).
        """
        if not (math.isfinite(distance) and distance > 0.0):
            raise ValueError(f"range reading must be positive and finite, got {distance} m")
        reading = (float(stamp), float(distance),
                   float(variance) if variance is not None and variance > 0.0 else None)
        self._ranges.append(reading)
        self._newest_range = reading   # the newest to arrive (after a bag loop: earlier)

    def timing(self, stamp: float) -> VelocityTiming:
        """The timing of the tracks stamped ``stamp`` (s); call it for every frame.

        Every frame, estimated or not, so that the window follows the tracker. At a stall the
        acceleration and the line bias are dropped.
        """
        timing = self._window.update(stamp)
        if timing.stalled:
            self.reset()
        return timing

    def estimate(self, tracks: Tracks, camera: PinholeCamera | None,
                 timing: VelocityTiming | None, *, distance: float | None = None,
                 distance_variance: float | None = None,
                 gyro: GyroRates | np.ndarray | None = None,
                 config: VelocityConfig | None = None,
                 range_max_age: float = DEFAULT_RANGE_MAX_AGE_S) -> VelocityEstimate:
        """The velocity at ``tracks.stamp``; it feeds the acceleration and the line bias.

        ``timing``: from :meth:`timing` (or the caller's own
        :class:`~.fit_window.FitWindow`: a stall drops the acceleration here too;
        None: the velocities are taken as instantaneous at the stamp). ``distance`` (m) and
        ``distance_variance`` (m^2) given: used as they are; else the range readings
        (:meth:`add_range`), filtered or the newest (``distance_filter``), if the newest is
        within ``range_max_age`` s of the stamp. The rest as
        :func:`~.velocity_estimator.estimate_velocity`.
        """
        if timing is not None and timing.stalled:
            self.reset()
        cfg = config if config is not None else _DEFAULT_CONFIG
        self._filter_ranges(cfg)   # also with a given distance: the readings do not pile up
        if distance is None:
            distance, distance_variance = self._ranged_distance(tracks.stamp, cfg,
                                                                range_max_age)
        # The acceleration is wanted over the lag before the stamp, which is chosen with it:
        # at the middle of the last frame's lag (it changes slowly from frame to frame).
        acceleration = self._acceleration.estimate(tracks.stamp - 0.5 * self._lag)
        estimate = estimate_velocity(tracks, camera, distance=distance,
                                     distance_variance=distance_variance, gyro=gyro,
                                     timing=timing, acceleration=acceleration,
                                     line_bias_floor=self._bias.positive(tracks.stamp),
                                     config=config)
        self._distance.set_rate(estimate.distance_rate, estimate.distance_rate_variance)
        if estimate.line_bias_excess is not None:
            self._bias.add(tracks.stamp, estimate.line_bias_excess)
        if estimate.valid:
            measured = estimate.covariance[:3, :3]
            if estimate.lag > 0.0:   # the velocity as measured: without the lag's term
                measured = measured - estimate.lag**2 * acceleration_covariance(acceleration,
                                                                                cfg)
            self._acceleration.update(tracks.stamp, estimate.measured_linear, estimate.angular,
                                      measured, measured_at=tracks.stamp - estimate.lag)
            self._lag = estimate.lag
        return estimate

    def _filter_ranges(self, cfg: VelocityConfig) -> None:
        """Give the readings added since the last estimate to the filter, in stamp order."""
        pending, self._ranges = sorted(self._ranges, key=lambda r: r[0]), []
        for when, value, variance in pending:
            stated = variance if variance is not None else (cfg.distance_rel_std * value) ** 2
            self._distance.add(when, value, stated)

    def _ranged_distance(self, stamp: float, cfg: VelocityConfig, max_age: float
                         ) -> tuple[float | None, float | None]:
        """(m, m^2) from the range readings for ``stamp``, or (None, None)."""
        newest = self._newest_range
        if newest is None or abs(stamp - newest[0]) > max_age:
            return None, None
        if not cfg.distance_filter:
            return newest[1], newest[2]
        filtered: FilteredDistance | None = self._distance.at(stamp)
        if filtered is None:
            return None, None
        return filtered.distance, filtered.variance


class _RecentMedian:
    """Per-axis median of the (3,) values added over the last ``window`` s.

    Forgotten when a stamp goes back; None until :data:`_MIN_BIAS_FRAMES` values are within
    the window.
    """

    def __init__(self, window: float) -> None:
        self._window = window
        self._items: deque[tuple[float, np.ndarray]] = deque()

    def reset(self) -> None:
        self._items.clear()

    def _trim(self, stamp: float) -> None:
        if self._items and stamp < self._items[-1][0]:
            self._items.clear()
        while self._items and self._items[0][0] < stamp - self._window:
            self._items.popleft()

    def add(self, stamp: float, value: np.ndarray) -> None:
        self._trim(stamp)
        self._items.append((stamp, np.asarray(value, np.float64)))

    def positive(self, stamp: float) -> np.ndarray | None:
        """The median's positive part as of ``stamp``, or None."""
        self._trim(stamp)
        if len(self._items) < _MIN_BIAS_FRAMES:
            return None
        return np.maximum(np.median(np.array([v for _, v in self._items]), axis=0), 0.0)
