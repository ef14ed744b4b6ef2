"""Corner detection away from live tracks, and the even-spread rules, without point loops.

Points are (x, y) px in the image the detector runs on. ``rank`` arrays order tracks by
priority: rank 0 wins (the tracker ranks older tracks first, ties by lower id).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "cap_per_cell",
    "clear_border",
    "clear_discs",
    "close_pairs",
    "detect_corners",
    "grid_cells",
    "priority_rank",
    "select_per_cell",
    "suppress_crowded",
]


def priority_rank(ages: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rank 0..N-1 of each track: older (larger age) first, ties broken by lower id."""
    order = np.lexsort((ids, -ages.astype(np.int64)))
    rank = np.empty(order.shape[0], np.int64)
    rank[order] = np.arange(order.shape[0])
    return rank


def clear_border(mask: np.ndarray, margin: int) -> None:
    """Set a frame of ``margin`` px along the edges of ``mask`` to 0, in place."""
    if margin <= 0:
        return
    mask[:margin] = 0
    mask[-margin:] = 0
    mask[:, :margin] = 0
    mask[:, -margin:] = 0


def clear_discs(mask: np.ndarray, points: np.ndarray, radius: float) -> None:
    """Set discs of ``radius`` px around (N, 2) ``points`` to 0 in the uint8 ``mask``, in place.

    One ``cv2.polylines`` call: a closed one-point polyline of thickness ``2 * radius`` is
    drawn as a filled disc, pixel-identical to ``cv2.circle(mask, p, radius, 0, -1)``.
    """
    r = int(round(radius))
    if r <= 0 or points.shape[0] == 0:
        return
    centres = np.rint(points).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(mask, centres, isClosed=True, color=0, thickness=2 * r)


def close_pairs(points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (i, j), i != j, of points closer than ``radius`` px.

    Points are bucketed into cells of ``radius``; each point meets the points of its 3 x 3
    cell block through ranges of the cell-sorted order (ragged ranges expanded with
    ``np.repeat``), so the cost grows with the pairs found, not with N squared. None with a
    radius of 0 (``min_distance`` 0); a radius far below the points' extent takes cells of
    1/2^20 of it (no two points closer than that cell are missed; the cell indices then fit
    int64).
    """
    n = points.shape[0]
    if radius <= 0.0 or n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    extent = float(np.ptp(points, axis=0).max())
    cell = max(float(radius), extent / 2.0**20)
    cx = np.floor(points[:, 0] / cell).astype(np.int64)
    cy = np.floor(points[:, 1] / cell).astype(np.int64)
    cx -= cx.min() - 1
    cy -= cy.min() - 1
    gw = int(cx.max()) + 2
    flat = cy * gw + cx
    order = np.argsort(flat, kind="stable")
    sorted_flat = flat[order]
    pts = points.astype(np.float64)
    r2 = float(radius) ** 2
    firsts, seconds = [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            target = flat + dy * gw + dx
            lo = np.searchsorted(sorted_flat, target, side="left")
            cnt = np.searchsorted(sorted_flat, target, side="right") - lo
            total = int(cnt.sum())
            if total == 0:
                continue
            i = np.repeat(np.arange(n), cnt)
            starts = np.repeat(np.cumsum(cnt) - cnt, cnt)
            j = order[np.repeat(lo, cnt) + np.arange(total) - starts]
            d2 = ((pts[i] - pts[j]) ** 2).sum(axis=1)
            hit = (d2 < r2) & (i != j)
            firsts.append(i[hit])
            seconds.append(j[hit])
    if not firsts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


def suppress_crowded(points: np.ndarray, rank: np.ndarray, radius: float) -> np.ndarray:
    """VINS-style distance mask: which tracks to keep so no two lie closer than ``radius``.

    VINS walks the tracks best rank (oldest) first and keeps one if no kept track is within
    the radius. This gives exactly the walk's result without a loop over points: with the
    close pairs (:func:`close_pairs`), rounds decide every point whose better-ranked close
    neighbours are all decided: kept if none of them is kept, else dropped. Each round
    decides at least the best undecided point; in practice a handful of rounds suffice.

    Args:
        points: (N, 2) px.
        rank: (N,) priority, 0 = best.
        radius: minimum distance between kept tracks, px.

    Returns:
        (N,) bool, True = keep.

    """
    n = points.shape[0]
    if n < 2 or radius <= 0:
        return np.ones(n, bool)
    i, j = close_pairs(points, radius)
    worse = rank[j] < rank[i]               # j beats i if j is kept
    loser, better = i[worse], j[worse]
    state = np.zeros(n, np.int8)            # 0 undecided, 1 kept, -1 dropped
    while True:
        undecided = state == 0
        if not undecided.any():
            break
        nb_state = state[better]
        kept_nb = np.bincount(loser, weights=nb_state == 1, minlength=n) > 0
        open_nb = np.bincount(loser, weights=nb_state == 0, minlength=n) > 0
        state[undecided & kept_nb] = -1
        state[undecided & ~kept_nb & ~open_nb] = 1
    return state == 1


def grid_cells(points: np.ndarray, shape: tuple[int, int], rows: int,
               cols: int) -> np.ndarray:
    """Flat cell index (row * cols + col) of each (x, y) point for a rows x cols grid."""
    h, w = shape
    col = np.clip((points[:, 0] * (cols / w)).astype(np.int64), 0, cols - 1)
    row = np.clip((points[:, 1] * (rows / h)).astype(np.int64), 0, rows - 1)
    return row * cols + col


def _rank_in_group(group: np.ndarray, order_key: np.ndarray) -> np.ndarray:
    """Position of each element within its group when sorted by ``order_key``."""
    n = group.shape[0]
    order = np.lexsort((order_key, group))
    g = group[order]
    starts = np.ones(n, bool)
    starts[1:] = g[1:] != g[:-1]
    start_idx = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n) - start_idx
    return pos


def cap_per_cell(cells: np.ndarray, rank: np.ndarray, per_cell: int) -> np.ndarray:
    """Keep the ``per_cell`` best-ranked points of each cell; returns (N,) bool."""
    if cells.shape[0] == 0:
        return np.ones(0, bool)
    return _rank_in_group(cells, rank) < per_cell


def select_per_cell(cells: np.ndarray, occupied: np.ndarray, per_cell: int,
                    budget: int) -> np.ndarray:
    """Pick new corners (given best first) so no cell exceeds ``per_cell`` points in all.

    Args:
        cells: (M,) cell index of each candidate, candidates ordered best first.
        occupied: (n_cells,) points already in each cell.
        per_cell: cap per cell.
        budget: most candidates to return.

    Returns:
        Indices of the chosen candidates, best first.

    """
    if cells.shape[0] == 0 or budget <= 0:
        return np.empty(0, np.int64)
    pos = _rank_in_group(cells, np.arange(cells.shape[0]))
    ok = pos < (per_cell - occupied[cells])
    return np.flatnonzero(ok)[:budget]


def detect_corners(image: np.ndarray, mask: np.ndarray | None, *, max_corners: int,
                   quality_level: float, min_distance: float,
                   block_size: int) -> np.ndarray:
    """Shi-Tomasi corners of a uint8 image as (M, 2) float32 px, strongest first."""
    if max_corners <= 0:
        return np.empty((0, 2), np.float32)
    corners = cv2.goodFeaturesToTrack(
        image, maxCorners=int(max_corners), qualityLevel=float(quality_level),
        minDistance=float(min_distance), mask=mask, blockSize=int(block_size))
    if corners is None:
        return np.empty((0, 2), np.float32)
    return corners.reshape(-1, 2).astype(np.float32, copy=False)
