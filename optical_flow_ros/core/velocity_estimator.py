"""Camera ego-velocity from sparse tracks: a robust fit of the motion field of a planar scene.

Frames and units: everything is in the camera optical frame (x right, y down, z forward);
linear velocities m/s, angular velocities rad/s, distances m, pixel velocities px/s;
normalised image coordinates are the undistorted ray ``(x, y, 1)``.

Model. The scene is a plane at ``distance`` d (m) along the optical axis: facing the camera
(depth Z = d everywhere), or tilted by a small unknown angle (inverse depth
``(1 + beta x + gamma y) / d``, as for a rolled/pitched camera over flat ground). A static
point at normalised ``(x, y)`` moves at (Longuet-Higgins,
:mod:`~optical_flow_ros.core.motion_field`), with ``(a, b, s) = (vx, vy, vz) / d``::

    x' = (-a + x s)(1 + beta x + gamma y) + y wz + [x y wx - (1 + x^2) wy]
    y' = (-b + y s)(1 + beta x + gamma y) - x wz + [(1 + y^2) wx - x y wy]

With gyro rates the bracketed rotational field (all three axes) is subtracted first; without
them roll/pitch rates are taken as zero (at the image centre they cannot be told from
translation) and the yaw rate comes from the tracks. What remains is fitted as an affine
field ``(-a + c1 x + c2 y, -b + c3 x + c4 y)`` (dropping the ``s beta x^2``-size terms):
``(a, b)`` are its value at the principal point, where the depth is exactly the measured
distance whatever the tilt, and ``s`` and ``wz`` follow from ``c1..c4`` with the tilt
eliminated (:func:`~optical_flow_ros.core.affine_flow_fit.decompose`; the robust fit of the
tracks' normalised flow: :mod:`~optical_flow_ros.core.affine_flow_fit`). For a scene facing
the camera this is the flat model (``c1 = c4 = s``, ``c2 = -c3 = wz``); the tilt terms keep
``vz`` and ``wz`` unbiased under +/-5 deg of roll/pitch (the flat model is off by
``|v| tan(tilt) / 2`` in ``vz`` there), and ``(vx, vy)`` unbiased when outliers leave the
inliers off-centre.

Timing. The tracks' velocities describe the motion ``lag`` seconds before the image, at the
tracks' positions ``p - v lag`` then (:mod:`~optical_flow_ros.core.fit_window`). Given the
:class:`~optical_flow_ros.core.fit_window.VelocityTiming` of the window, the fit uses those
positions and the gyro rate at that instant (:mod:`~optical_flow_ros.core.gyro_rates`); the
distance then is the measured one corrected by the approach rate the fit gives, and the
linear velocity is carried forward to the image stamp assuming a constant world velocity
(``dv/dt = -w x v`` in the camera frame).
On simulated flights (test/core/test_velocity_estimator.py) this takes the horizontal error
from 4 % (yaw 0.3 rad/s) and 7 % (+/-5 deg roll/pitch at 0.5 Hz, newest gyro sample) to
0.05 % and 0.4 %.

Covariance (6x6, order vx, vy, vz, wx, wy, wz) is the first-order propagation of
independent error sources:

* the fit: the inlier residuals' variance per component times ``(J^T J)^-1`` (so it shrinks
  with the number of inliers and grows with their disagreement), inflated by
  ``velocity_track_correlation`` (tracks share texture, window and motion blur, so their
  errors are not independent), plus ``flow_model_std`` px/s of error common to all tracks;
* the rates: the gyro's covariance (from the IMU message, else ``gyro_std``) through the
  derotation (with ``gyro_field_fusion``, combined by their variances with the field's
  rates, the climbing plane's share removed as below:
  :mod:`~optical_flow_ros.core.field_gyro_fusion`); without a gyro the roll/pitch rates
  from the field's second-order terms (``rates_from_field``), the climbing plane's share
  ``s (beta, gamma)`` removed (:func:`~.field_gyro_fusion.plane_rate_terms`), their error
  being the field's (measured online by the tracker's self-check,
  :mod:`~optical_flow_ros.core.field_velocity`); or ``rate_std_without_gyro`` for roll/pitch
  rates taken as zero, whose angular variances are published as :data:`UNKNOWN_VARIANCE`
  (not measured);
* the distance: a relative error ``distance_rel_std`` along the linear velocity;
* the lag: ``(acceleration_std * lag)^2`` per linear axis for the constant-velocity step;
* with a gyro and the tracker's motion field, the bias the translation's curvature leaves
  through the gyro's line: measured per frame against a second estimate at the same instant
  (:func:`_line_bias`).

Without a distance the estimate is not valid, but the scale-free results are filled in:
``linear_per_distance`` (1/s) and ``flow_rate`` (rad/s about the optical x and y axes, the
PX4 / MAVLink ``OPTICAL_FLOW_RAD`` meaning: a right-handed rotation of the camera about +x
gives a positive x flow, a translation along +y a negative one; the raw sensor value,
rotation included: ``(wx - vy / d, wy + vx / d)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from optical_flow_ros.core.affine_flow_fit import (
    AffineFit,
    decompose,
    decompose_jacobian,
    design_matrix,
    normalised_flow,
    robust_fit,
)
from optical_flow_ros.core.camera_model import PinholeCamera, same_lens
from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.core.field_gyro_fusion import (
    FieldLine,
    Fusion,
    field_covariance,
    field_through_line,
    fuse_rates,
    plane_rate_jacobian,
    plane_rate_terms,
    rates_from_field,
    stamp_field_variance,
)
from optical_flow_ros.core.field_velocity import STALL_RATIO, MotionField
from optical_flow_ros.core.fit_window import STALLED_FRAMES, VelocityTiming
from optical_flow_ros.core.gyro_rates import GyroRates
from optical_flow_ros.core.motion_field import rotational_basis, rotational_field
from optical_flow_ros.core.planar_field import field_basis
from optical_flow_ros.core.track_types import Tracks
from optical_flow_ros.core.world_acceleration import Acceleration

__all__ = [
    "COVARIANCE_TERMS",
    "ROBUST_FITS",
    "STATUSES",
    "UNKNOWN_VARIANCE",
    "VelocityConfig",
    "VelocityEstimate",
    "acceleration_covariance",
    "estimate_velocity",
]

ROBUST_FITS = ("lmeds", "least_squares")
#: ``status`` values of :class:`VelocityEstimate`; "ok" is the only valid one.
STATUSES = ("ok", "no_intrinsics", "too_few_tracks", "too_many_outliers", "degenerate",
            "no_distance", "stalled")
#: The sources :attr:`VelocityEstimate.covariance_terms` splits the linear velocity's
#: covariance into: ``tracks``: each track's own noise through the fit (the inliers'
#: residual scatter, independent between tracks); ``motion_field``: the tracker's motion
#: field's error (its time model's noise and bias, the tracks' lasting errors), through the
#: fit and, where the field's rates derotate, through them; ``rotation``: the derotating
#: rates' error (the gyro's, its fusion with the field's, the tilted plane's share) or, without
#: a gyro or field rates, ``rate_std_without_gyro``; ``distance``: the distance's relative
#: variance times the velocity squared; ``line_bias``: the translation's curvature through
#: the gyro's line (:func:`_line_bias`); ``acceleration``: the world velocity's change over
#: the lag to the stamp.
COVARIANCE_TERMS = ("tracks", "motion_field", "rotation", "distance", "line_bias",
                    "acceleration")
#: Variance published for a quantity that is not measured (robot_localization's convention
#: of a huge value, so a filter fusing the message gives it no weight).
UNKNOWN_VARIANCE = 1e6

_MIN_SCALE_PX_S = 0.1     # residual scale floor, px/s (far below tracking noise)
_MIN_DISAGREEMENT_PX_S = 5.0   # velocity_max_residual_ratio never refuses below this, px/s


@dataclass(frozen=True)
class VelocityConfig:
    """Settings of :func:`estimate_velocity` (validated; ``ConfigError`` names the field)."""

    velocity_min_inliers: int = setting(
        20, "Fewest inlier tracks for a velocity estimate", range=(3, 100_000))
    velocity_min_track_age: int = setting(
        3, "Tracks younger than this are not used (never below the frames of the tracker's "
        "velocity window, so all used velocities are fitted over the same frames), frames",
        range=(2, 1000))
    velocity_robust_fit: str = setting(
        "lmeds", "Fit: lmeds (least median of squares, then Tukey IRLS; up to 50 % outlier "
        "tracks) or least_squares (plain, no outlier rejection)", choices=ROBUST_FITS)
    lmeds_hypotheses: int = setting(
        64, "Random minimal sets (3 tracks) tried by lmeds; seeded, reproducible",
        range=(1, 10_000))
    velocity_inlier_sigma: float = setting(
        3.0, "Tracks whose residual exceeds this many robust standard deviations are "
        "outliers", range=(1.0, 100.0))
    velocity_min_inlier_ratio: float = setting(
        0.5, "Fewer inliers than this fraction of the usable tracks: no estimate",
        range=(0.0, 1.0))
    velocity_max_residual_ratio: float = setting(
        0.3, "Inlier residual std above this fraction of the median track speed (and above "
        "5 px/s): the tracks do not agree on one motion (e.g. most are outliers); no estimate",
        range=(0.0, 100.0), exclusive_min=True)
    velocity_min_spread: float = setting(
        20.0, "Least spread (std across their principal axis) of the inlier tracks; "
        "collinear tracks (an edge: aperture problem) give no estimate, px",
        range=(0.0, 1e5))
    min_scene_distance: float = setting(
        0.05, "Distances below this are not used, m", range=(0.0, 1e6))
    max_scene_distance: float = setting(
        500.0, "Distances above this are not used, m", range=(0.0, 1e6), exclusive_min=True)
    distance_rel_std: float = setting(
        0.01, "Relative std of the distance (rangefinder or fixed value); scales the linear "
        "velocity's covariance along the velocity", range=(0.0, 10.0))
    distance_filter: bool = setting(
        False, "Filter the range readings over time (a Kalman filter on the log distance, "
        "carried between readings by the rate the tracks' motion field gives it, its error "
        "scale measured online from the readings; see core/distance_filter.py) instead of "
        "using the newest reading as it is; not used with the fixed distance parameter. "
        "Measured (bench/bench_velocity_accuracy.py, range 1 %, gyro): the distance's error "
        "1 % -> 0.1-0.3 % (0.25 % climbing 0.3 m every 4 s) and the horizontal RMSE "
        "0.93-1.88 % -> 0.24-1.76 % on 16 held-out flights and 0.94-1.64 % -> 0.21-1.33 % on "
        "12 steady turns; its variance assumes the readings' errors independent from "
        "reading to reading (a real surface may not give that), and without the range's 1 % "
        "along the velocity the flow's own errors show where its covariance misses them "
        "(3 sigma 90 % on a slowly turning flight of the 12): off by default")
    gyro_std: float = setting(
        0.002, "Gyro rate std per axis when the IMU message gives no covariance, rad/s",
        range=(0.0, 10.0))
    rates_from_field: bool = setting(
        True, "Without a gyro, take the roll/pitch rates from the second-order terms of the "
        "tracker's motion field (a plane seen while turning) instead of zero; needs the "
        "motion_field estimator")
    gyro_field_fusion: bool = setting(
        True, "With a gyro and the motion_field estimator, also take the roll/pitch rates "
        "from the field's second-order terms (a tilted plane's share removed) and combine "
        "them with the gyro's by their variances (the field's variance measured online, see "
        "field_velocity). Measured (bench/bench_velocity_accuracy.py's 14 held-out and fresh "
        "flights, gyro 0.005 rad/s at the frame rate, fusion on vs off): horizontal RMSE "
        "lower on all 14 (<= 2 % on 13 instead of 6), median NEES 0.65-1.6 (in 1-2 on 9 "
        "instead of 13, the other five too wide: 0.65-0.99), 3 sigma >= 97 % on 12 instead "
        "of 14 (95-97 % on two 5 deg tilts at 1.2 and 2.5 m; 98 % over 4 draws of the "
        "first)")
    rate_std_without_gyro: float = setting(
        0.02, "Assumed std of the roll/pitch rates when no gyro is given (taken as zero; "
        "they alias into the linear velocity), rad/s", range=(0.0, 10.0))
    flow_model_std: float = setting(
        0.5, "slope estimator only (with motion_field the tracker's measured field error "
        "replaces it): flow error common to all tracks that the planar-scene model leaves "
        "(relief, tilt, timing); a floor of the covariance, hand-set, px/s",
        range=(0.0, 1e4))
    acceleration_std: float = setting(
        0.5, "Std of the camera's acceleration until it is estimated online from the recent "
        "velocities (its first estimates, or after a reset): it weighs the gyro's best instant "
        "against the stamp and adds (std * lag)^2 to the linear variance for the lag from "
        "that instant to the stamp; hand-set, m/s^2", range=(0.0, 1e3))
    velocity_track_correlation: float = setting(
        4.0, "slope estimator only (with motion_field the common error is measured): "
        "inflation of the fit's variance for correlated track errors (1 = independent); "
        "hand-set", range=(1.0, 1e4))
    lmeds_seed: int = setting(0, "Seed of the lmeds sampling", range=(0, 2**31 - 1))

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.max_scene_distance <= self.min_scene_distance:
            raise ConfigError(f"max_scene_distance: must be > min_scene_distance "
                              f"({self.min_scene_distance} m), got {self.max_scene_distance}")


_DEFAULT_CONFIG = VelocityConfig()


@dataclass(frozen=True)
class VelocityEstimate:
    """Result of :func:`estimate_velocity`; camera optical frame, at the image's stamp.

    Attributes:
        status: one of :data:`STATUSES`; ``"ok"`` when the metric velocity is valid.
        reason: why not valid (empty when valid), one line for diagnostics.
        linear: (3,) camera linear velocity, m/s (NaN unless valid).
        angular: (3,) camera angular velocity, rad/s: the gyro sample nearest the image
            stamp, or (0, 0, fitted yaw rate) without a gyro (NaN when no fit).
        covariance: (6, 6) of (linear, angular), m/s and rad/s; NaN where not computed.
        linear_per_distance: (3,) linear velocity / distance, 1/s: the scale-free
            translation, filled whenever the fit succeeded (also without a distance).
        flow_rate: (2,) rad/s about the optical x and y axes, PX4 meaning (rotation
            included), filled whenever the fit succeeded.
        distance: the distance used, m (NaN if none).
        n_tracks: tracks usable (finite velocity, old enough).
        n_inliers: tracks agreeing with the fit.
        residual_std: std of the inlier flow residuals per component, px/s.
        gyro_used: whether gyro rates derotated the flow.
        measured_linear: (3,) m/s: ``linear`` before the acceleration over the lag was added
            (the velocity measured ``lag`` before the stamp, carried to it at a constant world
            velocity): what :class:`~.world_acceleration.AccelerationEstimator` is fed.
        lag: how long before the stamp the velocity was measured, s.
        line_bias_excess: (3,) this frame's measure of the translation's curvature through
            the gyro's line (:func:`_line_bias`: the two estimates' squared difference less
            their variances, per distance, 1/s^2; signed); None without a line. Its median
            over the recent frames is what
            :class:`~optical_flow_ros.core.ego_velocity.EgoVelocityEstimator` passes back as
            ``line_bias_floor``.
        distance_rate: d ln(distance)/dt at the stamp, 1/s: how fast the distance along the
            optical axis grows relative to itself, from the fit (the plane's approach
            ``-(beta, gamma, 1) v / d`` and its normal turning with the camera) carried from
            the instant it was measured to the stamp (with the acceleration where the
            distance is known), filled whenever the fit succeeded; what
            :class:`~optical_flow_ros.core.distance_filter.DistanceFilter` carries the
            range readings forward with.
        distance_rate_variance: its variance, 1/s^2.
        covariance_terms: where the linear velocity's covariance comes from: (3, 3) parts of
            ``covariance[:3, :3]`` by source, (m/s)^2, which sum to it (valid estimates
            only; see :data:`COVARIANCE_TERMS`); None otherwise.
    """

    status: str
    reason: str
    linear: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    angular: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    covariance: np.ndarray = field(default_factory=lambda: np.full((6, 6), np.nan))
    linear_per_distance: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    flow_rate: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    distance: float = math.nan
    n_tracks: int = 0
    n_inliers: int = 0
    residual_std: float = math.nan
    gyro_used: bool = False
    measured_linear: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    lag: float = 0.0
    line_bias_excess: np.ndarray | None = None
    distance_rate: float = math.nan
    distance_rate_variance: float = math.nan
    covariance_terms: dict[str, np.ndarray] | None = None

    @property
    def valid(self) -> bool:
        """True when the metric velocity and its covariance are valid."""
        return self.status == "ok"

    def horizontal_shares(self) -> dict[str, float] | None:
        """Each covariance term's share of the variance of (vx, vy) (their trace), 0-1.

        Largest first; None without ``covariance_terms``.
        """
        if self.covariance_terms is None:
            return None
        total = float(np.trace(self.covariance[:2, :2]))
        if not total > 0.0:
            return None
        shares = {name: float(np.trace(term[:2, :2])) / total
                  for name, term in self.covariance_terms.items()}
        return dict(sorted(shares.items(), key=lambda item: -item[1]))


def _spread_px(points: np.ndarray) -> float:
    """Std of the points across their principal axis (the smaller principal std), px."""
    n = points.shape[0]
    if n < 2:
        return 0.0
    d = points - points.mean(axis=0)
    a, b, c = (float(v) / (n - 1) for v in (d[:, 0] @ d[:, 0], d[:, 0] @ d[:, 1],
                                            d[:, 1] @ d[:, 1]))
    smallest = 0.5 * (a + c) - math.hypot(0.5 * (a - c), b)   # of the 2x2 covariance
    return math.sqrt(max(smallest, 0.0))


def _skew(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def _rotation_columns(points_n: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(N, 2, k) flow of a unit rate about each of ``axes``."""
    return rotational_basis(points_n)[:, :, axes]


