"""The camera's acceleration from its own recent velocity estimates, for the lag to the stamp.

Frames and units: velocities in the camera optical frame, m/s; angular rates rad/s; stamps s;
accelerations m/s^2.

:func:`~optical_flow_ros.core.velocity_estimator.estimate_velocity` measures the velocity a
little before the image (where the gyro is best known) and carries it to the image stamp. At
a constant velocity in the world that needs only the rotation (``dv/dt = -w x v`` in the camera
frame); what the world velocity changes over that lag must come from somewhere else: here, from
the published velocities themselves. They are turned into one frame (the gyro rates
integrated between the stamps: the world frame up to a fixed rotation) and each axis is
followed by a bank of Kalman filters, one per motion model of :data:`MODELS`: constant
velocity (white acceleration), constant acceleration (white jerk) and constant jerk (white
snap), each at a few noise densities. Each velocity is fed at the instant it describes (the
stamp less its lag). Every model is scored by its innovations (their Gaussian
log-likelihood, forgotten over :data:`LIKELIHOOD_MEMORY_S`), and the acceleration given out
is the models' accelerations predicted to the instant asked for, weighed by their scores;
its variance is each model's own plus their spread. The axes' filters are independent, but
their errors are not: a range's error lies along the velocity, so every axis the velocity
has a share of sees the same noise. The errors' covariance across the axes follows each
filter's gain (Joseph form) and goes into the published covariance, so the acceleration
across the velocity is not made as uncertain as along it (measured on the 36 recorded
flights: across the velocity its mean squared z 0.29 -> 0.43 on the 30 Hz tilting rocket
flight; median NEES of (vx, vy) 0.97 -> 1.04 on the 45 Hz astronaut flight, 0.90 -> 0.93 on
the rocket's). A coupled filter (one gain from the full noise) was tried and not kept: after
a restart the along noise's correlation carried one axis' model error into the other
(test_ego_velocity's stall test, 3-4 sigma off). A steady flight is followed by the
constant-velocity and slow models (acceleration ~0, small variance), an oscillating one by the
jerk models, which carry the acceleration forward to the instant asked for instead of
holding the value of the recent past.

Why a bank: the earlier estimator, a least-squares line through the last second's velocities,
gives the acceleration at that second's middle, a quarter of a period late on a 2 s
oscillation; one filter with a fixed noise density was either too slow on oscillations or
far too wide on steady flights (its variance set by the density, not the flight). Measured on
the 24 recorded flights of bench/velocity_flights.py (one gyro sample per frame, range filter
off), line -> bank: velocity RMSE 2.75 -> 1.89 % (wobble 60 Hz), 1.59 -> 1.22 % (rocket 30
Hz), 1.59 -> 1.21 % (astronaut 45 Hz), 1.70 -> 1.53 % (a velocity circle at 1.6 m/s^2), 5.04
-> 4.57 % (a 0.03 m/s creep), the steady flights within 0.03 % of before; median NEES of
(vx, vy) on the same four 2.18 -> 1.51, 1.97 -> 0.73, 1.79 -> 1.02, 1.63 -> 1.16.

Its own calibration (test/core/test_world_acceleration.py): where the acceleration wanders
with a jerk density inside the bank's range, calibrated (1 sigma 55-80 %); at the bank's
edges, a constant acceleration or none at all, the variance is the mixture's (members with a
little jerk keep a share of the weight) and conservative, std 3x (constant) to 14x (none) the
error there, which matters little: the lag term it makes is then far below the velocity's own error.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["LIKELIHOOD_MEMORY_S", "MAX_GAP_S", "MIN_SAMPLES", "MODELS", "Acceleration",
           "AccelerationEstimator"]

#: The bank's motion models: (order, noise density). Order 1: constant velocity, white
#: acceleration of density m^2/s^3; 2: constant acceleration, white jerk, m^2/s^5; 3:
#: constant jerk, white snap, m^2/s^7. Decades from an acceleration swinging 1.6 m/s^2 every
#: 2 s down to far below what a steady flight's noise can tell from none: with fewer slow
#: members (down to 1e-5) the steady flights' published covariance was wider (median NEES
#: with the range filter 0.74 instead of 0.91 on a straight flight, 0.36 instead of 0.43 on a
#: slow one).
MODELS: tuple[tuple[int, float], ...] = (
    (1, 1e-6), (1, 1e-5), (1, 1e-4), (1, 1e-3),
    (2, 1e-7), (2, 1e-6), (2, 1e-5), (2, 1e-4), (2, 1e-3), (2, 1e-2), (2, 0.1),
    (3, 1.0), (3, 10.0), (3, 100.0), (3, 1000.0))
#: How long a model's innovations count towards its score (exponential forgetting), s.
LIKELIHOOD_MEMORY_S = 3.0
#: A longer gap between velocities (or time going back) restarts the bank, s.
MAX_GAP_S = 1.0
#: Velocities needed since a (re)start for an estimate.
MIN_SAMPLES = 6
# What the first velocity leaves unknown: the acceleration's and the jerk's variance at a
# start, (m/s^2)^2 and (m/s^3)^2 (2 m/s^2, 10 m/s^3: a drone's manoeuvres).
_START_ACCELERATION_VAR = 4.0
_START_JERK_VAR = 100.0


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


_ORDERS = np.array([order for order, _ in MODELS])
_DENSITIES = np.array([density for _, density in MODELS])


def _per_axis(block: np.ndarray) -> np.ndarray:
    """(..., 9, 9) the same (..., 3, 3) block on each axis, none across them."""
    out = np.zeros(block.shape[:-2] + (3, 3, 3, 3))
    for axis in range(3):
        out[..., axis, :, axis, :] = block
    return out.reshape(block.shape[:-2] + (9, 9))


def _transition(dt: float) -> np.ndarray:
    """(9, 9) state transition of (velocity, acceleration, jerk) of each axis over ``dt`` s.

    States ordered axis by axis: index ``3 * axis + derivative``.
    """
    return _per_axis(np.array([[1.0, dt, 0.5 * dt * dt], [0.0, 1.0, dt], [0.0, 0.0, 1.0]]))


def _process_noise(dt: float) -> np.ndarray:
    """(models, 9, 9) each model's process noise over ``dt`` s.

    The same on every axis and independent across them: its density times the integrated
    white noise of its order; the states above its order get none and so stay exactly 0.
    """
    d2, d3 = dt * dt, dt**3
    by_order = np.zeros((4, 3, 3))
    by_order[1, 0, 0] = dt
    by_order[2, :2, :2] = [[d3 / 3.0, d2 / 2.0], [d2 / 2.0, dt]]
    by_order[3] = [[dt**5 / 20.0, dt**4 / 8.0, d3 / 6.0], [dt**4 / 8.0, d3 / 3.0, d2 / 2.0],
                   [d3 / 6.0, d2 / 2.0, dt]]
    return _per_axis(_DENSITIES[:, None, None] * by_order[_ORDERS])


# Where each axis' velocity is in the 9 states, and each axis' filter's gain placed there.
_VELOCITY = np.kron(np.eye(3), [1.0, 0.0, 0.0])                  # (3, 9)
_IDENTITY = np.eye(9)
_AXES = np.arange(3)


class AccelerationEstimator:
    """Follows the recent velocity estimates and gives the acceleration (module docstring).

    Feed :meth:`update` every velocity estimate as measured (carried to its stamp at a
    constant world velocity, before any acceleration from here is added: no feedback), with
    the instant it describes; :meth:`estimate` gives the acceleration at an instant (None
    until :data:`MIN_SAMPLES` velocities are known). :meth:`reset` after a time jump.
    """

    def __init__(self) -> None:
        self._orientation = np.eye(3)     # camera frame -> the fixed frame
        self._last: tuple[float, np.ndarray] | None = None     # (stamp, rate)
        self._time = 0.0                                        # the filters' instant, s
        self._state: np.ndarray | None = None    # (models, 3 axes, 3): v, a, j per axis
        # (models, 9, 9): the errors' covariance, across the axes too (_transition's order)
        self._cov = np.zeros(0)
        self._score = np.zeros(0)                # (models, 3 axes) log-likelihood
        self._count = 0

    def reset(self) -> None:
        """Forget everything (time jump, tracker reset)."""
        self._orientation = np.eye(3)
        self._last = None
        self._state = None
        self._count = 0

    def update(self, stamp: float, linear: np.ndarray, angular: np.ndarray,
               variance: float | np.ndarray = 0.0, *, measured_at: float | None = None) -> None:
        """Record the velocity ``linear`` (m/s) and rate ``angular`` (rad/s) at ``stamp``.

        ``measured_at``: the instant the velocity describes, s (the stamp less the
        estimate's lag; default the stamp); ``linear`` is in the camera frame of ``stamp``.
        ``variance``: the velocity's (3, 3) error covariance in the camera frame, (m/s)^2
        (each axis of the fixed frame gets its own noise, a slow flight's vx 5-15x noisier
        than its vy or vz, and the noise's correlation across them counts in the published
        covariance), or one variance for every axis. A velocity, variance or
        instant that is not finite is skipped (the rate still turns the frame).
        """
        stamp = float(stamp)
        if self._last is not None:
            dt = stamp - self._last[0]
            if not 0.0 < dt <= MAX_GAP_S:
                self.reset()
            else:   # the mean rate over the interval turns the camera frame
                self._orientation = self._orientation @ _rotation(
                    0.5 * (self._last[1] + angular), dt)
        self._last = (stamp, np.asarray(angular, np.float64).copy())
        if np.ndim(variance) == 2:
            rotated = self._orientation @ np.asarray(variance, np.float64) @ self._orientation.T
        else:
            rotated = np.diag(np.full(3, float(variance)))
        noise = np.maximum(np.diagonal(rotated), 1e-12)
        rotated = rotated.copy()
        np.fill_diagonal(rotated, noise)
        velocity = self._orientation @ np.asarray(linear, np.float64)
        when = stamp if measured_at is None else float(measured_at)
        if not (np.isfinite(velocity).all() and np.isfinite(rotated).all()
                and math.isfinite(when)):
            return   # not a measurement: the filters would carry it for ever
        self._count += 1
        if self._state is None:
            self._start(when, velocity, rotated)
            return
        # A lag that shrank by more than the frame interval puts this velocity before the
        # last one (rare): it is taken at the last one's instant.
        state, cov = self._predict(max(when - self._time, 0.0))
        self._time = max(when, self._time)
        models = len(MODELS)
        own = cov.reshape(models, 3, 3, 3, 3)[:, _AXES, :, _AXES, :]   # (axes, models, 3, 3)
        spread = own[:, :, 0, 0].T + noise                       # (models, axes)
        innovation = velocity - state[:, :, 0]
        gain = np.swapaxes(own[:, :, :, 0], 0, 1) / spread[:, :, None]   # (models, axes, 3)
        self._state = state + gain * innovation[:, :, None]
        # Each axis' filter uses its own gain (its noise's diagonal), but the noise is
        # correlated across the axes (a range error lies along the velocity): the errors'
        # covariance across the axes follows with those gains (Joseph form); the estimates
        # and each axis' own covariance are those of independent filters.
        placed = np.zeros((models, 3, 3, 3))                     # (models, axis, state, axis)
        placed[:, _AXES, :, _AXES] = np.swapaxes(gain, 0, 1)
        placed = placed.reshape(models, 9, 3)
        keep = _IDENTITY - placed @ _VELOCITY
        cov = keep @ cov @ np.swapaxes(keep, 1, 2) + placed @ rotated @ np.swapaxes(placed, 1, 2)
        self._cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        self._score += -0.5 * (np.log(spread) + innovation * innovation / spread)

    def estimate(self, at: float | None = None) -> Acceleration | None:
        """The acceleration at ``at`` (s; default the last velocity's instant).

        In the camera frame of the last :meth:`update`; None until enough velocities are
        known.
        """
        if self._state is None or self._count < MIN_SAMPLES:
            return None
        ahead = 0.0 if at is None else max(float(at) - self._time, 0.0)
        state, cov = self._predict(ahead, forget=False)
        weights = np.exp(self._score - self._score.max(axis=0))
        weights /= weights.sum(axis=0)                           # (models, axes)
        each = state[:, :, 1]
        value = (weights * each).sum(axis=0)
        # Each axis' variance is its mixture's (the models' own plus their spread); across
        # the axes each model's terms count with sqrt(w_a w_b): positive semi-definite, and
        # the diagonal unchanged.
        off = each - value
        scale = np.sqrt(weights)
        covariance = np.einsum("ma,mab,mb->ab", scale,
                               cov[:, 1::3, 1::3] + off[:, :, None] * off[:, None, :], scale)
        to_camera = self._orientation.T
        return Acceleration(to_camera @ value, to_camera @ covariance @ to_camera.T)

    def _start(self, when: float, velocity: np.ndarray, covariance: np.ndarray) -> None:
        """Start every model at ``velocity`` (fixed frame) with its (3, 3) ``covariance``."""
        models = len(MODELS)
        self._time = when
        self._state = np.zeros((models, 3, 3))
        self._state[:, :, 0] = velocity
        self._cov = np.zeros((models, 9, 9))
        self._cov[:, 0::3, 0::3] = covariance
        self._cov[:, 1::3, 1::3] = np.where(_ORDERS >= 2, _START_ACCELERATION_VAR,
                                            0.0)[:, None, None] * np.eye(3)
        self._cov[:, 2::3, 2::3] = np.where(_ORDERS >= 3, _START_JERK_VAR,
                                            0.0)[:, None, None] * np.eye(3)
        self._score = np.zeros((models, 3))

    def _predict(self, dt: float, *, forget: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Every model's state and covariance ``dt`` s after the filters' instant.

        With ``forget`` the scores' memory is advanced by as much.
        """
        if self._state is None:
            raise RuntimeError("no velocity yet")
        transition = _transition(dt)
        models = len(MODELS)
        state = (self._state.reshape(models, 9) @ transition.T).reshape(models, 3, 3)
        cov = transition @ self._cov @ transition.T + _process_noise(dt)
        if forget:
            self._score *= math.exp(-dt / LIKELIHOOD_MEMORY_S)
        return state, cov
