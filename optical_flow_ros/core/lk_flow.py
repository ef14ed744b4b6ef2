"""Pyramidal Lucas-Kanade between two frames, with a motion prediction and the FB check.

All points are (x, y) px of the images passed in (the processed frames). OpenCV's Python
binding cannot take the pyramids of ``cv2.buildOpticalFlowPyramid`` back
(opencv/opencv#4777), so each call builds its own; the saving comes from doing less work
per point instead:

- the forward pass starts from a predicted position (last velocity x dt), so it converges
  in fewer iterations;
- the backward check starts from the found point minus the *predicted* motion, never from
  p0 itself. When the forward pass ended within ``near_px`` of its prediction, that start
  is within one level's convergence range of the consistent answer, so the check runs on
  the full-resolution level only (a third of the cost of the 3-level pyramid);
- a track that ended farther from its prediction is not trusted: when a match has to
  travel far, a start derived from the prediction could let the check confirm a wrong
  pair. Such tracks are dropped, or, when there are many of them (the camera's motion
  changed), re-tracked from zero motion exactly like lk_track.py (both passes start at the
  point itself, full pyramid).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["LKParams", "LKResult", "track_points"]

# Start from the given position; report the min eigenvalue as "err" (already computed,
# unused here) instead of a patch difference that costs another pass per point.
_FLAGS = cv2.OPTFLOW_USE_INITIAL_FLOW | cv2.OPTFLOW_LK_GET_MIN_EIGENVALS


@dataclass(frozen=True)
class LKParams:
    """calcOpticalFlowPyrLK settings (px of the processed image)."""

    win_size: int
    max_level: int
    criteria_max_iter: int
    criteria_eps: float

    @property
    def near_px(self) -> float:
        """Offset from which one pyramid level still converges (measured: 3 px, win 15)."""
        return 0.2 * self.win_size

    def kwargs(self, max_level: int | None = None) -> dict[str, object]:
        """Keyword arguments for ``cv2.calcOpticalFlowPyrLK``."""
        return {
            "winSize": (self.win_size, self.win_size),
            "maxLevel": self.max_level if max_level is None else max_level,
            "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT,
                         self.criteria_max_iter, self.criteria_eps),
            "flags": _FLAGS,
        }


@dataclass(frozen=True)
class LKResult:
    """Per input point: where it went and whether it passed.

    Attributes:
        points: (N, 2) float32 positions in the next image, px.
        ok: (N,) bool, forward and backward status ok (not yet thresholded on FB).
        fb_errors: (N,) float32 |back-tracked - p0|, px; inf where not checked.
        n_lk_ok: points whose forward status was ok.
        n_retried: points re-tracked (from a new prediction, or from zero motion).

    """

    points: np.ndarray
    ok: np.ndarray
    fb_errors: np.ndarray
    n_lk_ok: int
    n_retried: int


def _lk(prev_img: np.ndarray, next_img: np.ndarray, pts: np.ndarray, start: np.ndarray,
        params: LKParams, max_level: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    out, st, _err = cv2.calcOpticalFlowPyrLK(
        prevImg=prev_img, nextImg=next_img, prevPts=pts.reshape(-1, 1, 2),
        nextPts=np.ascontiguousarray(start, np.float32).reshape(-1, 1, 2),
        **params.kwargs(max_level))
    return out.reshape(-1, 2), st.ravel() == 1


def _forward_backward(prev_img: np.ndarray, img: np.ndarray, p0: np.ndarray,
                      shift: np.ndarray, params: LKParams,
                      predicted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                np.ndarray, int]:
    """One forward pass from p0 + shift and the back-track check.

    Returns (points, ok, fb_errors, surprised, n_forward_ok): ``surprised`` marks
    forward-ok points that ended farther than ``near_px`` from p0 + shift. With
    ``predicted`` they are left unchecked (ok False); otherwise they are checked on the
    whole pyramid.
    """
    n = p0.shape[0]
    p1, ok = _lk(prev_img, img, p0, p0 + shift, params)
    n_lk = int(np.count_nonzero(ok))
    idx = np.flatnonzero(ok)
    back_start = p1[idx] - (shift if shift.ndim == 1 else shift[idx])
    near = np.linalg.norm(back_start - p0[idx], axis=1) <= params.near_px
    surprised = np.zeros(n, bool)
    surprised[idx[~near]] = True
    fb = np.full(n, np.inf, np.float32)
    back_ok = np.zeros(idx.shape[0], bool)
    back = np.empty((idx.shape[0], 2), np.float32)
    levels = ((near, 0),) if predicted else ((near, 0), (~near, params.max_level))
    for sel, level in levels:
        if sel.any():
            back[sel], back_ok[sel] = _lk(img, prev_img, p1[idx[sel]], back_start[sel],
                                          params, level)
    checked = back_ok if not predicted else back_ok & near
    fb[idx[checked]] = np.linalg.norm(back[checked] - p0[idx[checked]], axis=1)
    ok[idx] = checked
    return p1, ok, fb, surprised, n_lk


def track_points(prev_img: np.ndarray, img: np.ndarray, p0: np.ndarray,
                 shift: np.ndarray | None, params: LKParams, *,
                 retry_min: int = 8) -> LKResult:
    """Track (N, 2) float32 points from ``prev_img`` to ``img``.

    Args:
        prev_img: previous processed frame, uint8.
        img: current processed frame, uint8.
        p0: (N, 2) float32 points in ``prev_img``, px.
        shift: predicted motion, (2,) or (N, 2) px; None = no prediction (zero motion).
        params: LK settings.
        retry_min: re-track the points that ended far from their prediction from zero
            motion when there are at least this many; fewer are dropped.

    Returns:
        The result per point (FB threshold not applied).

    """
    p0 = np.ascontiguousarray(p0, np.float32)
    predicted = shift is not None and bool(np.any(shift))
    if not predicted:
        zero = np.zeros(2, np.float32)
        p1, ok, fb, _, n_lk = _forward_backward(prev_img, img, p0, zero, params,
                                                predicted=False)
        return LKResult(p1, ok, fb, n_lk, 0)
    p1, ok, fb, surprised, n_lk = _forward_backward(prev_img, img, p0, shift, params,
                                                    predicted=True)
    retry = np.flatnonzero(surprised)
    if retry.shape[0] < retry_min:
        return LKResult(p1, ok, fb, n_lk, 0)
    again = _repredicted(p0, p1, ok | surprised, retry, params)
    if again is not None:   # the frame's own motion, from where its forward pass went
        q1, q_ok, q_fb, q_surprised, _ = _forward_backward(prev_img, img, p0[retry], again,
                                                           params, predicted=True)
        p1[retry], ok[retry], fb[retry] = q1, q_ok, q_fb
        retry = retry[q_surprised]
        if retry.shape[0] < retry_min:
            return LKResult(p1, ok, fb, n_lk, int(surprised.sum()))
    q1, q_ok, q_fb, _, _ = _forward_backward(prev_img, img, p0[retry],
                                          np.zeros(2, np.float32), params, predicted=False)
    p1[retry], ok[retry], fb[retry] = q1, q_ok, q_fb
    return LKResult(p1, ok, fb, n_lk, int(surprised.sum()))


def _repredicted(p0: np.ndarray, p1: np.ndarray, found: np.ndarray, retry: np.ndarray,
                 params: LKParams) -> np.ndarray | None:
    """A new predicted shift (len(retry), 2) px for the tracks that surprised the forward pass.

    When the prediction was off (the motion changed over a long frame gap), the forward
    pass from it still converges for most tracks, only farther than ``near_px`` from it. A
    homography through where they went (RANSAC, ``near_px``; a plane, or a rotation, seen
    by the camera) predicts them again, within one level's reach of their match, so the
    check of the second pass is valid; the zero-motion retry (lk_track.py's) reaches only
    ``near_px * 2^max_level`` px, less than a gap of several frames moves. None when
    fewer than 8 tracks agree with one homography.
    """
    src, dst = p0[found], p1[found]
    if src.shape[0] < 8:
        return None
    h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, params.near_px)
    if h is None or inliers is None or int(inliers.sum()) < 8:
        return None
    moved = cv2.perspectiveTransform(p0[retry].reshape(-1, 1, 2).astype(np.float64), h)
    return (moved.reshape(-1, 2) - p0[retry]).astype(np.float32)