def _refusal(fit: AffineFit, points: np.ndarray, speed: float, residual: float,
             common: dict[str, Any], cfg: VelocityConfig) -> VelocityEstimate | None:
    """An invalid estimate when the fit cannot be trusted, else None.

    ``speed``: median track speed, px/s; ``residual``: the fit's residual std, px/s.
    """
    n_in, n_usable = int(fit.inliers.sum()), int(fit.inliers.size)
    allowed = max(cfg.velocity_max_residual_ratio * speed, _MIN_DISAGREEMENT_PX_S)
    if residual > allowed:
        return VelocityEstimate("too_many_outliers", f"tracks do not agree on one camera "
                                f"motion: residual std {residual:.1f} px/s > {allowed:.1f} px/s "
                                f"(velocity_max_residual_ratio {cfg.velocity_max_residual_ratio} "
                                f"of the median track speed {speed:.1f} px/s)", **common)
    if n_in < cfg.velocity_min_inliers:
        return VelocityEstimate("too_few_tracks", f"{n_in} inlier tracks of {n_usable} "
                                f"< velocity_min_inliers {cfg.velocity_min_inliers}", **common)
    if n_in < cfg.velocity_min_inlier_ratio * n_usable:
        return VelocityEstimate("too_many_outliers", f"only {n_in} of {n_usable} tracks "
                                f"agree on one camera motion (< velocity_min_inlier_ratio "
                                f"{cfg.velocity_min_inlier_ratio})", **common)
    return _collinear(points[fit.inliers], common, cfg)


