"""Pinhole camera intrinsics (from a CameraInfo-like record) and point normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np

from optical_flow_ros.core.errors import CameraModelError

__all__ = ["CameraInfoLike", "PinholeCamera", "lens_of", "same_lens"]

_PLUMB_BOB_MODELS = ("plumb_bob", "rational_polynomial", "")
_EQUIDISTANT_MODELS = ("equidistant", "fisheye")
#: The undistortion is iterated until its rays reproject within 1e-6 px (at most 100 steps).
#: OpenCV's default, 5 fixed-point steps, left up to 0.33 px at the corners of a k1 = -0.25
#: lens (4 px at -0.4): a smooth pattern that a track carries across the image, which bent
#: the motion field's roll/pitch rates by 0.6-0.9 mrad/s on a simulated flight with that
#: lens (0 from the exact positions without it). Cost, with the Jacobian from the lens's own
#: (not iterated) projection: 0.45 / 0.31 ms per frame at 500 tracks for k1 = -0.25 / -0.1,
#: 0.21-0.24 ms before (5 steps, the Jacobian from five undistortions).
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-6)


class CameraInfoLike(Protocol):
    """The fields of sensor_msgs/CameraInfo this module reads (rclpy or rosbags message)."""

    width: int
    height: int
    distortion_model: str
    d: Sequence[float]
    k: Sequence[float]


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics of a camera in the ROS optical frame (x right, y down, z forward).

    Attributes:
        k: 3x3 camera matrix in px.
        d: distortion coefficients (OpenCV order), possibly empty.
        distortion_model: ``plumb_bob``, ``rational_polynomial`` or ``equidistant``.
        width: image width in px.
        height: image height in px.
    """

    k: np.ndarray
    d: np.ndarray
    distortion_model: str
    width: int
    height: int

    def __post_init__(self) -> None:
        k = self.k
        if k.shape != (3, 3) or not np.isfinite(k).all():
            raise CameraModelError(f"camera matrix K must be a finite 3x3 matrix, got {k.tolist()}")
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            raise CameraModelError(f"focal lengths must be > 0 px, got fx={k[0, 0]}, fy={k[1, 1]}")
        if not np.isfinite(self.d).all():
            raise CameraModelError(f"distortion coefficients must be finite, got {self.d.tolist()}")
        if self.distortion_model not in _PLUMB_BOB_MODELS + _EQUIDISTANT_MODELS:
            raise CameraModelError(f"unsupported distortion model {self.distortion_model!r}")
        if self.distortion_model in _EQUIDISTANT_MODELS and self.d.size != 4:
            raise CameraModelError(f"equidistant model needs 4 coefficients, got {self.d.size}")
        if self.width <= 0 or self.height <= 0:
            raise CameraModelError(f"image size must be > 0, got {self.width}x{self.height}")

    @classmethod
    def from_camera_info(cls, info: CameraInfoLike) -> PinholeCamera:
        """Build from a sensor_msgs/CameraInfo; raises CameraModelError if it is unusable."""
        return cls(
            k=np.asarray(info.k, np.float64).reshape(3, 3),
            d=np.asarray(info.d, np.float64).ravel(),
            distortion_model=str(info.distortion_model),
            width=int(info.width),
            height=int(info.height),
        )

    @property
    def focal_px(self) -> tuple[float, float]:
        """(fx, fy) in px."""
        return float(self.k[0, 0]), float(self.k[1, 1])

    def normalize(self, points_px: np.ndarray) -> np.ndarray:
        """Undistorted normalised image coordinates (x_n, y_n), i.e. the ray (x_n, y_n, 1).

        Args:
            points_px: (N, 2) pixel coordinates of the raw (distorted) image.

        Returns:
            (N, 2) float64 array; the ray direction in the camera optical frame is (x_n, y_n, 1).
        """
        pts = np.ascontiguousarray(points_px, np.float64).reshape(-1, 1, 2)
        if pts.shape[0] == 0:
            return np.zeros((0, 2), np.float64)
        if self.distortion_model in _EQUIDISTANT_MODELS:
            out = cv2.fisheye.undistortPoints(pts, self.k, self.d, criteria=_UNDISTORT_CRITERIA)
        elif np.any(self.d):
            out = _undistort_points(pts, self.k, self.d)
        else:
            k = self.k
            return np.column_stack(((pts[:, 0, 0] - k[0, 2]) / k[0, 0],
                                    (pts[:, 0, 1] - k[1, 2]) / k[1, 1]))
        return out.reshape(-1, 2)

    @property
    def distorted(self) -> bool:
        """Whether the lens bends the image (any non-zero coefficient, or equidistant)."""
        return self.distortion_model in _EQUIDISTANT_MODELS or bool(np.any(self.d))

    def pinhole(self) -> PinholeCamera:
        """The same camera without its lens distortion (what :meth:`undistort_px` maps to)."""
        if not self.distorted:
            return self
        return replace(self, d=np.zeros(5), distortion_model="plumb_bob")

    def undistort_px(self, points_px: np.ndarray) -> np.ndarray:
        """Raw image px (N, 2) -> the px of the same rays in :meth:`pinhole`'s image.

        ``K (x_n, y_n, 1)``: the undistorted image, same K. Without distortion the points
        themselves (as float64).
        """
        points = np.asarray(points_px, np.float64).reshape(-1, 2)
        if not self.distorted:
            return points.copy()
        n = self.normalize(points)
        return _ray_to_px(self.k, n[:, 0], n[:, 1])

    def undistort_with_jacobian(self, points_px: np.ndarray, step_px: float = 0.5
                                ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`undistort_px` of the points (N, 2) and its Jacobian there (N, 2, 2).

        The Jacobian d(undistort_px)/d(raw px) maps a raw image velocity to the undistorted
        image's (``J @ v``), its inverse maps back. It is the inverse of the lens's own
        Jacobian (OpenCV's projection, exact and not iterated, by central differences of
        ``step_px`` at the undistorted points): one iterated undistortion instead of five.
        Without distortion: the points and the identity.
        """
        points = np.asarray(points_px, np.float64).reshape(-1, 2)
        count = points.shape[0]
        if not self.distorted:
            return points.copy(), np.broadcast_to(np.eye(2), (count, 2, 2)).copy()
        undistorted = self.undistort_px(points)
        offsets = np.array([[step_px, 0.0], [-step_px, 0.0], [0.0, step_px], [0.0, -step_px]])
        moved = (undistorted[None, :, :] + offsets[:, None, :]).reshape(-1, 2)
        raw = self.distort_px(moved).reshape(4, count, 2)
        a, c = ((raw[0] - raw[1]) / (2.0 * step_px)).T      # the lens's Jacobian's columns
        b, d = ((raw[2] - raw[3]) / (2.0 * step_px)).T
        # Its inverse in closed form: where a lens model folds over (a calibration outside
        # its valid range) the determinant is 0 and the entries non-finite, not an exception.
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.stack((np.stack((d, -b), -1), np.stack((-c, a), -1)), 1) / (
                a * d - b * c)[:, None, None]
        return undistorted, inverse

    def distort_px(self, points_px: np.ndarray) -> np.ndarray:
        """:meth:`pinhole`'s image px (N, 2) -> the raw image px of the same rays (the lens).

        The inverse of :meth:`undistort_px`; without distortion the points themselves.
        """
        points = np.asarray(points_px, np.float64).reshape(-1, 2)
        if not self.distorted or points.shape[0] == 0:
            return points.copy()
        k = self.k
        y = (points[:, 1] - k[1, 2]) / k[1, 1]    # K^-1 (px, 1): _ray_to_px's inverse
        x = (points[:, 0] - k[0, 2] - k[0, 1] * y) / k[0, 0]
        if self.distortion_model in _EQUIDISTANT_MODELS:
            out = cv2.fisheye.distortPoints(np.column_stack((x, y)).reshape(-1, 1, 2), k,
                                            self.d)
            return out.reshape(-1, 2)
        d = np.zeros(8)
        if self.d.size > d.size:   # thin prism / tilted sensor terms: OpenCV's projection
            rays = np.column_stack((x, y, np.ones_like(x)))
            out, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), k, self.d)
            return out.reshape(-1, 2)
        d[:self.d.size] = self.d    # OpenCV's order: k1 k2 p1 p2 k3 k4 k5 k6
        k1, k2, p1, p2, k3, k4, k5, k6 = d
        r2 = x * x + y * y
        radial = ((1.0 + r2 * (k1 + r2 * (k2 + r2 * k3)))
                  / (1.0 + r2 * (k4 + r2 * (k5 + r2 * k6))))
        xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        return _ray_to_px(k, xd, yd)


def _ray_to_px(k: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, 2) px of the normalised coordinates (x, y): ``K (x, y, 1)``."""
    return np.column_stack((k[0, 0] * x + k[0, 1] * y + k[0, 2], k[1, 1] * y + k[1, 2]))


def _undistort_points(points: np.ndarray, k: np.ndarray, d: np.ndarray) -> np.ndarray:
    """cv2.undistortPoints (N, 1, 2) px -> normalised, iterated to :data:`_UNDISTORT_CRITERIA`."""
    if hasattr(cv2, "undistortPointsIter"):   # OpenCV 4 names the iterated variant apart
        return cv2.undistortPointsIter(points, k, d, None, None, _UNDISTORT_CRITERIA)
    return cv2.undistortPoints(points, k, d, criteria=_UNDISTORT_CRITERIA)


def lens_of(camera: PinholeCamera | None) -> PinholeCamera | None:
    """``camera`` when its lens distorts the image, else None (the raw image is pinhole)."""
    return camera if camera is not None and camera.distorted else None


def same_lens(a: PinholeCamera | None, b: PinholeCamera | None) -> bool:
    """Whether two cameras give the same undistorted image (:meth:`PinholeCamera.undistort_px`).

    Every camera without distortion, and None, give the raw image.
    """
    a, b = lens_of(a), lens_of(b)
    if a is None or b is None:
        return a is b
    return (a is b or (a.distortion_model == b.distortion_model and np.array_equal(a.k, b.k)
                       and np.array_equal(a.d, b.d)))
