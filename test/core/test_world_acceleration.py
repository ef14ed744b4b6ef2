"""The camera's acceleration from its own noisy velocities, against a known acceleration."""

from __future__ import annotations

import numpy as np

from optical_flow_ros.core.world_acceleration import AccelerationEstimator

ACCELERATION = np.array([0.3, -0.2, 0.05])      # m/s^2, constant in the world
STD = np.array([0.010, 0.001, 0.0005])          # m/s per axis: a fast vx, a quiet vy, vz


def _z_scores(seeds: range, *, noisy_start: float) -> np.ndarray:
    """(len(seeds), 3) errors of the estimate after 1 s at 30 Hz over its published std.

    Every velocity comes with its stated covariance; the first third of them is
    ``noisy_start`` times noisier (a tracker starting up), and says so.
    """
    z = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        estimator = AccelerationEstimator()
        times = np.arange(31) / 30.0
        for k, t in enumerate(times):
            std = STD * (noisy_start if k < 10 else 1.0)
            velocity = np.array([1.0, 0.5, 0.0]) + ACCELERATION * t + rng.normal(0.0, std)
            estimator.update(t, velocity, np.zeros(3), np.diag(std**2))
        estimate = estimator.estimate()
        assert estimate is not None
        z.append((estimate.value - ACCELERATION) / np.sqrt(np.diag(estimate.covariance)))
    return np.array(z)


def test_each_axis_has_its_own_noise_and_a_calibrated_variance():
    """Per-axis noise: with the axes' mean (the earlier interface), vx's own scatter beyond
    that mean was read as the velocity curving (x180) and its variance was far too wide.
    (The curving term still widens a little: a scatter above the noise by chance counts, so
    the mean squared z is ~0.6-0.8 rather than 1.)"""
    z = _z_scores(range(300), noisy_start=1.0)
    mean_square = (z * z).mean(axis=0)
    assert np.all((mean_square > 0.4) & (mean_square < 1.6)), mean_square


def test_noisier_first_velocities_are_weighed_by_their_variance():
    """Velocities 5x noisier at the start (stated): weighted, the slope stays calibrated."""
    z = _z_scores(range(300), noisy_start=5.0)
    mean_square = (z * z).mean(axis=0)
    assert np.all((mean_square > 0.4) & (mean_square < 1.6)), mean_square


def test_one_variance_for_every_axis_is_still_accepted():
    estimator = AccelerationEstimator()
    for t in np.arange(31) / 30.0:
        estimator.update(t, np.array([1.0, 0.0, 0.0]) + ACCELERATION * t, np.zeros(3), 1e-6)
    estimate = estimator.estimate()
    assert estimate is not None
    np.testing.assert_allclose(estimate.value, ACCELERATION, atol=1e-9)