def _collinear(points: np.ndarray, common: dict[str, Any],
               cfg: VelocityConfig) -> VelocityEstimate | None:
    """A ``degenerate`` result when the tracks lie (nearly) on a line, else None."""
    spread = _spread_px(points)
    if spread >= cfg.velocity_min_spread:
        return None
    return VelocityEstimate("degenerate", f"tracks are (nearly) collinear: spread {spread:.1f} "
                            f"px < velocity_min_spread {cfg.velocity_min_spread} px", **common)


def acceleration_covariance(acceleration: Acceleration | None,
                            cfg: VelocityConfig) -> np.ndarray:
    """(3, 3) the acceleration's covariance, (m/s^2)^2; acceleration_std^2 without one.

    What the velocity's change over the lag (and the distance rate's) is uncertain by: the
    lag's term of the published covariance, which EgoVelocityEstimator takes out again to
    feed the acceleration the velocity as measured.
    """
    if acceleration is not None:
        return acceleration.covariance
    return cfg.acceleration_std**2 * np.eye(3)


def _rate_over_lag(motion: _Motion, lag: float, distance: float,
                   acceleration: Acceleration | None, cfg: VelocityConfig) -> tuple[float, float]:
    """The distance's rate (``motion.distance_rate``) with the acceleration's share over the lag.

    The approach rate ``r = n . v / d`` grows by ``n . a / d`` (``n``: the fitted plane's
    normal, ``a``: the camera's acceleration, m/s^2, ``d`` the distance, m), so d ln(d)/dt at
    the stamp is that at the instant less ``lag n . a / d``; its variance gains the
    acceleration's (``acceleration_std`` without an estimate). Measured on a flight
    climbing and sinking 0.3 m every 4 s at 3 m, range 1 % noisy and filtered with this
    rate (test_ego_velocity): the filtered distance 0.74 % off without it, 0.25 % with it.
    """
    rate, variance = motion.distance_rate
    if lag <= 0.0:
        return rate, variance
    normal = motion.normal / distance
    if acceleration is not None:
        rate -= lag * float(normal @ acceleration.value)
    return rate, variance + lag * lag * float(
        normal @ acceleration_covariance(acceleration, cfg) @ normal)


