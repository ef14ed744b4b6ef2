"""Benchmark: flow/velocity's covariance over several draws of the same noise, and its sources.

Run from the repository root::

    .venv/bin/python bench/velocity_calibration.py [--set held_out,fresh,lens,turns]
        [--draws 3] [--only NAME] [--json out]

One flight's median NEES is a noisy figure: over a 3-6 s flight its frames' errors are far
from independent (a track's lasting error lives as long as the track, the acceleration's
error for a second), so the same flight with another draw of the same noise gives another
median. Measured on the 36 flights of bench/velocity_flights.py with three draws each: the
standard deviation of ln(median NEES) between draws of one flight was 0.20 (rms), against
0.26-0.30 between the flights of one draw: about half of that variance is the draw's. A
single draw's ``in 1-2`` count says less about the covariance than it seems.

Here every flight (the noisy ones of :mod:`velocity_flights`, with gyro, one sample per frame,
as bench_velocity_accuracy's ``gyro`` column) is flown ``--draws`` times: draw 0 is the flight
as the other benchmarks fly it, draw ``k`` the same flight with the simulator's seed moved by
``1000 k`` (new image, gyro and range noise; the same motion). Per flight:

* the median NEES of (vx, vy) of each draw and of all frames of all draws (chi-square 2:
  1.39);
* the mean squared z of the horizontal error along the true velocity and across it, over all
  draws: the two have different sources (along: mostly the range's relative error, which the
  simulator draws exactly with the variance it states; across: the motion field, the
  derotating rates, the lag), so they say which part of the covariance is off;
* what the published variance across the velocity is made of: the mean share of each of
  ``VelocityEstimate.covariance_terms`` (``velocity_estimator.COVARIANCE_TERMS``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import velocity_flights  # noqa: E402
from bench_velocity_accuracy import BOUNDS, ego_estimates, flights  # noqa: E402
from velocity_flights import Flight, FlightRecord  # noqa: E402

from optical_flow_ros.core.velocity_estimator import COVARIANCE_TERMS  # noqa: E402

DRAWS = 3
#: The seed offset of draw k is k times this (the flights' own seeds are below 100).
SEED_STEP = 1000
CHI2_2_MEDIAN = 2.0 * math.log(2.0)


def draw(flight: Flight, k: int) -> Flight:
    """The flight with its ``k``-th draw of noise (0: itself)."""
    if k == 0:
        return flight
    return dataclasses.replace(flight, sim=dataclasses.replace(
        flight.sim, seed=flight.sim.seed + SEED_STEP * k))


def velocity_axes(velocity: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Unit vectors along and across (to its left) a horizontal velocity (2,); None at rest."""
    speed = float(np.linalg.norm(velocity))
    if speed <= 0.0:
        return None
    along = velocity / speed
    return along, np.array([-along[1], along[0]])


def frame_figures(rec: FlightRecord) -> dict[str, np.ndarray]:
    """A recorded flight's valid frames past the start, with gyro (bench_velocity_accuracy's way).

    Per frame: NEES of (vx, vy), squared z along and across the true horizontal velocity,
    and each covariance term's share of the variance across it
    ((frames, len(COVARIANCE_TERMS))).
    """
    nees, along, across, shares = [], [], [], []
    for f, e in ego_estimates(rec, use_gyro=True):
        if e is None or e.covariance_terms is None:
            continue
        truth = f.state.velocity[:2]
        axes = velocity_axes(truth)
        if axes is None:
            continue
        u, n = axes
        err = e.linear[:2] - truth
        cov = e.covariance[:2, :2]
        nees.append(float(err @ np.linalg.solve(cov, err)))
        along.append(float(u @ err) ** 2 / float(u @ cov @ u))
        across_var = float(n @ cov @ n)
        across.append(float(n @ err) ** 2 / across_var)
        shares.append([float(n @ e.covariance_terms[name][:2, :2] @ n) / across_var
                       for name in COVARIANCE_TERMS])
    return dict(nees=np.array(nees), along=np.array(along), across=np.array(across),
                shares=np.array(shares).reshape(-1, len(COVARIANCE_TERMS)))


