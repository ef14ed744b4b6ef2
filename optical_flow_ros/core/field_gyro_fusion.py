"""The tracker's motion field beside the gyro: through the gyro's line, its roll/pitch rates.

Frames and units: the camera optical frame; rates rad/s; the field's 8 parameters
(:class:`~optical_flow_ros.core.field_velocity.MotionField`) px/s in the lens' undistorted
image, their variances (px/s)^2; the affine fit's ``theta``
(:mod:`~optical_flow_ros.core.affine_flow_fit`) 1/s.

The gyro's rate at the velocity's instant is a least-squares line through its samples
(:mod:`~optical_flow_ros.core.gyro_rates`). The field is taken through the same line over the
same sample times (:func:`field_through_line`), so that the flow and the rotation describe
the same average and a curving rate leaves no bias between them.

A plane seen while turning gives the field second-order terms ``(s beta - wy)`` and
``(s gamma + wx)``: the roll/pitch rates (:func:`rates_from_field`) plus a climbing plane's
share ``s (beta, gamma)`` (:func:`plane_rate_terms`, from the frame's affine fit), which the
velocity removes. Without a gyro (the ``rates_from_field`` setting) they are the field's
rates at the stamp, with its variance there (:func:`stamp_field_variance`); with one
(``gyro_field_fusion``) the field's rates through the line, that share removed, are combined
with the gyro's by their variances (:func:`fuse_rates`; the field's parameters' covariance:
:func:`field_covariance`).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from optical_flow_ros.core.field_velocity import MotionField
from optical_flow_ros.core.gyro_rates import GyroRates
from optical_flow_ros.core.interval_polynomial import noise_gain

__all__ = ["FieldLine", "Fusion", "field_covariance", "field_through_line", "fuse_rates",
           "plane_rate_jacobian", "plane_rate_terms", "rates_from_field", "stamp_field_variance"]

#: The tilted plane's share of the field's roll/pitch rates (fuse_rates) is known to this
#: fraction of its size beyond the fit's noise (std). Measured against the exact share through
#: the gyro's line (bench/plane_share_error.py: the simulator's rates minus its exact field's) on
#: the TRAIN, held-out, fresh and turn flights of bench/velocity_flights.py, 2 draws, on the
#: 22 axes where the share is above 0.4 mrad/s rms: its error over its size, the fit's noise
#: included, rms 0.135, median 0.11, 90 % 0.21, largest 0.25 (a 60 Hz rocket tilt; 0.21 on the
#: 1.2 m chelsea tilt, the largest share, 11 mrad/s). The largest is taken: at the rms (0.15)
#: and at 0.2 that chelsea flight's velocity came out too narrow across its direction (3 sigma
#: 96 %). 0.5 before, from a measure that took the field's own rate error (counted in the
#: motion_field term) for the share's: this term was then 4-15x the gyro's own share of the
#: rotation term on tilting flights drawn afresh, and their velocity 1.6-3x too wide across
#: (median NEES 0.72-0.91 on 7 of 12; with 0.25: 8 of 12 in 1-2 instead of 5; the 28 default
#: flights 21 instead of 20, 3 sigma >= 97.6 %; RMSE unchanged).
_PLANE_REL_STD = 0.25


def _line_nodes(field: MotionField, gyro: GyroRates) -> tuple[np.ndarray, np.ndarray] | None:
    """The nodes of the field through the gyro's line and their weights; None without a line.

    ``field.max_degree + 1`` times over the gyro samples' span, and the weights ``c`` with
    which ``sum_j c_j theta(t_j)`` is the line's operator applied to a polynomial ``theta``
    of that degree. None with one sample or one distinct time.
    """
    weights = gyro.line_weights()
    if weights is None:
        return None
    times = gyro.sample_times
    nodes = np.linspace(float(times[0]), float(times[-1]), field.max_degree + 1)
    if nodes.size == 1 or nodes[-1] <= nodes[0]:
        return None
    centre, half = 0.5 * (nodes[0] + nodes[-1]), 0.5 * (nodes[-1] - nodes[0])
    vander = np.vander((nodes - centre) / half, increasing=True)
    basis = np.vander((times - centre) / half, nodes.size, increasing=True)  # (n, k + 1)
    return nodes, np.linalg.solve(vander.T, basis.T @ weights)


class FieldLine(NamedTuple):
    """The field's parameters through the gyro's line (:func:`field_through_line`)."""

    theta: np.ndarray             # (8,) px/s
    variance: np.ndarray          # (8,) their error variance, (px/s)^2
    #: the field at the gyro's time itself (:meth:`MotionField.evaluate`): theta (8,) px/s
    #: and its variance (8,) (px/s)^2; None without a line (one gyro sample)
    instant: tuple[np.ndarray, np.ndarray] | None = None


def field_through_line(field: MotionField, gyro: GyroRates) -> FieldLine:
    """The field's parameters through the gyro's line, and their error variance.

    ``sum_i w_i theta(t_i)`` over the gyro's sample times ``t_i`` with its line weights (the
    same operator as the rate). ``theta(t)`` (:meth:`MotionField.evaluate`: the degree
    chosen per parameter at ``t``) is evaluated at ``field.max_degree + 1`` nodes over the
    samples' span and interpolated by a polynomial, so the value is ``sum_j c_j theta(t_j)``
    and, each ``theta(t_j)`` being linear in the intervals' parameters, its noise variance is
    exact under the field's model (each interval with ``field.noise``, consecutive ones
    correlated by ``field.noise_correlation``: :func:`~.interval_polynomial.noise_gain`), scaled
    at each node by the self-check's factor there (:meth:`MotionField.factor_at`); the nodes'
    estimated biases add up in the worst case (``(sum_j |c_j| b_j)^2``).

    The old bound (the nodes' mean variance times ``(sum |w_i|)^2``, as if the errors at all
    times were one) was 2-10x the error measured against the simulator's exact field on the
    TRAIN flights of bench/velocity_flights.py (one gyro sample per frame).
    Without a line (one sample): the field at the gyro's time.
    """
    line = _line_nodes(field, gyro)
    if line is None:
        return FieldLine(*field.theta_at(gyro.time))
    nodes, node_weights = line
    # All nodes, and the gyro's time itself (for velocity_estimator's _line_bias), in one batch.
    times = np.append(nodes, gyro.time)
    values, variances, interval_weights, bias2 = field.evaluate_many(times)
    k = nodes.size
    theta = node_weights @ values[:k]
    scaled = node_weights[:, None] * np.sqrt(field.factors_at(nodes))   # (k + 1, 8)
    combined = np.einsum("kj,kjn->jn", scaled, interval_weights[:k])
    bias = np.abs(node_weights) @ np.sqrt(bias2[:k])
    persistent = node_weights.sum() ** 2 * field.persistent_variance   # the same at every node
    noise = noise_gain(combined, field.noise_correlation) * field.noise
    return FieldLine(theta, noise + bias * bias + persistent, (values[k], variances[k]))


def field_covariance(field: MotionField, variance: np.ndarray) -> np.ndarray:
    """(8, 8) covariance of the field's parameters: ``variance`` (8,) with their correlation.

    The tracks' lasting errors' part (:attr:`MotionField.persistent_covariance`, the same at
    every time) with its own measured correlation, the rest with the self-check's measured
    one (``correlation``).
    """
    if field.correlation is None:
        return np.diag(variance)
    persistent = field.persistent_covariance
    if persistent is None:
        std = np.sqrt(variance)
        return field.correlation * np.outer(std, std)
    std = np.sqrt(np.maximum(variance - np.diagonal(persistent), 0.0))
    return field.correlation * np.outer(std, std) + persistent


def rates_from_field(field: MotionField, focal: float) -> tuple[np.ndarray, np.ndarray]:
    """Roll and pitch rates (wx, wy) rad/s from the field's second-order terms.

    Returns them and their gain (2, 8) from the field's parameters.

    A plane seen while turning gives (normalised) ``x'`` the terms ``(s beta - wy) x^2 +
    (s gamma + wx) x y``; with the field's coordinates ``(u - c) / scale`` these
    coefficients are ``theta[6] f / scale^2`` and ``theta[7] f / scale^2``. The plane's
    ``s beta`` terms (climb rate over distance times tilt) are left in (see the module
    docstring).
    """
    k = np.zeros((2, 8))
    unit = focal / field.scale**2
    k[0, 7] = unit
    k[1, 6] = -unit
    return k @ field.theta, k


def stamp_field_variance(field: MotionField) -> np.ndarray:
    """(8,) the field's error variance at the stamp as the rates from the field take it, (px/s)^2.

    Without gyro the roll/pitch rates are the field's second-order terms at the stamp, and
    their error is most of the (vx, vy) error. The self-check's one factor per parameter
    (``calibration``) mixes two errors, so here each part gets its own: the noise part the
    factor measured for the degree the parameter chose (``degree_calibration``), the bias
    part the chosen degree's squared bias estimated without the degree choice's threshold
    (``unbiased_bias2``, not scaled: it is measured, not modelled). Measured with the exact
    field on the TRAIN flights of bench/velocity_flights.py: the second-order terms' error
    was 1.7-4.7x their published variance where degree <= 1 was chosen (every 3-sigma miss
    of the field's part came from those frames) and 0.2-0.5x where >= 2; the field's part of
    (vx, vy) went from 0.19-2.6x its published variance to 0.1-1.0x, its 3-sigma misses
    from up to 6 % of frames to up to 5 % (one flight) and 1 %.
    """
    if (field.calibration is None or field.degree_calibration is None
            or field.unbiased_bias2 is None):
        return field.theta_variance
    persistent = field.persistent_variance
    noise = (field.theta_variance - persistent - field.bias_variance) / field.calibration
    bias2 = np.maximum(field.unbiased_bias2, field.bias_variance / field.calibration)
    return noise * field.degree_calibration + bias2 + persistent


def plane_rate_terms(theta: np.ndarray, eps: float) -> np.ndarray:
    """(2,) rad/s: what a plane seen while climbing adds to the field's roll/pitch rates.

    The field's second-order terms are ``(s beta - wy)`` and ``(s gamma + wx)``
    (:func:`rates_from_field`), so the rates are the field's plus ``(-s gamma, s beta)``.
    ``s`` and ``t = beta + i gamma`` from the affine fit ``theta`` (6,) as in
    :func:`~.affine_flow_fit.decompose` (``s t = s tau t conj(tau) / (|tau|^2 + eps)``:
    faded out where the translation's direction is noise, the tilt then being unobservable).
    """
    a, c1, c2, b, c3, c4 = theta
    tau = a + 1j * b
    tau_t = -(c1 - c4) - 1j * (c2 + c3)
    tilt = tau_t * np.conj(tau) / (abs(tau) ** 2 + eps)
    s = 0.5 * (c1 + c4 + (tilt * np.conj(tau)).real)
    return np.array([-s * tilt.imag, s * tilt.real])


def plane_rate_jacobian(theta: np.ndarray, eps: float) -> np.ndarray:
    """(2, 6) derivative of :func:`plane_rate_terms` by central differences."""
    step = 1e-6 * max(float(np.abs(theta).max()), 1e-3)
    columns = [(plane_rate_terms(theta + step * e, eps) - plane_rate_terms(theta - step * e,
                                                                         eps)) / (2 * step)
               for e in np.eye(6)]
    return np.column_stack(columns)


class Fusion(NamedTuple):
    """Roll/pitch rates from the gyro and from the field, combined (see :func:`fuse_rates`)."""

    shift: np.ndarray        # (3,) fused rates minus the gyro's, rad/s
    field_weight: np.ndarray  # (2,) weight of the field's wx, wy
    field_gain: np.ndarray   # (2, 8) the field rates' gain from the field's parameters
    bias_var: np.ndarray     # (2,) variance of the field rates' plane correction, (rad/s)^2


def fuse_rates(field: MotionField, gyro: GyroRates, focal: float, theta: np.ndarray,
               theta_cov: np.ndarray, line: FieldLine | None = None) -> Fusion:
    """Combine the gyro's roll/pitch rates with the field's, both through the gyro's line.

    The field's rates are taken with the same operator as the gyro's rate
    (:func:`field_through_line`: the line's weights on the samples' times), as the tracks'
    flow is, so that the two differ by their errors only and not by the rates' curvature
    over the window (the field at an instant against the line there left that bias, and
    made the covariance too narrow on held-out flights: median NEES 8.0 and 5.1 on two of
    13, measured with bench_velocity_accuracy's flights, one gyro sample per frame).

    The field's second-order terms are the rates plus a climbing plane's ``s (beta,
    gamma)`` (:func:`rates_from_field`); that share is removed (:func:`plane_rate_terms` of the
    affine fit ``theta`` (3, 2), derotated by the gyro, whose covariance is ``theta_cov``
    (6, 6)), as without a gyro. Its variance: the fit's noise through it, plus
    :data:`_PLANE_REL_STD` of its size (it is first order in the tilt, from one frame's
    fit). Before, the share was only counted (its square as a variance) and the fused rates
    kept it: on the TRAIN flights of bench/velocity_flights.py (one gyro sample per frame)
    the 5 deg tilting flight's horizontal RMSE goes 1.22 -> 1.07 %, the creeping one's 1.43
    -> 1.56 %, the median NEES as close to 1.39 as before (sum of |ln(NEES / 1.39)| 2.55 ->
    2.46).

    Inverse-variance weights per axis: the gyro's variance (its line's), and the field
    rates' (the field's parameter variance through their gain, plus the plane share's).
    ``line``: the field through the gyro's line when already known.
    """
    line = line if line is not None else field_through_line(field, gyro)
    theta_t, variance = line.theta, line.variance
    moved = dataclasses.replace(field, theta=theta_t)
    rates, gain = rates_from_field(moved, focal)
    flat = theta.ravel(order="F")
    eps = float(theta_cov[0, 0] + theta_cov[3, 3])
    plane = plane_rate_terms(flat, eps)
    jacobian = plane_rate_jacobian(flat, eps)
    bias_var = (np.einsum("ij,jk,ik->i", jacobian, theta_cov, jacobian)
                + (_PLANE_REL_STD * plane) ** 2)
    field_var = (np.einsum("ij,jk,ik->i", gain, field_covariance(field, variance), gain)
                 + bias_var)
    gyro_var = np.diag(gyro.mean_cov)[:2]
    weight = gyro_var / np.maximum(gyro_var + field_var, 1e-30)
    shift = np.zeros(3)
    shift[:2] = weight * (rates + plane - gyro.mean[:2])
    return Fusion(shift, weight, gain, bias_var)
