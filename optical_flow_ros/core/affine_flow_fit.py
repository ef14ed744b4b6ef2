"""The robust affine fit of the tracks' normalised flow, and what it says of a plane's motion.

Frames and units: the camera optical frame; normalised image coordinates are the undistorted
ray ``(x, y, 1)``, their velocities (the flow) 1/s; the fit's parameters ``theta`` (3, 2):
``(a, c1, c2)`` of x' and ``(b, c3, c4)`` of y', 1/s.

The derotated flow is fitted as an affine field ``(-a + c1 x + c2 y, -b + c3 x + c4 y)``
(the model: :mod:`~optical_flow_ros.core.velocity_estimator`); :func:`decompose` reads the
scale-free translation, the yaw rate and the plane's tilt from it.

Pixel velocities become normalised ones by a central difference of the camera model along
each track's velocity (``(normalize(p + h u) - normalize(p - h u)) / 2h`` times the speed,
``u`` its direction, ``h`` = 1 px): that undistorts them with whatever model CameraInfo
names (the Jacobian of the undistortion, without writing it per model); the difference error
is O(h^2) of the distortion's curvature, far below tracking noise.

Robust fit (outlier tracks on moving objects): least median of squares over random minimal
sets of three tracks (seeded, so a frame's result is reproducible), Tukey-biweight IRLS from
the best hypothesis with the scale re-estimated from the median residual each step, then
ordinary least squares on the inliers (residual below ``velocity_inlier_sigma`` robust
standard deviations). LMedS tolerates up to half the tracks being outliers.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import numpy as np

from optical_flow_ros.core.camera_model import PinholeCamera

__all__ = ["AffineFit", "RobustFitSettings", "decompose", "decompose_jacobian", "design_matrix",
           "normalised_flow", "robust_fit"]

_TUKEY_C = 4.685          # Tukey biweight tuning constant (95 % efficiency)
_RAYLEIGH_MEDIAN = math.sqrt(2.0 * math.log(2.0))  # median of |r| / sigma for 2-D Gaussian r
_IRLS_ITERATIONS = 8
_DIFF_STEP_PX = 1.0       # central-difference step along the track's velocity, px
_MINIMAL_SET = 3          # tracks per LMedS hypothesis (6 affine parameters)
_LMEDS_SCORED = 200       # hypotheses are scored on every (N // 200)-th track: 200-399 of them


class RobustFitSettings(Protocol):
    """What :func:`robust_fit` reads of its settings.

    A :class:`~optical_flow_ros.core.velocity_estimator.VelocityConfig` (described there).
    """

    @property
    def velocity_robust_fit(self) -> str:
        """``"lmeds"``, or ``"least_squares"``: no outlier rejection."""

    @property
    def lmeds_hypotheses(self) -> int:
        """Random minimal sets tried by lmeds."""

    @property
    def lmeds_seed(self) -> int:
        """Seed of the lmeds sampling."""

    @property
    def velocity_inlier_sigma(self) -> float:
        """Robust standard deviations beyond which a track is an outlier."""


class AffineFit(NamedTuple):
    """The robust fit of the flow (:func:`robust_fit`)."""

    theta: np.ndarray      # (3, 2): columns (a, c1, c2) of x' and (b, c3, c4) of y'
    inliers: np.ndarray    # (N,) bool
    sigma: float           # inlier residual std per component, normalised units / s
    residual_var: float    # inlier residual variance per component, (normalised / s)^2


def normalised_flow(camera: PinholeCamera, points: np.ndarray,
                    velocities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undistorted normalised positions (N, 2) and their velocities (N, 2), per second."""
    speed = np.hypot(velocities[:, 0], velocities[:, 1])
    step = _DIFF_STEP_PX * velocities / np.maximum(speed, 1e-12)[:, None]
    n = camera.normalize(np.concatenate((points, points + step, points - step)))
    count = points.shape[0]
    ahead, behind = n[count:2 * count], n[2 * count:]
    return n[:count], (ahead - behind) * (speed / (2.0 * _DIFF_STEP_PX))[:, None]


