"""Benchmark: the tracker and velocity stage with and without ``heap_retain_mb`` (mallopt).

Run from the repository root::

    .venv/bin/python bench/bench_heap_tuning.py [--frames 300] [--rounds 3]

Each round starts two fresh processes in turn, one with the C library's malloc defaults
(``heap_retain_mb: 0``) and one with the nodes' default ``heap_retain_mb: 64``
(:mod:`optical_flow_ros.ros.heap_tuning`). Each renders bench_velocity.py's simulated
flight (640x480 mono8, 30 fps, 2 m over gravel at ~1 m/s with yaw and +/-5 deg roll/pitch)
up front, then runs ``LKTracker.update`` and ``estimate_velocity`` on every frame in its main
thread with one OpenCV thread, as a node's callback does. Prints per configuration the medians
over rounds of the per-frame means (ms), the minor page faults per frame, and the
tuned/default ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WORKER = """
import json, resource, sys, time
sys.path.insert(0, "bench")
from bench_velocity import FLIGHT
from optical_flow_ros.core.fit_window import FitWindow
from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig
from optical_flow_ros.core.sim_camera import SimCamera
from optical_flow_ros.core.velocity_estimator import estimate_velocity
from optical_flow_ros.ros.compute_config import ComputeConfig

frames_n, retain = int(sys.argv[1]), int(sys.argv[2])
ComputeConfig(opencv_threads=1, heap_retain_mb=retain).apply()
sim = SimCamera(FLIGHT)
frames = [(f.image, sim.frame_time(i), sim.gyro(i)) for i, f in enumerate(sim.frames(frames_n))]
tracker, window = LKTracker(TrackerConfig()), FitWindow(5, 0.5)
track_s = velocity_s = 0.0
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for image, stamp, gyro in frames:
    t0 = time.perf_counter()
    tracks = tracker.update(image, stamp)
    t1 = time.perf_counter()
    estimate_velocity(tracks, sim.camera, distance=2.0, gyro=gyro, timing=window.update(stamp))
    t2 = time.perf_counter()
    track_s, velocity_s = track_s + t1 - t0, velocity_s + t2 - t1
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"tracker_ms": 1e3 * track_s / frames_n,
                  "velocity_ms": 1e3 * velocity_s / frames_n,
                  "faults_per_frame": faults / frames_n}))
"""

CONFIGS = (("malloc defaults (heap_retain_mb 0)", 0), ("heap_retain_mb 64 (default)", 64))


def _run(frames: int, retain: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _WORKER, str(frames), str(retain)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[int, list[dict[str, float]]] = {retain: [] for _, retain in CONFIGS}
    for _ in range(args.rounds):
        for _, retain in CONFIGS:           # interleaved: drift hits both alike
            results[retain].append(_run(args.frames, retain))
    keys = ("tracker_ms", "velocity_ms", "faults_per_frame")
    medians = {retain: {k: statistics.median(r[k] for r in runs) for k in keys}
               for retain, runs in results.items()}
    print(f"{args.frames} frames 640x480, {args.rounds} rounds, medians of per-frame means")
    print(f"{'configuration':<38}{'tracker ms':>12}{'velocity ms':>13}{'faults/frame':>14}")
    for name, retain in CONFIGS:
        m = medians[retain]
        print(f"{name:<38}{m['tracker_ms']:>12.2f}{m['velocity_ms']:>13.2f}"
              f"{m['faults_per_frame']:>14.0f}")
    base, tuned = medians[0], medians[64]
    print(f"ratio tuned/default: tracker {tuned['tracker_ms'] / base['tracker_ms']:.2f}, "
          f"velocity {tuned['velocity_ms'] / base['velocity_ms']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
