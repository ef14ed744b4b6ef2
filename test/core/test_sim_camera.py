"""The simulated camera against its own ground truth and against independent measurements.

Image-level checks track Shi-Tomasi corners with pyramidal LK (forward-backward checked) between
two rendered frames and compare with :meth:`SimCamera.pixel_motion`. Measured on this machine
(max over ~150 corners, 640x480, 1/30 s apart): pure translation 0.04 px; yaw rate 0.5 rad/s
0.11 px; roll/pitch coning 0.10 px; altitude change 0.07 px; distortion k1=-0.2 0.05 px; all
motions together 0.12 px. The rotation cases exceed the translation bound because LK models
the window's motion as a shift while the true motion also rotates/scales it.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.core.planar_field import field_basis
from optical_flow_ros.core.sim_camera import (
    R_BODY_OPTICAL,
    SimCamera,
    SimCameraConfig,
    distort_normalized,
    undistort_normalized,
)
from optical_flow_ros.core.textures import TEXTURE_NAMES, load_texture, mirror_tile

DT = 1.0 / 30.0
ALL_MOTIONS = dict(velocity_x=1.0, velocity_y=0.5, velocity_amplitude=0.5, yaw_rate=0.4,
                   roll_amplitude=0.1, pitch_amplitude=0.1, altitude_amplitude=1.0,
                   altitude_period=3.0, k1=-0.1, k2=0.02)


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img


def _corners(img: np.ndarray, margin: int = 40) -> np.ndarray:
    p = cv2.goodFeaturesToTrack(_gray(img), 200, 0.01, 15).reshape(-1, 2).astype(np.float64)
    h, w = img.shape[:2]
    keep = ((p[:, 0] > margin) & (p[:, 0] < w - margin)
            & (p[:, 1] > margin) & (p[:, 1] < h - margin))
    return p[keep]


def _track(a: np.ndarray, b: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LK from a to b with a forward-backward check; (positions in b, ok mask)."""
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-4)
    kw = dict(winSize=(21, 21), maxLevel=3, criteria=crit)
    p = pts.astype(np.float32)
    q, st, _ = cv2.calcOpticalFlowPyrLK(_gray(a), _gray(b), p, None, **kw)
    r, st2, _ = cv2.calcOpticalFlowPyrLK(_gray(b), _gray(a), q, None, **kw)
    ok = (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm(r - p, axis=1) < 0.05)
    return q.astype(np.float64), ok


def _lk_errors(cam: SimCamera, t0: float, t1: float) -> np.ndarray:
    a, b = cam.render(t0), cam.render(t1)
    pts = _corners(a)
    tracked, ok = _track(a, b, pts)
    assert ok.sum() >= 0.9 * len(pts) >= 90, (ok.sum(), len(pts))
    return np.linalg.norm(tracked[ok] - cam.pixel_motion(pts[ok], t0, t1), axis=1)


# ----- configuration --------------------------------------------------------------------------

def test_defaults_give_the_documented_camera():
    cam = SimCamera(SimCameraConfig())
    info = cam.camera
    assert (info.width, info.height) == (640, 480)
    np.testing.assert_array_equal(info.k, [[500, 0, 319.5], [0, 500, 239.5], [0, 0, 1]])
    np.testing.assert_array_equal(info.d, [0, 0, 0, 0, 0])
    assert info.distortion_model == "plumb_bob"
    d = SimCamera(SimCameraConfig(k1=-0.2, k2=0.05)).camera.d
    np.testing.assert_array_equal(d, [-0.2, 0.05, 0, 0, 0])


@pytest.mark.parametrize(("values", "names"), [
    (dict(altitude=2.0, altitude_amplitude=2.0), "altitude_amplitude"),
    (dict(roll_amplitude=0.6, pitch_amplitude=0.5), "roll_amplitude/pitch_amplitude"),
    (dict(k1=-1.0), "k1/k2"),
    (dict(encoding="rgb8"), "encoding"),
    (dict(texture="lena"), "texture"),
    (dict(rate=0.0), "rate"),
    (dict(ground_resolution=-0.01), "ground_resolution"),
])
def test_bad_configs_are_refused_with_the_field_named(values, names):
    with pytest.raises(ConfigError, match=names):
        SimCameraConfig(**values)


