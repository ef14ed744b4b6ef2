"""A simulated camera flying over an infinite textured plane, with exact ground truth.

Frames (all right-handed):

* **World** ``sim_world``: x forward, y left, z up (ENU-like with x as the reference heading);
  the ground is the plane z = 0.
* **Body**: x forward, y left, z up (FLU). Its attitude is ``R_world_body = Rz(yaw) Ry(pitch)
  Rx(roll)`` (ZYX): positive roll = right side down, positive pitch = nose down, yaw counter-
  clockwise about world z, measured from world x.
* **Camera optical frame** (REP-103): x right, y down, z forward along the optical axis. The
  camera looks straight down the body: ``x_opt = -y_body`` (right), ``y_opt = -x_body`` (image
  up is the body's forward direction), ``z_opt = -z_body`` (down); see :data:`R_BODY_OPTICAL`.
  The camera sits at the body origin.

Image and intrinsics: OpenCV/ROS pixel convention (integer coordinates at pixel centres, x
right, y down); ``fx = fy = focal_length``, principal point ``((w - 1) / 2, (h - 1) / 2)`` so
the optical axis goes through the image centre; ``plumb_bob`` distortion ``(k1, k2, 0, 0, 0)``.

Ground texture: a scikit-image photo, mirrored into a 2x2 block (:func:`mirror_tile`) and
tiled periodically, so it never runs out. The photo's centre lies at the world origin and its
pixel (column c, row r) at world ``X = ((rows - 1) / 2 - r) * s``, ``Y = ((cols - 1) / 2 - c) * s``
(``s = ground_resolution`` m per texture px): at yaw 0 the image shows the photo upright, world
x towards the image top.

Trajectory at sim time ``t`` (s), ``w = 2 pi / period`` of each term:

* position ``x = vx t + (A/w)(1 - cos wt)``, ``y = vy t + (A/w) sin wt``; i.e. world velocity
  ``(vx + A sin wt, vy + A cos wt)``: a constant drift plus a circular velocity wobble of
  amplitude ``A = velocity_amplitude`` (m/s); the camera starts above the world origin.
* altitude ``z = altitude + altitude_amplitude * sin(w t)``.
* ``yaw = yaw0 + yaw_rate t``, ``roll = roll_amplitude sin(w t)``,
  ``pitch = pitch_amplitude cos(w t)`` (a coning motion; w from ``attitude_period``).

Rendering: every frame is rendered from the texture by the *exact* plane-to-image homography of
the pose at its time (no accumulated warps): one ``cv2.warpPerspective`` without distortion;
with distortion, one ``cv2.remap`` whose map sends each distorted pixel through the exact
inverse of the distortion (precomputed once, Newton-iterated to < 1e-9 px) and the homography
directly into the texture, so there is a single resampling either way. The texture is sampled
with bilinear interpolation (OpenCV quantises positions to 1/32 px). When one image px spans
two or more texture px (at the optical axis), a mip level (``pyrDown`` of the tiling) of
matching resolution is sampled instead, which keeps the image free of aliasing; geometry is
unchanged. The per-frame texture coordinates are shifted by whole texture periods, so a frame
1000 km from the origin is rendered as precisely as one at the origin.

Sensors, each with white noise reproducible per seed and sample: the image (``image_noise_std``
grey levels), the rangefinder on the optical axis (``range_noise_std`` relative, one reading
per frame) and the gyro: an IMU at its own ``imu_rate`` (sample j at sim time
``j / imu_rate``, between and at the frames' times, each with ``gyro_noise_std`` per axis), or
one sample per frame at the frame's time with ``imu_rate`` 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.core.planar_field import field_basis
from optical_flow_ros.core.textures import TEXTURE_NAMES, load_texture, mirror_tile

__all__ = [
    "ENCODINGS",
    "MAX_VIEW_ANGLE",
    "R_BODY_OPTICAL",
    "CameraState",
    "SimCamera",
    "SimCameraConfig",
    "SimFrame",
    "distort_normalized",
    "undistort_normalized",
]

ENCODINGS = ("mono8", "bgr8")

# Columns: the optical frame's axes (x right, y down, z forward) in body FLU coordinates.
R_BODY_OPTICAL = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
R_BODY_OPTICAL.setflags(write=False)

MAX_VIEW_ANGLE = math.radians(80.0)
"""Largest angle (rad) from the vertical any pixel's ray may reach: the horizon stays away."""

