"""PinholeCamera's undistorted image: OpenCV's own projection as the truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from optical_flow_ros.core.camera_model import PinholeCamera

K = np.array([[500.0, 0.0, 322.0], [0.0, 505.0, 236.0], [0.0, 0.0, 1.0]])
LENSES = {
    "plumb_bob": ("plumb_bob", np.array([-0.25, 0.05, 0.001, -0.002, 0.0])),
    "rational_polynomial": ("rational_polynomial",
                            np.array([-0.3, 0.08, 0.0, 0.0, 0.0, 0.02, 0.0, 0.0])),
    "equidistant": ("equidistant", np.array([-0.02, 0.003, 0.0, 0.0])),
}


def _camera(name: str) -> PinholeCamera:
    model, d = LENSES[name]
    return PinholeCamera(k=K, d=d, distortion_model=model, width=640, height=480)


def _raw_px(camera: PinholeCamera, normalised: np.ndarray) -> np.ndarray:
    """OpenCV's projection of rays (x_n, y_n, 1) through the lens, px."""
    if camera.distortion_model == "equidistant":
        return cv2.fisheye.distortPoints(normalised.reshape(-1, 1, 2), K,
                                         camera.d).reshape(-1, 2)
    rays = np.column_stack((normalised, np.ones(len(normalised))))
    px, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K, camera.d)
    return px.reshape(-1, 2)


@pytest.mark.parametrize("name", LENSES)
def test_undistort_px_is_k_times_the_ray_opencv_projected(name):
    camera = _camera(name)
    rng = np.random.default_rng(1)
    rays = rng.uniform((-0.65, -0.48), (0.65, 0.48), (400, 2))     # out to the corners
    expected = rays @ K[:2, :2].T + K[:2, 2]
    # Iterated to 1e-6 px: OpenCV's default 5 steps left up to 0.05 px here (0.33 px in a
    # k1 = -0.25 lens's corners), a smooth pattern that bends a motion field fitted there.
    np.testing.assert_allclose(camera.undistort_px(_raw_px(camera, rays)), expected, atol=1e-5)
    assert camera.distorted and not camera.pinhole().distorted
    np.testing.assert_array_equal(camera.pinhole().k, K)


@pytest.mark.parametrize("name", LENSES)
def test_distort_px_is_opencvs_projection_and_undistort_px_inverts_it(name):
    camera = _camera(name)
    rng = np.random.default_rng(3)
    rays = rng.uniform((-0.65, -0.48), (0.65, 0.48), (400, 2))
    raw = camera.distort_px(rays @ K[:2, :2].T + K[:2, 2])
    np.testing.assert_allclose(raw, _raw_px(camera, rays), atol=1e-9)
    np.testing.assert_allclose(camera.distort_px(camera.undistort_px(raw)), raw, atol=1e-5)
    pinhole = camera.pinhole()
    np.testing.assert_array_equal(pinhole.distort_px(raw), raw)


@pytest.mark.parametrize("name", LENSES)
def test_the_jacobian_maps_a_raw_velocity_to_the_undistorted_images(name):
    """J v against the undistorted positions a small step apart along v (0.01 s at v)."""
    camera = _camera(name)
    rng = np.random.default_rng(2)
    points = rng.uniform((20, 20), (620, 460), (100, 2))
    velocity = rng.normal(0.0, 200.0, (100, 2))                  # px/s
    undistorted, jacobian = camera.undistort_with_jacobian(points)
    np.testing.assert_array_equal(undistorted, camera.undistort_px(points))
    step = 0.01
    expected = (camera.undistort_px(points + step * velocity)
                - camera.undistort_px(points - step * velocity)) / (2 * step)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", jacobian, velocity), expected,
                               rtol=2e-3, atol=0.05)
    # and its inverse back: the raw velocity
    back = np.linalg.solve(jacobian, expected[:, :, None])[:, :, 0]
    np.testing.assert_allclose(back, velocity, rtol=2e-3, atol=0.1)


def test_without_distortion_the_undistorted_image_is_the_raw_one():
    camera = PinholeCamera(k=K, d=np.zeros(5), distortion_model="plumb_bob", width=640,
                           height=480)
    points = np.array([[10.0, 20.0], [600.5, 470.25]])
    assert not camera.distorted and camera.pinhole() is camera
    np.testing.assert_array_equal(camera.undistort_px(points), points)
    undistorted, jacobian = camera.undistort_with_jacobian(points)
    np.testing.assert_array_equal(undistorted, points)
    np.testing.assert_array_equal(jacobian, np.broadcast_to(np.eye(2), (2, 2, 2)))
