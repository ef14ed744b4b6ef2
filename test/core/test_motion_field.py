"""The motion field equals the simulated camera's exact pixel velocities."""

from __future__ import annotations

import numpy as np
import pytest

from optical_flow_ros.core.motion_field import motion_field, rotational_field
from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig


@pytest.mark.parametrize("config", [
    SimCameraConfig(velocity_x=1.5, velocity_y=-0.4, altitude=2.0),
    SimCameraConfig(velocity_x=0.8, altitude=3.0, yaw_rate=0.6, altitude_amplitude=0.5),
    SimCameraConfig(velocity_x=1.0, altitude=1.5, roll_amplitude=0.09, pitch_amplitude=0.07),
])
def test_motion_field_matches_the_exact_projection(config):
    cam = SimCamera(config)
    rng = np.random.default_rng(0)
    pixels = rng.uniform((20, 20), (620, 460), (200, 2))
    t = 0.37
    state = cam.state(t)
    k = cam.camera.k
    points_n = (pixels - k[:2, 2]) / np.diag(k)[:2]
    depth = cam.depth(pixels, t)
    field = motion_field(points_n, state.velocity, state.angular_velocity, depth)
    truth = cam.pixel_velocity(pixels, t)
    speed = np.linalg.norm(truth, axis=1).mean()
    assert speed > 10.0  # px/s: the configurations really move
    np.testing.assert_allclose(field * np.diag(k)[:2], truth, atol=1e-3 * speed)


def test_rotation_about_the_optical_axis_turns_the_image_about_the_centre():
    points = np.array([[0.2, 0.0], [0.0, 0.2]])
    flow = rotational_field(points, np.array([0.0, 0.0, 1.0]))
    # Camera turns clockwise about +z (forward): the scene turns the other way in the image.
    np.testing.assert_allclose(flow, [[0.0, -0.2], [0.2, 0.0]])