_MAX_MIP_LEVEL = 4
_MAX_TILED_SIDE = 3072  # px: the level-0 tiling is at most this large per side
_NEWTON_ITERATIONS = 30


@dataclass(frozen=True)
class SimCameraConfig:
    """Camera, trajectory and texture of :class:`SimCamera` (see the module docstring)."""

    rate: float = setting(30.0, "Frame rate; frame k is at sim time k / rate, Hz",
                          range=(0.1, 1000.0))
    image_width: int = setting(640, "Image width, px", range=(16, 4096))
    image_height: int = setting(480, "Image height, px", range=(16, 4096))
    focal_length: float = setting(
        500.0, "Focal length fx = fy, px; principal point at the image centre",
        range=(10.0, 20000.0))
    k1: float = setting(0.0, "Radial distortion k1 (plumb_bob) of the rendered image",
                        range=(-1.0, 1.0))
    k2: float = setting(0.0, "Radial distortion k2 (plumb_bob) of the rendered image",
                        range=(-1.0, 1.0))
    texture: str = setting("gravel", "Ground texture (scikit-image photo)",
                           choices=TEXTURE_NAMES)
    ground_resolution: float = setting(0.01, "Ground size of one texture px, m",
                                       range=(1e-4, 100.0))
    encoding: str = setting("mono8", "Image encoding", choices=ENCODINGS)
    velocity_x: float = setting(1.0, "Mean velocity along world x, m/s", range=(-1000.0, 1000.0))
    velocity_y: float = setting(0.0, "Mean velocity along world y, m/s", range=(-1000.0, 1000.0))
    velocity_amplitude: float = setting(
        0.0, "Amplitude A of the velocity wobble (A sin wt, A cos wt) added in the world, m/s",
        range=(0.0, 1000.0))
    velocity_period: float = setting(4.0, "Period of the velocity wobble, s",
                                     range=(0.01, 1e6))
    altitude: float = setting(5.0, "Mean height of the camera above the ground plane, m",
                              range=(0.01, 1e5))
    altitude_amplitude: float = setting(
        0.0, "Amplitude of the sinusoidal altitude variation, m (< altitude)",
        range=(0.0, 1e5))
    altitude_period: float = setting(10.0, "Period of the altitude variation, s",
                                     range=(0.01, 1e6))
    yaw: float = setting(0.0, "Yaw at t = 0 (body forward from world x, CCW), rad",
                         range=(-10.0, 10.0))
    yaw_rate: float = setting(0.0, "Yaw rate about world z, rad/s", range=(-50.0, 50.0))
    roll_amplitude: float = setting(0.0, "Roll oscillation amplitude (roll = A sin wt), rad",
                                    range=(0.0, 1.0))
    pitch_amplitude: float = setting(0.0, "Pitch oscillation amplitude (pitch = A cos wt), rad",
                                     range=(0.0, 1.0))
    attitude_period: float = setting(2.0, "Period of the roll/pitch oscillation, s",
                                     range=(0.01, 1e6))
    gyro_noise_std: float = setting(
        0.0, "Std of white noise added to every simulated gyro sample, per axis, rad/s",
        range=(0.0, 10.0))
    imu_rate: float = setting(
        200.0, "Rate of the simulated gyro (a robot's IMU: 200-1000 Hz): sample j at sim time "
        "j / imu_rate with its own noise; 0 = one sample per frame, at the frame's time, Hz",
        range=(0.0, 10000.0))
    range_noise_std: float = setting(
        0.0, "Std of white noise on the simulated rangefinder, relative to the range (0.01 = "
        "1 %); the range message states its variance", range=(0.0, 0.5))
    image_noise_std: float = setting(
        0.0, "Std of white Gaussian noise added to every pixel of the rendered image (then "
        "rounded and clipped to 0..255), grey levels", range=(0.0, 100.0))
    seed: int = setting(0, "Seed of the simulated noise", range=(0, 2**31 - 1))

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.altitude_amplitude >= self.altitude:
            raise ConfigError(f"altitude_amplitude: must be < altitude ({self.altitude} m), "
                              f"got {self.altitude_amplitude}")
        corner = _corner_radius(self)
        limit = _monotonic_radius_limit(self.k1, self.k2)
        if _distort_radius(limit, self.k1, self.k2) <= corner:
            raise ConfigError(
                f"k1/k2: distortion ({self.k1}, {self.k2}) is not invertible over the image, or "
                f"its field of view passes {math.degrees(MAX_VIEW_ANGLE):.0f} deg")
        view = _max_tilt(self) + math.atan(_undistort_radius(corner, self.k1, self.k2))
        if view > MAX_VIEW_ANGLE:
            raise ConfigError(
                f"roll_amplitude/pitch_amplitude: tilt plus half the diagonal field of view "
                f"reaches {math.degrees(view):.1f} deg from the vertical, more than "
                f"{math.degrees(MAX_VIEW_ANGLE):.0f} deg (the horizon would show)")

    @property
    def k(self) -> np.ndarray:
        """3x3 camera matrix, px."""
        f = self.focal_length
        return np.array([[f, 0.0, (self.image_width - 1) / 2.0],
                         [0.0, f, (self.image_height - 1) / 2.0],
                         [0.0, 0.0, 1.0]])


