"""Benchmark dense flow: time per frame and accuracy of each method, Farneback as the baseline.

Run from the repository root::

    .venv/bin/python bench/bench_dense.py [--seconds 1.0]

For each named method (Farneback with the tutorial's parameters; DIS ultrafast, fast,
balanced = default, medium) at 320x240, 640x480 and 1280x720, with OpenCV limited to 1 and to 2
threads: the median ms per ``DenseFlow.compute`` call (after warm-up), frames/s, the speed-up
over Farneback, and the end-point error (EPE, px) on a pair with known motion (the "camera"
photo under a small rotation, scaling and a translation proportional to the width; EPE inside
a border of the largest displacement + 4 px). Then the EPE on skimage's Middlebury
``stereo_motorcycle`` pair (GT u = -disparity, v = 0, unknown pixels skipped), the cost of the
options at 640x480, and PASS/FAIL for the acceptance targets: default >= 100 frames/s at 640x480
(2 threads) and EPE <= 2.9 px (1.1x DIS medium's) on the motorcycle pair; DIS medium EPE <= 2.7 px.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))  # ground_truth: images with exactly known motion

import cv2  # noqa: E402
import ground_truth as gt  # noqa: E402
import numpy as np  # noqa: E402

from optical_flow_ros.core.dense_flow import DenseFlow, DenseFlowConfig  # noqa: E402

METHODS = {
    "farneback": DenseFlowConfig(method="farneback"),
    "dis_ultrafast": DenseFlowConfig(method="dis_ultrafast"),
    "dis_fast": DenseFlowConfig(method="dis_fast"),
    "dis_balanced (default)": DenseFlowConfig(),
    "dis_medium": DenseFlowConfig(method="dis_medium"),
}
BASELINE = "farneback"
DEFAULT = "dis_balanced (default)"
QUALITY = "dis_medium"
RESOLUTIONS = ((240, 320), (480, 640), (720, 1280))
THREADS = (1, 2)
TARGET_FPS, TARGET_EPE, TARGET_QUALITY_EPE = 100.0, 2.9, 2.7


def known_motion_pair(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Two frames of the 'camera' photo, the true flow (px) and the border to skip (px)."""
    rows, cols = shape
    margin = cols // 8
    k = cols / 640.0
    base = gt.texture("camera", (rows + 2 * margin, cols + 2 * margin))
    to_frame = gt.translation(-margin, -margin)
    motion = gt.similarity(6.3 * k, -3.1 * k, math.radians(1.0), 1.01, (cols / 2, rows / 2))
    prev = gt.render(base, to_frame, shape)
    nxt = gt.render(base, motion @ to_frame, shape)
    ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float64)
    points = np.stack([xs, ys], axis=-1).reshape(-1, 2)
    truth = (gt.apply_h(motion, points) - points).reshape(rows, cols, 2).astype(np.float32)
    return prev, nxt, truth, int(math.ceil(np.abs(truth).max())) + 4


def inner_epe(flow: np.ndarray, truth: np.ndarray, border: int) -> float:
    return gt.endpoint_error(flow[border:-border, border:-border],
                             truth[border:-border, border:-border])


