"""Sparse Lucas-Kanade tracker: OpenCV's ``lk_track.py`` made into a library.

Shi-Tomasi corners are tracked frame to frame with pyramidal Lucas-Kanade, checked by
tracking back (forward-backward error), re-detected away from live tracks, given ids that
are never reused, and given velocities in px/s from the frames' stamps.

Units and frames: points are (x, y) px in the full-resolution input image (x right,
y down, pixel centres at integers), stamps are seconds, velocities px/s. The tracker is not
thread-safe: call it from one thread.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.feature_detection import (
    cap_per_cell,
    clear_border,
    clear_discs,
    detect_corners,
    grid_cells,
    priority_rank,
    select_per_cell,
    suppress_crowded,
)
from optical_flow_ros.core.field_velocity import MotionFieldVelocity
from optical_flow_ros.core.lk_flow import LKParams, track_points
from optical_flow_ros.core.track_store import TrackStore
from optical_flow_ros.core.track_types import TrackerStats, Tracks, frozen_copy
from optical_flow_ros.core.tracker_config import RESET_FIELDS, TrackerConfig

__all__ = ["LKTracker", "TrackerConfig", "TrackerStats", "Tracks"]

# Corners requested per free slot in "grid" mode, so sparse cells still get candidates.
_GRID_OVERSAMPLE = 4
# Points that ended far from their prediction are re-tracked from zero motion when at
# least this many did (the camera's motion changed); fewer are dropped.
_RETRY_MIN = 8
_PREDICTION_NEIGHBOURS = 8   # known tracks whose median velocity predicts a new track's
#: Pyramid levels added at most above ``max_level`` for a frame whose tracks move farther
#: than the configured pyramid reaches (see LKTracker._lk_params_for).
_MAX_EXTRA_LEVELS = 3
_SPEED_QUANTILE = 90         # percentile of the tracks' speeds taken as the frame's motion


_COUNT_FIELDS = ("n_tracked_in", "n_after_lk", "n_after_fb", "n_after_bounds",
                 "n_after_ransac", "n_retried")


# ---- tracker -----------------------------------------------------------------------------


@dataclass
class _Frame:
    """The processed previous frame and what maps it to full resolution."""

    image: np.ndarray
    full_shape: tuple[int, int]
    stamp: float


@dataclass
class _Geometry:
    """Processing size and scale for one input resolution."""

    full_shape: tuple[int, int]
    proc_shape: tuple[int, int]
    sx: float
    sy: float
    buffers: list[np.ndarray] = field(default_factory=list)
    roi: np.ndarray | None = None


class LKTracker:
    """Sparse Lucas-Kanade tracker with persistent ids and velocities in px/s.

    Args:
        config: settings; defaults if None.
        mask: optional ROI, uint8 (or bool) at full resolution, nonzero = allowed. Corners
            are detected only there and tracks leaving it are dropped.

    """

    def __init__(self, config: TrackerConfig | None = None, *,
                 mask: np.ndarray | None = None) -> None:
        self._config = config if config is not None else TrackerConfig()
        self._field = MotionFieldVelocity(self._config.velocity_field_span,
                                          self._config.velocity_field_degree,
                                          self._config.velocity_deviation_tau,
                                          self._config.velocity_deviation_shrink)
        self._store = TrackStore(self._config.track_len, self._config.velocity_window,
                                 field=self._field_for(self._config))
        self._mask: np.ndarray | None = None
        self._geometry: _Geometry | None = None
        self._prev: _Frame | None = None
        self._frame_index = -1
        self._since_detect = 0
        self._pending_reset: str | None = None
        # Recent speed of the fast tracks, processing px/s (NaN: unknown); see _lk_params_for.
        self._speed = math.nan
        self._stats = TrackerStats()
        self._apply_config(self._config)
        self.set_mask(mask)

    # ---- public --------------------------------------------------------------------------

    @property
    def config(self) -> TrackerConfig:
        """The settings in use."""
        return self._config

    @property
    def stats(self) -> TrackerStats:
        """Counts of the last :meth:`update`."""
        return self._stats

    def configure(self, config: TrackerConfig) -> None:
        """Apply new settings; resets only if the processed image changes (downscale, CLAHE)."""
        if not isinstance(config, TrackerConfig):
            raise TypeError(f"config must be a TrackerConfig, got {type(config).__name__}")
        old = self._config
        if config == old:
            return
        changed = [f for f in RESET_FIELDS if getattr(config, f) != getattr(old, f)]
        self._config = config
        self._apply_config(config)
        self._store.set_lengths(config.track_len, config.velocity_window)
        self._field.configure(config.velocity_field_span, config.velocity_field_degree,
                              config.velocity_deviation_tau, config.velocity_deviation_shrink)
        self._store.set_field(self._field_for(config))
        if changed:
            self._reset(f"config change: {', '.join(changed)}")

    def reset(self) -> None:
        """Forget all tracks and the previous frame; ids already given stay unused."""
        self._reset("reset() called")

    def set_mask(self, mask: np.ndarray | None) -> None:
        """Set (or clear with None) the ROI: full-resolution uint8/bool, nonzero = allowed."""
        if mask is not None:
            mask = np.asarray(mask)
            if mask.ndim != 2 or mask.dtype not in (np.uint8, np.bool_) or mask.size == 0:
                raise ValueError("mask must be a non-empty 2-D uint8 or bool array, got "
                                 f"shape {mask.shape} dtype {mask.dtype}")
            mask = np.where(mask != 0, np.uint8(255), np.uint8(0))
        self._mask = mask
        if self._geometry is not None:
            self._geometry.roi = None

    def update(self, gray: np.ndarray, stamp: float,
               camera: PinholeCamera | None = None) -> Tracks:
        """Track into a new frame.

        Args:
            gray: 2-D uint8 image (the full-resolution frame).
            stamp: the frame's time, s. A stamp equal to or before the previous one resets
                the tracker (bag loop); a gap above ``max_dt`` restarts velocities.
            camera: the image's intrinsics, when known: with a distorting lens the
                ``motion_field`` velocities are estimated in the undistorted image
                (:meth:`TrackStore.set_lens`), so that velocity at the stamp and the
                field the ego-velocity takes from the tracks stay exact. None: the raw image.

        Returns:
            The live tracks in this frame.

        Raises:
            ValueError: ``gray`` is not a non-empty 2-D uint8 array, ``stamp`` is not
                finite, or the ROI mask does not match the image size.

        """
        t_start = time.perf_counter()
        gray = self._check_frame(gray)
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp must be a finite number of seconds, got {stamp!r}")
        if self._mask is not None and self._mask.shape != gray.shape:
            raise ValueError(f"ROI mask shape {self._mask.shape} does not match image shape "
                             f"{gray.shape}")
        cfg = self._config
        self._frame_index += 1
        self._store.set_lens(camera)
        reason, self._pending_reset = self._pending_reset, None
        prev = self._prev
        if prev is not None:
            if gray.shape != prev.full_shape:
                reason = f"resolution change {prev.full_shape} -> {gray.shape}"
            elif stamp == prev.stamp:
                reason = "duplicate stamp"
            elif stamp < prev.stamp:
                reason = "stamp went backwards"
            if reason is not None:
                self._clear()
                prev = None
        geo = self._geometry_for(gray.shape)
        image = self._preprocess(gray, geo)

        counts = dict.fromkeys(_COUNT_FIELDS, 0)
        dt = math.nan
        restarted = False
        if prev is None:
            self._store.start_frame(stamp)
        else:
            dt = stamp - prev.stamp
            restarted = dt > cfg.max_dt
            counts = self._track(prev.image, image, geo, stamp, dt, restarted)

        n_suppressed, n_detected, detected = 0, 0, False
        self._since_detect += 1
        if (prev is None or self._since_detect >= cfg.detect_interval
                or len(self._store) < cfg.min_tracks):
            n_suppressed, n_detected = self._detect(image, geo)
            detected = True
            self._since_detect = 0

        self._prev = _Frame(image=image, full_shape=gray.shape, stamp=stamp)
        s = self._store
        field = s.motion_field
        if field is not None:
            field = dataclasses.replace(field,
                                        variance_factor=frozen_copy(field.variance_factor),
                                        withheld=frozen_copy(field.withheld))
        tracks = Tracks(ids=frozen_copy(s.ids), points=frozen_copy(s.points),
                        velocities=frozen_copy(s.velocities), ages=frozen_copy(s.ages),
                        fb_errors=frozen_copy(s.fb_errors), stamp=stamp, motion_field=field)
        self._stats = TrackerStats(
            frame_index=self._frame_index, stamp=stamp, dt=dt, **counts,
            n_suppressed=n_suppressed, n_detected=n_detected, n_live=len(tracks),
            detected=detected, velocity_restarted=restarted, reset_reason=reason,
            elapsed_s=time.perf_counter() - t_start)
        return tracks

    def trails(self) -> np.ndarray:
        """Recent positions of the live tracks, aligned with the last :class:`Tracks`.

        Returns:
            (N, track_len, 2) float32 full-resolution px, oldest first, newest last; NaN
            where a track did not exist yet.

        """
        return self._store.trails()

    # ---- steps ---------------------------------------------------------------------------

    def _track(self, prev_img: np.ndarray, img: np.ndarray, geo: _Geometry, stamp: float,
               dt: float, restarted: bool) -> dict[str, int]:
        """Follow the live tracks from ``prev_img`` to ``img`` and update the store."""
        cfg = self._config
        store = self._store
        n_in = len(store)
        counts = dict.fromkeys(_COUNT_FIELDS, 0)
        counts["n_tracked_in"] = n_in
        if n_in == 0:
            store.start_frame(stamp)
            return counts
        scale = 0.5 * (geo.sx + geo.sy)
        p0 = self._to_proc(store.points, geo)
        res = track_points(prev_img, img, p0, self._predicted_shift(dt, restarted, geo),
                           self._lk_params_for(dt, geo), retry_min=_RETRY_MIN)
        counts["n_after_lk"] = res.n_lk_ok
        counts["n_retried"] = res.n_retried
        idx = np.flatnonzero(res.ok & (res.fb_errors < cfg.fb_threshold * scale))
        fb = res.fb_errors[idx]
        p1 = res.points
        counts["n_after_fb"] = int(idx.shape[0])

        full = self._to_full(p1[idx], geo)
        h, w = geo.full_shape
        m = cfg.border_margin
        inside = ((full[:, 0] >= m) & (full[:, 0] <= w - 1 - m)
                  & (full[:, 1] >= m) & (full[:, 1] <= h - 1 - m))
        if self._mask is not None:
            xi = np.rint(full[:, 0]).astype(np.intp).clip(0, w - 1)
            yi = np.rint(full[:, 1]).astype(np.intp).clip(0, h - 1)
            inside &= self._mask[yi, xi] != 0
        idx, fb, full = idx[inside], fb[inside], full[inside]
        counts["n_after_bounds"] = int(idx.shape[0])

        inliers = self._ransac(p0[idx], p1[idx], scale)
        if inliers is not None:
            idx, fb, full = idx[inliers], fb[inliers], full[inliers]
        counts["n_after_ransac"] = int(idx.shape[0])

        store.advance(idx, full, (fb / scale).astype(np.float32), stamp,
                      restart_velocity=restarted, shape=geo.full_shape)
        self._note_speed(geo)
        return counts

    def _lk_params_for(self, dt: float, geo: _Geometry) -> LKParams:
        """LK settings for an interval of ``dt`` s: more pyramid levels for a long one.

        From zero motion the pyramid follows a shift of about one level's convergence range
        (``near_px``) times ``2^max_level`` processing px: 12 px at the defaults (measured on
        translated gravel, grass, brick and camera textures: 10-20 px at 2 levels, 25 at 3,
        40-50 at 4). A prediction that is off by more than that (a frame gap in which the
        rotation changed, or no prediction after a restart) sends the tracks to wrong
        matches or loses them. So while the tracks' recent speed times ``dt`` exceeds that
        reach, levels are added (one per doubling, at most :data:`_MAX_EXTRA_LEVELS`), and
        before any speed is known (the tracker's first interval) all of them. With a good
        prediction the added levels change nothing (the coarse levels start at it): on the
        flights of bench/velocity_flights.py without frame loss the tracks came out equal
        with 4 levels on every frame. A node that keeps one frame in four of a 30 Hz
        stream, or loses frames at random, gets the levels its gaps need: measured on the
        TRAIN flights at 3 in 4 frames dropped, the per-track error fell from 6-84 % to
        1-8 % (tracks lost, and wrong matches, after gaps of 4-20 frames).
        """
        params = self._lk_params
        if not math.isfinite(dt):
            return params
        if not math.isfinite(self._speed):   # the first interval: the motion is unknown
            return dataclasses.replace(params, max_level=params.max_level + _MAX_EXTRA_LEVELS)
        reach = params.near_px * 2.0 ** params.max_level
        motion = self._speed * dt
        if motion <= reach:
            return params
        extra = min(math.ceil(math.log2(motion / reach)), _MAX_EXTRA_LEVELS)
        return dataclasses.replace(params, max_level=params.max_level + extra)

    def _note_speed(self, geo: _Geometry) -> None:
        """Remember the fast tracks' speed (processing px/s) of this frame when known."""
        vel = self._store.velocities
        known = np.isfinite(vel[:, 0])
        if known.any():
            speeds = np.hypot(vel[known, 0] * geo.sx, vel[known, 1] * geo.sy)
            self._speed = float(np.percentile(speeds, _SPEED_QUANTILE))

    def _predicted_shift(self, dt: float, restarted: bool,
                         geo: _Geometry) -> np.ndarray | None:
        """Predicted motion (processing px): velocity x dt, from its neighbours for new tracks.

        A new track (velocity not known yet) moves like the median of its nearest tracks
        with a known velocity. That follows rotation and perspective (one global median is
        3 px off at the image edge for a 0.3 rad/s yaw at 30 fps, which sent new tracks to
        the zero-motion retry) and ignores a minority of moving-object tracks nearby.

        Returns an (N, 2) shift, or None when nothing is known (start, after a time gap).
        """
        store = self._store
        vel = store.velocities
        known = np.isfinite(vel[:, 0])
        if restarted or not known.any():
            return None
        scale = np.array([geo.sx, geo.sy], np.float32) * np.float32(dt)
        if known.all():
            return vel * scale
        shift = np.empty_like(vel)
        shift[known] = vel[known] * scale
        known_pts, known_vel = store.points[known], vel[known]
        k = min(_PREDICTION_NEIGHBOURS, known_pts.shape[0])
        d2 = ((store.points[~known, None, :] - known_pts[None, :, :]) ** 2).sum(axis=2)
        nearest = np.argpartition(d2, k - 1, axis=1)[:, :k]          # (new, k)
        shift[~known] = np.median(known_vel[nearest], axis=1) * scale
        return shift

    def _ransac(self, p0: np.ndarray, p1: np.ndarray, scale: float) -> np.ndarray | None:
        """Inlier mask of a fundamental matrix / homography fit, None when not applied."""
        cfg = self._config
        if cfg.ransac == "none" or p0.shape[0] < 8:
            return None
        threshold = cfg.ransac_threshold * scale
        if cfg.ransac == "fundamental":
            model, inl = cv2.findFundamentalMat(
                p0, p1, method=cv2.FM_RANSAC, ransacReprojThreshold=threshold,
                confidence=cfg.ransac_confidence)
        else:
            model, inl = cv2.findHomography(
                p0, p1, method=cv2.RANSAC, ransacReprojThreshold=threshold,
                confidence=cfg.ransac_confidence)
        if model is None or inl is None or model.shape[0] != 3:
            return None
        return inl.ravel().astype(bool)

    def _detect(self, img: np.ndarray, geo: _Geometry) -> tuple[int, int]:
        """Apply the spread rule and start new tracks; returns (n_suppressed, n_detected)."""
        cfg = self._config
        store = self._store
        scale = 0.5 * (geo.sx + geo.sy)
        radius = cfg.min_distance * scale
        n_before = len(store)
        pts = self._to_proc(store.points, geo)
        per_cell = -(-cfg.max_corners // (cfg.grid_rows * cfg.grid_cols))
        if n_before > 1 and cfg.spread != "none":
            rank = priority_rank(store.ages, store.ids)
            if cfg.spread == "mask":
                keep = suppress_crowded(pts, rank, radius)
            else:
                cells = grid_cells(pts, geo.proc_shape, cfg.grid_rows, cfg.grid_cols)
                keep = cap_per_cell(cells, rank, per_cell)
            if not keep.all():
                store.select(keep)
                pts = pts[keep]
        n_suppressed = n_before - len(store)
        room = cfg.max_corners - len(store)
        if room <= 0:
            return n_suppressed, 0

        mask = geo.buffers[2]
        if geo.roi is None:
            geo.roi = self._proc_roi(geo)
        if geo.roi is None:
            mask.fill(255)
        else:
            np.copyto(mask, geo.roi)
        clear_border(mask, math.ceil(cfg.border_margin * scale))
        clear_discs(mask, pts, radius)
        grid = cfg.spread == "grid"
        corners = detect_corners(
            img, mask, max_corners=room * _GRID_OVERSAMPLE if grid else room,
            quality_level=cfg.quality_level, min_distance=radius, block_size=cfg.block_size)
        if grid and corners.shape[0]:
            n_cells = cfg.grid_rows * cfg.grid_cols
            occupied = np.bincount(grid_cells(pts, geo.proc_shape, cfg.grid_rows,
                                              cfg.grid_cols), minlength=n_cells)
            cells = grid_cells(corners, geo.proc_shape, cfg.grid_rows, cfg.grid_cols)
            corners = corners[select_per_cell(cells, occupied, per_cell, room)]
        store.add(self._to_full(corners, geo))
        return n_suppressed, int(corners.shape[0])

    # ---- helpers -------------------------------------------------------------------------

    def _field_for(self, cfg: TrackerConfig) -> MotionFieldVelocity | None:
        return self._field if cfg.velocity_estimator == "motion_field" else None

    def _apply_config(self, cfg: TrackerConfig) -> None:
        self._lk_params = LKParams(win_size=cfg.win_size, max_level=cfg.max_level,
                                   criteria_max_iter=cfg.criteria_max_iter,
                                   criteria_eps=cfg.criteria_eps)
        self._clahe = (cv2.createCLAHE(clipLimit=cfg.clahe_clip_limit,
                                       tileGridSize=(cfg.clahe_tile, cfg.clahe_tile))
                       if cfg.clahe else None)
        self._geometry = None

    def _reset(self, reason: str) -> None:
        self._clear()
        self._pending_reset = reason

    def _clear(self) -> None:
        self._store.clear()
        self._field.reset()
        self._prev = None
        self._since_detect = 0
        self._speed = math.nan

    @staticmethod
    def _check_frame(gray: Any) -> np.ndarray:
        if not isinstance(gray, np.ndarray):
            raise ValueError(f"frame must be a numpy array, got {type(gray).__name__}")
        if gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
            raise ValueError("frame must be a non-empty 2-D uint8 (mono8) array, got "
                             f"shape {gray.shape} dtype {gray.dtype}")
        return gray

    def _geometry_for(self, shape: tuple[int, int]) -> _Geometry:
        geo = self._geometry
        if geo is not None and geo.full_shape == shape:
            return geo
        h, w = shape
        s = self._config.downscale
        ph, pw = max(1, round(h * s)), max(1, round(w * s))
        geo = _Geometry(full_shape=shape, proc_shape=(ph, pw), sx=pw / w, sy=ph / h)
        # Two frame buffers used in turn (current / previous) and the detection mask.
        geo.buffers = [np.empty((ph, pw), np.uint8) for _ in range(3)]
        self._geometry = geo
        return geo

    def _proc_roi(self, geo: _Geometry) -> np.ndarray | None:
        if self._mask is None:
            return None
        if geo.proc_shape == geo.full_shape:
            return self._mask
        return cv2.resize(self._mask, (geo.proc_shape[1], geo.proc_shape[0]),
                          interpolation=cv2.INTER_NEAREST)

    def _preprocess(self, gray: np.ndarray, geo: _Geometry) -> np.ndarray:
        """Copy (and downscale / equalise) the frame into the free frame buffer."""
        prev = self._prev
        out = geo.buffers[1] if prev is not None and prev.image is geo.buffers[0] else \
            geo.buffers[0]
        src = gray
        if geo.proc_shape != geo.full_shape:
            src = cv2.resize(gray, (geo.proc_shape[1], geo.proc_shape[0]), dst=out,
                             interpolation=cv2.INTER_AREA)
        if self._clahe is not None:
            return self._clahe.apply(src, dst=out)
        if src is not out:
            np.copyto(out, src)
        return out

    @staticmethod
    def _to_proc(points: np.ndarray, geo: _Geometry) -> np.ndarray:
        if geo.sx == 1.0 and geo.sy == 1.0:
            return np.ascontiguousarray(points, np.float32)
        s = np.array([geo.sx, geo.sy], np.float32)
        return ((points + 0.5) * s - 0.5).astype(np.float32)

    @staticmethod
    def _to_full(points: np.ndarray, geo: _Geometry) -> np.ndarray:
        if geo.sx == 1.0 and geo.sy == 1.0:
            return np.ascontiguousarray(points, np.float32)
        s = np.array([geo.sx, geo.sy], np.float32)
        return ((points + 0.5) / s - 0.5).astype(np.float32)
