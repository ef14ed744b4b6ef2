"""Least-squares polynomials in time through interval averages, and their noise.

Units: times s; the intervals' values and a value at a time in one unit (in
:mod:`~optical_flow_ros.core.field_velocity`: the motion field's 8 parameters, px/s); noise
gains in units of one interval's noise variance.

A value known only by its averages over consecutive intervals ``[start, end]`` (a field
fitted to the tracks' displacements over one frame interval is the field's mean there) is
fitted by the polynomial in time whose averages over the intervals match them in the
least-squares sense (:func:`interval_rows_at`): interval averages, not samples, so uneven
intervals and dropped frames are exact. Its value at a time ``t`` (inside the intervals, or
after them: an extrapolation) is a linear combination of the intervals' values, whose weights
give its noise.

Consecutive intervals are not independent: an error of one frame's position enters the
interval into that frame and the one out of it with opposite signs (a correlation of -0.5
for such errors alone), so sums over consecutive intervals telescope. :func:`noise_gain`
counts the correlation of neighbouring intervals in every variance through the weights.

The degree is chosen per parameter by the least estimated mean squared error
(:func:`extrapolate`): each lower degree's squared bias is estimated against the highest, and
counted only beyond :data:`BIAS_KAPPA` times its noise. The nested least-squares fits of every
degree come from one QR factorisation (:func:`nested_weights`), cached by the intervals' times
relative to ``t``, which repeat at a steady frame rate.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["BIAS_KAPPA", "Extrapolation", "Weights", "extrapolate", "interval_rows_at",
           "nested_weights", "noise_gain"]

#: A lower degree's estimated squared bias counts only beyond this many times the variance of its
#: difference from the highest degree's value (see :func:`extrapolate`). Measured against 4
#: (bench/velocity_flights.py's 28 default flights, 3 draws of the noise; 12 tilting and turning
#: flights drawn at random, 2 draws): at 4 the choice took lower degrees than the error wanted (on
#: six held-out flights the highest degree alone, 3, gave the field at the stamp a 15-40 % smaller
#: per-track error than the choice did; over the 7 px/s creep a 35 % larger one). At 2 the median
#: per-track error at the stamp fell on the tilting flights (60 Hz rocket 0.87 -> 0.75 %, 15 Hz
#: moon 0.73 -> 0.61 %, the creep 3.25 -> 2.80 %) and rose by 0.01-0.04 % on some steady turns; the
#: ego-velocity's median NEES (pooled over the draws) came in 1-2 on 23 of the 28 flights with gyro
#: (22 at 4) and 24 without (19 at 4, too wide across the velocity: mean z^2 0.78, now 0.99), on 12
#: of the 12 random ones (11). What it costs: on a constant field the stamp's value is a little
#: noisier (test_field_velocity's plane), and a low degree, now chosen only where its estimated
#: bias is small, has a bias estimate that runs small (those frames' mean z^2 1.9-2.5 on a
#: synthetic wavy course, 1.4-1.6 at 4). At 1 the turns' per-track errors rose further (0.21 ->
#: 0.30 % over rocket) and a random flight's NEES went above 2.
BIAS_KAPPA = 2.0
# The columns of the parameters (the intervals' values' second axis), for the per-parameter
# choice of a degree.
_COLUMNS = np.arange(8)


def _lag_sums(weights: np.ndarray) -> np.ndarray:
    """Sums of the products of consecutive weights along the last axis (``sum w_k w_k+1``)."""
    return (weights[..., :-1] * weights[..., 1:]).sum(axis=-1)


def noise_gain(weights: np.ndarray, correlation: float | np.ndarray) -> np.ndarray:
    """Variance of ``weights @ intervals`` in units of one interval's noise variance.

    ``weights`` (..., n) of consecutive intervals (oldest first) whose errors have unit
    variance and ``correlation`` (a number, or an array broadcast against ``weights``'
    leading axes) between neighbours, none beyond: ``sum w_k^2 + 2 correlation sum w_k
    w_k+1``.
    """
    return (weights * weights).sum(axis=-1) + 2.0 * correlation * _lag_sums(weights)


def _interval_rows(starts: np.ndarray, ends: np.ndarray, t: float, degree: int) -> np.ndarray:
    """(n, degree + 1): the average over each interval of ``((t' - t) / span)^k``.

    The span runs from the first start to ``t``.
    """
    span = max(t - float(starts.min()), 1e-9)
    s, e = (starts - t) / span, (ends - t) / span
    powers = np.arange(1, degree + 2)
    return (e[:, None] ** powers - s[:, None] ** powers) / (powers * (e - s)[:, None])


def interval_rows_at(starts: np.ndarray, ends: np.ndarray, times: np.ndarray,
                     degree: int) -> np.ndarray:
    """(M, n, degree + 1): :func:`_interval_rows` at each of ``times`` (M,), s."""
    span = np.maximum(times - float(starts.min()), 1e-9)[:, None]   # (M, 1)
    s, e = (starts - times[:, None]) / span, (ends - times[:, None]) / span   # (M, n)
    powers = np.arange(1, degree + 2)
    return ((e[..., None] ** powers - s[..., None] ** powers)
            / (powers * (e - s)[..., None]))


_WEIGHTS_CACHE_SIZE = 64


class Weights(NamedTuple):
    """Extrapolation of interval means to a time, for every degree up to ``top``."""

    weights: np.ndarray      # (top + 1, n): row p gives degree p's value at the time
    gains: np.ndarray        # (top + 1,): sums of squared weights (noise gains)
    lag_gains: np.ndarray    # (top + 1,): sums of products of consecutive weights
    # (top + 1,): the same two for weights[top] - weights[p] (the difference's noise gain,
    # times BIAS_KAPPA)
    excess: np.ndarray
    lag_excess: np.ndarray
    residual: np.ndarray | None   # (n, n) projector onto degree top's residuals
    dof: int                 # n - top - 1
    residual_lag: float      # sum of the projector's first off-diagonal

    def noise_gains(self, correlation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gains, excess), (top + 1, 8), for intervals correlated by ``correlation`` (8,)."""
        rho = 2.0 * correlation[None, :]
        return (self.gains[:, None] + rho * self.lag_gains[:, None],
                self.excess[:, None] + rho * self.lag_excess[:, None])


def nested_weights(starts: np.ndarray, ends: np.ndarray, t: float, top: int,
                   cache: dict[tuple[int, bytes], Weights]) -> Weights:
    """The :class:`Weights` of intervals ``[starts, ends]`` at ``t`` up to degree ``top``.

    Nested least squares from one QR of the interval-averaged powers: degree p uses
    ``q[:, :p+1]`` and the leading block of ``r``, whose inverse is the leading block of
    ``r``'s inverse; the value at ``t`` is the first coefficient. Cached (in ``cache``) by
    the intervals' times relative to ``t`` in microseconds, which repeat at a steady rate.
    """
    relative = np.rint(np.concatenate((starts, ends)) * 1e6 - t * 1e6)
    key = (top, relative.tobytes())
    cached = cache.get(key)
    if cached is not None:
        return cached
    q, r = np.linalg.qr(_interval_rows(starts, ends, t, top))
    weights = np.cumsum(q * np.linalg.inv(r)[0], axis=1).T
    gains = (weights * weights).sum(axis=1)
    n = starts.shape[0]
    dof = n - top - 1
    residual = np.eye(n) - q @ q.T if dof > 0 else None
    residual_lag = 0.0 if residual is None else float(np.trace(residual, offset=1))
    difference = weights[top] - weights
    result = Weights(weights, gains, _lag_sums(weights),
                     BIAS_KAPPA * (difference * difference).sum(axis=1),
                     BIAS_KAPPA * _lag_sums(difference), residual, dof, residual_lag)
    if len(cache) >= _WEIGHTS_CACHE_SIZE:
        cache.clear()
    cache[key] = result
    return result


class Extrapolation(NamedTuple):
    """The field's parameters at a time, each from the degree :func:`extrapolate` chose."""

    theta: np.ndarray        # (8,) the field's parameters at the stamp
    variance: np.ndarray     # (8,) their error variance (noise + estimated bias), (px/s)^2
    squares: np.ndarray | None   # (8,) squared residuals of the per-interval parameters
    #                              about the polynomial of degree max_degree, summed, (px/s)^2
    #: (8,) their expected sum in units of one interval's noise variance (the degrees of
    #: freedom, and what the correlation of consecutive intervals adds; 0: none)
    dof: np.ndarray | float
    degrees: np.ndarray      # (8,) the chosen degree per parameter
    bias2: np.ndarray        # (8,) the chosen degree's estimated squared bias
    weights: np.ndarray      # (8, n) each parameter's weights of the intervals' values
    #: (8,) the chosen degree's squared bias estimated without the choice's threshold
    #: (``BIAS_KAPPA``): ``max((e_p - e_P)^2 - (V_P - V_p), 0)``, (px/s)^2
    unbiased_bias2: np.ndarray | None = None


def extrapolate(starts: np.ndarray, ends: np.ndarray, thetas: np.ndarray, t: float,
                max_degree: int, noise_var: np.ndarray,
                cache: dict[tuple[int, bytes], Weights],
                correlation: np.ndarray) -> Extrapolation:
    """Each parameter's value at ``t``, from the degree with the least estimated error.

    Degrees up to ``max_degree``; the error is the mean squared error estimated below.

    ``noise_var`` (8,) is the variance of one interval's parameters about the true curve,
    ``correlation`` (8,) that of consecutive intervals' errors (:func:`noise_gain`; zeros:
    independent).
    Without enough intervals for degree ``max_degree`` and one more, the degree is lowered.
    ``var(e_P - e_p)`` of nested least-squares polynomials is the noise gain of their
    weights' difference (``V_P - V_p`` for independent intervals), so ``(e_p - e_P)^2 -
    var(e_P - e_p)`` estimates degree p's squared bias against the highest degree P; it
    counts only beyond ``BIAS_KAPPA`` times that variance (a bias hidden in the noise is not
    worth the lower degree's noise), and ``MSE_p = bias_p^2 + V_p``.
    """
    n = starts.shape[0]
    top = min(max_degree, max(n - 2, 0))      # one interval more than coefficients
    w = nested_weights(starts, ends, t, top, cache)
    gains, excess = w.noise_gains(correlation)
    estimates = w.weights @ thetas                                # (top + 1, 8)
    mse = (estimates - estimates[top]) ** 2
    unbiased = np.maximum(mse - (excess / BIAS_KAPPA) * noise_var, 0.0)
    mse -= excess * noise_var
    np.maximum(mse, 0.0, out=mse)
    mse += gains * noise_var
    best = np.argmin(mse, axis=0)                                 # (8,)
    columns = _COLUMNS[:thetas.shape[1]]
    squares = None
    if top == max_degree and w.residual is not None:   # a lower degree's misfit isn't noise
        squares = ((w.residual @ thetas) ** 2).sum(axis=0)
    # E[squares] = noise * trace(residual projector @ the intervals' correlation matrix)
    dof = (np.maximum(w.dof + 2.0 * correlation * w.residual_lag, 0.0)
           if squares is not None else 0.0)
    return Extrapolation(estimates[best, columns], mse[best, columns], squares, dof, best,
                         mse[best, columns] - gains[best, columns] * noise_var,
                         w.weights[best],
                         unbiased[best, columns])