def _best_instant(gyro: GyroRates, end: float, distance: float | None,
                  acceleration: Acceleration | None, cfg: VelocityConfig) -> GyroRates:
    """The gyro rates at the instant the velocity is best measured before ``end``.

    The gyro's error there, seen in the linear velocity (``d * sigma``, the fitted line's
    variance growing away from its samples' mean), against the acceleration's over the lag
    to the stamp: ``d^2 s2 (1/m + (t - tm)^2 / sxx) + (end - t)^2 a2`` is least at
    ``t = (d^2 s2 tm / sxx + a2 end) / (d^2 s2 / sxx + a2)``, between the samples' mean and
    the stamp. ``s2``: the gyro's variance (mean over the axes); ``a2``: the acceleration's
    (its estimate's, else ``acceleration_std^2``). The plain line there
    (:meth:`GyroRates.line_at`): the field is taken through the same line
    (:func:`_evaluation_time`), so the rate's curvature cancels.
    """
    if gyro.slope is None or gyro.time is None or gyro.line_sxx <= 0.0 or gyro.time >= end:
        return gyro
    d = float(distance) if distance is not None and math.isfinite(distance) else 1.0
    gyro_var = d * d * float(np.trace(gyro.covariance)) / 3.0 / gyro.line_sxx
    accel_var = float(np.trace(acceleration_covariance(acceleration, cfg))) / 3.0
    if gyro_var + accel_var <= 0.0:
        return gyro.line_at(end)
    instant = (gyro_var * gyro.time + accel_var * end) / (gyro_var + accel_var)
    return gyro.line_at(min(max(instant, gyro.time), end))


def _evaluation_time(field: MotionField | None, timing: VelocityTiming | None,
                     gyro: GyroRates | None, velocities: np.ndarray, points: np.ndarray
                     ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray | None,
                                FieldLine | None]:
    """When the velocity is estimated, and the usable tracks then.

    Returns (the lag before the stamp s, the tracks' velocities px/s and positions px then,
    the field's error variance then or None, the field through the gyro's line when it was
    taken there (:func:`field_through_line`) or None).

    Slope velocities describe the motion ``timing.lag`` before the stamp, at the track's
    mean position. Velocities at the stamp with a gyro and the tracker's motion field: at
    the gyro's best instant (:func:`_best_instant`), where the tracks' velocities are the
    field's plus their own deviation. The gyro rate there is a least-squares line through its
    samples, so the field is taken through the same line over the same sample times
    (:func:`field_through_line`): flow and rotation then describe the same average and a
    curving rate leaves no bias (the field at the instant against the gyro line there was
    off by the line's curvature bias: 3.8 % of the speed in a noise-free 8 m hover).
    Otherwise at the stamp.
    """
    if timing is None:
        return 0.0, velocities, points, None if field is None else field.theta_variance, None
    if not timing.at_stamp:
        return timing.lag, velocities, points - timing.lag * velocities, None, None
    if field is None or gyro is None or gyro.time is None or gyro.time >= timing.end:
        variance = None if field is None else field.theta_variance
        return 0.0, velocities, points, variance, None
    lag = timing.end - gyro.time
    then = points - lag * velocities
    line = field_through_line(field, gyro)
    bu, bv = field_basis(points, field.centre, field.scale)
    tu, tv = field_basis(then, field.centre, field.scale)
    change = np.column_stack((tu @ line.theta - bu @ field.theta,
                              tv @ line.theta - bv @ field.theta))
    return lag, velocities + change, then, line.variance, line


