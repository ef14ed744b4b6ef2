"""Diagnostic: the motion field's share of flow/velocity's error, against the term stating it.

Run from the repository root::

    .venv/bin/python bench/field_error_split.py [--set held_out,fresh,turns] [--only NAME]
        [--draws 2]

bench/velocity_calibration.py says how the whole covariance fits the error, along and across
the true velocity; when it is off, this says whether the motion field's term is (the largest
across the velocity on most flights). Each flight (the noisy ones of :mod:`velocity_flights`,
with gyro, one sample per frame, estimated as bench_velocity_accuracy does) is estimated twice
per draw: as tracker_node does, and with the field through the gyro's line
(``field_gyro_fusion.field_through_line``, what the ego-velocity takes from the tracks'
field) replaced by the exact one: the simulator's image velocities of the ground, fitted with
the field's own basis (exact for a plane), through the same line weights and sample times.
The two estimates differ by the field's error alone. Per flight and over all draws:

* ``field z^2 across / along``: the mean squared difference across (along) the true
  horizontal velocity over the mean of the ``motion_field`` covariance term there (1: the
  term is calibrated; below 1 too wide, above too narrow);
* ``share``: that term's share of the published variance across the velocity;
* ``per parameter``: for each of the field's 8 parameters (u: th0, th1 x, th2 y; v: th3,
  th4 x, th5 y; th6, th7 the quadratic terms), the mean squared error of its value through
  the line over its stated variance (the diagonal of what the term is made of).

Lens flights are left out: the field lives in the undistorted image, the simulator's velocities
in the distorted one.

Measured (2026-12-07, the 26 flights of the default sets, 2 draws, ~70 s): field z^2 across
0.29-2.35 (median 1.09, 20 of 26 in 0.5-2), along 0.26-5.41; per parameter 0.17-7.8. The
term is right on average but off by up to 3x on a flight either way: too wide across on the
turns over gravel (0.29 / 0.39, the lasting tracking errors' covariance is most of the term
there; the quadratic terms th6 / th7, which carry the field's roll and pitch rates and weigh
most in the velocity, 0.41-0.44), too narrow along on the rocket turn (5.4) and the camera
tilt (3.9).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from multiprocessing import Pool
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import velocity_flights  # noqa: E402
from bench_velocity_accuracy import ego_estimates, flights  # noqa: E402
from velocity_calibration import draw, velocity_axes  # noqa: E402

from optical_flow_ros.core import field_gyro_fusion, velocity_estimator  # noqa: E402
from optical_flow_ros.core.sim_camera import SimCamera  # noqa: E402

DRAWS = 2
SETS = "held_out,fresh,turns"
PARAMETERS = ("th0", "th1", "th2", "th3", "th4", "th5", "th6", "th7")


@contextlib.contextmanager
def field_through_line_replaced(replacement: Callable[[Any, Any], Any]) -> Iterator[None]:
    """``estimate_velocity`` with ``replacement`` for ``field_through_line`` where it calls it.

    Two places: for the tracks' velocities (velocity_estimator), and in the fusion when that
    is not given the line (field_gyro_fusion).
    """
    original = field_gyro_fusion.field_through_line
    callers = (velocity_estimator, field_gyro_fusion)
    for module in callers:
        module.field_through_line = replacement
    try:
        yield
    finally:
        for module in callers:
            module.field_through_line = original


@contextlib.contextmanager
def _line_hook(sim: SimCamera, exact: bool, seen: dict[float, Any]) -> Iterator[None]:
    """Record each frame's field through the line, its variance and exact value, by stamp.

    With ``exact`` the estimate takes the exact value instead.
    """
    original = field_gyro_fusion.field_through_line

    def hook(field: Any, gyro: Any) -> Any:
        line = original(field, gyro)
        weights = gyro.line_weights()
        if weights is None:
            return line
        truth = sum(w * sim.field_parameters(t, field.centre, field.scale)
                    for w, t in zip(weights, gyro.sample_times, strict=True))
        seen[field.stamp] = (line.theta, line.variance, truth)
        return line._replace(theta=truth) if exact else line

    with field_through_line_replaced(hook):
        yield


def _draw_rows(job: tuple[str, str, int]) -> np.ndarray:
    """One draw of one flight: a row per valid frame with a line.

    The squared field part and the motion_field term across and along the velocity, the
    term's share across, and the 8 parameters' squared error over their variance.
    """
    which, name, k = job
    flight = {f.name: f for f in flights(which, quick=False)}[name]
    rec = velocity_flights.record(draw(flight, k))
    runs = []
    for exact in (False, True):
        seen: dict[float, Any] = {}
        frames = {}
        with _line_hook(rec.sim, exact, seen):
            for f, e in ego_estimates(rec, use_gyro=True):
                line = seen.pop(f.t, None)
                if e is not None and line is not None and e.covariance_terms is not None:
                    frames[f.t] = (f, e, line)
        runs.append(frames)
    rows = []
    for t, (f, e, line) in runs[0].items():
        if t not in runs[1]:
            continue
        axes = velocity_axes(f.state.velocity[:2])
        if axes is None:
            continue
        along, across = axes
        part = e.linear[:2] - runs[1][t][1].linear[:2]
        term = e.covariance_terms["motion_field"][:2, :2]
        total = e.covariance[:2, :2]
        theta, variance, exact = line
        rows.append([(across @ part) ** 2, across @ term @ across, (along @ part) ** 2,
                     along @ term @ along, across @ term @ across / (across @ total @ across),
                     *((theta - exact) ** 2 / np.maximum(variance, 1e-30))])
    return np.array(rows).reshape(-1, 5 + len(PARAMETERS))


def rows_by_flight(description: str, sets: str, draws: int,
                   draw_rows: Callable[[tuple[str, str, int]], np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """Each flight's rows over all its draws, by ``draw_rows`` in two processes.

    The flights and draws the command line names (``--set``, ``--only``, ``--draws``); lens
    flights are left out (see the module docstring).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--set", default=sets, help="flight sets (default: %(default)s)")
    parser.add_argument("--only", default="", help="flights whose name contains this")
    parser.add_argument("--draws", type=int, default=draws)
    args = parser.parse_args()
    which = ",".join(s for s in args.set.split(",") if s != "lens")
    names = [f.name for f in flights(which, quick=False) if args.only in f.name]
    jobs = [(which, n, k) for n in names for k in range(args.draws)]
    with Pool(2) as pool:
        rows = pool.map(draw_rows, jobs, chunksize=1)
    return {name: np.concatenate([x for (_, n, _), x in zip(jobs, rows, strict=True)
                                  if n == name]) for name in names}


def main() -> int:
    flights_rows = rows_by_flight(__doc__.splitlines()[0], SETS, DRAWS, _draw_rows)
    print(f"| flight | frames | field z^2 across | along | share across | per parameter "
          f"{' '.join(PARAMETERS)} |")
    print("|---|---|---|---|---|---|")
    for name, r in flights_rows.items():
        if not r.size:
            print(f"| {name} | 0 | - | - | - | - |")
            continue
        m = r.mean(axis=0)
        print(f"| {name} | {len(r)} | {m[0] / m[1]:.2f} | {m[2] / m[3]:.2f} | {m[4]:.2f} | "
              f"{' '.join(f'{v:.2f}' for v in m[5:])} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
