"""Debug drawing of sparse tracks, in the spirit of OpenCV samples' ``draw_flow``.

Pure functions: the input image is never modified. Points and trails are (x, y) px in the
image drawn on. Colours are BGR.
"""

from __future__ import annotations

import cv2
import numpy as np

from optical_flow_ros.core.lk_tracker import Tracks
from optical_flow_ros.core.text_label import label_style, put_label

__all__ = ["PALETTE", "draw_tracks", "track_color", "track_colors"]


def _make_palette(n: int) -> np.ndarray:
    """``n`` saturated, bright BGR colours with hues spread by the golden ratio."""
    hues = (np.arange(n) * 0.618033988749895 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(n, 255, np.uint8), np.full(n, 255, np.uint8)], axis=1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0]


#: (32, 3) uint8 BGR colours; a track's colour is ``PALETTE[id % 32]``.
PALETTE = _make_palette(32)


def track_colors(ids: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 BGR colour of each track id (stable: depends on the id only)."""
    return PALETTE[np.asarray(ids, np.int64) % PALETTE.shape[0]]


def track_color(track_id: int) -> tuple[int, int, int]:
    """BGR colour of one track id."""
    b, g, r = PALETTE[int(track_id) % PALETTE.shape[0]]
    return int(b), int(g), int(r)


def _to_bgr(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image.copy()
    raise ValueError(f"image must be gray (H, W) or BGR (H, W, 3), got shape {image.shape}")


def draw_tracks(image: np.ndarray, tracks: Tracks, trails: np.ndarray | None = None, *,
                point_radius: int = 2, trail_thickness: int = 1, text: bool = True,
                text_scale: float | None = None) -> np.ndarray:
    """Draw trails, current points and the track count on a copy of ``image``.

    Each track's trail and point take the colour :func:`track_color` of its id. Drawing
    uses one ``cv2.polylines`` call per palette colour in use for the trails, then one per
    colour for the points (a closed one-point polyline is a filled disc): no loop over
    tracks.

    Args:
        image: gray (H, W) or BGR (H, W, 3) uint8; not modified.
        tracks: the tracks to draw (points in px of ``image``).
        trails: (N, L, 2) px aligned with ``tracks``, oldest first; NaN entries (before a
            track existed) are skipped. None draws points only.
        point_radius: radius of the current-point discs, px (0 = none).
        trail_thickness: trail line width, px.
        text: draw "track count: N" at the top left, white with a black outline
            (:func:`~optical_flow_ros.core.text_label.put_label`).
        text_scale: font scale of the count; None = from the image height (15 px glyphs
            up to 480 rows, growing with the height above).

    Returns:
        A new (H, W, 3) uint8 BGR image.

    """
    vis = _to_bgr(image)
    n = len(tracks)
    if n:
        bucket = np.asarray(tracks.ids, np.int64) % PALETTE.shape[0]
        pts = np.rint(np.asarray(tracks.points, np.float32)).astype(np.int32)
        lines = None
        if trails is not None and trails.shape[0] == n and trails.shape[1] >= 2:
            tr = np.asarray(trails, np.float32)
            # Fill the NaN head of each trail with its first known point: the repeated
            # point adds nothing to the drawn line, and every track keeps L vertices.
            known = np.isfinite(tr[..., 0])
            first = np.argmax(known, axis=1)
            fill = tr[np.arange(n), first]
            tr = np.where(known[..., None], tr, fill[:, None, :])
            lines = np.rint(np.nan_to_num(tr, nan=-1.0)).astype(np.int32)
        # One stable sort by colour, then one polylines call per run of equal colour
        # (cheaper than a boolean mask per palette entry).
        order = np.argsort(bucket, kind="stable")
        sorted_bucket = bucket[order]
        cuts = np.flatnonzero(np.diff(sorted_bucket)) + 1
        runs = [(order[a:b], tuple(int(c) for c in PALETTE[sorted_bucket[a]]))
                for a, b in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True)]
        if lines is not None:          # all trails first, so no trail covers a point
            for sel, color in runs:
                cv2.polylines(vis, lines[sel], isClosed=False, color=color,
                              thickness=trail_thickness, lineType=cv2.LINE_8)
        if point_radius > 0:
            for sel, color in runs:
                cv2.polylines(vis, pts[sel].reshape(-1, 1, 2), isClosed=True, color=color,
                              thickness=2 * point_radius, lineType=cv2.LINE_8)
    if text:
        style = label_style(vis.shape, scale=text_scale)
        margin = round(8 * style.scale)
        _, height, _ = style.text_size("0")
        put_label(vis, f"track count: {n}", (margin, margin + height), style)
    return vis
