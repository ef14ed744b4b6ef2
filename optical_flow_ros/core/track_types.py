"""Result types of the sparse tracker: the tracks of one frame and the per-stage counts.

Units: points (x, y) px in the full-resolution image, velocities px/s, stamps s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optical_flow_ros.core.field_velocity import MotionField

__all__ = ["TrackerStats", "Tracks", "frozen_copy"]


def frozen_copy(a: np.ndarray) -> np.ndarray:
    """A read-only copy of ``a``."""
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class Tracks:
    """The live tracks after one frame; all arrays aligned, N rows, read-only.

    Attributes:
        ids: (N,) int64, unique over the tracker's lifetime (never reused, even after a
            reset).
        points: (N, 2) float32 (x, y) px in the full-resolution image.
        velocities: (N, 2) float32 px/s from the stamps; NaN on a track's first frame and on
            the frame after a time gap (> max_dt), until a good interval follows.
        ages: (N,) int32 frames tracked, 1 = detected in this frame.
        fb_errors: (N,) float32 forward-backward error of this frame, full-resolution px;
            NaN for tracks detected in this frame (not measured).
        stamp: the frame's time, s.
        motion_field: the motion_field velocity estimator's field of this frame and what it
            measured about the velocities' noise (:class:`~.field_velocity.MotionField`, its
            ``variance_factor`` and ``withheld`` aligned with the tracks; in the undistorted
            image of its ``lens`` when there is one); None when it did not fit a field
            (slope estimator, too few tracks, first frames, other sources of tracks).

    """

    ids: np.ndarray
    points: np.ndarray
    velocities: np.ndarray
    ages: np.ndarray
    fb_errors: np.ndarray
    stamp: float
    motion_field: MotionField | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def empty(cls, stamp: float = math.nan) -> Tracks:
        """No tracks."""
        nan2 = np.empty((0, 2), np.float32)
        return cls(ids=frozen_copy(np.empty(0, np.int64)), points=frozen_copy(nan2),
                   velocities=frozen_copy(nan2), ages=frozen_copy(np.empty(0, np.int32)),
                   fb_errors=frozen_copy(np.empty(0, np.float32)), stamp=stamp)


@dataclass(frozen=True)
class TrackerStats:
    """Per-stage counts and timing of the last frame (msckf_vio-style diagnostics).

    Attributes:
        frame_index: frames processed since construction (0-based).
        stamp: the frame's time, s.
        dt: time since the previous frame, s (NaN on a first frame or after a reset).
        n_tracked_in: tracks entering Lucas-Kanade.
        n_after_lk: ... with forward status ok.
        n_after_fb: ... also back-tracked ok within fb_threshold.
        n_after_bounds: ... also inside the image and the ROI mask.
        n_after_ransac: ... also RANSAC inliers (equal to n_after_bounds when off/skipped).
        n_retried: tracks re-tracked (from a new prediction, or from zero motion) after
            their prediction failed.
        n_suppressed: tracks removed by the spread rule.
        n_detected: new tracks started.
        n_live: tracks returned.
        detected: whether detection ran.
        velocity_restarted: whether a time gap (> max_dt) restarted velocities.
        reset_reason: why the tracker reset at this frame, None if it did not.
        elapsed_s: wall time of the update, s.

    """

    frame_index: int = -1
    stamp: float = math.nan
    dt: float = math.nan
    n_tracked_in: int = 0
    n_after_lk: int = 0
    n_after_fb: int = 0
    n_after_bounds: int = 0
    n_after_ransac: int = 0
    n_retried: int = 0
    n_suppressed: int = 0
    n_detected: int = 0
    n_live: int = 0
    detected: bool = False
    velocity_restarted: bool = False
    reset_reason: str | None = None
    elapsed_s: float = 0.0
