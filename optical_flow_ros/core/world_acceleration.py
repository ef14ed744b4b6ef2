"""The camera's acceleration from its own recent velocity estimates, for the lag to the stamp.

Frames and units: velocities in the camera optical frame, m/s; angular rates rad/s; stamps s;
accelerations m/s^2.

:func:`~optical_flow_ros.core.velocity_estimator.estimate_velocity` measures the velocity a
little before the image (where the gyro is best known) and carries it to the image stamp. At
a constant velocity in the world that needs only the rotation (``dv/dt = -w x v`` in the camera
frame); what the world velocity changes over that lag must come from somewhere else: here, from
the published velocities of the last :data:`WINDOW_S` seconds. They are turned into one
frame (the gyro rates integrated between the stamps: the world frame up to a fixed rotation)
and a least-squares line is fitted to them: its slope is the acceleration, and the scatter
about the line (noise, and the acceleration changing within the window) gives its
uncertainty. Its covariance is the slope's (the scatter over the times' spread) plus the
scatter over half the window squared (the acceleration can have changed that much since the
window's middle), both per axis.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

import numpy as np

__all__ = ["MIN_SAMPLES", "WINDOW_S", "Acceleration", "AccelerationEstimator"]

#: Seconds of past velocities fitted.
WINDOW_S = 1.0
#: Fewest velocities (spanning at least half the window) for an estimate.
MIN_SAMPLES = 6


class Acceleration(NamedTuple):
    """The camera's acceleration at a stamp, in its optical frame.

    Attributes:
        value: (3,) m/s^2.
        covariance: (3, 3) (m/s^2)^2.
    """

    value: np.ndarray
    covariance: np.ndarray


def _rotation(rate: np.ndarray, dt: float) -> np.ndarray:
    """Rotation of a body turning at ``rate`` (rad/s, body frame) for ``dt`` s (Rodrigues)."""
    angle_vec = np.asarray(rate, np.float64) * dt
    angle = float(np.linalg.norm(angle_vec))
    if angle < 1e-12:
        return np.eye(3)
    k = angle_vec / angle
    skew = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * skew + (1.0 - math.cos(angle)) * (skew @ skew)


class AccelerationEstimator:
    """Keeps the recent velocity estimates and fits the acceleration (module docstring).

    Feed :meth:`update` every velocity estimate as measured (carried to its stamp at a
    constant world velocity, before any acceleration from here is added: no feedback);
    :meth:`estimate` gives the acceleration (None until enough velocities are known).
    :meth:`reset` after a time jump.
    """

    def __init__(self) -> None:
        self._orientation = np.eye(3)     # camera frame -> the fixed frame
        self._last: tuple[float, np.ndarray] | None = None     # (stamp, rate)
        self._samples: deque[tuple[float, np.ndarray, np.ndarray]] = deque()

    def reset(self) -> None:
        """Forget everything (time jump, tracker reset)."""
        self._orientation = np.eye(3)
        self._last = None
        self._samples.clear()

    def update(self, stamp: float, linear: np.ndarray, angular: np.ndarray,
               variance: float | np.ndarray = 0.0) -> None:
        """Record the velocity ``linear`` (m/s) and rate ``angular`` (rad/s) at ``stamp``.

        ``variance``: the velocity's (3, 3) error covariance in the camera frame, (m/s)^2
        (each axis of the fixed frame then gets its own noise), or one variance for every
        axis. Per axis matters: the scatter about the line beyond this noise is taken as the
        velocity curving, which is amplified ~180x into the acceleration's variance; with
        the mean over the axes a slow flight's vx (5-15x the variance of vy or vz) showed
        curving that was its own noise, and the lag term of the published covariance was
        4-30x its real error on the TRAIN flights of bench/velocity_flights.py.
        """
        stamp = float(stamp)
        if self._last is not None:
            dt = stamp - self._last[0]
            if not 0.0 < dt <= WINDOW_S:
                self.reset()
            else:   # the mean rate over the interval turns the camera frame
                self._orientation = self._orientation @ _rotation(
                    0.5 * (self._last[1] + angular), dt)
        self._last = (stamp, np.asarray(angular, np.float64).copy())
        if np.ndim(variance) == 2:   # its diagonal in the fixed frame
            rotated = self._orientation @ np.asarray(variance, np.float64) @ self._orientation.T
            per_axis = np.maximum(np.diagonal(rotated), 0.0)
        else:
            per_axis = np.full(3, float(variance))
        self._samples.append((stamp, self._orientation @ np.asarray(linear, np.float64),
                              per_axis))
        while self._samples and self._samples[0][0] < stamp - WINDOW_S:
            self._samples.popleft()

    def estimate(self) -> Acceleration | None:
        """The acceleration in the camera frame of the last :meth:`update`.

        Taken as constant since the window's middle; None until enough velocities are known.
        """
        if len(self._samples) < MIN_SAMPLES:
            return None
        t = np.fromiter((s[0] for s in self._samples), np.float64, len(self._samples))
        if t[-1] - t[0] < 0.5 * WINDOW_S:
            return None
        v = np.array([s[1] for s in self._samples])                 # (n, 3)
        noise = np.array([s[2] for s in self._samples])             # (n, 3), (m/s)^2
        # Weighted least squares per axis, each velocity by its own stated variance (the
        # first velocities after a start are several times noisier than the later ones: with
        # equal weights their transient biased the slope beyond its variance).
        top = float(noise.max())
        weights = 1.0 / np.maximum(noise, 1e-9 * top if top > 0.0 else 1.0)
        total = weights.sum(axis=0)
        x = t[:, None] - (weights * t[:, None]).sum(axis=0) / total   # (n, 3)
        sxx = (weights * x * x).sum(axis=0)
        centred = v - (weights * v).sum(axis=0) / total
        slope = (weights * x * centred).sum(axis=0) / sxx             # (3,)
        residual = centred - x * slope
        chi2 = (weights * residual * residual).sum(axis=0) / (t.size - 2)   # 1: just noise
        # Beyond the estimates' own noise the scatter is the velocity curving: a rate of
        # change of acceleration j gives an rms deviation j W^2 / (12 sqrt(5)) from the line
        # over a window W, and the acceleration at the newest sample is off by j W / 2.
        # (Equal noise: chi2 * level is the scatter about the line, level the noise.)
        level = t.size / total                                        # per axis, (m/s)^2
        curving = np.maximum(chi2 - 1.0, 0.0) * level
        span = float(t[-1] - t[0])
        variance = chi2 / sxx + curving * (6.0 * math.sqrt(5.0) / span) ** 2
        to_camera = self._orientation.T
        return Acceleration(to_camera @ slope,
                            to_camera @ np.diag(variance) @ to_camera.T)
