"""Benchmark: the motion field through the gyro's line, batched vs one ``theta_at`` per time.

Run from the repository root::

    .venv/bin/python bench/bench_velocity_line.py [--frames 90] [--rounds 15]

A simulated flight (bench_velocity's: 640x480, f = 500 px, 30 fps, 2 m over gravel, 1 m/s
with yaw and a +/-5 deg coning motion; gyro 0.005 rad/s at the simulator's 200 Hz) is tracked
once; then, per frame, the evaluation of the field through the gyro's line that
``estimate_velocity`` makes (``field_through_line``, for the tracks' velocities and the
gyro/field fusion) is timed with the batched ``MotionField.evaluate_many`` (new) and with the
per-time evaluation it replaced (old: ``evaluate`` in a loop over the line's nodes, kept in
test/core/test_gyro_rates.py, where the two are checked equal), alternating old and new on
every frame of every round, one thread. Then the whole ``estimate_velocity`` per frame with
each (old: ``field_through_line`` swapped for the reference where it is called). Prints
per-frame medians (over frames of the per-round medians' median), new vs old, and their
ratio, and the largest difference of the results relative to each array's largest element.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test" / "core"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from field_error_split import field_through_line_replaced  # noqa: E402
from test_gyro_rates import _reference_through_line  # noqa: E402

from optical_flow_ros.core import field_gyro_fusion  # noqa: E402
from optical_flow_ros.core.fit_window import FitWindow  # noqa: E402
from optical_flow_ros.core.gyro_rates import gyro_rates  # noqa: E402
from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig  # noqa: E402
from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig  # noqa: E402
from optical_flow_ros.core.velocity_estimator import (  # noqa: E402
    VelocityConfig,
    _best_instant,
    estimate_velocity,
)

FLIGHT = SimCameraConfig(altitude=2.0, velocity_x=1.0, velocity_y=0.3, yaw_rate=0.3,
                         roll_amplitude=math.radians(5.0), pitch_amplitude=math.radians(5.0),
                         gyro_noise_std=0.005, imu_rate=200.0)


@dataclasses.dataclass
class _Frame:
    tracks: Any
    gyro: Any           # what estimate_velocity is given
    at_instant: Any     # the gyro moved to its best instant (what field_through_line sees)
    timing: Any
    distance: float


def _frames(count: int) -> list[_Frame]:
    """Track the flight; the frames with a motion field and a gyro line."""
    sim = SimCamera(FLIGHT)
    config = TrackerConfig()
    tracker = LKTracker(config)
    window = FitWindow(config.velocity_window, config.max_dt)
    times, rates = sim.imu_samples(-1.0, sim.frame_time(count - 1))
    out = []
    for k in range(count):
        t = sim.frame_time(k)
        tracks = tracker.update(sim.image(k), t)
        timing = window.update(t)
        keep = times <= t + 1e-9
        gyro = gyro_rates(times[keep], rates[keep], timing, max_age=0.1,
                          covariance=np.eye(3) * FLIGHT.gyro_noise_std**2)
        if gyro is None or tracks.motion_field is None:
            continue
        range_m = sim.state(t).range
        at = _best_instant(gyro, timing.end, range_m, None, VelocityConfig())
        if at.line_weights() is not None and at.time < timing.end:
            out.append(_Frame(tracks, gyro, at, timing, range_m))
    return out


def _per_frame(frames: list[_Frame], rounds: int,
               runs: dict[str, Callable[[_Frame], object]]) -> dict[str, float]:
    """Median over frames of each run's median time over rounds, s; runs alternate."""
    times = {name: np.zeros((rounds, len(frames))) for name in runs}
    for r in range(rounds):
        for i, frame in enumerate(frames):
            for name, run in (runs.items() if (r + i) % 2 else reversed(runs.items())):
                start = time.perf_counter()
                run(frame)
                times[name][r, i] = time.perf_counter() - start
    return {name: float(np.median(np.median(t, axis=0))) for name, t in times.items()}


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| over the largest |b| (finite entries; 0 for all-zero or NaN arrays)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    scale = float(np.abs(b[both]).max(initial=0.0))
    return float(np.abs(a[both] - b[both]).max(initial=0.0)) / scale if scale > 0.0 else 0.0


def _estimate(frame: _Frame, camera: Any) -> Any:
    return estimate_velocity(frame.tracks, camera, distance=frame.distance, gyro=frame.gyro,
                             timing=frame.timing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    frames = _frames(args.frames)
    new_line = field_gyro_fusion.field_through_line
    line_diff = max(_relative(a, b) for f in frames for a, b in zip(
        new_line(f.tracks.motion_field, f.at_instant),
        _reference_through_line(f.tracks.motion_field, f.at_instant), strict=True))
    line = _per_frame(frames, args.rounds, {
        "old": lambda f: _reference_through_line(f.tracks.motion_field, f.at_instant),
        "new": lambda f: new_line(f.tracks.motion_field, f.at_instant)})
    camera = SimCamera(FLIGHT).camera

    def old_estimate(frame: _Frame) -> Any:
        with field_through_line_replaced(_reference_through_line):
            return _estimate(frame, camera)

    whole = _per_frame(frames, args.rounds, {"old": old_estimate,
                                              "new": lambda f: _estimate(f, camera)})
    estimate_diff = max(
        _relative(getattr(old, name), getattr(new, name))
        for old, new in ((old_estimate(f), _estimate(f, camera)) for f in frames)
        for name in ("linear", "angular", "covariance"))
    print(f"numpy {np.__version__}, 1 thread; {len(frames)} frames of {args.frames} with a "
          f"field and a gyro line (200 Hz imu, {frames[-1].at_instant.line_count} samples), "
          f"{args.rounds} rounds, old and new alternating")
    print(f"field through the line per frame: old {line['old'] * 1e3:.3f} ms  "
          f"new {line['new'] * 1e3:.3f} ms  new/old {line['new'] / line['old']:.2f}  "
          f"saved {(line['old'] - line['new']) * 1e3:.3f} ms/frame; largest relative "
          f"difference {line_diff:.1e}")
    print(f"estimate_velocity per frame:     old {whole['old'] * 1e3:.3f} ms  "
          f"new {whole['new'] * 1e3:.3f} ms  new/old {whole['new'] / whole['old']:.2f}; "
          f"largest relative difference {estimate_diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