class _Motion(NamedTuple):
    scale_free: np.ndarray    # (3,) linear / distance at the image stamp, 1/s
    angular: np.ndarray       # (3,) rad/s
    covariance: np.ndarray    # (6, 6) of (scale_free, angular)
    #: the fitted plane's normal (beta, gamma, 1): its approach is normal . v / d
    normal: np.ndarray
    #: (6, 8) how (scale_free, angular) move with the field's parameters (None: no field)
    field_gain: np.ndarray | None = None
    #: (6, 3) how they move with the gyro's rate (None: no gyro)
    rate_gain: np.ndarray | None = None
    #: d ln(distance)/dt at the stamp, 1/s, and its variance (see VelocityEstimate),
    #: carried over the lag by the approach alone (the acceleration's share: the caller)
    distance_rate: tuple[float, float] = (math.nan, math.nan)
    #: the scale-free linear block of ``covariance`` (3, 3) split by source, 1/s^2: the
    #: tracks' own noise, the derotating rates', the motion field's (they sum to it)
    linear_parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _field_gain(field: MotionField, points_px: np.ndarray, fit_gain: np.ndarray,
                focal: float) -> np.ndarray:
    """(6, 8): how the motion-field parameters' error moves the affine fit's theta.

    Theta in normalised units; the error is one planar field for all tracks
    (``field_basis(p) @ d_theta`` px/s); ``fit_gain`` (3, N) is the affine fit's
    least-squares operator on the inlier tracks at ``points_px`` (N, 2).
    """
    bu, bv = field_basis(points_px, field.centre, field.scale)
    return np.concatenate((fit_gain @ bu, fit_gain @ bv)) / focal


class _FitNoise(NamedTuple):
    """The affine fit's operator and its parameters' errors (see :func:`_fit_noise`)."""

    normal_inv: np.ndarray        # (3, 3) inverse normal matrix of the inlier design
    design: np.ndarray            # (n_in, 3) the inliers' rows of the design
    #: (6, 6) covariance of theta (a, c1, c2, b, c3, c4): the inliers' residuals through the
    #: fit (each track independent), normalised units / s squared
    independent: np.ndarray
    #: (6, 8) how the motion field's parameters' error moves theta (None: no field)
    field_gain: np.ndarray | None


