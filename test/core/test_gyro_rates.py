"""The velocity stage's gyro rate from every IMU sample of the window, and its stated variance.

The simulated IMU (:meth:`SimCamera.imu_samples`) feeds :func:`gyro_rates` as tracker_node
does: the samples stamped before the image, over the velocity window of the last 5 frames at
30 Hz. Its rate at the samples' mean time is a least-squares line through them, so over n
white samples of std sigma its error has variance sigma^2 / n: one sample per frame (n = 4,
the image's own arrives after it), 200 Hz (n = 27) and 1 kHz (n = 134). The stated variance
(``mean_cov``) must say exactly that, and the scatter over seeded repetitions must match it;
away from the mean time the line's variance grows as ``1/n + x^2 / sxx``. A bias common to
the samples is not averaged away (and not in the stated variance: a calibrated IMU's
covariance is its white noise).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig
from optical_flow_ros.core.velocity_estimator import FitWindow, GyroRates, gyro_rates

FRAME_RATE = 30.0
STD = 0.005
TRIALS = 300
# A slowly turning camera whose rates change linearly over the window (a line is exact).
MOTION = dict(velocity_x=1.0, yaw_rate=0.3, roll_amplitude=0.02, attitude_period=20.0)


def _window_rates(imu_rate: float, seed: int, bias: float = 0.0) -> tuple[GyroRates, float]:
    """gyro_rates of frame 10 (5-frame window, samples before the image) and the true rate's
    time; ``bias`` rad/s added to every sample."""
    config = SimCameraConfig(**MOTION, rate=FRAME_RATE, imu_rate=imu_rate,
                             gyro_noise_std=STD, seed=seed)
    sim = SimCamera(config, texture=np.zeros((16, 16), np.uint8))
    window = FitWindow(5, 1.0, at_stamp=True)
    for k in range(11):
        timing = window.update(sim.frame_time(k))
    end = sim.frame_time(10)
    times, rates = sim.imu_samples(end - 1.0, end - 1e-6)   # the image's own sample not yet
    rates = rates + bias
    gyro = gyro_rates(times, rates, timing, max_age=0.2, covariance=np.eye(3) * STD**2)
    assert gyro is not None
    return gyro, sim.state(gyro.time).angular_velocity


@pytest.mark.parametrize(("imu_rate", "n"), [(0.0, 4), (200.0, 27), (1000.0, 134)])
def test_the_window_mean_of_n_white_samples_has_variance_sigma2_over_n(imu_rate, n):
    errors, stated, at_end, stated_end, line_end = [], [], [], [], []
    for seed in range(TRIALS):
        gyro, truth = _window_rates(imu_rate, seed)
        assert gyro.line_count == n
        errors.append(gyro.mean - truth)
        stated.append(np.diagonal(gyro.mean_cov))
        end = gyro.time + 2.0 / FRAME_RATE
        moved = gyro.at(end)
        sim = SimCamera(SimCameraConfig(**MOTION, rate=FRAME_RATE),
                        texture=np.zeros((16, 16), np.uint8))
        at_end.append(moved.mean - sim.state(end).angular_velocity)
        stated_end.append(np.diagonal(moved.mean_cov))
        line_end.append(STD**2 * (1.0 / n + (end - gyro.time) ** 2 / gyro.line_sxx))
    # Stated: exactly sigma^2 / n at the samples' mean time (white samples, a line).
    np.testing.assert_allclose(stated, STD**2 / n, rtol=1e-9)
    # Measured scatter over the seeds: that variance (chi-square, 900 values: +/-10 %).
    errors = np.array(errors)
    np.testing.assert_allclose(np.sqrt(np.mean(errors**2)), STD / math.sqrt(n), rtol=0.1)
    assert np.max(np.abs(errors.mean(axis=0))) < 4 * STD / math.sqrt(n * TRIALS)
    # Two frames later (extrapolated) the error is at least the line's, 1/n + x^2 / sxx (more
    # where the samples' curvature picks the quadratic), and the stated variance covers it:
    # it adds the curvature the samples show, whose positive-part estimate stays above 0 on
    # pure noise (measured: conservative there by 1.25-1.5x).
    measured = float(np.mean(np.array(at_end) ** 2))
    assert 0.85 * np.mean(line_end) <= measured <= 1.15 * np.mean(stated_end)
    assert np.all(np.array(stated_end) >= np.array(line_end)[:, None] * (1 - 1e-9))


def test_a_bias_is_not_averaged_away_by_more_samples():
    for imu_rate in (0.0, 1000.0):
        errors = [(_window_rates(imu_rate, seed, bias=0.003)[0].mean
                   - _window_rates(imu_rate, seed, bias=0.0)[0].mean) for seed in range(5)]
        np.testing.assert_allclose(errors, 0.003, atol=1e-12)
