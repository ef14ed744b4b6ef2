"""Visualisations of dense flow, after OpenCV's ``samples/python/opt_flow.py``.

Small pure functions: none modifies its inputs. ``flow`` is ``(H, W, 2)`` in px (x right,
y down), as returned by :meth:`optical_flow_ros.core.dense_flow.DenseFlow.compute`; NaN marks
invalid pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["draw_flow", "draw_hsv", "hsv_legend", "warp_flow"]


def _check_flow(flow: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow: expected shape (H, W, 2), got {flow.shape}")
    if shape is not None and flow.shape[:2] != shape[:2]:
        raise ValueError(f"flow of shape {flow.shape[:2]} does not match image {shape[:2]}")
    return flow


def draw_hsv(flow: np.ndarray, *, scale: float = 4.0) -> np.ndarray:
    """Colour-code a flow field: direction -> hue, magnitude -> brightness.

    Hue follows the flow's angle, measured from +x towards +y (down): +x is red (OpenCV hue
    0), +y yellow-green (hue 45 of 180), -x cyan (hue 90), -y violet (hue 135). Value is
    ``min(magnitude_px * scale, 255)``, so it saturates at ``255 / scale`` px; saturation is
    full. Invalid (NaN) pixels are black. (The Farneback tutorial's convention; ``opt_flow.py``
    adds pi to the angle, which puts +x at cyan.)

    Args:
        flow: ``(H, W, 2)`` flow in px.
        scale: Brightness per px of magnitude, > 0.

    Returns:
        ``(H, W, 3)`` uint8 BGR image.
    """
    flow = _check_flow(flow)
    if not scale > 0:
        raise ValueError(f"scale: must be > 0, got {scale!r}")
    valid = np.isfinite(flow).all(axis=2, keepdims=True)
    clean = np.where(valid, flow, 0).astype(np.float32)  # invalid -> zero flow -> black
    mag, ang = cv2.cartToPolar(clean[..., 0], clean[..., 1], angleInDegrees=True)
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = np.rint(ang * 0.5).astype(np.uint8) % 180
    hsv[..., 1] = 255
    hsv[..., 2] = np.minimum(np.rint(mag * scale), 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def hsv_legend(size: int = 64, *, scale: float = 4.0) -> np.ndarray:
    """The colour key of :func:`draw_hsv`: a disc whose rim is the saturation magnitude.

    The pixel at offset ``(dx, dy)`` from the centre has the colour of a flow pointing the
    same way with magnitude ``hypot(dx, dy) / radius * 255 / scale`` px; black outside the disc.

    Args:
        size: Side of the square image, px, >= 3.
        scale: The ``scale`` given to :func:`draw_hsv`.

    Returns:
        ``(size, size, 3)`` uint8 BGR image.
    """
    if size < 3:
        raise ValueError(f"size: must be >= 3, got {size!r}")
    radius = (size - 1) / 2.0
    offsets = np.mgrid[0:size, 0:size][::-1].astype(np.float32) - radius
    field = np.moveaxis(offsets, 0, -1) * np.float32(255.0 / scale / radius)
    field[np.hypot(offsets[0], offsets[1]) > radius] = np.nan
    return draw_hsv(field, scale=scale)


def draw_flow(image: np.ndarray, flow: np.ndarray, *, step: int = 16,
              color: tuple[int, int, int] = (0, 255, 0), scale: float = 1.0) -> np.ndarray:
    """Draw a grid of flow vectors over ``image``: a line from each grid point to where it moves.

    Grid points are at ``(step // 2 + i * step, step // 2 + j * step)``; each gets a small dot at
    the start and a line to ``(x + scale * u, y + scale * v)`` rounded to the nearest pixel
    (all lines in one ``cv2.polylines`` call). Points with NaN flow are skipped.

    Args:
        image: ``(H, W)`` gray or ``(H, W, 3)`` BGR uint8 image.
        flow: ``(H, W, 2)`` flow in px.
        step: Grid spacing, px, >= 1.
        color: BGR colour of lines and dots.
        scale: Line length per px of flow, > 0 (1: to where the point moves, the seed's).

    Returns:
        ``(H, W, 3)`` uint8 BGR copy of ``image`` with the vectors drawn.
    """
    flow = _check_flow(flow, image.shape)
    if step < 1:
        raise ValueError(f"step: must be >= 1, got {step!r}")
    if not scale > 0:
        raise ValueError(f"scale: must be > 0, got {scale!r}")
    vis = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    rows, cols = flow.shape[:2]
    y, x = np.mgrid[step // 2 : rows : step, step // 2 : cols : step].reshape(2, -1)
    uv = flow[y, x]
    keep = np.isfinite(uv).all(axis=1)
    x, y, uv = x[keep], y[keep], uv[keep]
    ends = np.floor(np.stack([x, y], axis=1) + uv * np.float64(scale) + 0.5)
    ends = np.clip(ends, -(2**20), 2**20).astype(np.int32)  # cv2 coordinates are int32
    lines = np.stack([np.stack([x, y], axis=1).astype(np.int32), ends], axis=1)
    cv2.polylines(vis, list(lines), isClosed=False, color=color)
    for dx, dy in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):  # 5 offsets, not pixels
        px, py = x + dx, y + dy
        inside = (px >= 0) & (px < cols) & (py >= 0) & (py < rows)
        vis[py[inside], px[inside]] = color
    return vis


def warp_flow(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Move ``image`` along ``flow``: ``out(p) = image(p - flow(p))``, bilinear.

    With the flow from frame A to frame B, ``warp_flow(A, flow)`` approximates B where the
    flow is smooth (``opt_flow.py``'s "glitch" effect applies it repeatedly). Pixels whose source
    lies outside the image, or whose flow is NaN, are 0.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` image of any OpenCV depth.
        flow: ``(H, W, 2)`` flow in px.

    Returns:
        Warped image, same shape and dtype as ``image``.
    """
    flow = _check_flow(flow, image.shape)
    rows, cols = flow.shape[:2]
    map_x = np.arange(cols, dtype=np.float32) - flow[..., 0].astype(np.float32)
    map_y = np.arange(rows, dtype=np.float32)[:, None] - flow[..., 1].astype(np.float32)
    invalid = ~(np.isfinite(map_x) & np.isfinite(map_y))
    map_x[invalid] = -1e6  # far outside: takes the constant border value 0
    map_y[invalid] = -1e6
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
