"""The demo summary's velocity calibration figures against errors of known size."""

from __future__ import annotations

import numpy as np

from optical_flow_ros.tools.demo_recording import Recorder, normalised_errors, summarize


def _rows(z: np.ndarray, sigma: tuple[float, float], corr: float = 0.0) -> np.ndarray:
    n = z.shape[0]
    t = np.arange(n) / 30.0
    truth = np.column_stack((np.full(n, 1.0), np.full(n, 0.3)))
    est = truth + z * np.array(sigma)
    cov = np.full(n, corr * sigma[0] * sigma[1])
    return np.column_stack((t, est, truth, np.tile(sigma, (n, 1)), cov))


def test_normalised_errors_and_nees_follow_the_published_covariance():
    z = np.array([[1.0, 0.0], [0.0, -2.0], [3.0, 4.0]])
    out = normalised_errors(_rows(z, (0.02, 0.05)))
    np.testing.assert_allclose(out[:, :2], z)
    np.testing.assert_allclose(out[:, 2], (z ** 2).sum(axis=1))
    # Correlated: e^T C^-1 e with C = [[1, r], [r, 1]] in sigma units.
    r = 0.5
    out = normalised_errors(_rows(z, (0.02, 0.05), r))
    c = np.array([[1.0, r], [r, 1.0]])
    np.testing.assert_allclose(out[:, 2], [e @ np.linalg.solve(c, e) for e in z])


def test_summary_reports_coverage_and_median_nees():
    z = np.random.default_rng(3).standard_normal((4000, 2))
    rec = Recorder()
    rec.camera_velocity_rows = [tuple(row) for row in _rows(z, (0.02, 0.05))]
    summary = summarize(rec, 10.0, True)
    for axis in ("vx", "vy"):
        assert abs(summary[f"velocity_{axis}_within_1sigma_pct"] - 68.3) < 2.5
        assert summary[f"velocity_{axis}_within_3sigma_pct"] > 99.0
    assert abs(summary["velocity_nees_median"] - 2 * np.log(2)) < 0.1   # chi2(2) median


def test_the_truth_of_the_track_velocities_takes_each_rays_depth_from_the_true_pose():
    """The demo's per-track truth: the ground's depth along each ray from sim/pose, as the
    simulator renders it (here tilted 5 deg and yawed, so depths differ across the image)."""
    from geometry_msgs.msg import PoseStamped

    from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig
    from optical_flow_ros.tools.demo_listener import _ground_depth

    sim = SimCamera(SimCameraConfig(altitude=3.0, yaw=0.7, roll_amplitude=np.radians(5.0),
                                    pitch_amplitude=np.radians(4.0)))
    t = 0.37
    state = sim.state(t)
    pose = PoseStamped()
    p = pose.pose.position
    p.x, p.y, p.z = map(float, state.position)
    q = pose.pose.orientation
    q.x, q.y, q.z, q.w = map(float, state.quaternion)
    points = np.array([[5.0, 5.0], [320.0, 240.0], [630.0, 470.0], [100.0, 400.0]])
    np.testing.assert_allclose(_ground_depth(sim.normalize(points), pose),
                               sim.depth(points, t), rtol=1e-9)
