"""Bookkeeping of live tracks: ids, ages, trails, FB errors and velocities.

All per-track arrays are aligned (row ``i`` of every array is the same track) and are
replaced, never resized in place, so arrays handed out earlier stay valid.

Positions are full-resolution image px (x right, y down), stamps are seconds and
velocities px/s. The trail is a ring over frames shared by all tracks: slot ``head`` holds
the latest frame; a track's slots from before its birth hold its first position (so fits
and drawing need no NaN handling), and :meth:`TrackStore.trails` reports them as NaN.

Velocities come from a :class:`~optical_flow_ros.core.field_velocity.MotionFieldVelocity`
(at the newest stamp; its per-track state is kept here, aligned with the tracks) or, without
one, from the least-squares slope over the trail (:meth:`TrackStore._fit_velocities`).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from optical_flow_ros.core.camera_model import PinholeCamera, lens_of, same_lens
from optical_flow_ros.core.field_velocity import MotionField, MotionFieldVelocity

__all__ = ["TrackStore"]


class _FieldState(NamedTuple):
    """The motion field's per-track state and what each velocity withheld, row i = track i.

    The first four are :meth:`MotionFieldVelocity.step`'s state (see
    :class:`~optical_flow_ros.core.field_velocity.FieldStep`). Kept, selected and extended
    as one record, so that a new per-track quantity is added in one place.
    """

    deviation: np.ndarray        # (N, 2) averaged deviation from the field, px/s
    count: np.ndarray            # (N,) int32 intervals averaged into it
    variance_factor: np.ndarray  # (N,) its variance in units of one interval's; NaN: new
    residuals: np.ndarray        # (N, 2, 2) displacements about the field, px; NaN: new
    withheld: np.ndarray         # (N, 2) the deviation the velocity leaves out, raw px/s
    # With a lens: the position in its undistorted image, px, and the undistortion's
    # Jacobian there (d undistorted / d raw); NaN without one and for new tracks.
    undistorted: np.ndarray      # (N, 2)
    jacobian: np.ndarray         # (N, 2, 2)

    @classmethod
    def fresh(cls, n: int) -> _FieldState:
        """The state of ``n`` tracks the field has not followed yet."""
        return cls(np.zeros((n, 2)), np.zeros(n, np.int32), np.full(n, np.nan),
                   np.full((n, 2, 2), np.nan), np.zeros((n, 2)), np.full((n, 2), np.nan),
                   np.full((n, 2, 2), np.nan))

    def take(self, keep: np.ndarray) -> _FieldState:
        """The rows at indices or where the bool mask ``keep`` is True."""
        return _FieldState(*(a[keep] for a in self))

    def extended(self, m: int) -> _FieldState:
        """The state with ``m`` new tracks appended."""
        new = _FieldState.fresh(m)
        return _FieldState(*(np.concatenate([a, b]) for a, b in zip(self, new, strict=True)))


class TrackStore:
    """Live tracks of one tracker and the id counter that outlives :meth:`clear`.

    Args:
        track_len: trail length in frames (>= 2).
        velocity_window: most recent trail samples fitted for the slope velocity (>= 2;
            capped at ``track_len``).
        field: the motion-field velocity estimator; None: slope velocities.

    """

    def __init__(self, track_len: int, velocity_window: int, *,
                 field: MotionFieldVelocity | None = None) -> None:
        self._next_id = 0
        self._track_len = int(track_len)
        self._velocity_window = int(velocity_window)
        self._field = field
        self._lens: PinholeCamera | None = None
        self.clear()

    # ---- state ---------------------------------------------------------------------------

    def clear(self) -> None:
        """Drop every track and the frame history; ids already given are never reused."""
        n_len = self._track_len
        self.ids = np.empty(0, np.int64)
        self.ages = np.empty(0, np.int32)
        self.points = np.empty((0, 2), np.float32)
        self.velocities = np.empty((0, 2), np.float32)
        self.fb_errors = np.empty(0, np.float32)
        self._trail = np.empty((0, n_len, 2), np.float32)
        self._stamps = np.full(n_len, np.nan, np.float64)
        self._head = n_len - 1
        # Consecutive frames without a time gap: bounds the samples usable for velocity.
        self._run = 0
        self._clear_field_state()

    def _clear_field_state(self) -> None:
        self._field_state = _FieldState.fresh(len(self))
        self._motion_field: MotionField | None = None
        if self._field is not None:
            self._field.restart()

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def track_len(self) -> int:
        """Trail length in frames."""
        return self._track_len

    def set_field(self, field: MotionFieldVelocity | None) -> None:
        """Switch the velocity estimator (None: slope); velocities restart at the next frame."""
        if field is not self._field:
            self._field = field
            self._clear_field_state()
            self._run = min(self._run, 1)

    @property
    def motion_field(self) -> MotionField | None:
        """The motion field of the last frame (or None).

        Its variance factors, withheld deviations and (with a lens) undistorted positions
        and their Jacobians are aligned with the tracks.
        """
        field = self._motion_field
        if field is None:
            return None
        state = self._field_state
        lens = field.lens is not None
        return dataclasses.replace(field, variance_factor=state.variance_factor,
                                   withheld=state.withheld,
                                   undistorted=state.undistorted if lens else None,
                                   undistortion_jacobian=state.jacobian if lens else None)

    def set_lens(self, camera: PinholeCamera | None) -> None:
        """The camera whose lens distortion the motion field undoes.

        With a distorting lens the field is fitted in the undistorted image, where a plane's
        image motion is exactly the 8-parameter field (in the raw image its parameters
        absorb the distortion, and the rates the ego-velocity takes from them were off by
        tens of percent at k1 = -0.1); the tracks' velocities are mapped back to the raw
        image. None or a camera without distortion: the raw image. A different lens
        restarts the field (its coordinates change).
        """
        if same_lens(camera, self._lens):
            return
        self._lens = lens_of(camera)
        self._clear_field_state()

    def set_lengths(self, track_len: int, velocity_window: int) -> None:
        """Change the trail length and velocity window, keeping the newest history."""
        self._velocity_window = int(velocity_window)
        track_len = int(track_len)
        if track_len == self._track_len:
            return
        order = self._chronological_slots()
        keep = order[-track_len:]
        pad = track_len - keep.shape[0]
        trail = self._trail[:, keep]
        stamps = self._stamps[keep]
        if pad > 0:
            trail = np.concatenate([np.repeat(trail[:, :1], pad, axis=1), trail], axis=1)
            stamps = np.concatenate([np.full(pad, np.nan), stamps])
        self._trail = np.ascontiguousarray(trail)
        self._stamps = stamps
        self._track_len = track_len
        self._head = track_len - 1
        self._run = min(self._run, track_len)

    # ---- per frame -----------------------------------------------------------------------

    def advance(self, keep: np.ndarray, points: np.ndarray, fb_errors: np.ndarray,
                stamp: float, *, restart_velocity: bool,
                shape: tuple[int, int] = (0, 0)) -> None:
        """Record a new frame for the tracks that survived it.

        Args:
            keep: indices (int) of the surviving tracks, in order.
            points: (len(keep), 2) float32 new positions, full-resolution px.
            fb_errors: (len(keep),) float32 forward-backward errors, px.
            stamp: the frame's time, s.
            restart_velocity: True after a time gap: velocities restart from this frame.
            shape: the full-resolution image's (rows, cols) (the motion field's coordinates).

        """
        previous = self.points[keep].astype(np.float64)
        previous_stamp = float(self._stamps[self._head])
        state = self._field_state = self._field_state.take(keep)
        self.ids = self.ids[keep]
        self.ages = self.ages[keep] + np.int32(1)
        self.points = np.ascontiguousarray(points, np.float32)
        self.fb_errors = np.ascontiguousarray(fb_errors, np.float32)
        self._trail = self._trail[keep]
        self._push_frame(stamp, restart_velocity)
        self._trail[:, self._head] = self.points
        if self._field is None:
            self.velocities = self._fit_velocities()
            return
        if restart_velocity or not np.isfinite(previous_stamp):
            self._clear_field_state()
            self.velocities = np.full((len(self), 2), np.nan, np.float32)
            return
        lens = self._lens
        if lens is None:
            step = self._field.step(previous, self.points, previous_stamp, stamp, shape,
                                    state.deviation, state.count, state.variance_factor,
                                    state.residuals)
            self.velocities = step.velocities
            withheld = (1.0 - step.kept)[:, None] * step.deviation
            current, jacobian = state.undistorted, state.jacobian     # NaN: no lens
        else:   # the field in the undistorted image, where it is exact; velocities back
            before = state.undistorted.copy()    # last frame's, but for tracks new then
            new = ~np.isfinite(before).all(axis=1)
            if new.any():
                before[new] = lens.undistort_px(previous[new])
            current, jacobian = lens.undistort_with_jacobian(self.points)
            step = self._field.step(before, current, previous_stamp, stamp, shape,
                                    state.deviation, state.count, state.variance_factor,
                                    state.residuals)
            both = np.stack((step.velocities.astype(np.float64),
                             (1.0 - step.kept)[:, None] * step.deviation), axis=2)
            raw = np.linalg.solve(jacobian, both)   # (N, 2, 2): velocity, withheld
            self.velocities = raw[:, :, 0].astype(np.float32)
            withheld = raw[:, :, 1]
        self._field_state = _FieldState(step.deviation, step.count, step.variance_factor,
                                        step.residuals, withheld, current, jacobian)
        self._motion_field = (None if step.field is None else
                              dataclasses.replace(step.field, lens=lens))

    def start_frame(self, stamp: float) -> None:
        """Record a frame that had no tracks to follow (first frame, after a reset)."""
        self._push_frame(stamp, restart_velocity=True)
        self._clear_field_state()

    def select(self, keep: np.ndarray) -> None:
        """Keep only the tracks at indices or where the bool mask ``keep`` is True."""
        self.ids = self.ids[keep]
        self.ages = self.ages[keep]
        self.points = self.points[keep]
        self.velocities = self.velocities[keep]
        self.fb_errors = self.fb_errors[keep]
        self._trail = self._trail[keep]
        self._field_state = self._field_state.take(keep)

    def add(self, points: np.ndarray) -> None:
        """Start new tracks at (M, 2) full-resolution px in the current frame (age 1).

        New tracks get fresh ids, NaN velocity and NaN FB error (not measured yet).
        """
        m = int(points.shape[0])
        if m == 0:
            return
        new_ids = np.arange(self._next_id, self._next_id + m, dtype=np.int64)
        self._next_id += m
        trail = np.repeat(points.astype(np.float32)[:, None, :], self._track_len, axis=1)
        nan2 = np.full((m, 2), np.nan, np.float32)
        self.ids = np.concatenate([self.ids, new_ids])
        self.ages = np.concatenate([self.ages, np.ones(m, np.int32)])
        self.points = np.concatenate([self.points, points.astype(np.float32, copy=False)])
        self.velocities = np.concatenate([self.velocities, nan2])
        self.fb_errors = np.concatenate([self.fb_errors, nan2[:, 0]])
        self._trail = np.concatenate([self._trail, trail])
        self._field_state = self._field_state.extended(m)

    def trails(self) -> np.ndarray:
        """(N, track_len, 2) float32 positions, oldest first, NaN before a track's birth."""
        trail = self._trail[:, self._chronological_slots()]
        unborn = np.arange(self._track_len)[None, :] < (self._track_len - self.ages)[:, None]
        trail[unborn] = np.nan
        return trail

    # ---- internals -----------------------------------------------------------------------

    def _push_frame(self, stamp: float, restart_velocity: bool) -> None:
        self._head = (self._head + 1) % self._track_len
        self._stamps[self._head] = stamp
        self._run = 1 if restart_velocity else min(self._run + 1, self._track_len)

    def _chronological_slots(self) -> np.ndarray:
        n_len = self._track_len
        return (self._head + 1 + np.arange(n_len)) % n_len

    def _fit_velocities(self) -> np.ndarray:
        """Least-squares slope of position over stamp across each track's last samples.

        A track uses its last ``n = min(age, run, window)`` samples, so the fit never spans
        a time gap or a frame before its birth; with n = 2 it is the last interval's
        displacement / dt, with n < 2 NaN. The slope is a weighted sum of the positions,
        with one weight row per n (W x W numbers), so all tracks take one einsum. px/s.
        """
        n = len(self)
        window = min(self._velocity_window, self._track_len, self._run)
        if n == 0 or window < 2:
            return np.full((n, 2), np.nan, np.float32)
        slots = (self._head - np.arange(window - 1, -1, -1)) % self._track_len
        t = self._stamps[slots] - self._stamps[self._head]          # (W,) s, <= 0
        weights = np.zeros((window + 1, window))
        for k in range(2, window + 1):                               # W - 1 rows, not points
            tk = t[window - k:]
            dev = tk - tk.mean()
            weights[k, window - k:] = dev / (dev * dev).sum()
        n_samples = np.minimum(self.ages, window)
        vel = np.einsum("nw,nwc->nc", weights[n_samples], self._trail[:, slots])
        vel[n_samples < 2] = np.nan
        return vel.astype(np.float32)