# ----- textures -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TEXTURE_NAMES)
def test_every_texture_loads_gray_and_bgr(name):
    gray, bgr = load_texture(name), load_texture(name, color=True)
    assert gray.dtype == bgr.dtype == np.uint8
    assert gray.ndim == 2 and bgr.shape == gray.shape + (3,)
    assert gray.std() > 10  # real content, not a flat image


def test_mirror_tile_is_seamless_when_wrapped():
    tex = load_texture("brick")[:64, :48]
    block = mirror_tile(tex)
    assert block.shape == (128, 96)
    wrapped = np.tile(block, (2, 2))
    # Every edge meets its mirror image: neighbouring rows/cols across a seam are equal.
    np.testing.assert_array_equal(wrapped[127], wrapped[128])
    np.testing.assert_array_equal(wrapped[:, 95], wrapped[:, 96])
    np.testing.assert_array_equal(wrapped[63], wrapped[64])


# ----- rendering ------------------------------------------------------------------------------

@pytest.mark.parametrize(("yaw", "rotate"), [(0.0, None),
                                             (math.pi / 2, cv2.ROTATE_90_CLOCKWISE),
                                             (math.pi, cv2.ROTATE_180)])
def test_at_one_to_one_the_frame_is_the_photo(yaw, rotate):
    """Altitude 5 m, f 500 px, 0.01 m per texture px: one image px per texture px, the photo's
    centre under the camera at t = 0, world x at the image top; a CCW yaw (seen from above)
    turns the ground clockwise in the image."""
    photo = load_texture("brick")
    if rotate is not None:
        photo = cv2.rotate(photo, rotate)
    img = SimCamera(SimCameraConfig(yaw=yaw, texture="brick")).render(0.0)
    # Image centre (319.5, 239.5) shows the photo centre (255.5, 255.5).
    np.testing.assert_array_equal(img[:, 64:576], photo[16:496])


def test_rendering_is_deterministic_and_noise_is_seeded():
    config = SimCameraConfig(**ALL_MOTIONS, gyro_noise_std=0.01, seed=7)
    a, b = SimCamera(config), SimCamera(config)
    for fa, fb in zip(a.frames(3, start=5), b.frames(3, start=5), strict=True):
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_array_equal(fa.gyro, fb.gyro)
        assert fa.t == pytest.approx(fa.index * DT)
        np.testing.assert_array_equal(fa.image, a.render(fa.t))
    # Each frame's noise depends only on (seed, index), not on the order of calls.
    np.testing.assert_array_equal(a.gyro(6), b.frame(6).gyro)
    other = SimCamera(dataclasses.replace(config, seed=8))
    np.testing.assert_array_equal(other.render(0.2), a.render(0.2))
    assert not np.allclose(other.gyro(6), a.gyro(6))
    noise = np.array([a.gyro(k) - a.state(a.frame_time(k)).angular_velocity
                      for k in range(3000)])
    np.testing.assert_allclose(noise.std(axis=0), 0.01, rtol=0.06)
    np.testing.assert_allclose(noise.mean(axis=0), 0.0, atol=0.001)