def _max_tilt(config: SimCameraConfig) -> float:
    """Upper bound of the optical axis' angle from the vertical over the trajectory, rad."""
    return math.acos(math.cos(config.roll_amplitude) * math.cos(config.pitch_amplitude))


def _corner_radius(config: SimCameraConfig) -> float:
    """Distorted normalised radius of the image corners."""
    half_w = (config.image_width - 1) / 2.0 + 0.5
    half_h = (config.image_height - 1) / 2.0 + 0.5
    return math.hypot(half_w, half_h) / config.focal_length


def _distort_radius(r: float | np.ndarray, k1: float, k2: float) -> float | np.ndarray:
    r2 = r * r
    return r * (1.0 + k1 * r2 + k2 * r2 * r2)


def _monotonic_radius_limit(k1: float, k2: float) -> float:
    """Largest undistorted radius (<= tan MAX_VIEW_ANGLE) up to which the model increases."""
    top = math.tan(MAX_VIEW_ANGLE)
    r = np.linspace(0.0, top, 4001)
    slope = 1.0 + 3.0 * k1 * r**2 + 5.0 * k2 * r**4
    bad = np.flatnonzero(slope <= 0.0)
    return float(r[bad[0] - 1]) if bad.size else top


def _undistort_radius(r_d: float | np.ndarray, k1: float, k2: float) -> np.ndarray:
    """Undistorted radius of distorted normalised radius ``r_d`` (Newton, < 1e-12 error).

    Assumes the model is monotonic up to the result (checked by :class:`SimCameraConfig`).
    """
    r_d = np.asarray(r_d, np.float64)
    if k1 == 0.0 and k2 == 0.0:
        return r_d.copy()
    limit = _monotonic_radius_limit(k1, k2)
    r = np.minimum(r_d, limit)
    for _ in range(_NEWTON_ITERATIONS):
        r2 = r * r
        f = r * (1.0 + k1 * r2 + k2 * r2 * r2) - r_d
        df = 1.0 + 3.0 * k1 * r2 + 5.0 * k2 * r2 * r2
        r = np.clip(r - f / df, 0.0, limit)
    return r


def undistort_normalized(points: np.ndarray, k1: float, k2: float) -> np.ndarray:
    """Undistort normalised image coordinates of the radial model ``(k1, k2)``.

    Args:
        points: (N, 2) distorted normalised coordinates ``K^-1 (u, v, 1)``.
        k1: radial coefficient of r^2.
        k2: radial coefficient of r^4.

    Returns:
        (N, 2) float64 undistorted normalised coordinates (the ray ``(x, y, 1)``).
    """
    p = np.asarray(points, np.float64).reshape(-1, 2)
    r_d = np.hypot(p[:, 0], p[:, 1])
    r_u = _undistort_radius(r_d, k1, k2)
    scale = np.divide(r_u, r_d, out=np.ones_like(r_d), where=r_d > 0.0)
    return p * scale[:, None]


def distort_normalized(points: np.ndarray, k1: float, k2: float) -> np.ndarray:
    """Apply the radial model: ``x_d = x (1 + k1 r^2 + k2 r^4)`` to (N, 2) normalised points."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    r2 = (p * p).sum(axis=1)
    return p * (1.0 + k1 * r2 + k2 * r2 * r2)[:, None]


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _quaternion_xyzw(r: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w), w >= 0, of a rotation matrix."""
    m = r
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0.0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    out = np.array(q)
    out /= np.linalg.norm(out)
    return -out if out[3] < 0.0 else out


