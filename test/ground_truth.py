"""Images with exactly known motion, built from real photo textures (no downloads).

Conventions: points are (x, y) in px, x right, y down. A 3x3 matrix ``H`` maps a point of the
base texture to where it appears in the rendered frame, so the motion of a point between two
frames rendered with ``H0`` and ``H1`` is ``H1 @ inv(H0)``.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data as skdata

TEXTURES = ("gravel", "brick", "grass", "camera")


def texture(name: str = "gravel", shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A real grayscale photo texture (uint8), mirrored/tiled to ``shape`` (rows, cols)."""
    img = getattr(skdata, name)()
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    img = img.astype(np.uint8)
    reps = (shape[0] // img.shape[0] + 2, shape[1] // img.shape[1] + 2)
    tiled = np.block(
        [[img[:, :: 1 if c % 2 == 0 else -1][:: 1 if r % 2 == 0 else -1] for c in range(reps[1])]
         for r in range(reps[0])]
    )
    return np.ascontiguousarray(tiled[: shape[0], : shape[1]])


def render(base: np.ndarray, h: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Render ``base`` moved by homography ``h`` (base px -> frame px) into a frame of ``shape``."""
    return cv2.warpPerspective(
        base, np.asarray(h, np.float64), (shape[1], shape[0]),
        flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101,
    )


def translation(dx: float, dy: float) -> np.ndarray:
    """3x3 homography of a pure translation by (dx, dy) px."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def similarity(dx: float, dy: float, angle_rad: float, scale: float,
               center: tuple[float, float]) -> np.ndarray:
    """3x3 rotation+scale about ``center`` followed by a translation (dx, dy) px."""
    c, s = scale * np.cos(angle_rad), scale * np.sin(angle_rad)
    cx, cy = center
    return np.array([
        [c, -s, cx - c * cx + s * cy + dx],
        [s, c, cy - s * cx - c * cy + dy],
        [0.0, 0.0, 1.0],
    ])


def apply_h(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through homography ``h``."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    q = p @ h[:2, :2].T + h[:2, 2]
    w = p @ h[2, :2] + h[2, 2]
    return q / w[:, None]


def smooth_random_field(shape: tuple[int, int], amplitude_px: float, seed: int,
                        sigma_px: float = 40.0) -> np.ndarray:
    """A smooth random displacement field (rows, cols, 2) float32 with max |w| = amplitude."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((shape[0], shape[1], 2)).astype(np.float32)
    field = cv2.GaussianBlur(noise, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT101)
    field *= amplitude_px / float(np.abs(field).max())
    return field


def remap_by_field(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``out(x) = img(x + w(x))``: the flow from ``out`` to ``img`` is exactly ``w``."""
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(np.float32)
    return cv2.remap(img, xs + w[..., 0], ys + w[..., 1], cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT101)


def stereo_motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Middlebury motorcycle pair as (left gray, right gray, GT flow left->right).

    GT flow is u = -disparity, v = 0, NaN where the disparity is unknown (inf).
    """
    left, right, disp = skdata.stereo_motorcycle()
    gl = cv2.cvtColor(left, cv2.COLOR_RGB2GRAY)
    gr = cv2.cvtColor(right, cv2.COLOR_RGB2GRAY)
    flow = np.zeros(disp.shape + (2,), np.float32)
    flow[..., 0] = -disp
    flow[~np.isfinite(disp)] = np.nan
    return gl, gr, flow


def endpoint_error(flow: np.ndarray, truth: np.ndarray) -> float:
    """Mean end-point error (px) over pixels where both fields are finite."""
    ok = np.isfinite(truth).all(axis=2) & np.isfinite(flow).all(axis=2)
    return float(np.linalg.norm(flow[ok] - truth[ok], axis=1).mean())