def median_ms(configs: dict[str, DenseFlowConfig], prev: np.ndarray, nxt: np.ndarray,
              seconds: float) -> dict[str, tuple[float, np.ndarray]]:
    """Median wall time (ms) of one ``compute`` call per config, and its last flow.

    The configs take turns, a few calls each, so that load from other processes on this
    shared machine affects all of them alike; 2 warm-up calls each first.
    """
    flows = {name: DenseFlow(config) for name, config in configs.items()}
    last = {name: flow.compute(prev, nxt) for name, flow in flows.items()}
    for name, flow in flows.items():
        last[name] = flow.compute(prev, nxt)
    times: dict[str, list[float]] = {name: [] for name in configs}
    deadline = time.perf_counter() + seconds * len(configs)
    while min(len(t) for t in times.values()) < 5 or (
            time.perf_counter() < deadline and min(len(t) for t in times.values()) < 200):
        for name, flow in flows.items():
            for _ in range(3):
                t0 = time.perf_counter()
                last[name] = flow.compute(prev, nxt)
                times[name].append(time.perf_counter() - t0)
    return {name: (1e3 * float(np.median(times[name])), last[name]) for name in configs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="timing budget per (method, resolution, threads) cell, s")
    args = parser.parse_args()
    print(f"OpenCV {cv2.__version__}, numpy {np.__version__}, Python {platform.python_version()},"
          f" {platform.machine()}, cv2.getNumberOfCPUs() = {cv2.getNumberOfCPUs()}")
    print(f"load average {os.getloadavg()[0]:.2f} (shared machine: timings are noisy)")
    print("ms/frame: median of DenseFlow.compute calls after warm-up; EPE in px\n")

    header = (f"{'method':22s} {'size':>9s} {'thr':>3s} {'ms':>8s} {'fps':>7s} "
              f"{'x faster':>8s} {'EPE px':>7s} {'EPE/fb':>7s}")
    print(header)
    print("-" * len(header))
    results: dict[tuple[str, tuple[int, int], int], tuple[float, float]] = {}
    for shape in RESOLUTIONS:
        prev, nxt, truth, border = known_motion_pair(shape)
        for threads in THREADS:
            cv2.setNumThreads(threads)
            timed = median_ms(METHODS, prev, nxt, args.seconds)
            for name in METHODS:
                ms, flow = timed[name]
                epe = inner_epe(flow, truth, border)
                results[name, shape, threads] = (ms, epe)
                base_ms, base_epe = results[BASELINE, shape, threads]
                print(f"{name:22s} {shape[1]:4d}x{shape[0]:<4d} {threads:3d} {ms:8.2f} "
                      f"{1e3 / ms:7.1f} {base_ms / ms:8.1f} {epe:7.3f} {epe / base_epe:7.3f}")
        print()

    print("Middlebury stereo_motorcycle (741x500), EPE px over pixels with known disparity")
    left, right, moto_truth = gt.stereo_motorcycle()
    moto: dict[str, float] = {}
    for name, config in METHODS.items():
        moto[name] = gt.endpoint_error(DenseFlow(config).compute(left, right), moto_truth)
        print(f"  {name:22s} EPE {moto[name]:6.2f}  ({moto[name] / moto[BASELINE]:.3f} x "
              f"Farneback)")

    print("\nSmooth random displacement field (gravel, max 6 px, 640x480), EPE px, 16 px border")
    base = gt.texture("gravel", (480, 640))
    field = gt.smooth_random_field((480, 640), 6.0, seed=1)
    warped = gt.remap_by_field(base, field)  # flow from warped to base is exactly field
    for name, config in METHODS.items():
        epe = inner_epe(DenseFlow(config).compute(warped, base), field, 16)
        print(f"  {name:22s} EPE {epe:6.3f}")

    cv2.setNumThreads(2)
    print("\nOptions on the default at 640x480, 2 threads (EPE on valid pixels)")
    prev, nxt, truth, border = known_motion_pair((480, 640))
    options = {
        "default": DenseFlowConfig(),
        "downscale=0.5": DenseFlowConfig(downscale=0.5),
        "temporal_init": DenseFlowConfig(temporal_init=True),
        "validity=texture": DenseFlowConfig(validity="texture"),
        "validity=fb": DenseFlowConfig(validity="fb"),
        "validity=both": DenseFlowConfig(validity="both"),
    }
    for name, (ms, flow) in median_ms(options, prev, nxt, args.seconds).items():
        valid = float(np.isfinite(flow).all(axis=2).mean())
        epe = inner_epe(flow, truth, border)
        print(f"  {name:18s} {ms:7.2f} ms {1e3 / ms:7.1f} fps  EPE {epe:.3f}  valid "
              f"{100 * valid:5.1f} %")

    fps = {t: 1e3 / results[DEFAULT, (480, 640), t][0] for t in THREADS}
    checks = [
        (f"default >= {TARGET_FPS:.0f} fps at 640x480 (2 threads)",
         fps[2] >= TARGET_FPS, f"{fps[2]:.0f} fps (1 thread: {fps[1]:.0f} fps)"),
        (f"default EPE <= {TARGET_EPE} px on motorcycle", moto[DEFAULT] <= TARGET_EPE,
         f"{moto[DEFAULT]:.2f} px"),
        (f"DIS medium EPE <= {TARGET_QUALITY_EPE} px on motorcycle",
         moto[QUALITY] <= TARGET_QUALITY_EPE, f"{moto[QUALITY]:.2f} px"),
        ("default faster and more accurate than Farneback at 640x480",
         results[DEFAULT, (480, 640), 2][0] < results[BASELINE, (480, 640), 2][0]
         and moto[DEFAULT] < moto[BASELINE], ""),
    ]
    print()
    for text, ok, value in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}: {value}".rstrip(": "))
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