@dataclass(frozen=True)
class CameraState:
    """Ground truth of the camera at one sim time.

    Attributes:
        t: sim time, s.
        position: (3,) optical centre in the world frame, m.
        rotation: (3, 3) ``R_world_optical``: columns are the optical frame's axes in world
            coordinates (a world vector is ``rotation @ v_optical``).
        velocity: (3,) linear velocity of the optical centre, in the optical frame, m/s.
        angular_velocity: (3,) angular velocity of the camera, in the optical frame, rad/s.
        velocity_world: (3,) linear velocity in the world frame, m/s.
        roll: body roll, rad.
        pitch: body pitch, rad.
        yaw: body yaw, rad.
        range: distance along the optical axis to the ground plane, m (what a rangefinder on
            the optical axis reads; ``altitude / cos(tilt)``).
    """

    t: float
    position: np.ndarray
    rotation: np.ndarray
    velocity: np.ndarray
    angular_velocity: np.ndarray
    velocity_world: np.ndarray
    roll: float
    pitch: float
    yaw: float
    range: float

    @property
    def quaternion(self) -> np.ndarray:
        """Orientation of the optical frame in the world, quaternion (x, y, z, w)."""
        return _quaternion_xyzw(self.rotation)

    @property
    def world_to_camera(self) -> np.ndarray:
        """4x4 transform taking world points (m) into the optical frame: ``[R^T | -R^T p]``."""
        out = np.eye(4)
        out[:3, :3] = self.rotation.T
        out[:3, 3] = -self.rotation.T @ self.position
        return out


class SimFrame(NamedTuple):
    """One simulated frame.

    Attributes:
        index: frame number k.
        t: sim time ``k / rate``, s.
        image: rendered image, uint8 ``(H, W)`` (mono8) or ``(H, W, 3)`` (bgr8).
        state: ground truth at ``t``.
        gyro: (3,) simulated gyro reading: ``state.angular_velocity`` plus white noise of
            ``gyro_noise_std`` (deterministic per seed and index), optical frame, rad/s.
        range: simulated rangefinder reading: ``state.range`` times ``1 + range_noise_std``
            white noise (deterministic per seed and index), m.
    """

    index: int
    t: float
    image: np.ndarray
    state: CameraState
    gyro: np.ndarray
    range: float


def _pyr_down_wrap(img: np.ndarray) -> np.ndarray:
    """``pyrDown`` of a periodic image (even size): output px j sits at input px 2j."""
    pad = ((4, 4), (4, 4)) + ((0, 0),) * (img.ndim - 2)
    small = cv2.pyrDown(np.pad(img, pad, mode="wrap"))
    return np.ascontiguousarray(small[2:-2, 2:-2])


