"""Per-track velocities at the newest image's stamp: one motion field, plus each track's own part.

Units and frames: positions are full-resolution image px (x right, y down), stamps s,
velocities px/s.

Why not a slope. A least-squares slope of each track's positions over its last frames is the
velocity at the middle of those frames, not at the image: under rotation or acceleration it is
several percent off, and fitting a curve per track instead (to move the estimate to the newest
stamp) multiplies the tracking noise. But most of a track's motion is shared with its
neighbours: for a camera over the ground, all of it.

Model. Between two frames (stamps ``t0 < t1``) a track moves by ``d`` px, so ``d / (t1 - t0)``
is its mean velocity over the interval. The mean velocities of all tracks are fitted (least
squares, twice, the second time without tracks beyond :data:`~.track_deviation.TRIM` robust
standard deviations) with the 8-parameter planar motion field at each track's mid-interval
position
(:mod:`~optical_flow_ros.core.planar_field`)::

    u' = th0 + th1 x + th2 y + th6 x^2 + th7 x y
    v' = th3 + th4 x + th5 y + th6 x y + th7 y^2

(``x, y``: position relative to the image centre in units of half the larger image side).
This is exactly the image motion of a plane seen by a moving, rotating pinhole camera
(Longuet-Higgins), so over the ground it leaves only tracking noise; elsewhere (relief,
moving objects) it leaves each track a deviation that changes slowly. A lens bends that
field: given the camera, the tracker fits it in the undistorted image (its px: ``K`` times
the ray; :meth:`~optical_flow_ros.core.track_store.TrackStore.set_lens`), and
:attr:`MotionField.lens` says so.
The fit is repeated (at most :data:`_TRIM_ROUNDS` times) until the tracks left out stop
changing, so a moving object covering a third of the image does not bend the field.

* The field at the stamp: ``th(t)`` is the value at the newest stamp of a polynomial in time
  (degree ``velocity_field_degree``) whose averages over the recent intervals (those ending
  within ``velocity_field_span`` of the stamp, at least degree + 1 of them) match the fitted
  parameters in the least-squares sense (:mod:`~optical_flow_ros.core.interval_polynomial`).
  Interval averages, not samples, so uneven intervals and dropped frames are exact. Each
  ``th`` averages hundreds of tracks, so extrapolating it to the stamp costs little noise.
* Each track's deviation, its mean velocity minus the field, per interval, is averaged with a
  time constant ``velocity_deviation_tau`` (a running mean while the track is younger; what
  the deviations say: :mod:`~optical_flow_ros.core.track_deviation`).
* ``velocity = field(p(t), th(t)) + kept * deviation``: ``kept`` (0-1) is how much of its
  averaged deviation a track's velocity keeps, an empirical-Bayes shrinkage by what the
  scene shows of its deviations (:func:`~.track_deviation.shrinkage`,
  ``velocity_deviation_shrink``): over a plane they are tracking noise and shrink away, a
  moving object's stand out and stay.

A track's velocity is known once it has been followed over one interval (NaN on its first
frame); a time gap, a stall (an interval above :data:`STALL_RATIO` times the longest recent
one), a reset or a frame with fewer than :data:`MIN_FIELD_TRACKS` followed tracks restarts the
field (velocities are then the last interval's mean until a field is known again).

Measured (``bench/bench_velocity_accuracy.py``, 13 held-out simulated flights with image
noise of 2 grey levels, turning and tilting +/-3-5 deg at 0.45-0.7 Hz, 15-60 Hz, >= 100 px/s):
median error against the exact image velocity at the stamp 0.12-0.75 % (0.14-0.92 % before
the degree choice's threshold went from 4 to 2, :data:`~.interval_polynomial.BIAS_KAPPA`;
0.23-1.18 % with each track's whole deviation, before the shrinkage; the most at 60 Hz,
where one interval's tracking noise is the largest velocity noise), where the 5-frame slope
gives 4-23 % and a per-track curve fit (a
quadratic over 5 frames) 0.7-3 %. Cost: ~0.35-0.5 ms per frame over the slope's at 500
tracks (BENCHMARKS.md section 7).

Noise (:class:`MotionField`): the per-interval deviation's robust std (what the tracking
noise is this frame), the error variance of ``th(t)`` (the per-interval parameters' measured
scatter through the polynomial, and the chosen degree's estimated bias, both times the
self-check's calibration factor below, plus the share of the tracking errors that each track
keeps over frames, :func:`~.track_deviation.local_persistent`), and the variance factor of each
track's averaged deviation; the ego-velocity stage turns them into its covariance, and evaluates the
field at other times (:meth:`MotionField.evaluate`: a few frames before the stamp, through
the gyro's line). There each parameter's degree is chosen again, for that time: the
stamp's choice is made for an extrapolation, and a low degree that happens to match the stamp
is a constant through a changing rate before it (single frames 65-84 sigma off in the test,
the spike frames of a held-out hover flight). Consecutive intervals are not independent: an
error of one frame's tracked position (image noise) enters the displacement into that frame
and the one out of it with opposite signs, so sums over consecutive intervals telescope. The
tracks' correlation of consecutive intervals is measured
(:attr:`MotionFieldVelocity.noise_correlation`: -0.3 to -0.5 on the simulated flights) and
every variance through the intervals counts it (:func:`noise_gain`: the polynomial's, the
self-check's, each track's averaged deviation's).

Self-check (:meth:`MotionFieldVelocity._check`): half a span after each stamp, the value
extrapolated there is compared with a centred polynomial through the intervals on both
sides; the squared difference over its modelled variance, averaged over the last seconds,
is the calibration factor of each parameter's published variance (on the TRAIN flights the
factors came out 0.3-8, where the model alone was 0.1-27x off the truth; tracking errors
shared by all tracks over consecutive frames and a rate changing faster than the degree
follows are what the model leaves out). The value at the previous stamp (inside the
intervals: an interpolation) is checked too, for its own factor
(:attr:`MotionFieldVelocity.past_calibration`; its difference's excess is shared with the
reference, see :meth:`MotionFieldVelocity._check`): the two differ, most at low frame rates
(15 Hz: 2-12 at the stamp, 1-2 inside), so the stamp's factor made the field through the
gyro's line 5-10x too wide there. Only evaluations made from degree + 2 intervals are
checked (just after a start an evaluation's degree is capped by the intervals there are and
its bias is unknown: one such check held the factors at their cap for seconds at 11 Hz).
The check needs 4 intervals within half a span of its time: below ~7 Hz with the default
0.3 s span there are never that many, and the factors stay at their prior (the field's
variance at the stamp is the model's alone: mean squared z ~70 on a swaying field at 6 Hz;
widening the check's window to reach 4 intervals measured factors that made frame-loss runs
wider, not better). Errors that persist longer than the span are not seen by
it: the tracking error each track keeps while the image turns is one (the field's error from
it is the same on both sides of the check), so it is measured apart and added unscaled, as a
covariance of its own (:attr:`MotionField.persistent_covariance`). On a turning flight (yaw
0.2-0.5 rad/s) it is 70-95 % of the variance of the field's non-constant terms; without it
those terms erred 2-19x their stated variance (the field's roll/pitch rates, which the
ego-velocity fuses with the gyro's at a weight near 1, ~2x their std across the velocity:
median NEES 4-5.6 on the demo's flight). Neighbouring tracks' lasting errors are correlated
(negatively between overlapping windows over gravel, positively over a smooth photo), so
taken as independent between tracks (one variance from neighbours' differences,
:func:`~.track_deviation.persistent_variance`, through the normal inverse) the std it gave the
velocity across its direction was 1.8-2.9x the error it makes there on four turns and the hover of
bench/velocity_flights.py, and 0.26x on a turn over the rocket photo (measured against the
exact motion); it is now summed from the tracks' own deviations over pairs of neighbours
(:func:`~.track_deviation.local_persistent`): 1.1-1.4x on four of those, 0.82x on the demo's
turn, ~3x on a brick turn and the hover.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

# The underscored aliases: the names MotionFieldVelocity calls these by (defined here before).
from optical_flow_ros.core.interval_polynomial import (
    BIAS_KAPPA,
    Extrapolation,
    Weights,
    extrapolate,
    interval_rows_at,
    nested_weights,
    noise_gain,
)
from optical_flow_ros.core.planar_field import MIN_FIELD_TRACKS, monomials
from optical_flow_ros.core.track_deviation import (
    MIN_SCALE_PX_S,
    RAYLEIGH_MEDIAN,
    TRIM,
    interval_noise,
    local_persistent,
    median,
    neighbour_pairs,
    persistent_variance,
    shrinkage,
)

if TYPE_CHECKING:
    from optical_flow_ros.core.camera_model import PinholeCamera

__all__ = ["COMMON_SHIFT_PX", "STALL_RATIO", "FieldStep", "MotionField", "MotionFieldVelocity"]

_TRIM_ROUNDS = 3            # refits at most, until the tracks left out do not change
_MAX_INTERVALS = 64         # field history kept at most (very high frame rates)
_NOISE_TAU_S = 1.0          # forgetting time of the per-interval noise estimate, s
_MIN_NOISE_DOF = 10.0       # degrees of freedom before the measured noise is trusted
#: Largest error of one interval's displacement shared by all tracks, px: the sub-pixel bias
#: of Lucas-Kanade when every track moves by the same shift (0.03-0.06 px measured on the
#: pure translations of test/core/test_lk_tracker.py); bounds the field's measured noise.
COMMON_SHIFT_PX = 0.1
_CHECK_DEGREE = 2           # the reference polynomial's degree (centred: its bias is small)
_CHECK_TAU_S = 2.0          # forgetting time of the measured calibration, s
#: Calibration factor assumed before any check (and its weight, in checks): 1, the model's
#: own variance (on the TRAIN flights of bench/velocity_flights.py, before the parameters'
#: correlation was kept, a prior of 2 gave a median NEES of 1.27 without gyro, 1 gave 1.44;
#: the chi-square median is 1.39).
_PRIOR_FACTOR = 1.0
_PRIOR_WEIGHT = 5.0
_FACTOR_RANGE = (0.25, 100.0)
# What the self-check checks: the value extrapolated to the stamp, and the value at the
# previous stamp (inside the intervals: what the ego-velocity takes through the gyro's line).
_AT_STAMP, _AT_PREVIOUS = 0, 1
_MAX_CHECKED_DEGREE = 3     # the self-check's factor per degree: higher ones share this one's
#: An interval above this many times the longest of the recent ones is a stall (the tracker
#: got no frame for a while: a node busy or paused); the field restarts after it (see
#: :meth:`MotionFieldVelocity.step`). The ego-velocity's window (fit_window's
#: FitWindow) takes the same ratio against the mean of its intervals, so it flags every stall
#: the field restarts on, and a few more: more than three frames dropped in a row in a steady
#: stream, or frames uneven by far more than a camera's jitter.
STALL_RATIO = 4.0
#: The recent intervals whose longest a gap is compared with. The longest, not the mean: a
#: stream that loses frames at random has geometric gaps (1 to 10+ frames at 3 in 4 lost),
#: and against the mean the field restarted on 8 % of its frames there; each restart leaves
#: a few long intervals, a lagging low degree (TRAIN flights at 3 in 4 lost: per-track
#: error 3.1-4.2 % -> 4.5-6.4 %, ego RMSE 1.8-2.0 % -> 4.8-6.4 % on the two tilting ones).
#: A steady stream's stall is judged as with the mean (its intervals are equal).
_STALL_INTERVALS = 4
#: The forgetting time of the average of the lasting tracking errors' covariance
#: (:func:`~.track_deviation.local_persistent`), s (the self-check's: an
#: effect that lasts seconds). Not critical: on the 36 flights of bench/velocity_flights.py
#: (one gyro sample per frame) the median NEES was in 1-2 on 24 of them at 1, 2, 3 s (with
#: track_deviation's cells of pairs; 18 with the errors taken as independent).
_PERSISTENT_TAU_S = 2.0
#: That covariance is measured at most this often, s (a frame's costs ~0.25 ms at 500 tracks,
#: a sixth of the field's step; the deviations it reads change over a quarter second or more,
#: its average over seconds: at 0.05 s the same figures).
_PERSISTENT_EVERY_S = 0.1
#: Bounds of the measured correlation of consecutive intervals' errors
#: (:attr:`MotionField.noise_correlation`): -0.5 is a tracking error of each frame's position
#: alone (it enters two consecutive displacements with opposite signs), 0 independent intervals.
_CORRELATION_RANGE = (-0.5, 0.5)


@dataclass(frozen=True)
class MotionField:
    """The tracker's motion field of one frame, and what its fits say about its noise.

    The field's velocity at points p (px) and time t is
    ``field_basis(p, centre, scale) @ theta_at(t)``; the tracks' velocities at the stamp are
    that plus each track's own averaged deviation.

    Attributes:
        stamp: the frame's time, s.
        theta: (8,) the field's parameters at the stamp, px/s.
        theta_variance: (8,) their error variance (noise and estimated bias), (px/s)^2: an
            error common to all tracks.
        deviation_std: robust std per component of one interval's mean velocity about the
            field (tracking noise, plus relief and moving objects), px/s.
        variance_factor: (N,) each track's variance from its own averaged deviation, in units
            of ``deviation_std^2`` (independent across tracks), aligned with the tracks.
        centre: (2,) image centre of the field's coordinates, px.
        scale: px per unit of the field's coordinates.
        intervals: (n, 10) the fitted intervals the polynomial used: start s, end s, the 8
            parameters.
        degrees: (8,) the polynomial degree chosen for each parameter.
        noise: (8,) the variance of one interval's parameters it assumed (before the
            self-check's factor), (px/s)^2.
        bias_variance: (8,) the part of ``theta_variance`` that is the estimated squared bias
            of the chosen degree (times the factor), (px/s)^2.
        correlation: (8, 8) correlation of the parameters' errors but the lasting ones (see
            :attr:`persistent_covariance`): the self-check's measured one, shrunk towards the
            newest interval's fit's while few checks came in
            (:meth:`MotionFieldVelocity._error_correlation`); None: uncorrelated.
        calibration: (8,) the self-check's factor of a value at the stamp (in
            ``theta_variance``); None: 1.
        past_calibration: (8,) its factor of a value at the previous stamp; None: as at the
            stamp.
        max_degree: ``velocity_field_degree``: the highest degree :meth:`evaluate` chooses
            from.
        unbiased_bias2: (8,) the chosen degree's squared bias at the stamp estimated
            without the degree choice's threshold (not times the factor), (px/s)^2; None:
            unknown.
        degree_calibration: (8,) the self-check's factor of a value at the stamp for the
            degree each parameter chose there
            (:meth:`MotionFieldVelocity.degree_calibration`); None: ``calibration``.
        span: ``velocity_field_span``, s (0: unknown).
        withheld: (N, 2) the part of each track's averaged deviation that its published
            velocity leaves out (the shrinkage, see :func:`~.track_deviation.shrinkage`), px/s,
            aligned with the tracks: ``velocities + withheld`` is the field plus every track's whole
            deviation; None: nothing withheld.
        persistent_variance: (8,) the part of ``theta_variance`` (and of
            :meth:`evaluate`'s variance) that comes from the tracking error each track keeps
            over frames (the diagonal of :attr:`persistent_covariance`), (px/s)^2: the same
            at every time (the polynomial, whose weights sum to one, passes it unchanged)
            and not seen by the self-check (both sides share it), so not times its factor;
            zeros: none.
        noise_correlation: (8,) the correlation of one interval's parameters' errors with
            the next interval's: the tracks' own (:attr:`MotionFieldVelocity.noise_correlation`)
            on the share of ``noise`` that the tracks' independent errors make (the newest
            fit's), none on the rest (errors shared by all tracks); the variance of any
            combination of the intervals is :func:`noise_gain` of its weights times
            ``noise``. Zeros: independent intervals.
        persistent_covariance: (8, 8) the covariance of :attr:`persistent_variance`'s
            part, (px/s)^2: the lasting errors' own, measured
            (:func:`~.track_deviation.local_persistent`, averaged over
            :data:`_PERSISTENT_TAU_S`), so its correlation is not :attr:`correlation`'s;
            None: that part has :attr:`correlation` too.
        lens: the camera whose lens distortion the field undoes: its coordinates (and
            ``intervals``, ``theta``) are px of that camera's undistorted image
            (:meth:`~optical_flow_ros.core.camera_model.PinholeCamera.undistort_px`); None:
            the raw image's px.
        undistorted: (N, 2) with a lens, the tracks' positions in its undistorted image, px,
            aligned like ``withheld`` (what the field was fitted at; NaN for tracks it has
            not followed yet); None: not given (then
            :func:`~optical_flow_ros.core.velocity_estimator.estimate_velocity` undistorts
            the tracks itself).
        undistortion_jacobian: (N, 2, 2) the undistortion's Jacobian at ``undistorted`` (d
            undistorted px / d raw px), aligned the same way; None: not given.
    """

    stamp: float
    theta: np.ndarray
    theta_variance: np.ndarray
    deviation_std: float
    variance_factor: np.ndarray
    centre: np.ndarray
    scale: float
    intervals: np.ndarray
    degrees: np.ndarray
    noise: np.ndarray
    bias_variance: np.ndarray
    correlation: np.ndarray | None = None
    calibration: np.ndarray | None = None
    past_calibration: np.ndarray | None = None
    max_degree: int = 0
    unbiased_bias2: np.ndarray | None = None
    degree_calibration: np.ndarray | None = None
    span: float = 0.0
    withheld: np.ndarray | None = None
    lens: PinholeCamera | None = None
    persistent_variance: np.ndarray = field(default_factory=lambda: np.zeros(8))
    noise_correlation: np.ndarray = field(default_factory=lambda: np.zeros(8))
    persistent_covariance: np.ndarray | None = None
    undistorted: np.ndarray | None = None
    undistortion_jacobian: np.ndarray | None = None

    def theta_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The parameters at time ``t`` (s) and their error variance.

        ``t`` within the intervals, or the stamp: see :meth:`evaluate`.
        """
        if t == self.stamp:
            return self.theta, self.theta_variance
        theta, variance, _, _ = self.evaluate(t)
        return theta, variance

    def evaluate(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The parameters at ``t`` (s), as at the stamp but with the degree chosen for ``t``.

        Each parameter's degree is the one with the least estimated error at ``t`` (the
        stamp's choice, made for an extrapolation, can be far off inside the intervals: a
        degree 0 that happens to match the stamp is a constant through a changing rate).
        Its variance is the chosen polynomial's noise gain at ``t`` (:func:`noise_gain`
        with :attr:`noise_correlation`) times ``noise`` plus
        its estimated squared bias there, times the self-check's factor for ``t``
        (:attr:`past_calibration` up to the newest interval's start, :attr:`calibration`
        at the stamp, linear in between), plus :attr:`persistent_variance`.

        Returns (theta (8,) px/s, variance (8,) (px/s)^2, weights (8, n) of the intervals'
        parameters in theta, the variance's squared-bias part (8,) (px/s)^2).
        """
        theta, variance, weights, bias2 = self.evaluate_many(np.array([t], np.float64))
        return theta[0], variance[0], weights[0], bias2[0]

    def evaluate_many(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray]:
        """:meth:`evaluate` at each of ``times`` (M,) s, in one batch (numpy over the times).

        Returns (theta (M, 8) px/s, variance (M, 8) (px/s)^2, weights (M, 8, n), squared-bias
        part (M, 8) (px/s)^2): row m is :meth:`evaluate` of ``times[m]``.
        """
        t = np.asarray(times, np.float64).reshape(-1)
        starts, ends, thetas = self.intervals[:, 0], self.intervals[:, 1], self.intervals[:, 2:]
        top = min(self.max_degree, max(starts.shape[0] - 2, 0))   # as extrapolate
        q, r = np.linalg.qr(interval_rows_at(starts, ends, t, top))   # (M, n, top + 1)
        weights = np.cumsum(q * np.linalg.inv(r)[:, :1, :], axis=2).transpose(0, 2, 1)
        rho = self.noise_correlation
        gains = noise_gain(weights[:, :, None, :], rho)                 # (M, top + 1, 8)
        excess = BIAS_KAPPA * noise_gain((weights[:, top:] - weights)[:, :, None, :], rho)
        estimates = weights @ thetas                                    # (M, top + 1, 8)
        mse = (estimates - estimates[:, top:]) ** 2
        mse -= excess * self.noise
        np.maximum(mse, 0.0, out=mse)
        mse += gains * self.noise
        best = np.argmin(mse, axis=1)[:, None, :]                       # (M, 1, 8)
        chosen = np.take_along_axis(mse, best, axis=1)[:, 0]
        bias2 = chosen - np.take_along_axis(gains, best, axis=1)[:, 0] * self.noise
        factor = self.factors_at(t)
        return (np.take_along_axis(estimates, best, axis=1)[:, 0],
                factor * chosen + self.persistent_variance,
                np.take_along_axis(weights, best.transpose(0, 2, 1), axis=1),
                factor * np.maximum(bias2, 0.0))

    def factor_at(self, t: float) -> np.ndarray:
        """(8,) the self-check's calibration factor of a value at ``t`` (s).

        ``past_calibration`` up to the newest interval's start, ``calibration`` at the
        stamp, linear in between; ones when the field carries none.
        """
        return self.factors_at(np.array([t], np.float64))[0]

    def factors_at(self, times: np.ndarray) -> np.ndarray:
        """(M, 8): :meth:`factor_at` at each of ``times`` (M,) s."""
        t = np.asarray(times, np.float64).reshape(-1, 1)
        at_stamp = np.ones(8) if self.calibration is None else self.calibration
        if self.past_calibration is None:
            return np.repeat(at_stamp[None, :], t.shape[0], axis=0)
        start = float(self.intervals[-1, 0])
        share = np.clip((t - start) / max(self.stamp - start, 1e-9), 0.0, 1.0)
        return share * at_stamp + (1.0 - share) * self.past_calibration


class FieldStep(NamedTuple):
    """One frame of :meth:`MotionFieldVelocity.step`.

    Attributes:
        velocities: (N, 2) float32 px/s at the newest stamp.
        deviation: (N, 2) float64 each track's averaged deviation from the field, px/s (state).
        count: (N,) int32 intervals averaged into ``deviation`` (state; 0 = none).
        variance_factor: (N,) float64 variance of ``deviation`` in units of one interval's
            (state): the deviation's part of a velocity's variance is
            ``variance_factor * deviation_std^2``.
        field: the frame's :class:`MotionField`, None when no field was fitted.
        kept: (N,) float64 the share of ``deviation`` in ``velocities`` (1 without a field
            or without shrinkage; see :func:`~.track_deviation.shrinkage`).
        residuals: (N, 2, 2) float64 each track's displacement about the field over its last
            two intervals, newest first, px (state; NaN: not followed then); None when
            :meth:`MotionFieldVelocity.step` was given none.
    """

    velocities: np.ndarray
    deviation: np.ndarray
    count: np.ndarray
    variance_factor: np.ndarray
    field: MotionField | None
    kept: np.ndarray
    residuals: np.ndarray | None = None


# The field in monomials: u' = d @ C[:, 0], v' = d @ C[:, 1] with C = theta_ext[_COEFF]
# (theta_ext: theta with a 0 appended). The normal equations come from the moments of the
# monomials and velocities, M = d^T [d, u', v'] padded with a zero row 6 and a zero column 8:
# normal[i, j] = M[_U[i], _U[j]] + M[_V[i], _V[j]] and rhs[i] = M[_U[i], 6] + M[_V[i], 7],
# where index 6 of _U/_V means "not in this component" (a zero row, and column 8).
_COLUMNS = np.arange(8)
_COEFF = np.array([[0, 3], [1, 4], [2, 5], [6, 8], [7, 6], [8, 7]])
_U = np.array([0, 1, 2, 6, 6, 6, 3, 4])
_V = np.array([6, 6, 6, 0, 1, 2, 4, 5])
_NORMAL_U = (_U[:, None] * 9 + np.where(_U == 6, 8, _U)[None, :]).ravel()
_NORMAL_V = (_V[:, None] * 9 + np.where(_V == 6, 8, _V)[None, :]).ravel()
_RHS_U = _U * 9 + 6
_RHS_V = _V * 9 + 7


def _coefficients(theta: np.ndarray) -> np.ndarray:
    """(6, 2) coefficients of the monomials for u' and v'."""
    extended = np.zeros(9)
    extended[:8] = theta
    return extended[_COEFF]


def _solve_field(moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The field's least-squares parameters from its moments.

    Returns (theta (8,), the inverse of the normal matrix (8, 8)).
    """
    flat = moments.ravel()
    normal = (flat[_NORMAL_U] + flat[_NORMAL_V]).reshape(8, 8)
    try:
        inverse = np.linalg.inv(normal)
    except np.linalg.LinAlgError:
        inverse = np.linalg.pinv(normal)
    return inverse @ (flat[_RHS_U] + flat[_RHS_V]), inverse


def _correlation(covariance: np.ndarray) -> np.ndarray:
    """The correlation matrix of a covariance matrix (zero variances left uncorrelated)."""
    std = np.sqrt(np.maximum(np.diagonal(covariance), 0.0))
    scale = np.where(std > 0.0, 1.0 / np.where(std > 0.0, std, 1.0), 0.0)
    out = covariance * np.outer(scale, scale)
    np.fill_diagonal(out, 1.0)
    return out


class _Pending(NamedTuple):
    """An evaluation to be checked once the intervals after its time are known."""

    stamp: float             # s: the time it was evaluated at
    serials: np.ndarray      # (n,) serial numbers of the intervals it used
    weights: np.ndarray      # (8, n) each parameter's weights of those intervals
    theta: np.ndarray        # (8,) its value, px/s
    noise: np.ndarray        # (8,) one interval's noise variance it assumed, (px/s)^2
    bias2: np.ndarray        # (8,) its estimated squared bias, (px/s)^2
    correlation: np.ndarray  # (8,) consecutive intervals' noise correlation it assumed
    kind: int = _AT_STAMP    # _AT_STAMP or _AT_PREVIOUS
    degrees: np.ndarray | None = None   # (8,) the degree each parameter chose (at the stamp)


class MotionFieldVelocity:
    """The field's history and the per-frame step (see the module docstring).

    Per-track state (deviation, count, variance factor) is kept by the caller, aligned with
    its tracks, and passed to :meth:`step`; the field's history lives here.

    Args:
        span: ``velocity_field_span``, s.
        degree: ``velocity_field_degree``.
        tau: ``velocity_deviation_tau``, s.
        shrink: ``velocity_deviation_shrink``: publish each track's deviation shrunk by
            what the scene says about it (:func:`~.track_deviation.shrinkage`); False: all of it.
    """

    def __init__(self, span: float, degree: int, tau: float, shrink: bool = True) -> None:
        # The recent intervals, oldest first: [start, end, theta (8), theta's variance (8)].
        self._history = np.empty((_MAX_INTERVALS, 18))
        self._length = 0
        self._weights_cache: dict[tuple[int, bytes], Weights] = {}
        # Every recent interval with its serial number (the self-check's reference), and the
        # extrapolations still to be checked; see _check.
        self._archive = np.empty((_MAX_INTERVALS, 11))   # serial, start, end, theta (8)
        self._archived = 0
        self._serial = 0
        self._pending: deque[_Pending] = deque()
        self.reset()   # the noise level and the self-check's sums start empty
        self.configure(span, degree, tau, shrink)

    def configure(self, span: float, degree: int, tau: float, shrink: bool = True) -> None:
        """New settings; the history is kept."""
        self._span, self._degree, self._tau = float(span), int(degree), float(tau)
        self._shrink = bool(shrink)

    def restart(self) -> None:
        """Forget the field (time gap).

        Its measured noise level, calibration and the lasting errors' covariance are kept:
        they describe the tracking, not the field.
        """
        self._length = 0
        self._archived = 0
        self._pending.clear()

    def reset(self) -> None:
        """Forget everything, the measured noise level too.

        The tracker's reset: what follows is tracked exactly as by a new tracker.
        """
        self.restart()
        # Variance of one interval's parameters about their true course (tracking errors
        # shared by all tracks, e.g. the sub-pixel bias of one common shift), (px/s)^2.
        self._noise_squares = np.zeros(8)
        self._noise_dof = np.zeros(8)
        # Consecutive intervals' correlation (noise_correlation): medians of the tracks'
        # squared residual changes over one and over two intervals, and their weight.
        self._change_sums = np.zeros(2)
        self._change_weight = 0.0
        # The lasting errors' covariance of the field's parameters (_add_persistent): its
        # forgetting sum and weight, when it was last added to, and the mean (None: none).
        self._persistent_sum = np.zeros((8, 8))
        self._persistent_weight = 0.0
        self._persistent_time = -math.inf
        self._persistent: np.ndarray | None = None
        # The self-check's running sums (see _check): per kind, and per chosen degree.
        self._ratio_sum = np.zeros((2, 8))      # rows: _AT_STAMP, _AT_PREVIOUS
        self._ratio_weight = np.zeros(2)
        # Per kind, the checks' normalised errors' products (8, 8): their correlation.
        self._error_products = np.zeros((2, 8, 8))
        self._degree_sum = np.zeros((_MAX_CHECKED_DEGREE + 1, 8))
        self._degree_weight = np.zeros((_MAX_CHECKED_DEGREE + 1, 8))
        self._update_factors()

    @property
    def calibration(self) -> np.ndarray:
        """(8,) measured ratio of the extrapolation's squared error to its modelled variance.

        See :meth:`_check`; :data:`_PRIOR_FACTOR` until checks come in.
        """
        return self._factor(_AT_STAMP)

    @property
    def noise_correlation(self) -> float:
        """Measured correlation of one interval's tracking error with the next interval's.

        Image noise (and anything else that moves one frame's tracked positions) enters the
        displacement into that frame and the one out of it with opposite signs: a position
        error alone gives -0.5, independent displacement errors 0 (the simulated flights of
        bench/velocity_flights.py with 2 grey levels of image noise: -0.3 to -0.5 per track,
        -0.35 to -0.5 in the fitted field's parameters). Averages over consecutive intervals
        then err far less than independent intervals would (a smooth weighting keeps mostly
        the end intervals' share): treated as independent, the field through the gyro's line
        was 2-3x wider than its error on a hover flight.

        From the tracks' displacements about the field (``d_k``, px) over their last three
        intervals: with ``c`` the correlation at one interval and none beyond,
        ``E|d_k - d_k-1|^2 / E|d_k - d_k-2|^2 = 1 - c`` whatever each track keeps over frames
        (its lasting error, a true deviation: both differences cancel it). The medians over
        the tracks of each frame, summed with a forgetting time of ``_NOISE_TAU_S``; 0 before
        any, and within :data:`_CORRELATION_RANGE`.
        """
        if self._change_weight <= 0.0 or self._change_sums[1] <= 0.0:
            return 0.0
        value = 1.0 - self._change_sums[0] / self._change_sums[1]
        return min(max(value, _CORRELATION_RANGE[0]), _CORRELATION_RANGE[1])

    @property
    def past_calibration(self) -> np.ndarray:
        """(8,) the same factor for the value at the previous stamp, inside the intervals.

        The ego-velocity takes the field there (through the gyro's line), where the
        polynomial interpolates: its error is not the extrapolation's, and the check's
        difference is shared differently between the value and the reference (see
        :meth:`_check`).
        """
        return self._factor(_AT_PREVIOUS)

    def degree_calibration(self, degrees: np.ndarray) -> np.ndarray:
        """(8,) the stamp's calibration factor of each parameter for the degree it chose.

        From the checks of the values extrapolated with that degree alone (see
        :meth:`_check`), shrunk towards :attr:`calibration` (the factor over all degrees,
        with :data:`_PRIOR_WEIGHT` checks' weight) while few came in. One factor for every
        degree mixes a high degree's noise with a low degree's bias that the degree choice
        leaves uncounted (see :func:`~.field_gyro_fusion.stamp_field_variance`).
        """
        rows = np.clip(np.asarray(degrees, np.int64), 0, _MAX_CHECKED_DEGREE)
        columns = np.arange(8)
        total = self.calibration
        factor = ((self._degree_sum[rows, columns] + _PRIOR_WEIGHT * total)
                  / (self._degree_weight[rows, columns] + _PRIOR_WEIGHT))
        return np.minimum(np.maximum(factor, _FACTOR_RANGE[0]), _FACTOR_RANGE[1])

    def _error_correlation(self, fitted: np.ndarray) -> np.ndarray:
        """(8, 8) the correlation of the parameters' errors (:attr:`MotionField.correlation`).

        The self-check's (its errors over their modelled std, both kinds, with
        :data:`_CHECK_TAU_S`' forgetting), shrunk towards ``fitted`` (the newest interval's
        fit's: independent track errors) with :data:`_PRIOR_WEIGHT` checks' weight. The
        fit's alone is not the errors': they come mostly from what the checks measure (errors
        shared by the tracks over frames, a rate the degree does not follow), whose
        correlation the tracks' layout does not set. Measured against the exact field on the
        noisy flights of bench/velocity_flights.py: between the constant term and the
        quadratic one of u', the fit's -0.60 to -0.65 on every flight, the errors' -0.57 to
        +0.32. On the 28 noisy flights of bench/velocity_calibration.py (3 draws) the median
        NEES of (vx, vy) in 1-2 went from 18, 18, 18 flights per draw to 19, 19, 21 (pooled
        19 -> 20; sum of |ln(NEES / 1.39)| 6.52 -> 6.27), without gyro (2 draws) from 12, 15
        to 18, 20 (pooled 15 -> 21; 8.99 -> 7.01); the lowest 3-sigma coverage 98.6 % and
        98.8 % (99.3 % before without gyro).
        """
        weight = float(self._ratio_weight.sum())
        if weight <= 0.0:
            return fitted
        return (weight * self._measured_correlation + _PRIOR_WEIGHT * fitted) / (
            weight + _PRIOR_WEIGHT)

    def _factor(self, kind: int) -> np.ndarray:
        return self._factors[kind]

    def _update_factors(self) -> None:
        """Recompute the factors and the errors' correlation (both change only in _check)."""
        factors = ((self._ratio_sum + _PRIOR_WEIGHT * _PRIOR_FACTOR)
                   / (self._ratio_weight[:, None] + _PRIOR_WEIGHT))
        self._factors = np.minimum(np.maximum(factors, _FACTOR_RANGE[0]), _FACTOR_RANGE[1])
        self._measured_correlation = _correlation(self._error_products.sum(axis=0))

    def step(self, previous: np.ndarray, current: np.ndarray, start: float, end: float,
             shape: tuple[int, int], deviation: np.ndarray, count: np.ndarray,
             variance_factor: np.ndarray, residuals: np.ndarray | None = None) -> FieldStep:
        """Velocities at ``end`` of tracks followed from ``previous`` to ``current``.

        ``previous`` (at ``start``) and ``current`` are (N, 2) px; the per-track state
        (``deviation``, ``count``, ``variance_factor`` and ``residuals``, see
        :class:`FieldStep`) is that of the previous step; without ``residuals`` the
        correlation of consecutive intervals is not measured.
        ``shape`` is the image's (rows, cols). Returns the velocities and the new state.
        Raises ValueError unless ``end > start`` (a repeated or earlier stamp is the caller's
        to handle, e.g. by :meth:`reset`, as the tracker does).
        """
        dt = end - start
        if not dt > 0.0:   # also NaN: a velocity over no time (or negative) is no velocity
            raise ValueError(f"an interval must end after it starts: start {start!r} s, "
                             f"end {end!r} s")
        n = current.shape[0]
        unknown = None if residuals is None else np.full((n, 2, 2), np.nan)
        after = np.asarray(current, np.float64).T
        before = np.asarray(previous, np.float64).T
        data = np.empty((8, n))    # rows: monomials at mid-interval, mean velocity u', v'
        velocity = data[6:]
        np.subtract(after, before, out=velocity)
        velocity *= 1.0 / dt
        if n < MIN_FIELD_TRACKS:
            self.restart()
            return FieldStep(velocity.T.astype(np.float32), np.zeros((n, 2)),
                             np.zeros(n, np.int32), np.ones(n), None, np.ones(n), unknown)
        if self._stalled(dt):
            # A polynomial through an interval several times longer than the others bridges
            # the gap with one mean: the stamps after it were off by several sigma, and the
            # self-check's reference through it pinned the calibration factors at their
            # maximum for ~9 s (a 0.43 s stall at 30 Hz). The field restarts after the gap;
            # each track keeps its deviation (the scene did not change).
            self.restart()
            return FieldStep(velocity.T.astype(np.float32), deviation, count,
                             variance_factor, None, np.ones(n), unknown)
        rows, cols = shape
        centre = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
        scale = max(rows, cols) / 2.0
        d = monomials(0.5 * (before + after), centre, scale, out=data[:6])
        moments = np.zeros((7, 9))
        moments[:6, :8] = d @ data.T
        theta, inverse = _solve_field(moments)
        residual = velocity - _coefficients(theta).T @ d              # (2, N) px/s
        squared = residual[0] * residual[0] + residual[1] * residual[1]
        sigma = max(math.sqrt(median(squared)) / RAYLEIGH_MEDIAN, MIN_SCALE_PX_S)
        full = moments.copy()
        rejected = np.zeros(n, bool)
        for _ in range(_TRIM_ROUNDS):   # refit without the outliers: their moments subtracted
            outliers = squared > (TRIM * sigma) ** 2
            if np.array_equal(outliers, rejected):
                break
            rejected = outliers
            chosen = data[:, rejected]
            moments = full.copy()
            moments[:6, :8] -= chosen[:6] @ chosen.T
            theta, inverse = _solve_field(moments)
            residual = velocity - _coefficients(theta).T @ d
            squared = residual[0] * residual[0] + residual[1] * residual[1]
            sigma = max(math.sqrt(median(squared[~rejected])) / RAYLEIGH_MEDIAN,
                        MIN_SCALE_PX_S)
        theta_var = sigma * sigma * np.diagonal(inverse)
        self._append(start, end, theta, theta_var)
        if residuals is not None:
            residuals = self._measure_correlation(residual.T * dt, residuals, rejected, dt)
        result, noise, field_rho = self._field_at(end, dt)
        theta_end = result.theta
        factor = self.calibration

        # Each track's deviation: a running mean while young, then exponential (tau). Its
        # last interval entered the mean with weight `before` and is correlated with this
        # one by the tracks' measured correlation: the innovation's variance and the mean's
        # carry that term (a position error alone: the mean of a mature track is ~8x less
        # noisy than independent intervals would make it).
        followed = count > 0
        alpha_min = -math.expm1(-dt / self._tau)
        before = np.where(followed, np.maximum(1.0 / np.maximum(count, 1), alpha_min), 0.0)
        rho = self.noise_correlation   # 0 while not measured (no residuals given)
        noise2 = interval_noise(residual.T - deviation, variance_factor - 2.0 * rho * before,
                                 followed, sigma)
        alpha = 1.0 / (count + 1.0)
        np.maximum(alpha, alpha_min, out=alpha)
        deviation = deviation + alpha[:, None] * (residual.T - deviation)
        variance_factor = np.where(followed, variance_factor, 0.0)   # NaN for fresh tracks
        variance_factor *= (1.0 - alpha) ** 2
        variance_factor += alpha * alpha + 2.0 * rho * alpha * (1.0 - alpha) * before
        velocities = (_coefficients(theta_end).T @ monomials(after, centre, scale)).T
        white = noise2 * variance_factor      # each averaged deviation's white-noise variance
        pairs = neighbour_pairs(after.T, count + 1, scale)
        if end - self._persistent_time >= _PERSISTENT_EVERY_S:
            self._add_persistent(
                local_persistent(after.T, d, inverse, deviation, white, count + 1, ~rejected),
                end)
        persistent_cov = self._persistent
        if persistent_cov is None:   # not measured yet: the tracks' errors independent
            persistent_cov = persistent_variance(deviation, white, pairs) * inverse
        persistent = np.diagonal(persistent_cov).copy()
        kept = shrinkage(deviation, white, pairs) if self._shrink else np.ones(n)
        velocities += kept[:, None] * deviation
        field = MotionField(end, theta_end, factor * result.variance + persistent, sigma,
                            variance_factor,
                            centre, scale, self._history[:self._length, :10].copy(),
                            result.degrees, noise, factor * result.bias2,
                            self._error_correlation(_correlation(inverse)), factor,
                            self.past_calibration,
                            self._degree, result.unbiased_bias2,
                            self.degree_calibration(result.degrees), self._span,
                            persistent_variance=persistent,
                            noise_correlation=field_rho,
                            persistent_covariance=persistent_cov)
        return FieldStep(velocities.astype(np.float32), deviation, count + 1, variance_factor,
                         field, kept, residuals)

    def _add_persistent(self, local: np.ndarray | None, end: float) -> None:
        """Add a frame's lasting errors' covariance at ``end`` s.

        The frame's covariance: :func:`~.track_deviation.local_persistent`.

        Into a mean forgotten over :data:`_PERSISTENT_TAU_S` (a frame's products scatter;
        the errors change as the tracks do), published without its negative eigenvalues
        (:attr:`_persistent`). A frame without enough mature tracks (None) adds nothing.
        """
        if local is None:
            return
        keep = math.exp(-max(end - self._persistent_time, 0.0) / _PERSISTENT_TAU_S)
        self._persistent_sum = keep * self._persistent_sum + local
        self._persistent_weight = keep * self._persistent_weight + 1.0
        self._persistent_time = end
        mean = self._persistent_sum / self._persistent_weight
        values, vectors = np.linalg.eigh(0.5 * (mean + mean.T))
        self._persistent = (vectors * np.maximum(values, 0.0)) @ vectors.T

    def _measure_correlation(self, displacement: np.ndarray, residuals: np.ndarray,
                             rejected: np.ndarray, dt: float) -> np.ndarray:
        """Add this interval to :attr:`noise_correlation`'s sums; the tracks' new residuals.

        ``displacement`` (N, 2): this interval's displacement about the field, px;
        ``residuals`` (N, 2, 2) the previous two (see :class:`FieldStep`); ``rejected`` (N,)
        the tracks left out of this interval's fit (not measured).
        """
        last, before = residuals[:, 0], residuals[:, 1]
        known = ~rejected & np.isfinite(before[:, 0]) & np.isfinite(last[:, 0])
        if int(np.count_nonzero(known)) >= MIN_FIELD_TRACKS:
            one = displacement[known] - last[known]
            two = displacement[known] - before[known]
            keep = math.exp(-dt / _NOISE_TAU_S)
            self._change_sums *= keep
            self._change_sums += (median(one[:, 0] * one[:, 0] + one[:, 1] * one[:, 1]),
                                  median(two[:, 0] * two[:, 0] + two[:, 1] * two[:, 1]))
            self._change_weight = keep * self._change_weight + 1.0
        return np.stack((displacement, last), axis=1)

    def _stalled(self, dt: float) -> bool:
        """Whether an interval of ``dt`` s is a stall: :data:`STALL_RATIO` x the longest recent."""
        k = min(self._length, _STALL_INTERVALS)
        if k < 2:
            return False
        recent = self._history[self._length - k:self._length, :2]
        return dt > STALL_RATIO * float(np.max(recent[:, 1] - recent[:, 0]))

    def _field_at(self, end: float, dt: float) -> tuple[Extrapolation, np.ndarray, np.ndarray]:
        """The parameters at ``end``, the per-interval noise assumed and its correlation.

        Updates the noise. The noise of one interval's parameters is the residual scatter of
        the per-interval parameters about the polynomial, pooled over the frames with a
        forgetting time of ``_NOISE_TAU_S``, at least the fits' own (independent tracks) and
        at most that of a :data:`COMMON_SHIFT_PX` error of every track's displacement: where
        the polynomial cannot follow the motion over the span (fast turns at a low frame
        rate) the scatter is misfit, not noise, and must not push the choice to a lower
        degree. Before it rests on ``_MIN_NOISE_DOF`` degrees of freedom, that bound is used.
        The correlation of consecutive intervals (8,): the tracks' own
        (:attr:`noise_correlation`) on the fits' own share of the noise, none on the rest
        (errors shared by all tracks, e.g. Lucas-Kanade's sub-pixel bias of one common
        shift, which follows the shift's phase from frame to frame: with the tracks'
        correlation on all of it a straight flight's field came out 2x too narrow).
        """
        history = self._recent(end)
        starts, ends, thetas = history[:, 0], history[:, 1], history[:, 2:10]
        floor = history[-1, 10:]                     # independent tracking noise alone
        bound = (COMMON_SHIFT_PX / dt) ** 2
        if float(self._noise_dof.min()) >= _MIN_NOISE_DOF:
            noise = np.clip(self._noise_squares / self._noise_dof, floor, max(bound, 0.0))
            noise = np.maximum(noise, floor)
        else:
            noise = np.maximum(floor, bound)
        rho = self.noise_correlation * np.minimum(floor / np.maximum(noise, 1e-30), 1.0)
        result = extrapolate(starts, ends, thetas, end, self._degree, noise, self._weights_cache,
                              rho)
        previous = extrapolate(starts, ends, thetas, end - dt, self._degree, noise,
                                self._weights_cache, rho)
        self._check(end, dt)
        # Checked later are only the evaluations made from as many intervals as the
        # polynomial wants (degree + 2): with fewer, just after a (re)start, the degree is
        # capped by the intervals and its bias cannot be estimated (0), so their error says
        # nothing of the model's calibration. One such check (a constant through 2 intervals,
        # 53 px/s off, 3200x its modelled variance) held the factors at their cap for
        # seconds at 11 Hz, where few checks follow to dilute it.
        if starts.shape[0] >= self._wanted_intervals:
            serials = np.arange(self._serial - starts.shape[0], self._serial, dtype=np.float64)
            self._pending.append(_Pending(end - dt, serials, previous.weights, previous.theta,
                                          noise, np.maximum(previous.bias2, 0.0), rho,
                                          _AT_PREVIOUS))
            self._pending.append(_Pending(end, serials, result.weights, result.theta, noise,
                                          result.bias2, rho, _AT_STAMP, result.degrees))
        if result.squares is not None:
            keep = math.exp(-dt / _NOISE_TAU_S)
            self._noise_squares = keep * self._noise_squares + result.squares
            self._noise_dof = keep * self._noise_dof + result.dof
        return result, noise, rho

    def _check(self, end: float, dt: float) -> None:
        """Check the extrapolations made half a span ago against the intervals since.

        The reference for the parameters at a past stamp ``t``: the polynomial of degree
        :data:`_CHECK_DEGREE` through the intervals within half a span of ``t`` on both
        sides (interpolation, centred: its noise gain and bias are small). Both are linear
        in the intervals' parameters, so the difference's variance under the model (each
        interval's parameters with the noise and the consecutive intervals' correlation
        assumed then, :func:`noise_gain`, plus the estimated squared bias) is known exactly,
        shared intervals included; the ratio of the squared
        difference to it, averaged with a forgetting time :data:`_CHECK_TAU_S`, is the
        calibration factor of the published variance. It measures what the model leaves
        out: tracking errors correlated across tracks and frames (texture, one window over
        consecutive frames), and the bias of a rate that changes faster than the degree
        follows.

        The value at the previous stamp gets one plus the squared difference's excess over
        its modelled variance divided by the value's and the reference's own modelled
        variances summed: both are interpolations through mostly the same intervals, so in
        the constant terms th0 and th3 the difference's modelled variance is a quarter to
        two thirds of the value's own, and the ratio to it multiplied whatever the model
        misses by up to 4 (against the exact field on tilting flights at 15-30 Hz, the two
        values' errors there correlated -0.16 to -0.47 where the model has +0.59 to
        +0.87): factors of 25-59 on those terms at 15-20 Hz, where their squared error was
        0.6-3.9 times the model's variance, and the field through the gyro's line 4-20x
        wider than its error. On tilting and turning flights drawn at random (two sets of
        12, 2 draws, the first set used to choose this form) the median NEES of (vx, vy)
        with gyro came in 1-2 on 12 and 10 of them instead of 9 and 8; on the 28 flights
        of bench/velocity_calibration.py (3 draws) on 22 pooled as before (per draw 20, 19,
        20 instead of 19, 18, 21). The extrapolation to the stamp shares fewer intervals
        with the reference (the difference's modelled variance 0.7-2x the value's) and
        keeps the ratio: split the same way its factor fell short of its error (the
        ego-velocity without gyro: 3 sigma down to 94 % on a 15 Hz flight).
        """
        half = 0.5 * self._span
        archive = self._archive[:self._archived]
        checked = False
        while self._pending and self._pending[0].stamp <= end - half:
            check = self._pending.popleft()
            t = check.stamp
            near = (archive[:, 2] > t - half - 1e-9) & (archive[:, 1] < t + half + 1e-9)
            if int(near.sum()) < _CHECK_DEGREE + 2 or archive[near, 1].min() > t - 0.5 * half:
                continue
            rows = archive[near]
            # The stamp's check and the next frame's previous-stamp check share t and rows:
            # the cache computes the reference once (and once per interval layout at a
            # steady rate).
            reference = nested_weights(rows[:, 1], rows[:, 2], t, _CHECK_DEGREE,
                                        self._weights_cache).weights[_CHECK_DEGREE]   # (m,)
            # Serial numbers are consecutive in both sets: columns by offset from the lowest.
            first = int(min(check.serials[0], rows[0, 0]))
            width = int(max(check.serials[-1], rows[-1, 0])) - first + 1
            difference = np.zeros((8, width))
            difference[:, check.serials.astype(np.int64) - first] = check.weights
            difference[:, rows[:, 0].astype(np.int64) - first] -= reference
            modelled = noise_gain(difference, check.correlation) * check.noise + check.bias2
            error = check.theta - reference @ rows[:, 3:]
            keep = math.exp(-dt / _CHECK_TAU_S)
            kind = check.kind
            scale = modelled
            if kind == _AT_PREVIOUS:
                scale = (noise_gain(check.weights, check.correlation) * check.noise
                         + check.bias2 + noise_gain(reference, check.correlation) * check.noise)
            ratio = 1.0 + (error * error - modelled) / np.maximum(scale, 1e-30)
            self._ratio_sum[kind] = keep * self._ratio_sum[kind] + ratio
            self._ratio_weight[kind] = keep * self._ratio_weight[kind] + 1.0
            z = error / np.sqrt(np.maximum(modelled, 1e-30))
            self._error_products[kind] = keep * self._error_products[kind] + np.outer(z, z)
            if check.degrees is not None:
                degree_rows = np.clip(check.degrees, 0, _MAX_CHECKED_DEGREE)
                self._degree_sum *= keep
                self._degree_weight *= keep
                self._degree_sum[degree_rows, _COLUMNS] += ratio
                self._degree_weight[degree_rows, _COLUMNS] += 1.0
            checked = True
        while self._pending and (not self._archived or self._pending[0].stamp < archive[0, 1]):
            self._pending.popleft()   # its intervals are gone (restart or a long history)
        if checked:
            self._update_factors()

    def _append(self, start: float, end: float, theta: np.ndarray,
                variance: np.ndarray) -> None:
        if self._archived == _MAX_INTERVALS:
            self._archive[:-1] = self._archive[1:].copy()
            self._archived -= 1
        self._archive[self._archived] = (self._serial, start, end, *theta)
        self._archived += 1
        self._serial += 1
        if self._length == _MAX_INTERVALS:
            self._history[:-1] = self._history[1:].copy()
            self._length -= 1
        row = self._history[self._length]
        row[0], row[1] = start, end
        row[2:10] = theta
        row[10:] = variance
        self._length += 1

    @property
    def _wanted_intervals(self) -> int:
        """Intervals the polynomial wants at least: degree + 2 (one to estimate its bias)."""
        return self._degree + 2

    def _recent(self, end: float) -> np.ndarray:
        """The intervals the extrapolation uses (rows of the history).

        Those ending within the span, at least :attr:`_wanted_intervals` of them when known;
        older ones are dropped.
        """
        history = self._history[:self._length]
        within = int(np.count_nonzero(history[:, 1] > end - self._span - 1e-9))
        keep = min(self._length, max(within, self._wanted_intervals))
        if keep < self._length:
            self._history[:keep] = history[self._length - keep:].copy()
            self._length = keep
        return self._history[:keep]