def test_imu_samples_at_their_own_rate_between_frames():
    """At imu_rate Hz sample j is at exactly j / imu_rate, each frame's time is a sample's, and
    the samples of an interval are the ones strictly after its start up to its end."""
    sim = SimCamera(SimCameraConfig(**ALL_MOTIONS, rate=30.0, imu_rate=210.0))
    times, rates = sim.imu_samples(sim.frame_time(3), sim.frame_time(4))
    np.testing.assert_allclose(times, np.arange(22, 29) / 210.0, rtol=0, atol=1e-15)
    assert times[-1] == pytest.approx(sim.frame_time(4), abs=1e-12)   # 28 / 210 = 4 / 30
    for t, w in zip(times, rates, strict=True):   # noise-free: the true rate at its time
        np.testing.assert_allclose(w, sim.state(t).angular_velocity, atol=1e-15)
    # Consecutive intervals share no sample and miss none, over uneven boundaries too.
    cuts = [0.0, 0.013, 0.05, 0.0501, 0.2]
    parts = [sim.imu_samples(a, b)[0] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    np.testing.assert_allclose(np.concatenate(parts), np.arange(1, 43) / 210.0, atol=1e-15)
    assert list(sim.imu_indices(0.05, 0.0501)) == []


def test_imu_noise_is_white_with_the_stated_std_and_seeded_per_sample():
    config = SimCameraConfig(**ALL_MOTIONS, gyro_noise_std=0.005, imu_rate=400.0, seed=3)
    a, b = SimCamera(config), SimCamera(config)
    times, rates = a.imu_samples(0.0, 10.0)        # 4000 samples
    assert times.size == 4000
    noise = rates - np.array([a.state(t).angular_velocity for t in times])
    np.testing.assert_allclose(noise.std(axis=0), 0.005, rtol=0.05)
    np.testing.assert_allclose(noise.mean(axis=0), 0.0, atol=4 * 0.005 / math.sqrt(4000))
    # White: neighbouring samples and axes uncorrelated (|r| < 4 / sqrt(n)).
    lag1 = [np.corrcoef(noise[1:, i], noise[:-1, i])[0, 1] for i in range(3)]
    assert np.max(np.abs(lag1)) < 4 / math.sqrt(4000), lag1
    assert abs(np.corrcoef(noise[:, 0], noise[:, 1])[0, 1]) < 4 / math.sqrt(4000)
    # The mean of n samples scatters as std / sqrt(n): 400 means of 10 samples.
    means = noise.reshape(400, 10, 3).mean(axis=1)
    np.testing.assert_allclose(means.std(axis=0), 0.005 / math.sqrt(10), rtol=0.1)
    # Each sample's noise depends only on (seed, index), not on the order of calls.
    np.testing.assert_array_equal(b.imu_sample(1234)[1], rates[1233])
    other = SimCamera(dataclasses.replace(config, seed=4))
    assert not np.allclose(other.imu_sample(1234)[1], rates[1233])


def test_imu_rate_zero_gives_one_sample_per_frame():
    sim = SimCamera(SimCameraConfig(**ALL_MOTIONS, gyro_noise_std=0.01, imu_rate=0.0, seed=7))
    times, rates = sim.imu_samples(sim.frame_time(2), sim.frame_time(5))
    np.testing.assert_array_equal(times, [sim.frame_time(k) for k in (3, 4, 5)])
    np.testing.assert_array_equal(rates, [sim.frame(k).gyro for k in (3, 4, 5)])


@pytest.mark.parametrize("encoding", ["mono8", "bgr8"])
def test_render_shape(encoding):
    """Frames of the configured encoding, still and with every motion."""
    for config in (SimCameraConfig(encoding=encoding),
                   dataclasses.replace(SimCameraConfig(encoding=encoding), **ALL_MOTIONS)):
        cam = SimCamera(config)
        for k in range(3):
            img = cam.render(k * DT)
            assert img.shape == ((480, 640) if encoding == "mono8" else (480, 640, 3))
            assert img.dtype == np.uint8 and img.flags.c_contiguous


@pytest.mark.parametrize(("case", "values", "bound_px"), [
    ("translation", dict(velocity_x=1.5, velocity_y=-0.8), 0.1),
    ("translation bgr8", dict(velocity_x=1.5, velocity_y=-0.8, encoding="bgr8"), 0.1),
    ("translation, texture at 1/4 (mip level 2)", dict(velocity_x=5.0, altitude=20.0), 0.1),
    ("yaw rate", dict(velocity_x=1.0, yaw_rate=0.5), 0.25),
    ("roll/pitch", dict(velocity_x=1.0, roll_amplitude=0.2, pitch_amplitude=0.15), 0.25),
    ("altitude change", dict(velocity_x=0.5, altitude_amplitude=2.0, altitude_period=3.0), 0.2),
    ("distortion", dict(velocity_x=1.5, k1=-0.2, k2=0.05), 0.1),
    ("all motions", ALL_MOTIONS, 0.25),
])
def test_rendered_motion_matches_truth(case, values, bound_px):
    errors = _lk_errors(SimCamera(SimCameraConfig(**values)), 0.5, 0.5 + DT)
    assert errors.max() < bound_px, (case, errors.max())
    assert np.median(errors) < 0.06, (case, np.median(errors))


def test_plane_never_runs_out_far_away():
    cam = SimCamera(SimCameraConfig(velocity_x=1.0, velocity_y=-0.7, yaw_rate=0.3))
    for t0 in (1000.0, 1e6):  # ~1.2 km and ~1200 km from the origin
        assert np.linalg.norm(cam.state(t0).position[:2]) > 0.9 * t0
        img = cam.render(t0)
        assert img.std() > 20
        errors = _lk_errors(cam, t0, t0 + DT)
        assert errors.max() < 0.2, (t0, errors.max())
    # The ground is periodic: a whole number of periods away the image is the same.
    px, py = cam.texture_period_m
    periodic = SimCamera(SimCameraConfig(velocity_x=px, velocity_y=-py))
    near, far = periodic.render(0.3), periodic.render(0.3 + 1e5)
    assert periodic.state(0.3 + 1e5).position[0] > 1e6
    assert np.abs(near.astype(int) - far.astype(int)).max() <= 1


# ----- truth: frames, signs, range, flow ------------------------------------------------------

def test_pose_quaternion_and_transform_are_consistent():
    cam = SimCamera(SimCameraConfig(**ALL_MOTIONS))
    s = cam.state(1.3)
    r = s.rotation
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    x, y, z, w = s.quaternion
    from_q = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    np.testing.assert_allclose(from_q, r, atol=1e-12)
    t_cw = s.world_to_camera
    np.testing.assert_allclose(t_cw[:3, :3] @ s.position + t_cw[:3, 3], 0.0, atol=1e-12)
    # The body frame is FLU and the camera looks down it with image-up = body forward.
    body = r @ R_BODY_OPTICAL.T
    np.testing.assert_allclose(body[:, 2] @ [0, 0, 1], math.cos(s.roll) * math.cos(s.pitch))


def test_twist_sign_conventions():
    def velocity(**values: float) -> np.ndarray:
        return SimCamera(SimCameraConfig(**values)).state(0.0).velocity

    # Looking down, yaw 0: world +x is the image top, i.e. optical -y.
    np.testing.assert_allclose(velocity(velocity_x=2.0), [0.0, -2.0, 0.0], atol=1e-12)
    # World +y (left) is optical -x.
    np.testing.assert_allclose(velocity(velocity_x=0.0, velocity_y=1.0), [-1.0, 0, 0], atol=1e-12)
    # Yaw +90 deg (forward = world +y): moving world +x is moving to the camera's right.
    np.testing.assert_allclose(velocity(velocity_x=2.0, yaw=math.pi / 2), [2.0, 0, 0], atol=1e-12)
    # Climbing (z up at t = 0 of the altitude sine) moves away from the ground: optical -z.
    climb = velocity(velocity_x=0.0, altitude_amplitude=1.0, altitude_period=2 * math.pi)
    np.testing.assert_allclose(climb, [0.0, 0.0, -1.0], atol=1e-12)

    # Yaw CCW (seen from above) is a rotation about world +z = optical -z.
    s = SimCamera(SimCameraConfig(yaw_rate=0.5)).state(0.3)
    np.testing.assert_allclose(s.angular_velocity, [0.0, 0.0, -0.5], atol=1e-12)
    # Roll rate (about body x = forward) is about optical -y; pitch rate about optical -x.
    roll = SimCamera(SimCameraConfig(roll_amplitude=0.1, attitude_period=2 * math.pi)).state(0.0)
    np.testing.assert_allclose(roll.angular_velocity, [0.0, -0.1, 0.0], atol=1e-12)
    pitch = SimCamera(SimCameraConfig(pitch_amplitude=0.1, attitude_period=2 * math.pi))
    np.testing.assert_allclose(pitch.state(-math.pi / 2).angular_velocity, [-0.1, 0, 0],
                               atol=1e-12)


def test_velocities_are_the_derivatives_of_the_pose():
    cam = SimCamera(SimCameraConfig(**ALL_MOTIONS))
    h = 1e-5
    for t in (0.0, 0.4, 2.7):
        s, before, after = cam.state(t), cam.state(t - h), cam.state(t + h)
        v_world = (after.position - before.position) / (2 * h)
        np.testing.assert_allclose(s.velocity_world, v_world, atol=1e-8)
        np.testing.assert_allclose(s.velocity, s.rotation.T @ v_world, atol=1e-8)
        # [w]x = R^T dR/dt, in the optical frame.
        skew = s.rotation.T @ (after.rotation - before.rotation) / (2 * h)
        w = np.array([skew[2, 1], skew[0, 2], skew[1, 0]])
        np.testing.assert_allclose(s.angular_velocity, w, atol=1e-8)


def test_range_is_altitude_over_cos_tilt():
    cam = SimCamera(SimCameraConfig(roll_amplitude=0.3, pitch_amplitude=0.2, altitude=3.0,
                                    altitude_amplitude=1.0, altitude_period=1.7))
    centre = np.array([[319.5, 239.5]])
    for t in np.linspace(0.0, 2.0, 9):
        s = cam.state(t)
        tilt = math.acos(-s.rotation[2, 2])  # optical axis vs world down
        assert tilt == pytest.approx(math.acos(math.cos(s.roll) * math.cos(s.pitch)))
        assert s.range == pytest.approx(s.position[2] / math.cos(tilt), rel=1e-12)
        assert cam.depth(centre, t)[0] == pytest.approx(s.range, rel=1e-12)
        hit = cam.ground_points(centre, t)[0]
        assert hit[2] == 0.0
        assert np.linalg.norm(hit - s.position) == pytest.approx(s.range, rel=1e-12)
    assert cam.state(0.5).range > cam.state(0.5).position[2] * 1.01  # really tilted


def test_translation_flow_is_the_plane_flow():
    """Looking straight down at height h: Z = h everywhere, so the flow is uniform,
    (du, dv)/dt = -f (vx, vy)_opt / h, and climbing adds the expansion f (x, y) vz / Z."""
    rng = np.random.default_rng(3)
    pts = rng.uniform([0, 0], [640, 480], (50, 2))
    cam = SimCamera(SimCameraConfig(velocity_x=1.2, velocity_y=-0.4, altitude=4.0))
    s = cam.state(0.6)
    np.testing.assert_allclose(cam.depth(pts, 0.6), 4.0, rtol=1e-12)
    expected = -500.0 * s.velocity[:2] / 4.0
    np.testing.assert_allclose(expected, [-500 * 0.4 / 4, 500 * 1.2 / 4], atol=1e-9)
    np.testing.assert_allclose(cam.pixel_velocity(pts, 0.6), np.broadcast_to(expected, (50, 2)),
                               atol=1e-9)
    # Moving forward (world +x, image up) makes the ground stream down the image.
    assert expected[1] > 0
    # Pure climb: flow radiates inwards from the principal point, |flow| = f r vz / Z.
    climb = SimCamera(SimCameraConfig(velocity_x=0.0, altitude_amplitude=1.0,
                                      altitude_period=2 * math.pi))
    s = climb.state(0.0)
    xn = (pts - [319.5, 239.5]) / 500.0
    flow = 500.0 * xn * s.velocity[2] / s.range
    np.testing.assert_allclose(climb.pixel_velocity(pts, 0.0), flow, atol=1e-9)


@pytest.mark.parametrize("values", [dict(velocity_x=1.0), ALL_MOTIONS])
def test_pixel_velocity_matches_central_difference_of_exact_motion(values):
    cam = SimCamera(SimCameraConfig(**values))
    pts = np.random.default_rng(1).uniform([0, 0], [640, 480], (100, 2))
    h = 1e-4  # s; the O(h^2) error measured 2.6e-6 px/s for ALL_MOTIONS (flow up to 390 px/s)
    for t in (0.0, 0.77, 5.1):
        fd = (cam.pixel_motion(pts, t, t + h) - cam.pixel_motion(pts, t, t - h)) / (2 * h)
        np.testing.assert_allclose(cam.pixel_velocity(pts, t), fd, atol=1e-4)
    np.testing.assert_allclose(cam.pixel_motion(pts, 0.77, 0.77), pts, atol=1e-9)


@pytest.mark.parametrize("t", [0.0, 0.77, 5.1])
def test_the_ground_planes_image_motion_is_the_trackers_planar_field(t):
    """Turning, tilting, climbing over the ground plane: the image velocity at any pixel is
    the 8-parameter planar field of its field parameters (``field_parameters``, the truth
    the field's tests and benchmarks compare against), to rounding: residual below 1e-6
    px/s where the flow reaches hundreds of px/s, at pixels other than the fit's grid. A
    distorting lens bends the field (the tracker fits it in the undistorted image): there
    it is not."""
    centre, scale = np.array([319.5, 239.5]), 320.0
    pts = np.random.default_rng(2).uniform([0, 0], [640, 480], (200, 2))
    bu, bv = field_basis(pts, centre, scale)
    pinhole = {key: value for key, value in ALL_MOTIONS.items() if key not in ("k1", "k2")}
    for values, exact in ((pinhole, True), (ALL_MOTIONS, False)):
        cam = SimCamera(SimCameraConfig(**values))
        theta = cam.field_parameters(t, centre, scale)
        velocity = cam.pixel_velocity(pts, t)
        assert np.abs(velocity).max() > 50.0
        residual = np.abs(np.column_stack((bu @ theta, bv @ theta)) - velocity).max()
        assert (residual < 1e-6) == exact, residual


def test_distortion_model_is_opencvs():
    cam = SimCamera(SimCameraConfig(**ALL_MOTIONS))
    info = cam.camera
    t = 0.9
    s = cam.state(t)
    world = cam.ground_points(np.random.default_rng(2).uniform([0, 0], [640, 480], (200, 2)), t)
    rvec, _ = cv2.Rodrigues(s.rotation.T)
    tvec = -s.rotation.T @ s.position
    projected, _ = cv2.projectPoints(world, rvec, tvec, info.k, info.d)
    np.testing.assert_allclose(cam.project(world, t), projected.reshape(-1, 2), atol=1e-9)
    # Undistortion: OpenCV's iterative solver, run to convergence, agrees with ours.
    pix = projected.reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-15)
    # OpenCV 4 takes the criteria in undistortPointsIter; OpenCV 5 (which dropped it) in
    # undistortPoints itself.
    iterate = getattr(cv2, "undistortPointsIter", None)
    ocv = (iterate(pix, info.k, info.d, None, None, crit) if iterate is not None
           else cv2.undistortPoints(pix, info.k, info.d, None, None, None, crit)).reshape(-1, 2)
    np.testing.assert_allclose(cam.normalize(pix.reshape(-1, 2)), ocv, atol=1e-8)
    n = np.random.default_rng(4).uniform(-0.7, 0.7, (100, 2))
    np.testing.assert_allclose(undistort_normalized(distort_normalized(n, -0.1, 0.02), -0.1, 0.02),
                               n, atol=1e-12)


