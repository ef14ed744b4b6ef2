"""The distance to the scene over time: range readings carried forward by the flow's own rate.

Units: distances m, stamps s, rates 1/s. The distance is the one along the camera's optical
axis to the scene (what a rangefinder on that axis reads, and what
:func:`~optical_flow_ros.core.velocity_estimator.estimate_velocity` scales the scale-free
translation with).

A rangefinder's reading is noisy (1 % is typical), and that noise goes one to one into the
metric velocity: on the simulated flights of bench/velocity_flights.py it was a third to a
half of the ego-velocity's error. But between two readings the distance does not change
freely: the tracks' motion field says at what rate it changes. For a plane ``n . X = h``
(normal ``n = (beta, gamma, 1)`` in the optical frame, distance ``d = h`` along the axis)
seen by a camera moving at ``v`` and turning at ``w``::

    d ln(d) / dt = -(n . v) / d + gamma wx - beta wy

(the plane approaches at ``n . v`` and its normal turns by ``-w x n``): the
``distance_rate`` of a :class:`~optical_flow_ros.core.velocity_estimator.VelocityEstimate`,
with its variance. :class:`DistanceFilter` is a one-state Kalman filter on ``ln d``: each
reading updates it with the variance the sensor states, and between readings it moves by
that rate, its variance growing by the rate's.

The rate's stated variance is the fit's; what it misses (the fitted rate lags a fast climb,
a tilt that is only roughly known, relief the plane does not have) shows in the readings, so
it is measured online: the variance the innovations ask for beyond the readings' own, over
the last :data:`ADAPT_S`, scales the rate's (never below 1). A reading further than
:data:`RESET_SIGMA` innovation standard deviations from the prediction (a step in the terrain,
an outlier) restarts the filter at that reading, so the output is never further from the
readings than the unfiltered one would be for more than a frame. Without a known rate (no
valid fit since the last reading: a reset, a stall, too few tracks) the next reading restarts
it too.
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["ADAPT_S", "RATE_CORRELATION_S", "RESET_SIGMA", "DistanceFilter", "FilteredDistance"]

#: How long the rate's error is taken to persist, s. The fitted rate comes from the tracks'
#: motion field, whose errors last about its span (5 frames at 30 Hz: 0.13 s), so over ``dt``
#: the log distance's variance grows by ``var (dt^2 + 2 tau dt)`` rather than ``var dt^2``.
RATE_CORRELATION_S = 0.2
#: Memory of the online measure of the rate's error, s (exponential forgetting).
ADAPT_S = 1.0
#: A reading further than this many innovation stds from the prediction restarts the filter.
RESET_SIGMA = 5.0


class FilteredDistance(NamedTuple):
    """The filtered distance at one stamp.

    Attributes:
        distance: m.
        variance: of the distance, m^2.
        readings: readings the filter rests on since it (re)started.
    """

    distance: float
    variance: float
    readings: int


class DistanceFilter:
    """One-state Kalman filter on the log distance (see the module docstring).

    Feed it range readings (:meth:`add`, in stamp order) and, after each frame's estimate, the
    distance rate it measured (:meth:`set_rate`); :meth:`at` gives the distance at any stamp
    near the newest reading.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next reading starts the filter."""
        self._stamp = math.nan          # of the state, s
        self._log = math.nan            # ln d
        self._var = math.nan            # of ln d
        self._rate: tuple[float, float] | None = None   # (1/s, 1/s^2)
        self._readings = 0
        self._excess = 0.0              # forgotten sums for the online rate scale
        self._expected = 0.0
        self._scale = 1.0
        self.restarts = 0               # restarts from an implausible reading

    @property
    def newest(self) -> float:
        """Stamp of the newest reading in the filter, s (NaN before the first)."""
        return self._stamp

    @property
    def rate_scale(self) -> float:
        """How much the rate's variance is scaled by, as measured online (>= 1)."""
        return self._scale

    def set_rate(self, rate: float | None, variance: float = 0.0) -> None:
        """The distance rate ``d ln(d)/dt`` (1/s) and its variance (1/s^2) from now on.

        None (or non-finite): not known; the next reading restarts the filter.
        """
        if rate is None or not (math.isfinite(rate) and math.isfinite(variance)):
            self._rate = None
        else:
            self._rate = (float(rate), max(float(variance), 0.0))

    def add(self, stamp: float, distance: float, variance: float) -> None:
        """One range reading: ``distance`` m at ``stamp`` s, its variance m^2 (>= 0).

        A reading older than the newest one restarts the filter at it (time went back: a
        bag loops, or a sensor's clock jumped).
        """
        if not (distance > 0.0 and variance >= 0.0 and math.isfinite(distance)
                and math.isfinite(variance)):
            raise ValueError(f"range reading must be positive and finite with a variance "
                             f">= 0, got {distance} m, {variance} m^2")
        log, noise = math.log(distance), variance / (distance * distance)
        if self._readings == 0 or self._rate is None or stamp < self._stamp:
            self._start(stamp, log, noise)
            return
        dt = stamp - self._stamp
        growth = self._growth(dt)
        predicted, before = self._log + self._rate[0] * dt, self._var
        prior = before + self._scale * growth
        innovation = log - predicted
        spread = prior + noise
        if not spread > 0.0 or innovation * innovation > RESET_SIGMA**2 * spread:
            self.restarts += 1
            self._start(stamp, log, noise)
            return
        # The rate's real error, measured: E[innovation^2] = before + scale * growth + noise.
        keep = math.exp(-dt / ADAPT_S)
        self._excess = keep * self._excess + innovation * innovation - noise - before
        self._expected = keep * self._expected + growth
        if self._expected > 0.0:
            self._scale = max(1.0, self._excess / self._expected)
        gain = prior / spread
        self._stamp = stamp
        self._log = predicted + gain * innovation
        self._var = (1.0 - gain) * prior
        self._readings += 1

    def at(self, stamp: float) -> FilteredDistance | None:
        """The distance at ``stamp`` (s; before or after the newest reading), or None.

        None before the first reading. Without a known rate, the newest reading as it is.
        """
        if self._readings == 0:
            return None
        log, var = self._log, self._var
        if self._rate is not None:
            dt = stamp - self._stamp
            log += self._rate[0] * dt
            var += self._scale * self._growth(abs(dt))
        distance = math.exp(log)
        return FilteredDistance(distance, var * distance * distance, self._readings)

    def _start(self, stamp: float, log: float, noise: float) -> None:
        self._stamp, self._log, self._var, self._readings = stamp, log, noise, 1

    def _growth(self, dt: float) -> float:
        """The log distance's variance the rate's error adds over ``dt`` s (>= 0)."""
        assert self._rate is not None
        return self._rate[1] * dt * (dt + 2.0 * RATE_CORRELATION_S)
