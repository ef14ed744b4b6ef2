"""What the demo's listener records, and the summary figures computed from it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["WARM_UP_FRAMES", "Recorder", "normalised_errors", "summarize"]

#: Frames left out of the latency figures: they include discovery and start-up.
WARM_UP_FRAMES = 30


@dataclass
class Recorder:
    """What the demo's listener collects (all stamps in s, latencies in ms)."""

    latencies_ms: list[float] = field(default_factory=list)
    track_counts: list[int] = field(default_factory=list)
    camera_velocity_rows: list[tuple[float, ...]] = field(
        default_factory=list)  # stamp, est vx, vy, true vx, vy, sigma vx, vy (m/s), cov vx vy
    #                        (m/s)^2: the published (vx, vy) covariance is [[sx^2, c], [c, sy^2]]
    speed_errors: list[np.ndarray] = field(default_factory=list)
    frames_seen: int = 0
    video_frames: int = 0
    no_velocity_reasons: Counter[str] = field(default_factory=Counter)  # frames per reason
    last_tracks_image: np.ndarray | None = None
    last_hsv: np.ndarray | None = None
    #: the tracker's latest /diagnostics ``velocity_covariance_sources`` (what the published
    #: covariance is made of), None before any
    covariance_sources: str | None = None

    def count_frame(self, no_velocity_reason: str | None) -> None:
        """One annotated frame: with a camera velocity (None), or without it and why."""
        self.video_frames += 1
        if no_velocity_reason is not None:
            self.no_velocity_reasons[no_velocity_reason] += 1


def summarize(rec: Recorder, elapsed: float, nodes_alive: bool) -> dict[str, Any]:
    """The summary figures (JSON-ready) from what the listener recorded over ``elapsed`` s."""
    lat = np.asarray(rec.latencies_ms[WARM_UP_FRAMES:])
    errors = np.concatenate(rec.speed_errors) if rec.speed_errors else np.zeros(0)
    summary: dict[str, Any] = {
        "duration_s": round(elapsed, 2),
        "frames_tracked": len(rec.latencies_ms),
        "tracked_fps": round(len(rec.latencies_ms) / elapsed, 2) if elapsed else 0.0,
        # Steady state: the first WARM_UP_FRAMES include discovery and start-up.
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
        "tracks_alive_median": int(np.median(rec.track_counts)) if rec.track_counts else 0,
        "nodes_alive_at_end": nodes_alive,
        "video_frames": rec.video_frames,
        "video_frames_with_velocity": rec.video_frames - sum(rec.no_velocity_reasons.values()),
        "video_no_velocity_reasons": dict(rec.no_velocity_reasons.most_common()),
    }
    cam = np.asarray(rec.camera_velocity_rows)
    if cam.size:
        err = cam[:, 1:3] - cam[:, 3:5]
        mean_speed = float(np.linalg.norm(cam[:, 3:5], axis=1).mean())
        rmse = float(np.sqrt((err ** 2).sum(axis=1).mean()))
        z = normalised_errors(cam)
        summary["velocity_estimates"] = len(cam)
        summary["velocity_rmse_m_s"] = round(rmse, 4)
        summary["velocity_rmse_pct_of_speed"] = round(100 * rmse / mean_speed, 3)
        # Calibration: per axis, the shares inside the published 1 and 3 sigma (68.3 % and
        # 99.7 % when the covariance is right), and the median NEES e^T C^-1 e of (vx, vy)
        # (1.39 when right: the median of chi-square with 2 dof).
        for axis, name in enumerate(("vx", "vy")):
            summary[f"velocity_{name}_within_1sigma_pct"] = round(
                100 * float(np.mean(np.abs(z[:, axis]) <= 1.0)), 1)
            summary[f"velocity_{name}_within_3sigma_pct"] = round(
                100 * float(np.mean(np.abs(z[:, axis]) <= 3.0)), 1)
        summary["velocity_within_3sigma_pct"] = round(
            100 * float((np.abs(z[:, :2]) <= 3.0).all(axis=1).mean()), 1)
        summary["velocity_nees_median"] = round(float(np.median(z[:, 2])), 3)
        if rec.covariance_sources:
            summary["velocity_covariance_sources"] = rec.covariance_sources
    if errors.size:   # per-track (vu, vv) against the exact image velocity at the stamp
        summary["track_velocity_error_median_pct"] = round(float(np.median(errors)) * 100, 3)
        summary["track_velocity_error_p90_pct"] = round(float(np.percentile(errors, 90)) * 100,
                                                        3)
    return summary


def normalised_errors(rows: np.ndarray) -> np.ndarray:
    """(K, 3): the errors of vx and vy over their published sigma, and the NEES of (vx, vy).

    ``rows`` are :attr:`Recorder.camera_velocity_rows` (K, 8). Without a correlation
    column (7 columns) the covariance is taken as diagonal.
    """
    err = rows[:, 1:3] - rows[:, 3:5]
    sx, sy = rows[:, 5], rows[:, 6]
    c = rows[:, 7] if rows.shape[1] > 7 else np.zeros(len(rows))
    det = sx * sx * sy * sy - c * c
    nees = (err[:, 0] ** 2 * sy * sy - 2 * c * err[:, 0] * err[:, 1]
            + err[:, 1] ** 2 * sx * sx) / det
    return np.column_stack((err[:, 0] / sx, err[:, 1] / sy, nees))
