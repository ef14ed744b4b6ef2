"""Benchmark: LKTracker.update against the per-frame loop of OpenCV's samples/python/lk_track.py.

Run from the repository root::

    .venv/bin/python bench/bench_tracker.py [--frames 120] [--rounds 3]

A real texture (skimage) moves by a known translation + small rotation per frame; every
frame is rendered from the base texture with its own homography before timing starts. For
each resolution and OpenCV thread count it prints ms/frame p50/p99 and the mean live tracks
of:

- ``seed``: a faithful copy of lk_track.py's per-frame calls (calcOpticalFlowPyrLK forward
  and backward on the raw images, the ``d < 1`` max-abs check, Python track lists trimmed to
  track_len, goodFeaturesToTrack with the seed's radius-5 circle mask every detect_interval
  frames), drawing left out;
- ``seed-capped``: the same loop, but detection only fills up to max_corners (the seed keeps
  appending, so it ends up with more tracks than the core and is slower for that reason);
- ``core``: LKTracker.update, same parameters, spread/ransac off, border_margin 0;
- ``core+extras``: LKTracker.update with spread="mask", ransac="fundamental", border 7 px.

"step error" is the mean distance (px) between each followed point and its true position
given its previous one (untimed run), so speed is not bought with accuracy.

The verdict compares ``core`` with ``seed-capped`` (same track budget) against the target
ratio core/seed <= 0.8; the ratio to the uncapped seed is printed too.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from ground_truth import apply_h, render, similarity, texture  # noqa: E402

from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig  # noqa: E402

TARGET_RATIO = 0.8
SIZES = ((480, 640), (720, 1280))
STEP_PX = (3.0, 1.5)          # translation per frame, px
STEP_RAD = np.deg2rad(0.15)   # rotation per frame about the image centre
FPS = 30.0


class SeedLoop:
    """lk_track.py's App.run per-frame work (without drawing), parameterised by the config."""

    def __init__(self, cfg: TrackerConfig, *, capped: bool) -> None:
        self.track_len = cfg.track_len
        self.detect_interval = cfg.detect_interval
        self.fb_threshold = cfg.fb_threshold
        self.max_corners = cfg.max_corners
        self.capped = capped
        self.lk_params = dict(
            winSize=(cfg.win_size, cfg.win_size), maxLevel=cfg.max_level,
            criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT,
                      cfg.criteria_max_iter, cfg.criteria_eps))
        self.feature_params = dict(
            maxCorners=cfg.max_corners, qualityLevel=cfg.quality_level,
            minDistance=cfg.min_distance, blockSize=cfg.block_size)
        self.tracks: list[list[tuple[float, float]]] = []
        self.frame_idx = 0
        self.prev_gray: np.ndarray | None = None

    def step(self, frame_gray: np.ndarray) -> int:
        """Process one frame; returns the live track count."""
        if len(self.tracks) > 0:
            img0, img1 = self.prev_gray, frame_gray
            p0 = np.float32([tr[-1] for tr in self.tracks]).reshape(-1, 1, 2)
            p1, _st, _err = cv2.calcOpticalFlowPyrLK(img0, img1, p0, None, **self.lk_params)
            p0r, _st, _err = cv2.calcOpticalFlowPyrLK(img1, img0, p1, None, **self.lk_params)
            d = abs(p0 - p0r).reshape(-1, 2).max(-1)
            good = d < self.fb_threshold
            new_tracks = []
            for tr, (x, y), good_flag in zip(self.tracks, p1.reshape(-1, 2), good,
                                             strict=True):
                if not good_flag:
                    continue
                tr.append((x, y))
                if len(tr) > self.track_len:
                    del tr[0]
                new_tracks.append(tr)
            self.tracks = new_tracks

        if self.frame_idx % self.detect_interval == 0:
            params = self.feature_params
            room = self.max_corners - len(self.tracks)
            if not self.capped or room > 0:
                if self.capped:
                    params = dict(params, maxCorners=room)
                mask = np.zeros_like(frame_gray)
                mask[:] = 255
                for x, y in [np.int32(tr[-1]) for tr in self.tracks]:
                    cv2.circle(mask, (int(x), int(y)), 5, 0, -1)
                p = cv2.goodFeaturesToTrack(frame_gray, mask=mask, **params)
                if p is not None:
                    for x, y in np.float32(p).reshape(-1, 2):
                        self.tracks.append([(x, y)])

        self.frame_idx += 1
        self.prev_gray = frame_gray
        return len(self.tracks)


class CoreLoop:
    """LKTracker.update driven with the frame stamps."""

    def __init__(self, cfg: TrackerConfig) -> None:
        self.tracker = LKTracker(cfg)
        self.k = 0
        self.last = None

    def step(self, frame_gray: np.ndarray) -> int:
        """Process one frame; returns the live track count."""
        self.last = self.tracker.update(frame_gray, self.k / FPS)
        self.k += 1
        return len(self.last)