def test_distorted_render_undistorts_with_opencv_onto_the_pinhole_render():
    values = dict(velocity_x=1.0, k1=-0.2, k2=0.05)
    distorted = SimCamera(SimCameraConfig(**values))
    pinhole = SimCamera(SimCameraConfig(velocity_x=1.0))
    info = distorted.camera

    def undistort(d: tuple[float, ...]) -> np.ndarray:
        maps = cv2.initUndistortRectifyMap(info.k, np.array(d), None, info.k, (640, 480),
                                           cv2.CV_32FC1)
        return cv2.remap(distorted.render(0.5), *maps, cv2.INTER_LINEAR)

    truth = pinhole.render(0.5)
    pts = _corners(truth, margin=120)  # the undistorted view's valid interior
    tracked, ok = _track(truth, undistort(tuple(info.d)), pts)
    errors = np.linalg.norm(tracked[ok] - pts[ok], axis=1)
    assert ok.sum() > 0.9 * len(pts) and errors.max() < 0.1, (ok.sum(), errors.max())
    # Control: the wrong model (no distortion) leaves pixel-size offsets.
    tracked, ok = _track(truth, undistort((0.0, 0.0, 0.0, 0.0, 0.0)), pts)
    assert np.median(np.linalg.norm(tracked[ok] - pts[ok], axis=1)) > 1.0
