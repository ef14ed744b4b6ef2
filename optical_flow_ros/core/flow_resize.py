"""A dense flow field at another resolution, its vectors in px of the new size.

Used where flow is computed at one size and delivered at another: ``DenseFlowConfig.downscale``
(computed small, returned at the input size) and ``flow_publish_scale`` of dense_flow_node
(computed at the input size, published smaller for consumers that need less).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["resize_flow", "scaled_shape"]


def scaled_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """``(rows, cols)`` scaled by ``scale`` and rounded, at least 1 px each."""
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def resize_flow(flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``flow`` resampled to ``shape`` (rows, cols) with each vector scaled to the new px.

    Each axis scales by its own factor (new cols / old cols for u, new rows / old rows for
    v), so a displacement keeps its meaning in the new image. Shrinking averages the pixels
    each output pixel covers (``INTER_AREA``: an output pixel is NaN when any pixel it
    averages is); enlarging interpolates bilinearly.

    Args:
        flow: ``(H, W, 2)`` float32 flow in px of its own size.
        shape: target ``(rows, cols)``.

    Returns:
        A new ``(rows, cols, 2)`` float32 array (a copy even when the size is unchanged).

    Raises:
        ValueError: ``flow`` is not ``(H, W, 2)`` float32, or ``shape`` is not positive.
    """
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.dtype != np.float32:
        raise ValueError(f"flow: expected an (H, W, 2) float32 array, got {flow.dtype} "
                         f"{flow.shape}")
    rows, cols = shape
    if rows < 1 or cols < 1:
        raise ValueError(f"shape: must be positive, got {shape}")
    if (rows, cols) == flow.shape[:2]:
        return flow.copy()
    shrink = rows * cols < flow.shape[0] * flow.shape[1]
    out = cv2.resize(flow, (cols, rows),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    out *= np.array([cols / flow.shape[1], rows / flow.shape[0]], np.float32)
    return out
