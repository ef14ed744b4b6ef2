"""The automatic scale of the dense flow views: a robust maximum of the flow, smoothed.

The seed's HSV view maps 1 px of flow to brightness 4, so the 1-5 px/frame flows of a
robot's camera come out almost black, and its arrow grid draws them 1-5 px long on a 16 px
grid (dots, not arrows). In automatic mode the views are scaled by the flow itself: its
robust maximum (a high percentile of the magnitude, so a few wild pixels do not set it) is
full brightness, or an arrow most of a grid step long. :func:`robust_magnitude` is that
figure for one field; :class:`AutoScale` smooths it over frames so the view does not
flicker, and is the only state (its owner resets it when the stream restarts).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["AutoScale", "robust_magnitude"]

_SAMPLE_STRIDE = 4  # px: the percentile is taken on every 4th pixel of every 4th row


def robust_magnitude(flow: np.ndarray, percentile: float = 99.0) -> float:
    """The ``percentile`` of the flow's magnitude over its finite pixels, px.

    Taken on a regular subsample (every 4th pixel of every 4th row; all pixels of fields
    smaller than 64 samples), which costs ~0.2 ms at 640x480 and differs from the full
    field's percentile by far less than the frame-to-frame change.

    Args:
        flow: (H, W, 2) flow, px; NaN marks invalid pixels.
        percentile: in [0, 100].

    Returns:
        The magnitude, px; 0.0 when no pixel is finite.
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow: expected shape (H, W, 2), got {flow.shape}")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile: must be in [0, 100], got {percentile!r}")
    sample = flow[::_SAMPLE_STRIDE, ::_SAMPLE_STRIDE]
    if sample.shape[0] * sample.shape[1] < 64:
        sample = flow
    mag = np.hypot(sample[..., 0], sample[..., 1], dtype=np.float32).ravel()
    mag = mag[np.isfinite(mag)]
    return float(np.percentile(mag, percentile)) if mag.size else 0.0


class AutoScale:
    """The robust maximum of a stream of flow fields, smoothed over frames (px).

    Each :meth:`update` moves the value a fraction ``smoothing`` of the way to the new
    field's robust maximum, on a log scale (equal steps for halving and doubling), so the
    scale changes by at most the factor ``(new / old) ** smoothing`` per frame; the first
    field after construction or :meth:`reset` sets it directly. The value never goes below
    ``floor``, so a still camera's sub-pixel noise is not blown up to full brightness.

    Args:
        percentile: the percentile of the magnitude taken as the maximum, in (0, 100].
        smoothing: fraction of the way to each new maximum, in (0, 1]; 1 = no smoothing.
        floor: least value, px, > 0.
    """

    def __init__(self, *, percentile: float = 99.0, smoothing: float = 0.1,
                 floor: float = 1.0) -> None:
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"percentile: must be in (0, 100], got {percentile!r}")
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing: must be in (0, 1], got {smoothing!r}")
        if not floor > 0.0:
            raise ValueError(f"floor: must be > 0, got {floor!r}")
        self.percentile = float(percentile)
        self.smoothing = float(smoothing)
        self.floor = float(floor)
        self._log_value: float | None = None

    @property
    def value(self) -> float | None:
        """The current smoothed maximum, px; None before the first field."""
        return None if self._log_value is None else math.exp(self._log_value)

    def update(self, flow: np.ndarray) -> float:
        """Take a new field into account; returns the smoothed maximum, px (>= floor)."""
        target = math.log(max(robust_magnitude(flow, self.percentile), self.floor))
        if self._log_value is None:
            self._log_value = target
        else:
            self._log_value += self.smoothing * (target - self._log_value)
        return math.exp(self._log_value)

    def reset(self) -> None:
        """Forget the history: the next field sets the value directly."""
        self._log_value = None