def make_frames(shape: tuple[int, int], n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames of a gravel texture moving by STEP_PX and STEP_RAD per frame, and their H."""
    h, w = shape
    base = texture("gravel", (h + 200, w + 200))
    centre = (w / 2.0, h / 2.0)
    homs = [similarity(-100.0 + STEP_PX[0] * k, -100.0 + STEP_PX[1] * k, STEP_RAD * k, 1.0,
                       centre) for k in range(n)]
    return [render(base, hom, shape) for hom in homs], homs


def step_error(loop: SeedLoop | CoreLoop, frames: list[np.ndarray],
               homs: list[np.ndarray]) -> float:
    """Mean |position - truth| (px) per frame of tracks followed from the previous frame."""
    errs = []
    prev = None
    for k, frame in enumerate(frames):
        loop.step(frame)
        if isinstance(loop, SeedLoop):
            pairs = [(tr[-2], tr[-1]) for tr in loop.tracks if len(tr) > 1]
        else:
            tracks = loop.last
            pairs = []
            if prev is not None:
                _, i0, i1 = np.intersect1d(prev.ids, tracks.ids, return_indices=True)
                pairs = list(zip(prev.points[i0], tracks.points[i1], strict=True))
            prev = tracks
        if k and pairs:
            p0 = np.array([a for a, _ in pairs], np.float64)
            p1 = np.array([b for _, b in pairs], np.float64)
            truth = apply_h(homs[k] @ np.linalg.inv(homs[k - 1]), p0)
            errs.append(np.linalg.norm(p1 - truth, axis=1))
    return float(np.concatenate(errs).mean())


def time_loop(loop: SeedLoop | CoreLoop, frames: list[np.ndarray],
              warmup: int) -> tuple[list[float], list[int]]:
    """Per-frame wall times (ms) and live track counts after ``warmup`` frames."""
    times, counts = [], []
    for k, frame in enumerate(frames):
        t0 = time.perf_counter()
        n = loop.step(frame)
        dt = (time.perf_counter() - t0) * 1e3
        if k >= warmup:
            times.append(dt)
            counts.append(n)
    return times, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating repetitions per variant (noise control)")
    args = parser.parse_args()
    base_cfg = TrackerConfig(spread="none", ransac="none", border_margin=0.0)
    extras_cfg = replace(base_cfg, spread="mask", ransac="fundamental", border_margin=7.0)
    variants = {
        "seed": lambda: SeedLoop(base_cfg, capped=False),
        "seed-capped": lambda: SeedLoop(base_cfg, capped=True),
        "core": lambda: CoreLoop(base_cfg),
        "core+extras": lambda: CoreLoop(extras_cfg),
    }
    print(f"OpenCV {cv2.__version__}, numpy {np.__version__}; {args.frames} frames x "
          f"{args.rounds} rounds per variant; params: {base_cfg}")
    verdicts = []
    t_start = time.perf_counter()
    for shape in SIZES:
        frames, homs = make_frames(shape, args.frames)
        acc = {name: step_error(make(), frames, homs) for name, make in variants.items()}
        for threads in (1, 2):
            cv2.setNumThreads(threads)
            results: dict[str, tuple[list[float], list[int]]] = {v: ([], []) for v in variants}
            for _ in range(args.rounds):
                for name, make in variants.items():
                    times, counts = time_loop(make(), frames, warmup=10)
                    results[name][0].extend(times)
                    results[name][1].extend(counts)
            print(f"\n{shape[1]}x{shape[0]}, cv2.setNumThreads({threads})")
            p50, mean = {}, {}
            for name, (times, counts) in results.items():
                p50[name] = float(np.percentile(times, 50))
                mean[name] = float(np.mean(times))
                print(f"  {name:12s} p50 {p50[name]:6.2f} ms  p99 "
                      f"{np.percentile(times, 99):6.2f} ms  mean {mean[name]:6.2f} ms  "
                      f"mean tracks {np.mean(counts):5.0f}  step error {acc[name]:.3f} px")
            ratio = p50["core"] / p50["seed-capped"]
            ok = ratio <= TARGET_RATIO
            verdicts.append(ok)
            print(f"  core/seed-capped: p50 {ratio:.2f}, mean "
                  f"{mean['core'] / mean['seed-capped']:.2f} -> "
                  f"{'PASS' if ok else 'FAIL'} (target p50 ratio <= {TARGET_RATIO})")
            print(f"  core/seed (uncapped) p50 {p50['core'] / p50['seed']:.2f}; "
                  f"core+extras/seed-capped p50 {p50['core+extras'] / p50['seed-capped']:.2f}, "
                  f"mean {mean['core+extras'] / mean['seed-capped']:.2f}")
    print(f"\nall: {'PASS' if all(verdicts) else 'FAIL'}  "
          f"({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
