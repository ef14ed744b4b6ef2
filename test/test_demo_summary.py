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
    from std_msgs.msg import Header

    from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig
    from optical_flow_ros.nodes.sim_camera_node import pose_msg
    from optical_flow_ros.tools.demo_listener import _ground_depth

    sim = SimCamera(SimCameraConfig(altitude=3.0, yaw=0.7, roll_amplitude=np.radians(5.0),
                                    pitch_amplitude=np.radians(4.0)))
    t = 0.37
    pose = pose_msg(Header(), sim.state(t))   # what sim_camera_node publishes
    points = np.array([[5.0, 5.0], [320.0, 240.0], [630.0, 470.0], [100.0, 400.0]])
    np.testing.assert_allclose(_ground_depth(sim.normalize(points), pose),
                               sim.depth(points, t), rtol=1e-9)


def test_track_velocity_errors_score_known_velocities_and_leave_out_unknown_ones():
    """Each scored track's error is its relative distance from the simulator's exact image
    velocity; tracks younger than 5 frames and velocities the tracker does not know (NaN: a
    track's first frame, every track after a time gap) are left out, not scored as NaN."""
    from std_msgs.msg import Header

    from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig
    from optical_flow_ros.core.track_types import Tracks
    from optical_flow_ros.nodes.sim_camera_node import pose_msg, twist_msg
    from optical_flow_ros.ros.track_cloud import cloud_to_array, tracks_to_cloud
    from optical_flow_ros.tools.demo_listener import track_velocity_errors

    sim = SimCamera(SimCameraConfig(altitude=3.0, yaw=0.7, roll_amplitude=np.radians(5.0)))
    t = 0.37
    state = sim.state(t)
    points = np.array([[50.0, 60.0], [320.0, 240.0], [600.0, 400.0], [100.0, 400.0],
                       [200.0, 100.0]], np.float32)
    truth = sim.pixel_velocity(points.astype(np.float64), t)
    off = np.array([0.01, 0.0, 0.03, 0.0, 0.02])   # relative errors, along the true velocity
    velocities = (truth * (1.0 + off[:, None])).astype(np.float32)
    velocities[3] = np.nan            # unknown: the frame after a time gap
    ages = np.array([9, 9, 9, 9, 3], np.int32)   # the last one too young to score
    tracks = Tracks(ids=np.arange(5), points=points, velocities=velocities, ages=ages,
                    fb_errors=np.zeros(5, np.float32), stamp=t, motion_field=None)
    cloud = cloud_to_array(tracks_to_cloud(tracks, Header(), sim.camera))
    errors = track_velocity_errors(cloud, sim.camera, twist_msg(Header(), state),
                                   pose_msg(Header(), state))
    np.testing.assert_allclose(errors, off[:3], atol=1e-5)
