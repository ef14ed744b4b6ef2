"""The tracks' own deviations from the motion field: their noise, lasting errors, shrinkage.

Units and frames: positions are full-resolution image px (x right, y down); a deviation (a
track's mean velocity over an interval less the field's there, or its average over the
track's intervals) px/s, its variance (px/s)^2.

A track's deviation is tracking noise, plus what the planar field
(:mod:`~optical_flow_ros.core.planar_field`) does not describe (relief, a moving object, lens
distortion the fit does not undo), plus a tracking error the track keeps over frames
(Lucas-Kanade's window biased by its texture while the image turns). From the tracks of one
frame:

* the deviations' robust scale (:func:`median` over :data:`RAYLEIGH_MEDIAN`), beyond
  :data:`TRIM` times which a track is left out of the field's fit;
* one interval's independent tracking noise, from the innovations of each track's averaged
  deviation (:func:`interval_noise`);
* the errors the tracks keep over frames, from neighbouring tracks
  (:func:`neighbour_pairs`): as one variance (:func:`persistent_variance`), or summed over
  pairs of neighbours through the fit into the covariance of the field's parameters
  (:func:`local_persistent`);
* the share of its averaged deviation a track's velocity keeps: an empirical-Bayes
  shrinkage (:func:`shrinkage`).

:class:`~optical_flow_ros.core.field_velocity.MotionFieldVelocity` averages the deviations
over frames and calls these on every frame.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from optical_flow_ros.core.planar_field import MIN_FIELD_TRACKS, basis_rows

__all__ = ["MIN_SCALE_PX_S", "RAYLEIGH_MEDIAN", "TRIM", "interval_noise", "local_persistent",
           "median", "neighbour_pairs", "persistent_variance", "shrinkage"]

#: Tracks beyond this many robust stds (per component) are not fitted.
TRIM = 3.0
#: Median ``|r| / sigma`` of a 2-D Gaussian ``r``.
RAYLEIGH_MEDIAN = math.sqrt(2.0 * math.log(2.0))
#: Floor of the robust scale, px/s (exact synthetic data).
MIN_SCALE_PX_S = 1e-3
#: Shrinkage of the tracks' deviations (see :func:`shrinkage`): tracks averaged over fewer intervals
#: than this do not inform the scene's statistics; a track keeps its own deviation beyond this
#: many times its noise (a 2-D Gaussian noise passes it with probability exp(-3) = 5 %; 2 and
#: 5 measured alike on the TRAIN flights); the grid's cells across the larger image side.
_SHRINK_MIN_COUNT = 2
_SHRINK_KEEP = 3.0
_SHRINK_CELLS = 8
_LN2 = math.log(2.0)
#: The lasting tracking errors' covariance (:func:`local_persistent`): tracks in the same or
#: adjacent cells of this size, px, are summed as pairs (32-64 px apart at most: Lucas-Kanade's
#: windows, 21 px at full resolution and 2-4x that on the coarser levels, overlap there; on
#: the simulated turns of bench/velocity_flights.py the errors' correlation is measurable out
#: to 30-45 px and ~0 beyond). Not critical: on the 36 flights of bench/velocity_flights.py
#: (one gyro sample per frame) the median NEES was in 1-2 on 24, 24, 25 of them with pairs
#: within 32, 48, 80 px (a radius: 5x the cost of cells; 18 with the errors taken as
#: independent, 24 with these cells).
_PERSISTENT_CELL_PX = 32.0


def median(values: np.ndarray) -> float:
    """Median of a 1-D array (np.partition, without np.median's overhead)."""
    n = values.shape[0]
    half = n // 2
    if n % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return 0.5 * float(part[half - 1] + part[half])


def interval_noise(innovation: np.ndarray, variance_factor: np.ndarray, followed: np.ndarray,
                   sigma: float) -> float:
    """Variance per component of one interval's independent tracking noise, (px/s)^2.

    From the innovations (this interval's deviation minus the track's averaged deviation
    before it), which a steady deviation (relief, a moving object) does not enter:
    ``E|i|^2 = 2 s^2 (1 + variance_factor)``, the median over the followed tracks
    (``variance_factor``: the averaged deviation's, less twice its covariance with this
    interval, in units of ``s^2``). Before
    :data:`MIN_FIELD_TRACKS` tracks were followed: ``sigma^2``, the fit's residual scatter.
    """
    if int(np.count_nonzero(followed)) < MIN_FIELD_TRACKS:
        return sigma * sigma
    i = innovation[followed]
    q = (i[:, 0] * i[:, 0] + i[:, 1] * i[:, 1]) / (1.0 + variance_factor[followed])
    return max(median(q) / (RAYLEIGH_MEDIAN * RAYLEIGH_MEDIAN), MIN_SCALE_PX_S ** 2)


class _Pairs(NamedTuple):
    """Neighbouring tracks: two of the tracks averaged over enough intervals in one grid cell."""

    mature: np.ndarray   # indices of the tracks averaged over >= _SHRINK_MIN_COUNT intervals
    a: np.ndarray        # (P,) indices of one track of each pair
    b: np.ndarray        # (P,) the other (the next in the same cell)


def neighbour_pairs(points: np.ndarray, count: np.ndarray, scale: float) -> _Pairs:
    """Neighbouring mature tracks: each and the next track in its grid cell.

    The grid is :data:`_SHRINK_CELLS` cells across the larger image side (``scale``: half
    of it, px); ``points`` (N, 2) px, ``count`` (N,) intervals averaged into each track's
    deviation.
    """
    mature = np.flatnonzero(count >= _SHRINK_MIN_COUNT)
    p = points[mature]
    cells = np.floor(p * (_SHRINK_CELLS / (2.0 * scale)))
    order = np.lexsort((p[:, 0], cells[:, 0], cells[:, 1]))
    same = np.all(cells[order[1:]] == cells[order[:-1]], axis=1)
    return _Pairs(mature, mature[order[:-1][same]], mature[order[1:][same]])


def persistent_variance(deviation: np.ndarray, noise: np.ndarray, pairs: _Pairs) -> float:
    """Per-component variance of the tracking error each track keeps over frames, (px/s)^2.

    Lucas-Kanade follows a window as if it only shifted; when the image turns (or scales,
    or shears) each window's texture biases its track by an amount of its own that stays
    while the track lives (noise-free simulated yaw at 0.2 / 0.4 rad/s: 0.36 / 0.76 px/s per
    component against 0.02 px/s without yaw, beside 0.35-0.4 px/s of white noise). One
    interval's fit and the polynomial through the intervals average white noise away, not
    this. Taken as independent between tracks, its share of the field's parameters is this
    variance times the fit's normal inverse: the model until enough mature tracks measure
    their errors' covariance (:meth:`MotionFieldVelocity._add_persistent`).

    From neighbours (:func:`neighbour_pairs`): a true deviation (relief, a moving object)
    is shared by them, tracking errors are not, so the difference of two averaged
    deviations has per-component variance ``2 s^2 + noise_a + noise_b`` (``noise``: their
    white-noise variances, (N,)), and half its squared norm has median ``ln 2`` times that.
    0 with fewer than :data:`MIN_FIELD_TRACKS` pairs.
    """
    a, b = pairs.a, pairs.b
    if a.size < MIN_FIELD_TRACKS:
        return 0.0
    diff = deviation[a] - deviation[b]
    half = 0.5 * (diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
    return max(0.5 * median(half / _LN2 - noise[a] - noise[b]), 0.0)


def local_persistent(points: np.ndarray, monomials: np.ndarray, inverse: np.ndarray,
                     deviation: np.ndarray, noise: np.ndarray, count: np.ndarray,
                     fitted: np.ndarray) -> np.ndarray | None:
    """(8, 8) this frame's covariance of the field's parameters from the lasting errors.

    The fit's parameters take ``W_i . e_i`` from each track's lasting error ``e_i``
    (``W_i``: its rows of the least-squares operator ``inverse @ basis``), so their error
    covariance is ``sum_ij W_i W_j^T cov(e_i, e_j)``. Counted as independent (the normal
    inverse times one variance), its variance across the velocity was 3-9x that of the error
    it makes there on four simulated turns and a hover of bench/velocity_flights.py, and
    1/15 of it on a turn over the rocket photo: neighbouring tracks' lasting errors are
    correlated, negatively between overlapping windows over gravel (a texture feature
    between two centres biases them oppositely when the image turns), positively over the
    rocket photo's smooth areas.

    Measured here from the tracks' averaged deviations ``d`` (their lasting errors, plus
    averaged white noise that is independent between tracks, plus a true deviation): the
    products ``d_i d_j`` of the tracks in the same or adjacent cells of
    :data:`_PERSISTENT_CELL_PX` (and of each track with itself less its white-noise variance
    ``noise``, (N,)), through the ``W``s: per cell the sum of ``W_i d_i``, times the sum over
    the 3x3 cells around it. Pairs further apart are left out: their correlation is ~0 on
    the simulated flights, and the fit's residuals (which the deviations are) sum to zero
    over all of them, so summed over every pair the estimate would be nothing. Over pairs
    within 45 px, on six of seven recorded flights, this sum taken across the velocity was
    within 1-20 % (std) of the same sum of the lasting errors measured against the exact
    motion (the hover: 1.6x).

    The mature tracks (``count`` intervals averaged, at least :data:`_SHRINK_MIN_COUNT`)
    fitted in this frame (``fitted``), without those whose deviation stands out as the
    fit's trim would (a moving object's own motion is its, not an error); scaled up to every
    fitted track by the ``W``s' squared norms. ``points`` (N, 2) px, ``monomials`` (6, N)
    the fit's, ``inverse`` its normal inverse. None with fewer than
    :data:`MIN_FIELD_TRACKS` such tracks.
    """
    used = fitted & (count >= _SHRINK_MIN_COUNT)
    if int(np.count_nonzero(used)) < MIN_FIELD_TRACKS:
        return None
    squared = np.einsum("ij,ij->i", deviation, deviation)
    scale2 = median(squared[used]) / (RAYLEIGH_MEDIAN * RAYLEIGH_MEDIAN)
    used &= squared <= TRIM * TRIM * scale2
    index = np.flatnonzero(used)
    if index.size < MIN_FIELD_TRACKS:
        return None
    weights = basis_rows(monomials) @ inverse               # (N, 2, 8)
    norms = np.einsum("icj,icj->i", weights, weights)
    share = float(norms[fitted].sum()) / max(float(norms[index].sum()), 1e-30)
    w = weights[index].reshape(-1, 16)                      # (n, u' then v')
    taken = w * np.repeat(deviation[index], 8, axis=1)      # W_i d_i per component
    # Per cell, the sum of its tracks' W_i d_i; each cell's sum times the sum over the 3x3
    # cells around it is the sum over every pair of neighbours (each track with itself too).
    cells = np.floor(points[index] / _PERSISTENT_CELL_PX).astype(np.int64)
    cells -= cells.min(axis=0) - 1                          # a border of empty cells
    shape = (int(cells[:, 1].max()) + 2, int(cells[:, 0].max()) + 2)
    flat = cells[:, 1] * shape[1] + cells[:, 0]
    order = np.argsort(flat, kind="stable")
    sorted_cells = flat[order]
    firsts = np.flatnonzero(np.diff(sorted_cells, prepend=-1))
    grid = np.zeros((shape[0] * shape[1], 16))
    grid[sorted_cells[firsts]] = np.add.reduceat(taken[order], firsts, axis=0)
    grid = grid.reshape(shape[0], shape[1], 16)
    around = np.zeros_like(grid)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            around[1:-1, 1:-1] += grid[1 + dy:shape[0] - 1 + dy, 1 + dx:shape[1] - 1 + dx]
    left, right = grid.reshape(-1, 16), around.reshape(-1, 16)
    pairs = left[:, :8].T @ right[:, :8] + left[:, 8:].T @ right[:, 8:]
    scaled = w * noise[index][:, None]
    white = scaled[:, :8].T @ w[:, :8] + scaled[:, 8:].T @ w[:, 8:]
    return share * (0.5 * (pairs + pairs.T) - white)


def shrinkage(deviation: np.ndarray, noise: np.ndarray, pairs: _Pairs) -> np.ndarray:
    """(N,) the share of each track's averaged deviation its published velocity keeps.

    Empirical Bayes: a deviation ``d`` is a true one ``delta`` plus noise of variance
    ``k * noise`` per component; with a prior variance ``tau^2`` of ``delta`` the best
    estimate is ``tau^2 / (tau^2 + k noise) * d``.

    * ``k >= 1``: the noise the model's ``noise`` leaves out (tracking errors that persist
      over frames, which the innovations do not see), from neighbouring tracks: a true
      deviation (relief, a moving object, lens distortion) is shared by neighbours, tracking
      errors are not, so half the squared difference of neighbours
      (:func:`neighbour_pairs`) over their summed noise has median ``k ln 2``.
    * ``tau^2``: the scene's, robust (a moving object under half the tracks does not move
      it): the median of ``|d|^2 / 2`` is ``ln 2`` times the per-component variance, minus
      the noise; for a track whose own ``|d|^2 / 2`` exceeds :data:`_SHRINK_KEEP` times its
      noise, that excess when larger (a moving object keeps its own motion).

    Over a plane (no true deviation) this publishes the field where its deviations were
    noise: the median per-track error on the 13 held-out flights of
    bench/velocity_flights.py at >= 100 px/s fell from 0.23-1.18 % to 0.14-0.92 % (the 7
    px/s creep: 0.34 -> 0.18 px/s); with strong lens distortion (k1 = -0.25) fitted in the
    raw image (no camera given), where the lens's share is a real deviation, it stayed
    0.8-1.4 %. The constants were chosen on the TRAIN flights (0.05-1.11 % -> 0.01-0.33 %).
    """
    n = deviation.shape[0]
    mature, a, b = pairs
    if mature.size < MIN_FIELD_TRACKS:
        return np.ones(n)
    half = 0.5 * (deviation[:, 0] * deviation[:, 0] + deviation[:, 1] * deviation[:, 1])
    k = 1.0
    if a.size >= MIN_FIELD_TRACKS:
        diff = deviation[a] - deviation[b]
        ratio = 0.5 * (diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1]) / (noise[a] + noise[b])
        k = max(median(ratio) / _LN2, 1.0)
    real = k * noise
    scene = max(median(half[mature]) / _LN2 - median(real[mature]), 0.0)
    prior = np.maximum(half - _SHRINK_KEEP * real, scene)
    return prior / np.maximum(prior + real, 1e-30)
