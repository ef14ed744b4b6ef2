"""Settings of the sparse Lucas-Kanade tracker (:class:`~.lk_tracker.LKTracker`).

Each field is declared once with :func:`~.config_fields.setting` (default, description with
units, range); the ROS node generates its parameters from the same declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optical_flow_ros.core.config_fields import config_from_mapping, setting, validate_fields

__all__ = ["RANSAC_MODES", "RESET_FIELDS", "SPREAD_MODES", "VELOCITY_ESTIMATORS", "TrackerConfig"]

SPREAD_MODES = ("none", "mask", "grid")
VELOCITY_ESTIMATORS = ("motion_field", "slope")
RANSAC_MODES = ("none", "fundamental", "homography")
#: Fields whose change alters the processed image: the previous frame no longer matches,
#: so :meth:`LKTracker.configure` resets when one of them changes.
RESET_FIELDS = ("downscale", "clahe", "clahe_clip_limit", "clahe_tile")


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker settings, validated on construction (``ConfigError`` names the field).

    Build from a plain mapping with ``TrackerConfig(**d)`` or :meth:`from_dict` (which also
    refuses unknown keys); ``dataclasses.replace`` gives a validated copy.

    Distances are px of the full-resolution image (scaled internally when ``downscale``
    < 1); window sizes (``win_size``, ``block_size``) apply to the processed image.
    ``border_margin`` defaults to half the default LK window so the window stays inside the
    image: nearer the edge it sees padding and per-track velocity errors grow from ~0.4 %
    to several % (measured on real textures).
    """

    max_corners: int = setting(
        500, "Most live tracks; detection only fills the free slots", range=(1, 100_000))
    quality_level: float = setting(
        0.01, "Shi-Tomasi threshold relative to the best corner (0.3, the tutorial's, "
        "finds only ~60 corners on a real 640x480 image)", range=(0.0, 1.0),
        exclusive_min=True)
    min_distance: float = setting(
        7.0, "Least distance between new corners, and no-detection radius around live "
        "tracks (also the 'mask' spread radius), px", range=(0.0, 1000.0))
    block_size: int = setting(7, "Shi-Tomasi covariance window, px", range=(2, 31))
    win_size: int = setting(15, "Lucas-Kanade window side (odd), px", range=(3, 101),
                            odd=True)
    max_level: int = setting(
        2, "Pyramid levels above the image (0 = no pyramid); up to 3 more are used for an "
        "interval whose tracks move farther than these reach (frame gaps, a slow node)",
        range=(0, 8))
    criteria_max_iter: int = setting(10, "Lucas-Kanade iterations per level at most",
                                     range=(1, 1000))
    criteria_eps: float = setting(0.03, "Lucas-Kanade stops below this update, px",
                                  range=(0.0, 10.0), exclusive_min=True)
    fb_threshold: float = setting(
        1.0, "Largest forward-backward error kept, px", range=(0.0, 100.0),
        exclusive_min=True)
    border_margin: float = setting(
        7.0, "Tracks nearer the image edge are dropped and no corner is detected there, px "
        "(0 = keep all of [0, w-1] x [0, h-1])", range=(0.0, 1000.0))
    detect_interval: int = setting(5, "Frames between corner detections",
                                   range=(1, 100_000))
    track_len: int = setting(10, "Trail length kept per track, frames", range=(2, 1000))
    velocity_estimator: str = setting(
        "motion_field", "Per-track velocity: motion_field (at the image stamp: one planar "
        "motion field fitted to all tracks each interval and extrapolated to the stamp, plus "
        "each track's averaged deviation from it) or slope (least-squares slope over "
        "velocity_window frames: the velocity about (velocity_window - 1) / 2 frames before "
        "the image)", choices=VELOCITY_ESTIMATORS)
    velocity_field_span: float = setting(
        0.3, "motion_field: the field's parameters at the stamp come from a polynomial fitted "
        "to the intervals of this last span (at least degree + 1 intervals); chosen by "
        "measurement on the TRAIN flights of bench/velocity_flights.py, s",
        range=(0.0, 10.0), exclusive_min=True)
    velocity_field_degree: int = setting(
        3, "motion_field: degree of that polynomial in time (0 = the last interval's mean "
        "field, lagging half an interval); chosen by measurement with the span",
        range=(0, 5))
    velocity_deviation_tau: float = setting(
        0.25, "motion_field: time constant over which each track's deviation from the field "
        "is averaged (a running mean while the track is younger); on a planar scene the "
        "deviation is tracking noise (longer is better, measured), with relief or moving "
        "objects it changes and lags by about this much, s",
        range=(0.0, 100.0), exclusive_min=True)
    velocity_deviation_shrink: bool = setting(
        True, "motion_field: publish each track's averaged deviation shrunk towards the field "
        "by what the scene shows of it (empirical Bayes: the deviation's noise measured from "
        "neighbouring tracks, the spread of true deviations from all; a track whose deviation "
        "stands out of its noise keeps it, so moving objects and relief keep theirs); over a "
        "plane it removes the tracking noise: median per-track error at >= 100 px/s on the "
        "13 held-out simulated flights of bench/velocity_flights.py 0.23-1.18 % -> "
        "0.14-0.92 % (measured); false: the whole deviation")
    velocity_window: int = setting(
        5, "slope: trail samples fitted (least squares over the stamps) for a track's "
        "velocity, capped at track_len; 2 = last interval only", range=(2, 1000))
    min_tracks: int = setting(100, "Detect on every frame while fewer tracks are live",
                              range=(0, 100_000))
    spread: str = setting(
        "mask", "Even spread: none, mask (VINS-style: a track within min_distance of an "
        "older one is dropped) or grid (at most max_corners/(rows*cols) per cell)",
        choices=SPREAD_MODES)
    grid_rows: int = setting(8, "Rows of the 'grid' spread", range=(1, 64))
    grid_cols: int = setting(8, "Columns of the 'grid' spread", range=(1, 64))
    ransac: str = setting(
        "none", "Outlier rejection between frames: none, fundamental (3-D scenes) or "
        "homography (planar scene or pure rotation); skipped below 8 tracks",
        choices=RANSAC_MODES)
    ransac_threshold: float = setting(1.0, "RANSAC inlier distance, px", range=(0.0, 100.0),
                                      exclusive_min=True)
    ransac_confidence: float = setting(0.99, "RANSAC confidence", range=(0.0, 1.0),
                                       exclusive_min=True, exclusive_max=True)
    clahe: bool = setting(False, "Equalise contrast (CLAHE) before tracking")
    clahe_clip_limit: float = setting(2.0, "CLAHE clip limit", range=(0.0, 1000.0),
                                      exclusive_min=True)
    clahe_tile: int = setting(8, "CLAHE tiles per image side", range=(1, 64))
    downscale: float = setting(
        1.0, "Process at this fraction of the input size; outputs stay in full-resolution "
        "px", range=(0.0, 1.0), exclusive_min=True)
    max_dt: float = setting(
        0.5, "A frame gap above this restarts velocities (tracking goes on), s",
        range=(0.0, 3600.0), exclusive_min=True)

    def __post_init__(self) -> None:
        validate_fields(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrackerConfig:
        """Build from a plain mapping; unknown keys raise ``ConfigError`` naming them."""
        return config_from_mapping(cls, values)