def _undistorted_tracks(field: MotionField, lens: PinholeCamera, usable: np.ndarray,
                       points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The usable tracks' positions ``points`` (raw px) in the lens's undistorted image.

    (n, 2) px and (n, 2, 2) the undistortion's Jacobian there (d undistorted / d raw): the
    field's own where it carries them aligned with the tracks (``usable``: their bool mask;
    :attr:`MotionField.undistorted`), else computed.
    """
    carried = field.undistorted
    if (carried is None or field.undistortion_jacobian is None
            or carried.shape[0] != usable.shape[0]):
        return lens.undistort_with_jacobian(points)
    undistorted = carried[usable].astype(np.float64)
    jacobian = field.undistortion_jacobian[usable].astype(np.float64)
    missing = ~(np.isfinite(undistorted).all(axis=1) & np.isfinite(jacobian).all(axis=(1, 2)))
    if missing.any():
        undistorted[missing], jacobian[missing] = lens.undistort_with_jacobian(points[missing])
    return undistorted, jacobian


def _fit_noise(fit: AffineFit, design: np.ndarray, focal: float, field: MotionField | None,
               points_px: np.ndarray | None) -> _FitNoise:
    """The affine fit's least-squares operator on its inliers and its tracks' noise."""
    x_in = design[fit.inliers]
    normal = x_in.T @ x_in
    try:   # the 3x3 normal matrix; pinv (an SVD) only when it is singular
        normal_inv = np.linalg.inv(normal)
    except np.linalg.LinAlgError:
        normal_inv = np.linalg.pinv(normal)
    independent = np.zeros((6, 6))
    independent[:3, :3] = independent[3:, 3:] = fit.residual_var * normal_inv
    field_gain = None
    if field is not None and points_px is not None:
        field_gain = _field_gain(field, points_px[fit.inliers], normal_inv @ x_in.T, focal)
    return _FitNoise(normal_inv, x_in, independent, field_gain)


def _motion(fit: AffineFit, noise: _FitNoise, points_n: np.ndarray, gyro: GyroRates | None,
            lag: float, focal: float, cfg: VelocityConfig, *,
            field: tuple[MotionField, np.ndarray] | None = None,
            field_rates: tuple[np.ndarray, np.ndarray] | None = None,
            fusion: Fusion | None = None) -> _Motion:
    """Camera motion and its covariance (without the distance) from the affine fit.

    Error sources: the tracks' own (independent: the inlier residuals), one common to all
    tracks (the tracker's measured motion-field error when it gives one, else
    ``flow_model_std``), and the rates that derotated the flow: the gyro's, the field's
    own second-order terms (``field_rates``: rates and their gain from the field's
    parameters, no gyro), or, without either, roll/pitch rates taken as zero. ``noise``:
    the fit's operator and its tracks' noise (:func:`_fit_noise`).
    """
    normal_inv, x_in = noise.normal_inv, noise.design
    field_gain = noise.field_gain if field is not None else None
    if field_gain is not None:   # of theta (a, c1, c2, b, c3, c4), independent parts
        cov_theta = noise.independent.copy()
    else:
        cov_theta = np.zeros((6, 6))
        common_gain = normal_inv @ x_in.sum(axis=0)                      # (3,)
        cov_theta[:3, :3] = cov_theta[3:, 3:] = (
            cfg.velocity_track_correlation * fit.residual_var * normal_inv
            + (cfg.flow_model_std / focal) ** 2 * np.outer(common_gain, common_gain))
    keep = np.ones(3)   # the gyro's share of the derotating rates
    if gyro is not None and fusion is not None:   # the fused rates' gyro part
        keep[:2] -= fusion.field_weight
        rate_axes = np.arange(3)
        rate_cov = gyro.mean_cov * np.outer(keep, keep)
        rate_cov[:2, :2] += np.diag(fusion.field_weight ** 2 * fusion.bias_var)
    elif gyro is not None:
        rate_axes, rate_cov = np.arange(3), gyro.mean_cov
    elif field_rates is not None:   # from the field (its error is added below, `through`),
        # the climbing plane's terms removed (plane_rate_terms)
        rate_axes, rate_cov = np.arange(2), np.zeros((2, 2))
    else:  # roll/pitch rates taken as zero; the yaw rate is fitted (c2, c3)
        rate_axes, rate_cov = np.arange(2), np.eye(2) * cfg.rate_std_without_gyro**2
    # A rate error dw leaves -R(n) dw in the derotated flow: theta moves by g_rate dw.
    k = rate_axes.size
    rot = _rotation_columns(points_n[fit.inliers], rate_axes)        # (n_in, 2, k)
    gain = (normal_inv @ x_in.T) @ rot.reshape(-1, 2 * k)            # (3, 2k): [p, (c, k)]
    g_rate = -np.swapaxes(gain.reshape(3, 2, k), 0, 1).reshape(6, k)
    theta = fit.theta.ravel(order="F")
    if fusion is not None:   # derotated by the fused rates instead: theta moves linearly
        theta = theta + g_rate @ fusion.shift

    # (a, b, s, wz), the translation carried from the window's mean time to the image stamp.
    eps = float(cov_theta[0, 0] + cov_theta[3, 3])
    if field_gain is not None:
        eps += float(field_gain[0] @ field[1] @ field_gain[0]
                     + field_gain[3] @ field[1] @ field_gain[3])
    plane, plane_jacobian = np.zeros(2), None
    if gyro is None and field_rates is not None:
        plane = plane_rate_terms(theta, eps)
        plane_jacobian = plane_rate_jacobian(theta, eps)
        theta = theta + g_rate @ plane
    state = decompose(theta, eps)
    if gyro is not None:
        omega = gyro.mean if fusion is None else gyro.mean + fusion.shift
    elif field_rates is not None:
        omega = np.array([field_rates[0][0] + plane[0], field_rates[0][1] + plane[1],
                          state[3]])
    else:
        omega = np.array([0.0, 0.0, state[3]])
    # The distance then was d / (1 - r lag) (the scene approaches at r d), and the velocity
    # turns with the camera: dv/dt = -w x v at constant world velocity.
    approach = float(np.clip(lag * state[4], -0.5, 0.5))
    propagate = (np.eye(3) - lag * _skew(omega)) / (1.0 - approach)
    # (a, b, s, wz, r, beta, gamma) -> (linear / d, angular, log-distance rate): the last
    # row is d ln(d)/dt = -r + gamma wx - beta wy, the plane's normal (beta, gamma, 1)
    # turning by -w x n in the camera frame.
    m_state = np.zeros((7, 7))
    m_state[:3, :3] = propagate
    if gyro is None:
        m_state[5, 3] = 1.0
    # Carried over the lag: d/dt (-r) = -(r^2 + n.a / d) (r = n.v / d); the r^2 here, the
    # acceleration's share where the distance is known (_rate_over_lag). Linearised:
    # -r - lag r^2 ~ -(1 + 2 lag r) r + lag r^2.
    m_state[6, 4:] = (-(1.0 + 2.0 * lag * state[4]), -omega[1], omega[0])
    m_theta = m_state @ decompose_jacobian(theta, eps)
    if plane_jacobian is not None:   # the plane's terms come from the fit: their error too
        into_rates = np.zeros((7, 2))
        into_rates[3, 0] = into_rates[4, 1] = 1.0
        m_theta = m_theta @ (np.eye(6) + g_rate @ plane_jacobian) + into_rates @ plane_jacobian
    m_rate = m_theta @ g_rate
    m_rate[3 + rate_axes, np.arange(rate_axes.size)] += 1.0
    direct = np.array([state[6], -state[5], 0.0])[rate_axes]   # the rates' own share in it
    m_rate[6] += direct
    from_tracks = m_theta @ cov_theta @ m_theta.T
    from_rates = m_rate @ rate_cov @ m_rate.T
    from_field = np.zeros_like(from_tracks)
    if field_gain is not None:   # the field's error, through the fit and the rates
        through = m_theta @ field_gain
        if field_rates is not None:
            through = through + m_rate @ field_rates[1]
        if fusion is not None:
            through = through + m_rate[:, :2] @ (fusion.field_weight[:, None]
                                                 * fusion.field_gain)
        from_field = through @ field[1] @ through.T
        through = through[:6]
    cov = from_tracks + from_rates + from_field
    distance_rate = (float(m_state[6] @ state) + lag * state[4] ** 2, float(cov[6, 6]))
    cov, m_rate = cov[:6, :6], m_rate[:6]
    gains = dict(field_gain=None if field_gain is None else through,
                 rate_gain=None if gyro is None else m_rate * keep,
                 distance_rate=distance_rate, normal=np.array([state[5], state[6], 1.0]),
                 linear_parts=(from_tracks[:3, :3], from_rates[:3, :3], from_field[:3, :3]))
    if gyro is None and field_rates is None:  # roll/pitch not measured: no weight
        cov[3:5, :] = 0.0
        cov[:, 3:5] = 0.0
        cov[3, 3] = cov[4, 4] = UNKNOWN_VARIANCE
        return _Motion(propagate @ state[:3], omega, cov, **gains)
    if gyro is None or lag == 0.0:   # the derotating rate is at the stamp: published
        return _Motion(propagate @ state[:3], omega.copy(), cov, **gains)
    # The newest sample is published: its own variance and staleness, no longer the
    # derotating rate's (their cross-covariance with the linear part is dropped).
    cov[3:, :3] = 0.0
    cov[:3, 3:] = 0.0
    cov[3:, 3:] = gyro.covariance + gyro.staleness
    return _Motion(propagate @ state[:3], gyro.latest.copy(), cov, **gains)


def _line_bias(field: MotionField, line: FieldLine, samples: GyroRates, gyro: GyroRates,
               motion: _Motion) -> np.ndarray | None:
    """(3,) measured squared bias of the linear velocity per distance through the gyro's line.

    1/s^2, signed: the squared bias where positive (the covariance adds its positive part,
    or the recent frames' median when that is larger: ``line_bias_floor``).

    Through the gyro's line (:func:`field_through_line`) a curving rotation rate cancels,
    but the translation's curvature does not: the line's value near its end is off by about
    ``-T'' L^2 / 12`` (``L`` the samples' span), which no other term counted (a velocity
    turning a 0.5 m/s circle every 2 s: median NEES 4.7, 3 sigma 95 %). So the same instant
    is estimated a second way, each part unbiased to its own degree: the field at the instant
    (:meth:`MotionField.evaluate`, its degree chosen there) derotated by the gyro at the
    instant with its curvature (:meth:`GyroRates.at`), through the same fit (to first order:
    ``motion``'s gains). The squared difference less both estimates' published variances
    (field and gyro parts, the field's as its self-check calibrates it) is the first's
    squared bias per axis. Both variances, not the difference's own (the two share
    the tracks and most of the field's intervals): on steady tilting flights the difference
    was 4-26x (median) the variance the field's model gives it, the second estimate's own
    error, and counting it widened covariances that were right (bench_velocity_accuracy's
    TRAIN flights). The first stays the value: the second is noisier and, taken as the
    value, lost 3 sigma coverage on held-out tilting flights (13 -> 11 of 13).

    ``samples``: the gyro's rates as fitted (:func:`~.gyro_rates.gyro_rates`); ``gyro``:
    moved to the instant (:func:`_best_instant`); ``line``: the field through the line there;
    ``motion``: the estimate through the line. None without a line (one gyro sample) or gains.
    """
    if (line.instant is None or gyro.time is None or motion.field_gain is None
            or motion.rate_gain is None):
        return None
    theta, variance = line.instant
    shift, extra = samples.curvature_terms(float(gyro.time))
    delta = (motion.field_gain @ (theta - line.theta) - motion.rate_gain @ shift)[:3]
    gain = motion.field_gain[:3]
    both = field_covariance(field, line.variance) + field_covariance(field, variance)
    # The line's variance at the instant (``gyro``'s), and ``samples.at``'s there: the
    # same plus the curvature step's.
    rate_var = 2.0 * np.diagonal(gyro.mean_cov) + extra
    noise = np.einsum("ij,jk,ik->i", gain, both, gain) + (motion.rate_gain[:3] ** 2) @ rate_var
    return delta * delta - noise


def _short_field(field: MotionField | None, timing: VelocityTiming | None) -> str | None:
    """Why the tracker's motion field is too short to estimate from, or None.

    With the motion_field estimator (``timing.at_stamp``) and no field (it restarted after a
    stall, or too few tracks), the tracks' velocities are their means over the last
    interval, not values at the stamp: under 3 in 4 frames lost a gap of 7 frames after
    shorter ones restarts the field, and the estimate from those means was 0.3 m/s off
    with 0.01 m/s stated (NEES 1162) on a TRAIN flight.

    After the field restarts (a gap above ``max_dt``, or too few tracks) it rests on
    fewer intervals than its degree needs (``velocity_field_degree + 2``): a low degree
    through them, which lags the stamp by half of them, and no higher degree tells its
    bias. Where those intervals are long (their mean above half ``velocity_field_span``, so
    that even two of them overflow the span: frames lost, 0.2-0.4 s gaps at 3 in 4 lost),
    or where one or two intervals (degree 0: their mean) span more than half of it, the
    first estimates after a restart were 0.1-0.6 m/s off with a stated std of 0.01 m/s
    (NEES up to 10^4) on the TRAIN flights of bench/velocity_flights.py; so they wait for
    the intervals. A steady stream above 7.5 Hz (at the default span) is estimated from its
    second frame as before.
    """
    if field is None:
        if timing is not None and timing.at_stamp:
            return ("the tracker's motion field restarted (a stall, or too few tracks): the "
                    "tracks' velocities are means over the last interval")
        return None
    n = field.intervals.shape[0]
    needed = field.max_degree + 2
    if n >= needed:
        return None
    total = float(field.intervals[-1, 1] - field.intervals[0, 0])
    mean = total / n
    if mean <= 0.5 * field.span and (n > 2 or total <= 0.5 * field.span):
        return None
    return (f"the motion field rests on {n} intervals of {mean:.3f} s since it restarted, "
            "fewer than velocity_field_degree + 2: its lag and bias are not known yet")


def estimate_velocity(tracks: Tracks, camera: PinholeCamera | None, *,
                      distance: float | None = None,
                      distance_variance: float | None = None,
                      gyro: GyroRates | np.ndarray | None = None,
                      timing: VelocityTiming | None = None,
                      acceleration: Acceleration | None = None,
                      line_bias_floor: np.ndarray | None = None,
                      config: VelocityConfig | None = None) -> VelocityEstimate:
    """Camera velocity in the optical frame, at the tracks' stamp, from one frame's tracks.

    Args:
        tracks: the frame's tracks: points px, velocities px/s (NaN = unknown), ages.
        camera: intrinsics (K, distortion) from CameraInfo; None refuses (no_intrinsics),
            and so does a camera whose lens is not the one the tracker's motion field was
            fitted for (``LKTracker.update``'s camera).
        distance: distance to the scene along the optical axis, m; None, NaN or out of
            [min_scene_distance, max_scene_distance] gives a ``no_distance`` result that
            still carries the scale-free ``linear_per_distance`` and ``flow_rate``.
        distance_variance: the distance's variance as its sensor states it (Range.variance),
            m^2; None or <= 0: ``(distance_rel_std * distance)^2``.
        gyro: camera angular velocity in the optical frame: :class:`~.gyro_rates.GyroRates`
            (see :func:`~.gyro_rates.gyro_rates`), or a (3,) rad/s array used as both mean
            and latest with ``gyro_std``; None fits the yaw rate and takes roll/pitch rates as
            zero.
        timing: when the velocities were measured
            (:meth:`~optical_flow_ros.core.fit_window.FitWindow.update`); None means they are
            instantaneous at the tracks' stamp.
        acceleration: the camera's acceleration (optical frame) from its recent velocities
            (:class:`~optical_flow_ros.core.world_acceleration.AccelerationEstimator`): what
            the velocity changes over the lag before the stamp; None: zero, with
            ``acceleration_std``.
        line_bias_floor: (3,) 1/s^2: the recent frames' median of ``line_bias_excess`` (the
            translation's curvature through the gyro's line, measured frame by frame from a
            noisy difference), from
            :class:`~optical_flow_ros.core.ego_velocity.EgoVelocityEstimator`: counted where
            larger than this frame's own measure. On the accelerating TRAIN-like flights of
            bench/velocity_flights.py (one gyro sample per frame) the median NEES went
            2.76 / 2.68 -> 2.15 / 2.54, steady flights unchanged (the recent frames' value
            alone, instead of the larger of the two, lowered the peaks: 2.76 -> 3.25 with a
            mean). None: this frame's alone.
        config: settings; defaults if None.

    Returns:
        The estimate; ``status`` and ``reason`` say why when it is not valid.
    """
    cfg = config if config is not None else _DEFAULT_CONFIG
    if camera is None:
        return VelocityEstimate("no_intrinsics", "no camera intrinsics (camera_info not "
                                "received, invalid or of another image size)")
    field = tracks.motion_field
    if field is not None and not same_lens(field.lens, camera):
        return VelocityEstimate(
            "no_intrinsics", "the tracker fitted its motion field in another image than this "
            "camera's undistorted one (give LKTracker.update the same camera): a plane's "
            "motion field holds only in a pinhole image, and its rates would be off")
    if timing is not None and timing.stalled:
        return VelocityEstimate("stalled", f"within {STALLED_FRAMES} frames of a stall (a "
                                f"frame gap above {STALL_RATIO:g} times the recent mean "
                                "interval): the tracks' velocities still rest on the gap")
    short = _short_field(tracks.motion_field, timing)
    if short is not None:
        return VelocityEstimate("stalled", short)
    min_age = max(cfg.velocity_min_track_age, timing.samples if timing is not None else 0)
    usable = np.isfinite(tracks.velocities).all(axis=1) & (tracks.ages >= min_age)
    n_usable = int(usable.sum())
    if n_usable < cfg.velocity_min_inliers:
        return VelocityEstimate(
            "too_few_tracks", f"{n_usable} usable tracks (velocity known, age >= {min_age}) "
            f"< velocity_min_inliers {cfg.velocity_min_inliers}", n_tracks=n_usable)
    if gyro is not None and not isinstance(gyro, GyroRates):
        rate = np.asarray(gyro, np.float64).reshape(3)
        gyro = GyroRates(rate, rate, np.eye(3) * cfg.gyro_std**2, np.zeros((3, 3)),
                         time=float(tracks.stamp))   # the rate at the image: at its stamp
    samples = gyro   # as fitted, before _best_instant moves it
    at_stamp = timing is not None and (timing.at_stamp or tracks.motion_field is not None)
    if at_stamp:   # velocities at the stamp (a motion field says so whatever the timing)
        timing = timing._replace(lag=0.0, at_stamp=True)
        if isinstance(gyro, GyroRates):
            gyro = _best_instant(gyro, timing.end, distance, acceleration, cfg)
    velocities = tracks.velocities[usable].astype(np.float64)
    if field is not None and field.withheld is not None:
        # Each track's whole deviation, as the fit's noise model and its calibration were
        # measured: the shrinkage removes independent track noise, which the fit averages
        # anyway; its residual scatter would then understate what the field's error leaves.
        velocities += field.withheld[usable]
    points = tracks.points[usable].astype(np.float64)
    lens = None if field is None else field.lens
    if lens is not None:
        # The tracker's field lives in the lens' undistorted image (TrackStore.set_lens):
        # the tracks go there too (where the tracker put them, if it says), and from here on
        # the camera has no distortion.
        points, jacobian = _undistorted_tracks(field, lens, usable, points)
        velocities = np.einsum("nij,nj->ni", jacobian, velocities)
        camera = lens.pinhole()
    lag, velocities, points, field_variance, line = _evaluation_time(
        tracks.motion_field, timing, gyro, velocities, points)
    refused = _collinear(points, {"n_tracks": n_usable}, cfg)
    if refused is not None:
        return refused

    points_n, flow = normalised_flow(camera, points, velocities)
    focal = 0.5 * sum(camera.focal_px)
    rates = None
    if gyro is not None:
        flow = flow - rotational_field(points_n, gyro.mean)
    elif field is not None and cfg.rates_from_field:
        rates = rates_from_field(field, focal)
        flow = flow - rotational_field(points_n, np.array([rates[0][0], rates[0][1], 0.0]))
    design = design_matrix(points_n)
    fit = robust_fit(design, flow, cfg, _MIN_SCALE_PX_S / focal)
    common: dict[str, Any] = dict(n_tracks=n_usable, n_inliers=int(fit.inliers.sum()),
                                  residual_std=fit.sigma * focal, gyro_used=gyro is not None)
    speed = float(np.median(np.hypot(velocities[:, 0], velocities[:, 1])))
    refused = _refusal(fit, points, speed, fit.sigma * focal, common, cfg)
    if refused is not None:
        return refused

    if rates is not None and field_variance is not None:   # no gyro: rates from the field
        field_variance = stamp_field_variance(field)
    field_cov = None if field is None else (field, field_covariance(field, field_variance))
    noise = _fit_noise(fit, design, focal, field, points)
    fusion = None
    if field_cov is not None and gyro is not None and cfg.gyro_field_fusion:
        theta_cov = noise.independent + noise.field_gain @ field_cov[1] @ noise.field_gain.T
        fusion = fuse_rates(field, gyro, focal, fit.theta, theta_cov, line)
    motion = _motion(fit, noise, points_n, gyro, lag, focal, cfg, field=field_cov,
                     field_rates=rates, fusion=fusion)
    v, w = motion.scale_free, motion.angular
    excess = None   # the translation's curvature through the gyro's line
    if line is not None and samples is not None and field is not None:
        excess = _line_bias(field, line, samples, gyro, motion)
    line_bias2 = None if excess is None else np.maximum(excess, 0.0)
    if line_bias2 is not None and line_bias_floor is not None:
        line_bias2 = np.maximum(line_bias2, line_bias_floor)
    common.update(linear_per_distance=v, angular=w,
                  flow_rate=np.array([w[0] - v[1], w[1] + v[0]]), line_bias_excess=excess,
                  distance_rate=motion.distance_rate[0],
                  distance_rate_variance=motion.distance_rate[1])
    d = math.nan if distance is None else float(distance)
    if not (math.isfinite(d) and cfg.min_scene_distance <= d <= cfg.max_scene_distance):
        return VelocityEstimate("no_distance", f"no usable distance to the scene ({d} m; "
                                f"need [{cfg.min_scene_distance}, {cfg.max_scene_distance}] m)",
                                **common)
    common["distance_rate"], common["distance_rate_variance"] = _rate_over_lag(
        motion, lag, d, acceleration, cfg)
    linear = d * v
    scale = np.array([d, d, d, 1.0, 1.0, 1.0])
    covariance = motion.covariance * np.outer(scale, scale)
    rel_var = (float(distance_variance) / (d * d)
               if distance_variance is not None and distance_variance > 0.0
               else cfg.distance_rel_std**2)
    tracks_part, rotation_part, field_part = motion.linear_parts
    terms = dict(tracks=d * d * tracks_part, motion_field=d * d * field_part,
                 rotation=d * d * rotation_part,
                 distance=rel_var * np.outer(linear, linear),
                 line_bias=(np.zeros((3, 3)) if line_bias2 is None
                            else d * d * np.diag(line_bias2)),
                 acceleration=(np.zeros((3, 3)) if lag <= 0.0
                               else lag * lag * acceleration_covariance(acceleration, cfg)))
    for name in ("distance", "line_bias", "acceleration"):
        covariance[:3, :3] += terms[name]
    measured = linear
    if lag > 0.0 and acceleration is not None:   # the world velocity's change over the lag
        linear = linear + lag * acceleration.value
    if not (np.isfinite(linear).all() and np.isfinite(covariance).all()):
        return VelocityEstimate("degenerate", "the estimate is not finite (an input was not: "
                                "gyro, distance or the tracks' field)", **common)
    return VelocityEstimate("ok", "", linear=linear, covariance=covariance, distance=d,
                            measured_linear=measured, lag=lag, covariance_terms=terms,
                            **common)