def design_matrix(points_n: np.ndarray) -> np.ndarray:
    """(N, 3) regressors ``(-1, x, y)``: the affine flow is ``design @ theta`` (N, 2).

    ``theta`` (3, 2) holds ``(a, c1, c2)`` for x' and ``(b, c3, c4)`` for y', so the two
    components are two least-squares problems with the same design.
    """
    return np.column_stack((-np.ones(points_n.shape[0]), points_n))


def _solve(data: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least squares ``design @ theta = flow``; theta (3, 2).

    ``data`` is (N, 5): the design's 3 columns, then the flow's 2 (one product gives both
    the normal matrix and the right-hand side).
    """
    products = (data * weights[:, None]).T @ data                   # (5, 5)
    normal, rhs = products[:3, :3], products[:3, 3:]
    try:   # the 3x3 normal equations; lstsq (an SVD, 5x slower) only when singular
        return np.linalg.solve(normal, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(normal, rhs, rcond=None)[0]


def _residual_norms(design: np.ndarray, flow: np.ndarray, theta: np.ndarray) -> np.ndarray:
    r = design @ theta - flow
    return np.hypot(r[:, 0], r[:, 1])


def _robust_scale(residual_norms: np.ndarray, floor: float) -> float:
    """Per-component std of 2-D residuals from the median of their norms (Rayleigh)."""
    return max(_median_rows(residual_norms[None, :])[0] / _RAYLEIGH_MEDIAN, floor)


def _median_rows(values: np.ndarray) -> np.ndarray:
    """Median of each row of a C-contiguous (k, n) array (np.median, without its overhead)."""
    n = values.shape[1]
    half = n // 2
    if n % 2:
        return np.partition(values, half, axis=1)[:, half]
    part = np.partition(values, (half - 1, half), axis=1)
    return 0.5 * (part[:, half - 1] + part[:, half])


def _lmeds(data: np.ndarray, config: RobustFitSettings) -> np.ndarray:
    """Hypothesis with the least median residual among random minimal sets of 3 tracks.

    ``data`` is (N, 5): the design's 3 columns, then the flow's 2. A set that repeats a
    track or is collinear is solved with a small ridge and simply scores badly. Hypotheses
    are scored on a regular subset of the tracks (200-399).
    """
    n = data.shape[0]
    h = config.lmeds_hypotheses
    picks = np.random.default_rng(config.lmeds_seed).integers(0, n, (h, _MINIMAL_SET))
    chosen = data[picks]
    xs, fs = chosen[..., :3], chosen[..., 3:]               # (h, 3, 3), (h, 3, 2)
    xt = np.swapaxes(xs, 1, 2)
    normal = xt @ xs
    ridge = 1e-9 * np.trace(normal, axis1=1, axis2=2)[:, None, None] * np.eye(3)
    thetas = np.linalg.solve(normal + ridge, xt @ fs)      # (h, 3, 2)
    scored = slice(None, None, max(1, n // _LMEDS_SCORED))
    # Every hypothesis' residuals in one product: row 2i + c is component c of hypothesis i,
    # (theta_i[:, c], -e_c) . (x, y_flow) over the scored tracks.
    coefficients = np.zeros((h, 2, 5))
    coefficients[:, :, :3] = np.swapaxes(thetas, 1, 2)
    coefficients[:, 0, 3] = coefficients[:, 1, 4] = -1.0
    residuals = coefficients.reshape(2 * h, 5) @ data[scored].T
    squared = residuals[0::2] ** 2 + residuals[1::2] ** 2                 # (h, M)
    return thetas[int(np.argmin(_median_rows(squared)))]


def robust_fit(design: np.ndarray, flow: np.ndarray, config: RobustFitSettings,
               floor: float) -> AffineFit:
    """LMedS + Tukey IRLS + least squares on the inliers (or plain least squares).

    ``floor`` bounds the robust scale from below (normalised units / s), so exact data do not
    make numerical noise look like outliers.
    """
    n = design.shape[0]
    data = np.hstack((design, flow))
    if config.velocity_robust_fit == "least_squares":
        theta = _solve(data, np.ones(n))
        inliers = np.ones(n, bool)
    else:
        theta = _lmeds(data, config)
        for _ in range(_IRLS_ITERATIONS):
            e = _residual_norms(design, flow, theta)
            scale = _robust_scale(e, floor)
            u = e / (_TUKEY_C * scale)
            weights = np.where(u < 1.0, (1.0 - u * u) ** 2, 0.0)
            if np.count_nonzero(weights) <= _MINIMAL_SET:
                break
            previous, theta = theta, _solve(data, weights)
            if np.abs(theta - previous).max() < 1e-3 * scale:    # converged
                break
        e = _residual_norms(design, flow, theta)
        inliers = e <= config.velocity_inlier_sigma * _robust_scale(e, floor)
        if np.count_nonzero(inliers) > _MINIMAL_SET:
            theta = _solve(data, inliers.astype(np.float64))
    r = design[inliers] @ theta - flow[inliers]
    residual_var = float((r * r).sum()) / max(2 * (int(inliers.sum()) - 3), 1)
    return AffineFit(theta, inliers, math.sqrt(residual_var), residual_var)


def decompose(theta: np.ndarray, eps: float) -> np.ndarray:
    """Affine flow ``(..., 6) = (a, c1, c2, b, c3, c4)`` -> ``(..., 7) = (a, b, s, wz, r, ...)``.

    The last two are ``beta``, ``gamma``.

    A plane of inverse depth ``(1 + beta x + gamma y) / d`` seen while translating by
    ``d (a, b, s)`` and yawing at ``wz`` has, to first order in x and y, ``c1 = s - a beta``,
    ``c2 = wz - a gamma``, ``c3 = -b beta - wz``, ``c4 = s - b gamma``. With complex
    ``tau = a + i b`` and ``t = beta + i gamma``: ``tau t = -(c1 - c4) - i (c2 + c3)``, and
    ``conj(tau) t = tau t conj(tau)^2 / |tau|^2 = (a beta + b gamma) + i (a gamma - b beta)``
    gives ``s`` and ``wz``. ``eps`` (~ the variance of tau) fades the tilt terms out where the
    direction of tau is noise (hovering: the tilt is then unobservable and irrelevant).
    ``r = s + a beta + b gamma`` is the rate (1/s) at which the distance along the optical
    axis shrinks: the plane ``beta X + gamma Y + Z = d`` approaches at ``(beta, gamma, 1) v``.
    ``beta``, ``gamma``: the tilt itself (faded out likewise).
    """
    a, c1, c2, b, c3, c4 = np.moveaxis(theta, -1, 0)
    tau = a + 1j * b
    tau_t = -(c1 - c4) - 1j * (c2 + c3)
    tilt = tau_t * np.conj(tau) / (np.abs(tau) ** 2 + eps)
    tilt_term = tilt * np.conj(tau)
    s = 0.5 * (c1 + c4 + tilt_term.real)
    wz = 0.5 * (c2 - c3 + tilt_term.imag)
    return np.stack((a, b, s, wz, s + tilt_term.real, tilt.real, tilt.imag), axis=-1)


def decompose_jacobian(theta: np.ndarray, eps: float) -> np.ndarray:
    """(7, 6) derivative of :func:`decompose` by central differences."""
    step = 1e-6 * max(float(np.abs(theta).max()), 1e-3)
    probes = theta + step * np.concatenate((np.eye(6), -np.eye(6)))
    out = decompose(probes, eps)
    return ((out[:6] - out[6:]) / (2.0 * step)).T
