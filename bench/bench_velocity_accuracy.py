"""Benchmark: accuracy and calibration of the velocities on simulated flights with exact truth.

Run from the repository root::

    .venv/bin/python bench/bench_velocity_accuracy.py [--set held_out] [--quick] [--budget]
        [--json out]

Each flight of :mod:`velocity_flights` is rendered with the issue's sensor noise (image 2 grey
levels, gyro 0.005 rad/s with that covariance stated, range 1 % with its variance stated in the
Range message) and also without any noise, tracked by the real ``LKTracker`` with its
defaults, and estimated frame by frame as tracker_node does it (gyro samples up to the
previous frame, the newest withheld; the acceleration from the recent estimates), with and
without the gyro. Per flight and case it reports:

* per-track velocity at the image stamp: median relative error against the exact image
  velocity of each track at the stamp (``|v - v_true| / |v_true|``, all tracks with a
  velocity), and the median absolute error in px/s (what matters in slow flights, where the
  tracking noise dominates the relative figure);
* ``flow/velocity``: horizontal RMSE over the mean horizontal speed; per-axis shares of the
  errors inside the published 1 sigma and 3 sigma (vx, vy, vz, wz); the median NEES of
  (vx, vy) (chi-square with 2 dof: 1.39);
* the same flight's RMSE with a robot's IMU (IMU_RATE Hz, samples stamped before the image)
  instead of one gyro sample per frame, on the same frames and tracks; and the RMSE of the
  ``slope`` per-track estimator on the same frames and noise draws (one more tracking);
* with ``--budget``: the RMSE with each noise source alone (image, gyro, range; none: what
  the fit, the lag and the acceleration leave), both estimators, per frame and IMU_RATE.

The flights that chose a setting (``TRAIN``) are kept apart from those that only report
(``HELD_OUT``, ``FRESH`` and ``LENS``); ``--set`` picks some (default: those three).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import velocity_flights  # noqa: E402
from velocity_flights import Flight, FlightRecord, FrameRecord, GyroStream  # noqa: E402

from optical_flow_ros.core.ego_velocity import EgoVelocityEstimator  # noqa: E402
from optical_flow_ros.core.gyro_rates import gyro_rates  # noqa: E402
from optical_flow_ros.core.lk_tracker import TrackerConfig  # noqa: E402
from optical_flow_ros.core.velocity_estimator import VelocityConfig, VelocityEstimate  # noqa: E402

SKIP_S = 0.5          # seconds before tracks and the acceleration are known
SENSOR_MAX_AGE = 0.2  # tracker_node's default, s
#: The issue's bounds.
BOUNDS = dict(track_rel=0.01, rmse=0.02, inside_1=(0.55, 0.80), inside_3=0.97, nees=(1.0, 2.0))
AXES = ("vx", "vy", "vz", "wz")
#: A robot's IMU rate for the variants beside the flights' one sample per frame, Hz.
IMU_RATE = 200.0
_AXIS_INDEX = (0, 1, 2, 5)


def track_errors(rec: FlightRecord) -> tuple[float, float, float]:
    """Median relative error, median error px/s and median true speed px/s of the tracks."""
    rel, err, speed = [], [], []
    for f in rec.frames[1:]:
        v = f.tracks.velocities.astype(np.float64)
        ok = np.all(np.isfinite(v), axis=1)
        if not ok.any():
            continue
        e = np.linalg.norm(v[ok] - f.truth_px_s[ok], axis=1)
        s = np.linalg.norm(f.truth_px_s[ok], axis=1)
        rel.append(e / np.maximum(s, 1e-9))
        err.append(e)
        speed.append(s)
    return (float(np.median(np.concatenate(rel))), float(np.median(np.concatenate(err))),
            float(np.median(np.concatenate(speed))))


def ego_estimates(rec: FlightRecord, *, use_gyro: bool, gyro: GyroStream | None = None,
                  ranges: list[tuple[float, float]] | None = None,
                  distance_filter: bool | None = None
                  ) -> Iterator[tuple[FrameRecord, VelocityEstimate | None]]:
    """Each frame of a recorded flight with its flow/velocity, estimated as tracker_node does.

    Frames before ``SKIP_S`` are estimated (the stream's state needs them) but not given
    out; a frame whose estimate is not valid comes with None. ``gyro``, ``ranges`` and
    ``distance_filter``: see :func:`ego_figures`.
    """
    config_v = VelocityConfig() if distance_filter is None else VelocityConfig(
        distance_filter=distance_filter)
    config = rec.flight.tracker
    stream = rec.gyro if gyro is None else gyro
    ego = EgoVelocityEstimator(min(config.velocity_window, config.track_len), config.max_dt,
                               at_stamp=config.velocity_estimator == "motion_field")
    for k, f in enumerate(rec.frames):
        timing = ego.timing(f.t)
        gyro_in = None
        gyro_t, gyro_w = stream.received(f.t)
        if use_gyro and gyro_t.size:
            gyro_in = gyro_rates(gyro_t, gyro_w, timing, max_age=SENSOR_MAX_AGE,
                                 covariance=stream.covariance, gyro_std=0.002)
        distance, variance = (f.range, f.range_variance) if ranges is None else ranges[k]
        ego.add_range(f.t, distance, variance or None)
        e = ego.estimate(f.tracks, rec.sim.camera, timing, gyro=gyro_in, config=config_v)
        if f.t >= SKIP_S:
            yield f, e if e.valid else None


def ego_figures(rec: FlightRecord, *, use_gyro: bool, gyro: GyroStream | None = None,
                ranges: list[tuple[float, float]] | None = None,
                distance_filter: bool | None = None) -> dict[str, Any]:
    """flow/velocity's figures of one recorded flight (see the module docstring).

    ``gyro``: another IMU for the same flight (:func:`velocity_flights.gyro_stream`; default
    the recorded one); ``ranges``: other range readings and variances per frame
    (:func:`velocity_flights.range_readings`; default the recorded ones), one per frame at
    its stamp; ``distance_filter``: the VelocityConfig setting (None: its default; off: each
    frame's reading as it is).
    """
    errors, speeds, z, nees, invalid = [], [], [], [], 0
    for f, e in ego_estimates(rec, use_gyro=use_gyro, gyro=gyro, ranges=ranges,
                              distance_filter=distance_filter):
        if e is None:
            invalid += 1
            continue
        truth = np.concatenate((f.state.velocity, f.state.angular_velocity))
        err = np.concatenate((e.linear, e.angular)) - truth
        errors.append(err[:2])
        speeds.append(math.hypot(*truth[:2]))
        z.append(err[list(_AXIS_INDEX)] / np.sqrt(np.diag(e.covariance)[list(_AXIS_INDEX)]))
        nees.append(float(err[:2] @ np.linalg.solve(e.covariance[:2, :2], err[:2])))
    z_arr = np.abs(np.array(z))
    return dict(
        frames=len(z), invalid=invalid,
        rmse=float(np.sqrt(np.mean(np.sum(np.square(errors), axis=1))) / np.mean(speeds)),
        inside_1={a: float(np.mean(z_arr[:, i] <= 1.0)) for i, a in enumerate(AXES)},
        inside_3={a: float(np.mean(z_arr[:, i] <= 3.0)) for i, a in enumerate(AXES)},
        nees=float(np.median(nees)))


def _rmse_by_source(flight: Flight, noisy: dict[str, FlightRecord],
                    quiet: dict[str, FlightRecord]) -> dict[str, dict[str, float]]:
    """Per estimator: RMSE (vx, vy) / speed with gyro, each noise source alone.

    ``all``: every source (the flight's); ``image``: image noise only; ``gyro``, ``range``:
    that sensor's noise only, noise-free images; ``none``: no noise (what is left: the fit's
    model error, lag and acceleration); ``gyro_IMU`` and ``all_IMU``: the same with the IMU
    at IMU_RATE. Same frames, tracks and noise draws throughout.
    """
    sim = flight.sim
    clean = dataclasses.replace(sim, gyro_noise_std=0.0, range_noise_std=0.0)
    gyro_only = dataclasses.replace(clean, gyro_noise_std=sim.gyro_noise_std)
    range_only = dataclasses.replace(clean, range_noise_std=sim.range_noise_std)
    fast = dict(imu_rate=IMU_RATE)
    out = {}
    for name, rec in noisy.items():
        q = quiet[name]
        cases = {
            "all": (rec, sim, sim),
            "image": (rec, clean, clean),
            "gyro": (q, gyro_only, clean),
            "range": (q, clean, range_only),
            "none": (q, clean, clean),
            "gyro_IMU": (q, dataclasses.replace(gyro_only, **fast), clean),
            "all_IMU": (rec, dataclasses.replace(sim, **fast), sim),
        }
        out[name] = {
            case: ego_figures(r, use_gyro=True, gyro=velocity_flights.gyro_stream(r, g),
                              ranges=velocity_flights.range_readings(r, d))["rmse"]
            for case, (r, g, d) in cases.items()}
    return out


def measure(flight: Flight, seed: int = 0, *, slope: bool = True,
            budget: bool = False, rec: FlightRecord | None = None) -> dict[str, Any]:
    """All figures of one flight (tracks, ego-velocity with and without gyro).

    ``gyro`` and ``no_gyro``: the flight's IMU (one sample per frame in the flights' noise);
    ``imu``: with the IMU at IMU_RATE instead (same frames and tracks); ``filtered``: with
    gyro and the range readings filtered (``distance_filter``); ``slope_rmse`` (with
    ``slope``): the RMSE with gyro of the slope per-track estimator on the same frames and
    noise draws, per frame and at IMU_RATE; ``budget`` (with ``budget``): the RMSE with each
    noise source alone, both estimators (:func:`_rmse_by_source`). ``rec``: the flight
    already recorded with ``seed`` (else recorded here).
    """
    if rec is None:
        rec = velocity_flights.record(flight, seed=seed)
    rel, err, speed = track_errors(rec)
    fast = dataclasses.replace(flight.sim, imu_rate=IMU_RATE)
    out = dict(name=flight.name, track_rel=rel, track_err_px_s=err, track_speed_px_s=speed,
               gyro=ego_figures(rec, use_gyro=True), no_gyro=ego_figures(rec, use_gyro=False),
               imu=ego_figures(rec, use_gyro=True, gyro=velocity_flights.gyro_stream(rec, fast)),
               filtered=ego_figures(rec, use_gyro=True, distance_filter=True))
    records = {"motion_field": rec}
    if slope or budget:
        records["slope"] = velocity_flights.record(
            flight, seed=seed, tracker_config=dataclasses.replace(
                flight.tracker, velocity_estimator="slope"))
        s = records["slope"]
        out["slope_rmse"] = dict(
            gyro=ego_figures(s, use_gyro=True)["rmse"],
            imu=ego_figures(s, use_gyro=True, gyro=velocity_flights.gyro_stream(s, fast))["rmse"])
    if budget:
        quiet_images = dataclasses.replace(flight, sim=dataclasses.replace(
            flight.sim, image_noise_std=0.0))
        quiet = {name: velocity_flights.record(quiet_images, seed=seed,
                                               tracker_config=r.flight.tracker)
                 for name, r in records.items()}
        out["budget"] = _rmse_by_source(flight, records, quiet)
    return out


def estimator_cost(frames: int = 60, tracks: int = 500) -> dict[str, float]:
    """Milliseconds per frame of ``LKTracker.update`` with each per-track velocity estimator.

    One flight (640x480, 30 fps, 2 m, 1 m/s, yaw and +/-5 deg tilt, noisy), rendered up
    front; the two trackers take turns on the same frames (one OpenCV thread). Returns the
    median ms of each and the difference (the estimator's own cost, motion_field - slope).
    """
    import time

    import cv2

    from optical_flow_ros.core.lk_tracker import LKTracker
    from optical_flow_ros.core.sim_camera import SimCamera

    cv2.setNumThreads(1)
    flight = velocity_flights.FRESH[0]
    sim = SimCamera(dataclasses.replace(flight.sim, rate=30.0))
    images = [sim.image(k) for k in range(frames)]
    trackers = {name: LKTracker(TrackerConfig(max_corners=tracks, velocity_estimator=name))
                for name in ("slope", "motion_field")}
    times: dict[str, list[float]] = {name: [] for name in trackers}
    for k, image in enumerate(images):
        for name, tracker in trackers.items():
            start = time.perf_counter()
            tracker.update(image, k / 30.0)
            times[name].append(time.perf_counter() - start)
    out = {name: float(np.median(values[5:])) * 1e3 for name, values in times.items()}
    out["difference"] = float(np.median(np.subtract(times["motion_field"][5:],
                                                    times["slope"][5:]))) * 1e3
    return out


def checks(results: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """The issue's bounds over the noisy flights with gyro (held-out and fresh)."""
    noisy = [r for r in results if not r["name"].endswith("/quiet")]
    fast = [r for r in noisy if r["track_speed_px_s"] >= 50.0]
    out = []

    def add(text: str, values: list[float], ok: bool, unit: str = "") -> None:
        out.append((text, ok, ", ".join(f"{v:.2f}{unit}" for v in values)))

    values = [100 * r["track_rel"] for r in fast]
    add("per-track median relative error at the stamp <= 1 % (noisy flights >= 50 px/s)",
        values, all(v <= 100 * BOUNDS["track_rel"] for v in values), " %")
    values = [100 * r["gyro"]["rmse"] for r in noisy]
    add("flow/velocity horizontal RMSE <= 2 % of speed (noisy, gyro one sample per frame)",
        values, all(v <= 100 * BOUNDS["rmse"] for v in values), " %")
    values = [100 * r["imu"]["rmse"] for r in noisy]
    add(f"flow/velocity horizontal RMSE <= 2 % of speed (noisy, gyro at {IMU_RATE:.0f} Hz)",
        values, all(v <= 100 * BOUNDS["rmse"] for v in values), " %")
    lo, hi = BOUNDS["inside_1"]
    values = [r[c]["inside_1"][a] for r in noisy for c in ("gyro", "no_gyro") for a in AXES[:2]]
    add("vx, vy inside 1 sigma 55-80 % (noisy, with and without gyro)", values,
        all(lo <= v <= hi for v in values))
    values = [r[c]["inside_3"][a] for r in noisy for c in ("gyro", "no_gyro") for a in AXES[:2]]
    add("vx, vy inside 3 sigma >= 97 % (noisy, with and without gyro)", values,
        all(v >= BOUNDS["inside_3"] for v in values))
    lo, hi = BOUNDS["nees"]
    values = [r[c]["nees"] for r in noisy for c in ("gyro", "no_gyro")]
    add("median NEES of (vx, vy) 1.0-2.0 (noisy, with and without gyro)", values,
        all(lo <= v <= hi for v in values))
    return out


def _slope_cells(r: dict[str, Any], case: str) -> str:
    """'RMSE % at the frame rate / at IMU_RATE' of the slope estimator (gyro rows only)."""
    slope = r.get("slope_rmse")
    if case != "gyro" or not slope:
        return "-"
    return f"{100 * slope['gyro']:.2f} / {100 * slope['imu']:.2f}"


def markdown(results: list[dict[str, Any]]) -> str:
    """One table row per flight and case."""
    lines = ["| flight | gyro | track err % | track err px/s (speed) | RMSE % | "
             f"RMSE % gyro {IMU_RATE:.0f} Hz | slope RMSE % (frame / {IMU_RATE:.0f} Hz) | "
             "inside 1 sigma vx vy vz wz | inside 3 sigma vx vy vz wz | NEES vx,vy | "
             "range filtered: RMSE % / min 3 sigma vx,vy / NEES |",
             "|" + "---|" * 11]
    for r in results:
        for case in ("gyro", "no_gyro"):
            g = r[case]
            fast = f"{100 * r['imu']['rmse']:.2f}" if case == "gyro" else "-"
            lines.append(
                f"| {r['name']} | {'yes' if case == 'gyro' else 'no'} | "
                f"{100 * r['track_rel']:.2f} | {r['track_err_px_s']:.2f} "
                f"({r['track_speed_px_s']:.0f}) | {100 * g['rmse']:.2f} | {fast} | "
                f"{_slope_cells(r, case)} | "
                + " ".join(f"{g['inside_1'][a]:.2f}" for a in AXES) + " | "
                + " ".join(f"{g['inside_3'][a]:.2f}" for a in AXES) + f" | {g['nees']:.2f} | "
                + (_filtered_cell(r) if case == "gyro" else "-") + " |")
    return "\n".join(lines)


def _filtered_cell(r: dict[str, Any]) -> str:
    f = r.get("filtered")
    if f is None:
        return "-"
    return (f"{100 * f['rmse']:.2f} / {min(f['inside_3']['vx'], f['inside_3']['vy']):.2f} / "
            f"{f['nees']:.2f}")


def budget_markdown(results: list[dict[str, Any]]) -> str:
    """The RMSE (% of speed, with gyro) per noise source, per flight and estimator."""
    cases = ("all", "image", "gyro", "range", "none", "gyro_IMU", "all_IMU")
    lines = ["| flight | estimator | " + " | ".join(cases) + " |", "|" + "---|" * (2 + len(cases))]
    for r in results:
        for estimator, row in r.get("budget", {}).items():
            lines.append(f"| {r['name']} | {estimator} | "
                         + " | ".join(f"{100 * row[c]:.2f}" for c in cases) + " |")
    return "\n".join(lines)


def format_row(r: dict[str, Any], case: str) -> str:
    g = r[case]
    i1 = " ".join(f"{g['inside_1'][a]:.2f}" for a in AXES)
    i3 = " ".join(f"{g['inside_3'][a]:.2f}" for a in AXES)
    extra = ""
    if case == "gyro":
        extra = f" imu{IMU_RATE:.0f} {100 * r['imu']['rmse']:5.2f}% filtered {_filtered_cell(r)}"
        if r.get("slope_rmse"):
            extra += f" slope {_slope_cells(r, case)}%"
    return (f"{r['name']:<44} {case:<8} trk {100 * r['track_rel']:5.2f}% "
            f"{r['track_err_px_s']:6.2f}px/s (of {r['track_speed_px_s']:6.1f}) "
            f"rmse {100 * g['rmse']:5.2f}%{extra} 1s[{i1}] 3s[{i3}] nees {g['nees']:5.2f} "
            f"n {g['frames']} bad {g['invalid']}")


def flights(which: str, quick: bool) -> list[Flight]:
    sets = dict(train=velocity_flights.TRAIN, held_out=velocity_flights.HELD_OUT,
                fresh=velocity_flights.FRESH, lens=velocity_flights.LENS,
                turns=velocity_flights.TURNS)
    chosen = [f for name in which.split(",") for f in sets[name]]
    if quick:
        chosen = [dataclasses.replace(f, seconds=min(f.seconds, 3.0)) for f in chosen]
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="held_out,fresh,lens,turns")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--quiet-too", action="store_true", help="also without any noise")
    parser.add_argument("--only", default="", help="substring of the flight names")
    parser.add_argument("--budget", action="store_true",
                        help="also the RMSE per noise source, both estimators (4 trackings "
                        "per flight)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for flight in flights(args.set, args.quick):
        if args.only not in flight.name:
            continue
        variants = [flight, flight.quiet()] if args.quiet_too else [flight]
        for f in variants:
            r = measure(f, slope=f is flight, budget=args.budget and f is flight)
            results.append(r)
            for case in ("gyro", "no_gyro"):
                print(format_row(r, case), flush=True)
    if args.budget:
        print(budget_markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