def measure(flight: Flight, draws: int = DRAWS, *,
            first: FlightRecord | None = None) -> dict[str, Any]:
    """The flight's figures over ``draws`` draws of its noise (see the module docstring).

    ``first``: draw 0 already recorded (``velocity_flights.record(flight)``), else recorded
    here.
    """
    records = (velocity_flights.record(draw(flight, k)) if k or first is None else first
               for k in range(draws))
    per_draw = [frame_figures(rec) for rec in records]
    pooled = {key: np.concatenate([d[key] for d in per_draw]) for key in per_draw[0]}
    return dict(
        name=flight.name, draws=draws, frames=int(pooled["nees"].size),
        nees_draws=[float(np.median(d["nees"])) for d in per_draw],
        nees=float(np.median(pooled["nees"])),
        z2_along=float(np.mean(pooled["along"])), z2_across=float(np.mean(pooled["across"])),
        across_shares={name: float(v) for name, v in
                       zip(COVARIANCE_TERMS, pooled["shares"].mean(axis=0), strict=True)})


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts in the issue's NEES bounds per draw and pooled; the flights' mean z^2."""
    lo, hi = BOUNDS["nees"]
    draws = results[0]["draws"]
    per_draw = [sum(lo <= r["nees_draws"][k] <= hi for r in results) for k in range(draws)]
    pooled = [r["nees"] for r in results]
    return dict(
        flights=len(results), in_bounds_per_draw=per_draw,
        in_bounds_pooled=sum(lo <= v <= hi for v in pooled),
        below=sum(v < lo for v in pooled), above=sum(v > hi for v in pooled),
        geometric_mean_nees=float(np.exp(np.mean(np.log(pooled)))),
        z2_along=float(np.mean([r["z2_along"] for r in results])),
        z2_across=float(np.mean([r["z2_across"] for r in results])))


def markdown(results: list[dict[str, Any]]) -> str:
    """One row per flight and a summary line."""
    draws = results[0]["draws"]
    lines = ["| flight | median NEES per draw | pooled | mean z^2 along / across | "
             "across variance: " + " / ".join(COVARIANCE_TERMS) + " |", "|" + "---|" * 5]
    for r in results:
        lines.append(
            f"| {r['name']} | " + " ".join(f"{v:.2f}" for v in r["nees_draws"])
            + f" | {r['nees']:.2f} | {r['z2_along']:.2f} / {r['z2_across']:.2f} | "
            + " / ".join(f"{100 * r['across_shares'][name]:.0f}" for name in COVARIANCE_TERMS)
            + " % |")
    s = summary(results)
    lo, hi = BOUNDS["nees"]
    lines += ["", f"Median NEES in {lo:g}-{hi:g}: per draw "
              + ", ".join(f"{n}" for n in s["in_bounds_per_draw"])
              + f" of {s['flights']}; pooled over the {draws} draws {s['in_bounds_pooled']} "
              f"({s['below']} below, {s['above']} above); geometric mean of the pooled medians "
              f"{s['geometric_mean_nees']:.2f} (chi-square 2: {CHI2_2_MEDIAN:.2f}); mean z^2 "
              f"over the flights along the velocity {s['z2_along']:.2f}, across "
              f"{s['z2_across']:.2f} (1: calibrated)."]
    return "\n".join(lines)


def format_row(r: dict[str, Any]) -> str:
    shares = " ".join(f"{name} {100 * v:3.0f}%" for name, v in r["across_shares"].items())
    return (f"{r['name']:<48} NEES draws [{' '.join(f'{v:.2f}' for v in r['nees_draws'])}] "
            f"pooled {r['nees']:.2f} z2 along {r['z2_along']:.2f} across {r['z2_across']:.2f} "
            f"| across: {shares}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="held_out,fresh,lens,turns")
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--only", default="", help="substring of the flight names")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.draws < 1:
        parser.error("--draws must be at least 1")
    results = []
    for flight in flights(args.set, quick=False):
        if args.only and args.only not in flight.name:
            continue
        results.append(measure(flight, args.draws))
        print(format_row(results[-1]), flush=True)
    if not results:
        parser.error(f"no flight of --set {args.set} matches --only {args.only!r}")
    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
