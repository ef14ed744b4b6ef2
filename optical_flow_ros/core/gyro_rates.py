"""The gyro's rate as the velocity stage takes it: matched to the tracks' timing.

Frames and units: the camera optical frame (x right, y down, z forward); rates rad/s, their
covariances (rad/s)^2, stamps s.

The flow is derotated by the gyro's rate at the instant the tracks' velocities describe
(:class:`~optical_flow_ros.core.fit_window.VelocityTiming`): the value there of a
least-squares line through the gyro samples of the velocity window (:func:`gyro_rates`).
:class:`GyroRates` keeps the line, so the rate can be moved along it to another instant:
without the rate's curvature (:meth:`GyroRates.line_at`, to match the tracker's motion field
taken through the same line) or with it (:meth:`GyroRates.at`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optical_flow_ros.core.fit_window import VelocityTiming

__all__ = ["GyroRates", "gyro_rates"]

_CURVATURE_KAPPA = 4.0   # gyro: the quadratic where the squared curvature > this x its noise


class GyroRates(NamedTuple):
    """Gyro rates matched to the tracks' timing, optical frame.

    Attributes:
        mean: (3,) rate at the velocities' instant (``end - lag``), rad/s: derotates the flow
            (and is published when the velocities are at the image stamp).
        latest: (3,) the sample nearest the image stamp, rad/s: published after a lag.
        covariance: (3, 3) covariance of one sample, (rad/s)^2.
        staleness: (3, 3) added to the published rate's covariance for the time between
            that sample and the image, (rad/s)^2.
        mean_covariance: (3, 3) covariance of ``mean`` (the line fit's at that instant, or
            one sample's), (rad/s)^2; None: ``covariance``.
        time: the instant of ``mean``, s (None: ``end - lag`` of the timing).
        slope: (3,) the fitted line's slope, rad/s^2 (None: no line).
        line_count: samples of the line.
        line_sxx: sum of their squared time deviations from their mean, s^2.
        curvature_var: (3,) squared half second derivative of the rate, (rad/s^3)^2: the
            quadratic fit's coefficient squared less its noise variance (>= 0); None with
            fewer than 4 samples.
        line_moments: (mean of x^2 s^2, sum x^3 / sum x^2 s) of the samples' times x about
            their mean (the line's bias for a rate ``c x^2``).
        curvature: (3,) the quadratic's coefficient ``c`` per axis, rad/s^3 (None with fewer
            than 4 samples).
        curvature_ssq: the sum of squares of its regressor, s^4: ``var(c) = var / ssq``.
        sample_times: (line_count,) the line's sample stamps, s (None: no line).
    """

    mean: np.ndarray
    latest: np.ndarray
    covariance: np.ndarray
    staleness: np.ndarray
    mean_covariance: np.ndarray | None = None
    time: float | None = None
    slope: np.ndarray | None = None
    line_count: int = 0
    line_sxx: float = 0.0
    curvature_var: np.ndarray | None = None
    line_moments: tuple[float, float] = (0.0, 0.0)
    curvature: np.ndarray | None = None
    curvature_ssq: float = 0.0
    sample_times: np.ndarray | None = None

    def line_at(self, t: float) -> GyroRates:
        """These rates moved along the fitted line to ``t`` (s), without curvature terms.

        ``mean`` is the line's value there, its variance the line's (``1/n + x^2 / sxx``
        times one sample's); unchanged without a line. No curvature term: for the flow
        averaged with :meth:`line_weights` (the same operator on the same sample times) a
        curving rate cancels.
        """
        if self.slope is None or self.time is None or self.line_sxx <= 0.0:
            return self
        x = t - self.time
        factor = 1.0 / self.line_count + x * x / self.line_sxx
        return self._replace(mean=self.mean + self.slope * x, time=t,
                             mean_covariance=factor * self.covariance)

    def line_weights(self) -> np.ndarray | None:
        """(line_count,) weights of the samples in ``mean``: ``mean = weights @ samples``.

        ``mean`` is a least-squares line's value at ``time``; None without a line.
        """
        if self.sample_times is None or self.line_sxx <= 0.0 or self.time is None:
            return None
        x = self.sample_times - self.sample_times.mean()
        at = self.time - float(self.sample_times.mean())
        return 1.0 / x.size + at * x / self.line_sxx

    def at(self, t: float) -> GyroRates:
        """These rates with ``mean`` moved along the fitted line to ``t`` (s).

        Its covariance is the line's there, plus the squared bias a curving rate gives the
        line there (``curvature_var``); unchanged without a line (fewer than 2 samples).
        Per axis, where the estimated squared curvature exceeds its own noise variance
        (``curvature_var > var / ssq``: the quadratic's extra noise is then smaller than
        the line's bias), the quadratic through the samples is used instead, with its own
        variance there.
        """
        if self.slope is None or self.time is None or self.line_sxx <= 0.0:
            return self
        x = t - self.time
        factor = 1.0 / self.line_count + x * x / self.line_sxx
        shift, extra = self.curvature_terms(t)
        return self._replace(mean=self.mean + self.slope * x - shift, time=t,
                             mean_covariance=factor * self.covariance + np.diag(extra))

    def curvature_terms(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """What :meth:`at` adds to the line's value at ``t`` (s), per axis.

        Returns (the correction subtracted from the line's value, rad/s; the variance it
        adds, (rad/s)^2). Zeros without a curvature estimate (fewer than 4 samples).
        """
        zeros = np.zeros(3)
        if self.curvature_var is None or self.time is None:
            return zeros, zeros
        x = t - self.time
        mean_x2, skew = self.line_moments
        bias = mean_x2 + skew * x - x * x   # rate c x^2: the line's value off by c * this
        if self.curvature is None or self.curvature_ssq <= 0.0:
            return zeros, self.curvature_var * bias * bias
        noise = np.diagonal(self.covariance) / self.curvature_ssq
        quadratic = self.curvature_var > _CURVATURE_KAPPA * noise
        return (np.where(quadratic, self.curvature * bias, 0.0),
                np.where(quadratic, noise, self.curvature_var) * bias * bias)

    @property
    def mean_cov(self) -> np.ndarray:
        """Covariance of ``mean``, (rad/s)^2."""
        return self.covariance if self.mean_covariance is None else self.mean_covariance


def gyro_rates(times: np.ndarray, rates: np.ndarray, timing: VelocityTiming, *,
               max_age: float, covariance: np.ndarray | None = None,
               gyro_std: float = 0.0) -> GyroRates | None:
    """Match a history of gyro samples to the tracks' :class:`VelocityTiming`.

    The velocities describe the motion at ``tc = end - lag`` (with ``timing.at_stamp``: at
    the mean time of the samples in the window, where the line is best known; the
    estimator then takes the tracks' motion field there). A straight line is fitted
    (least squares) to the samples in the velocity window ``[start, end]``; its value at
    ``tc`` derotates the flow, so a rate changing linearly is matched exactly even when the
    newest samples have not arrived yet (the imu message of a frame often comes just after
    its image). The sample nearest ``end`` is published, its covariance grown by the line's
    slope times its age. With fewer than two samples in the window the sample nearest
    ``tc`` is used.

    Args:
        times: (M,) sample stamps, s.
        rates: (M, 3) angular velocities in the optical frame, rad/s.
        timing: the velocity window of the frame.
        max_age: the sample nearest the image stamp must be within this, s; else None.
        covariance: (3, 3) per-sample covariance, (rad/s)^2; None: ``gyro_std^2 I``.
        gyro_std: rad/s, used when ``covariance`` is None.

    Returns:
        The rates and covariances; None without a sample within ``max_age`` of the image.
    """
    t = np.asarray(times, np.float64).reshape(-1)
    w = np.asarray(rates, np.float64).reshape(-1, 3)
    if t.size == 0:
        return None
    newest = int(np.argmin(np.abs(t - timing.end)))
    age = timing.end - float(t[newest])
    if abs(age) > max_age:
        return None
    inside = (t >= timing.start - 1e-9) & (t <= timing.end + 1e-9)
    tc = timing.end - timing.lag
    if timing.at_stamp:   # where the line through the samples is best known: their middle
        tc = float(t[inside].mean()) if inside.any() else float(t[newest])
    slope = np.zeros(3)
    x = t[inside] - tc
    spread = x - x.mean() if x.size >= 2 else x
    sxx = float(spread @ spread)
    factor = 1.0
    cov = (np.asarray(covariance, np.float64).reshape(3, 3) if covariance is not None
           else np.eye(3) * gyro_std**2)
    curvature_var, moments, curvature, ssq = None, (0.0, 0.0), None, 0.0
    if sxx > 0.0:   # least-squares line through the samples (two distinct stamps at least)
        w_in = w[inside]
        slope = spread @ w_in / sxx
        mean = w_in.mean(axis=0) - slope * x.mean()
        factor = 1.0 / x.size + float(x.mean()) ** 2 / sxx     # the line's variance at tc
        moments = (float(spread @ spread) / x.size, float(spread**3 @ np.ones(x.size)) / sxx)
        if x.size >= 4:   # how much the rate curves: a quadratic's coefficient
            square = spread * spread
            square -= square.mean()
            square -= (square @ spread) / sxx * spread           # orthogonal to 1 and x
            ssq = float(square @ square)
            if ssq > 0.0:
                c = square @ w_in / ssq
                curvature = c
                curvature_var = np.maximum(c * c - np.diagonal(cov) / ssq, 0.0)
    else:
        mean = w[int(np.argmin(np.abs(t - tc)))].copy()
    return GyroRates(mean=mean, latest=w[newest].copy(), covariance=cov,
                     staleness=np.outer(slope * age, slope * age), mean_covariance=factor * cov,
                     time=tc, slope=slope if sxx > 0.0 else None, line_count=int(x.size),
                     line_sxx=sxx, curvature_var=curvature_var, line_moments=moments,
                     curvature=curvature, curvature_ssq=ssq if curvature is not None else 0.0,
                     sample_times=t[inside].copy() if sxx > 0.0 else None)