class SimCamera:
    """Renders frames of the configured flight and answers ground-truth questions.

    Args:
        config: camera, trajectory and texture.
        texture: optional image to use instead of ``config.texture`` (uint8 gray for mono8,
            BGR for bgr8); its size is cropped to a multiple of 8 px.

    Raises:
        ConfigError: the texture does not fit the encoding or is too small.
    """

    def __init__(self, config: SimCameraConfig, *, texture: np.ndarray | None = None) -> None:
        self.config = config
        color = config.encoding == "bgr8"
        base = load_texture(config.texture, color=color) if texture is None else texture
        if base.dtype != np.uint8 or base.ndim != (3 if color else 2):
            raise ConfigError(f"texture: must be uint8 {'BGR' if color else 'gray'} for "
                              f"{config.encoding}, got {base.dtype} {base.shape}")
        step = 2 ** (_MAX_MIP_LEVEL - 1)
        rows, cols = (base.shape[0] // step) * step, (base.shape[1] // step) * step
        if rows < 16 or cols < 16:
            raise ConfigError(f"texture: must be at least 16x16 px, got {base.shape[:2]}")
        period = mirror_tile(base[:rows, :cols])
        self._period = (period.shape[0], period.shape[1])  # (rows, cols), level-0 px
        self._k = config.k
        self._k_inv = np.linalg.inv(self._k)
        self._distorted = config.k1 != 0.0 or config.k2 != 0.0
        self._n_tiles = self._tile_count()
        tiled = np.tile(period, (self._n_tiles, self._n_tiles) + (1,) * (period.ndim - 2))
        self._levels = [tiled]
        for _ in range(self._max_level()):
            self._levels.append(_pyr_down_wrap(self._levels[-1]))
        self._grid: np.ndarray | None = None
        if self._distorted:
            self._grid = self._undistorted_grid()

    # ----- camera --------------------------------------------------------------------------

    @property
    def camera(self) -> PinholeCamera:
        """Intrinsics as published in CameraInfo (K, D = (k1, k2, 0, 0, 0), plumb_bob)."""
        c = self.config
        return PinholeCamera(k=self._k.copy(), d=np.array([c.k1, c.k2, 0.0, 0.0, 0.0]),
                             distortion_model="plumb_bob", width=c.image_width,
                             height=c.image_height)

    @property
    def texture_period_m(self) -> tuple[float, float]:
        """Period of the ground pattern along world (x, y), m."""
        s = self.config.ground_resolution
        return self._period[0] * s, self._period[1] * s

    def frame_time(self, index: int) -> float:
        """Sim time of frame ``index``: ``index / rate``, s."""
        return index / self.config.rate

    # ----- trajectory ----------------------------------------------------------------------

    def state(self, t: float) -> CameraState:
        """Exact pose, velocities and range at sim time ``t`` (s)."""
        c = self.config
        wv = 2.0 * math.pi / c.velocity_period
        wh = 2.0 * math.pi / c.altitude_period
        wa = 2.0 * math.pi / c.attitude_period
        a = c.velocity_amplitude
        position = np.array([
            c.velocity_x * t + a / wv * (1.0 - math.cos(wv * t)),
            c.velocity_y * t + a / wv * math.sin(wv * t),
            c.altitude + c.altitude_amplitude * math.sin(wh * t),
        ])
        velocity_world = np.array([
            c.velocity_x + a * math.sin(wv * t),
            c.velocity_y + a * math.cos(wv * t),
            c.altitude_amplitude * wh * math.cos(wh * t),
        ])
        roll = c.roll_amplitude * math.sin(wa * t)
        pitch = c.pitch_amplitude * math.cos(wa * t)
        yaw = c.yaw + c.yaw_rate * t
        droll = c.roll_amplitude * wa * math.cos(wa * t)
        dpitch = -c.pitch_amplitude * wa * math.sin(wa * t)
        rx, ry, rz = _rot_x(roll), _rot_y(pitch), _rot_z(yaw)
        r_world_body = rz @ ry @ rx
        # Body-frame angular velocity of the ZYX angles.
        omega_body = (c.yaw_rate * (ry @ rx).T[:, 2] + dpitch * rx.T[:, 1]
                      + np.array([droll, 0.0, 0.0]))
        rotation = r_world_body @ R_BODY_OPTICAL
        axis_z = rotation[2, 2]  # world z of the optical axis (< 0: looking down)
        return CameraState(
            t=float(t), position=position, rotation=rotation,
            velocity=rotation.T @ velocity_world,
            angular_velocity=R_BODY_OPTICAL.T @ omega_body,
            velocity_world=velocity_world, roll=roll, pitch=pitch, yaw=yaw,
            range=float(-position[2] / axis_z),
        )

    # ----- rendering -----------------------------------------------------------------------

    def render(self, t: float) -> np.ndarray:
        """The image at sim time ``t`` (s): uint8 ``(H, W)`` mono8 or ``(H, W, 3)`` bgr8."""
        c = self.config
        state = self.state(t)
        level = self._mip_level(state.range)
        # Normalised (undistorted) image coordinates -> level texture px.
        m_norm = self._plane_to_texture(state, level) @ _normalized_to_plane(state)
        size = (c.image_width, c.image_height)
        tex = self._levels[level]
        if self._grid is None:
            m_img = m_norm @ self._k_inv
            return cv2.warpPerspective(tex, m_img, size,
                                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                       borderMode=cv2.BORDER_WRAP)
        maps = cv2.perspectiveTransform(self._grid, m_norm)
        return cv2.remap(tex, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)

    def image(self, index: int) -> np.ndarray:
        """The image of frame ``index``, with the sensor's noise.

        :meth:`render` at ``index / rate`` plus white noise of ``image_noise_std`` grey
        levels (drawn from ``default_rng([seed, index, 1])``), rounded and clipped to uint8.
        """
        image = self.render(self.frame_time(index))
        std = self.config.image_noise_std
        if std == 0.0:
            return image
        noise = np.random.default_rng([self.config.seed, index, 1]).standard_normal(
            image.shape, np.float32)
        noisy = image.astype(np.float32) + np.float32(std) * noise
        return np.clip(np.rint(noisy), 0.0, 255.0).astype(np.uint8)

    def frame(self, index: int) -> SimFrame:
        """Frame ``index`` (image, truth, gyro and range at ``t = index / rate``)."""
        t = self.frame_time(index)
        state = self.state(t)
        return SimFrame(index, t, self.image(index), state, self.gyro(index, state),
                        self.range_reading(index, state))

    def frames(self, n: int, *, start: int = 0) -> Iterator[SimFrame]:
        """Frames ``start .. start + n - 1``."""
        for index in range(start, start + n):
            yield self.frame(index)

    def gyro(self, index: int, state: CameraState | None = None) -> np.ndarray:
        """Simulated gyro reading at frame ``index``'s time, optical frame, rad/s.

        The true angular velocity plus white noise of ``gyro_noise_std`` drawn from
        ``default_rng([seed, index])``, so each frame's noise is reproducible on its own.
        This is the IMU's sample of the frame when ``imu_rate`` is 0 (:meth:`imu_sample`).
        """
        if state is None:
            state = self.state(self.frame_time(index))
        std = self.config.gyro_noise_std
        if std == 0.0:
            return state.angular_velocity.copy()
        rng = np.random.default_rng([self.config.seed, index])
        return state.angular_velocity + rng.normal(0.0, std, 3)

    def imu_time(self, index: int) -> float:
        """Sim time of IMU sample ``index``: ``index / imu_rate`` (a frame's time at 0), s."""
        rate = self.config.imu_rate
        return index / rate if rate > 0.0 else self.frame_time(index)

    def imu_indices(self, t0: float, t1: float) -> range:
        """Indices of the IMU samples whose sim times lie in ``(t0, t1]`` (s); the first is 0."""
        rate = self.config.imu_rate if self.config.imu_rate > 0.0 else self.config.rate
        first = max(0, math.floor(t0 * rate + 1e-9) + 1)
        last = math.floor(t1 * rate + 1e-9)
        return range(first, max(first, last + 1))

    def imu_sample(self, index: int) -> tuple[float, np.ndarray]:
        """IMU sample ``index``: (sim time s, gyro reading (3,) rad/s, optical frame).

        With ``imu_rate`` > 0: the true angular velocity at ``index / imu_rate`` plus white
        noise of ``gyro_noise_std`` per axis drawn from ``default_rng([seed, index, 3])``
        (each sample's noise independent and reproducible on its own). With ``imu_rate`` 0:
        frame ``index``'s :meth:`gyro`.
        """
        t = self.imu_time(index)
        if self.config.imu_rate <= 0.0:
            return t, self.gyro(index)
        rate = self.state(t).angular_velocity
        std = self.config.gyro_noise_std
        if std == 0.0:
            return t, rate
        return t, rate + np.random.default_rng([self.config.seed, index, 3]).normal(0.0, std, 3)

    def imu_samples(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """The IMU samples with sim times in ``(t0, t1]`` (s): (M,) times s, (M, 3) rad/s."""
        samples = [self.imu_sample(j) for j in self.imu_indices(t0, t1)]
        times = np.array([t for t, _ in samples], np.float64)
        rates = np.array([w for _, w in samples], np.float64).reshape(-1, 3)
        return times, rates

    def range_reading(self, index: int, state: CameraState | None = None) -> float:
        """Simulated rangefinder reading of frame ``index``, m.

        The true range times ``1 + n``, ``n`` white noise of ``range_noise_std`` drawn from
        ``default_rng([seed, index, 2])``; :meth:`range_variance` is its stated variance.
        """
        if state is None:
            state = self.state(self.frame_time(index))
        std = self.config.range_noise_std
        if std == 0.0:
            return state.range
        rng = np.random.default_rng([self.config.seed, index, 2])
        return float(state.range * (1.0 + rng.normal(0.0, std)))

    def range_variance(self, reading: float) -> float:
        """The variance a rangefinder with this noise states for ``reading`` (m), m^2."""
        return float((self.config.range_noise_std * reading) ** 2)

    # ----- pixel truth ---------------------------------------------------------------------

    def normalize(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixels of the (distorted) image -> (N, 2) undistorted normalised coords."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        n = (p - self._k[:2, 2]) / np.diag(self._k)[:2]
        return undistort_normalized(n, self.config.k1, self.config.k2) if self._distorted else n

    def ground_points(self, points: np.ndarray, t: float) -> np.ndarray:
        """World points (N, 3) (m, z = 0) seen at pixels ``points`` (N, 2) at time ``t``.

        NaN where a pixel's ray does not hit the plane (cannot happen in a valid config).
        """
        state = self.state(t)
        n = self.normalize(points)
        rays = np.column_stack((n, np.ones(len(n)))) @ state.rotation.T
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.where(rays[:, 2] < 0.0, -state.position[2] / rays[:, 2], np.nan)
        out = state.position + lam[:, None] * rays
        out[:, 2] = np.where(np.isfinite(lam), 0.0, np.nan)
        return out

    def project(self, world_points: np.ndarray, t: float) -> np.ndarray:
        """Pixels (N, 2) of world points (N, 3) (m) at time ``t``; NaN behind the camera."""
        state = self.state(t)
        cam = (np.asarray(world_points, np.float64).reshape(-1, 3) - state.position) \
            @ state.rotation
        with np.errstate(divide="ignore", invalid="ignore"):
            n = np.where(cam[:, 2:3] > 0.0, cam[:, :2] / cam[:, 2:3], np.nan)
        if self._distorted:
            n = distort_normalized(n, self.config.k1, self.config.k2)
        return n * np.diag(self._k)[:2] + self._k[:2, 2]

    def depth(self, points: np.ndarray, t: float) -> np.ndarray:
        """(N,) depth Z (along the optical axis, m) of the ground seen at pixels (N, 2)."""
        state = self.state(t)
        n = self.normalize(points)
        rays = np.column_stack((n, np.ones(len(n)))) @ state.rotation.T
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(rays[:, 2] < 0.0, -state.position[2] / rays[:, 2], np.nan)

    def pixel_motion(self, points: np.ndarray, t0: float, t1: float) -> np.ndarray:
        """Exact positions at ``t1`` of the ground seen at pixels ``points`` (N, 2) at ``t0``.

        The pixel is back-projected onto the plane at ``t0`` (exact undistortion) and that
        world point projected at ``t1``. Returns (N, 2) px (possibly outside the image; NaN if
        behind the camera). The flow is ``result - points``.
        """
        return self.project(self.ground_points(points, t0), t1)

    def pixel_velocity(self, points: np.ndarray, t: float) -> np.ndarray:
        """Instantaneous image velocity (N, 2) px/s of the ground seen at pixels (N, 2).

        Analytic: a static point at ``P = Z (x, y, 1)`` in the optical frame moves as
        ``dP/dt = -v - w x P``; then ``dx/dt = (dPx - x dPz) / Z`` (likewise y), and the
        radial distortion's derivative maps it to the distorted image. For pure translation
        ``du/dt = -fx (vx - x vz) / Z``, ``dv/dt = -fy (vy - y vz) / Z``. Matches a central
        difference of :meth:`pixel_motion` to its O(dt^2) error.
        """
        state = self.state(t)
        n = self.normalize(points)
        z = self.depth(points, t)
        p = np.column_stack((n, np.ones(len(n)))) * z[:, None]
        dp = -state.velocity - np.cross(state.angular_velocity, p)
        dn = (dp[:, :2] - n * dp[:, 2:3]) / z[:, None]
        if self._distorted:
            k1, k2 = self.config.k1, self.config.k2
            r2 = (n * n).sum(axis=1)
            g = 1.0 + k1 * r2 + k2 * r2 * r2
            dg = (2.0 * k1 + 4.0 * k2 * r2) * (n * dn).sum(axis=1)
            dn = dn * g[:, None] + n * dg[:, None]
        return dn * np.diag(self._k)[:2]

    def field_parameters(self, t: float, centre: np.ndarray, scale: float) -> np.ndarray:
        """(8,) the planar motion field's parameters of the image motion at ``t`` s, px/s.

        :func:`~optical_flow_ros.core.planar_field.field_basis` in the tracker's field
        coordinates (``centre`` px, ``scale`` px per unit) fitted to :meth:`pixel_velocity`
        on a 16 x 12 grid over the image: the ground plane's image motion is that field
        exactly (Longuet-Higgins) when the lens does not distort, so this is the truth for
        :class:`~optical_flow_ros.core.field_velocity.MotionField`'s parameters.
        """
        w, h = self.camera.width, self.camera.height
        gx, gy = np.meshgrid(np.linspace(0.03 * w, 0.97 * w, 16),
                             np.linspace(0.03 * h, 0.97 * h, 12))
        grid = np.column_stack([gx.ravel(), gy.ravel()])
        bu, bv = field_basis(grid, centre, scale)
        return np.linalg.lstsq(np.vstack([bu, bv]), self.pixel_velocity(grid, t).T.reshape(-1),
                               rcond=None)[0]

    # ----- internals -----------------------------------------------------------------------

    def _plane_to_texture(self, state: CameraState, level: int) -> np.ndarray:
        """3x3 world plane (X, Y, 1) -> texture px (c, r, 1) of ``level`` for this frame.

        Shifts by whole periods so the optical axis' ground point lies in the middle period
        of the tiling (exact: the pattern is periodic).
        """
        s = self.config.ground_resolution
        axis = state.rotation[:, 2]
        ground = state.position + state.range * axis
        rows, cols = self._period
        n = self._n_tiles
        # Texture px of the ground point before the shift: r = r0 - X / s, c = c0 - Y / s,
        # (c0, r0) the centre of the photo (the top-left quarter of the period).
        r0, c0 = (rows / 2 - 1) / 2.0, (cols / 2 - 1) / 2.0
        shift_r = rows * math.floor((r0 - ground[0] / s - (n - 1) * rows / 2.0) / rows)
        shift_c = cols * math.floor((c0 - ground[1] / s - (n - 1) * cols / 2.0) / cols)
        scale = 0.5**level
        return np.array([[0.0, -scale / s, scale * (c0 - shift_c)],
                         [-scale / s, 0.0, scale * (r0 - shift_r)],
                         [0.0, 0.0, 1.0]])

    def _mip_level(self, range_m: float) -> int:
        ratio = range_m / (self.config.focal_length * self.config.ground_resolution)
        if ratio < 2.0:
            return 0
        return min(int(math.floor(math.log2(ratio))), len(self._levels) - 1)

    def _max_level(self) -> int:
        c = self.config
        top = (c.altitude + c.altitude_amplitude) / math.cos(_max_tilt(c))
        ratio = top / (c.focal_length * c.ground_resolution)
        return 0 if ratio < 2.0 else min(int(math.floor(math.log2(ratio))), _MAX_MIP_LEVEL)

    def _tile_count(self) -> int:
        """Periods per side of the level-0 tiling: enough to hold any frame's footprint."""
        c = self.config
        tilt = _max_tilt(c)
        view = min(tilt + math.atan(_undistort_radius(_corner_radius(c), c.k1, c.k2)),
                   MAX_VIEW_ANGLE)
        top = c.altitude + c.altitude_amplitude
        extent = 2.0 * top * (math.tan(view) + math.tan(tilt)) / c.ground_resolution
        period = min(self._period)
        wanted = 1 + math.ceil(extent / period)
        return max(1, min(wanted, _MAX_TILED_SIDE // max(self._period)))

    def _undistorted_grid(self) -> np.ndarray:
        """(H, W, 2) float32 undistorted normalised coordinates of every pixel."""
        c = self.config
        xs, ys = np.meshgrid(np.arange(c.image_width, dtype=np.float64),
                             np.arange(c.image_height, dtype=np.float64))
        n = self.normalize(np.column_stack((xs.ravel(), ys.ravel())))
        return n.reshape(c.image_height, c.image_width, 2).astype(np.float32)


def _normalized_to_plane(state: CameraState) -> np.ndarray:
    """3x3 homography: normalised image coords (x, y, 1) -> world plane point (X, Y, 1).

    The ray ``d = R (x, y, 1)`` from ``p`` meets z = 0 at ``p - p_z d / d_z``.
    """
    r, p = state.rotation, state.position
    return np.vstack((p[0] * r[2] - p[2] * r[0], p[1] * r[2] - p[2] * r[1], r[2]))
