"""Benchmark: estimate_velocity per frame next to the LKTracker.update it follows.

Run from the repository root::

    .venv/bin/python bench/bench_velocity.py [--frames 150] [--tracks 500]

A simulated flight (640x480, f = 500 px, 30 fps, 2 m over gravel, 1 m/s with yaw and a
+/-5 deg roll/pitch coning motion) is rendered up front; the tracker (``max_corners`` =
``--tracks``) and the estimator then run on it in one thread (``cv2.setNumThreads(1)``, as
the node's callback does on a busy 2-core machine). Prints ms/frame p50/p99 of the tracker,
of the estimator with gyro derotation and without (yaw fitted), the live/usable/inlier track
counts, the horizontal RMSE against the truth, and the estimator/tracker time ratio (target
<= 0.5: the velocity stage must not double the node's per-frame work).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from optical_flow_ros.core.fit_window import FitWindow  # noqa: E402
from optical_flow_ros.core.gyro_rates import gyro_rates  # noqa: E402
from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig  # noqa: E402
from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig  # noqa: E402
from optical_flow_ros.core.velocity_estimator import estimate_velocity  # noqa: E402

TARGET_RATIO = 0.5
FLIGHT = SimCameraConfig(altitude=2.0, velocity_x=1.0, velocity_y=0.3, yaw_rate=0.3,
                         roll_amplitude=math.radians(5.0), pitch_amplitude=math.radians(5.0))


def _ms(values: list[float]) -> str:
    p50, p99 = np.percentile(values, [50, 99]) * 1e3
    return f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--tracks", type=int, default=500, help="tracker max_corners")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    sim = SimCamera(FLIGHT)
    frames = list(sim.frames(args.frames))
    config = TrackerConfig(max_corners=args.tracks)
    tracker = LKTracker(config)
    window = FitWindow(config.velocity_window, config.max_dt)
    times_t, times_g, times_y, counts, errors, speeds = [], [], [], [], [], []
    for frame in frames:
        start = time.perf_counter()
        tracks = tracker.update(frame.image, frame.t)
        times_t.append(time.perf_counter() - start)
        timing = window.update(frame.t)
        k = frame.index
        history = frames[max(0, k - 10):k + 1]
        gyro = gyro_rates(np.array([f.t for f in history]), np.array([f.gyro for f in history]),
                          timing, max_age=0.1)
        start = time.perf_counter()
        with_gyro = estimate_velocity(tracks, sim.camera, distance=frame.state.range,
                                      gyro=gyro, timing=timing)
        times_g.append(time.perf_counter() - start)
        start = time.perf_counter()
        estimate_velocity(tracks, sim.camera, distance=frame.state.range, timing=timing)
        times_y.append(time.perf_counter() - start)
        if with_gyro.valid:
            counts.append((len(tracks), with_gyro.n_tracks, with_gyro.n_inliers))
            errors.append(with_gyro.linear[:2] - frame.state.velocity[:2])
            speeds.append(float(np.hypot(*frame.state.velocity[:2])))
    skip = 10
    print(f"OpenCV {cv2.__version__}, numpy {np.__version__}, 1 thread; {args.frames} frames "
          f"640x480, max_corners {args.tracks}")
    print(f"tracker            {_ms(times_t[skip:])}")
    print(f"estimator (gyro)   {_ms(times_g[skip:])}")
    print(f"estimator (no gyro){_ms(times_y[skip:])}")
    live, usable, inliers = np.mean(counts, axis=0)
    rmse = math.sqrt(np.mean(np.sum(np.square(errors), axis=1))) / np.mean(speeds)
    print(f"tracks live {live:.0f}, usable {usable:.0f}, inliers {inliers:.0f}; valid "
          f"{len(counts)}/{args.frames}; horizontal RMSE {100 * rmse:.2f} % of mean speed")
    ratio = float(np.median(times_g[skip:]) / np.median(times_t[skip:]))
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"estimator / tracker (p50): {ratio:.2f} (target <= {TARGET_RATIO}): {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
