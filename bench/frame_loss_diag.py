"""Velocities when the tracker sees only part of the stream (issue 15, part I).

Run from the repository root (recordings are cached in $FL15I_CACHE, default /tmp/fl15i;
delete it after changing the tracker)::

    PYTHONPATH=. .venv/bin/python bench/frame_loss_diag.py --set held_out,fresh \
        --modes drop0,drop0.5,drop0.75,every4 --seeds 1,2 --ego [--replay]

Modes: ``dropP`` delivers each frame with probability 1 - P (an overloaded node with a
keep-last-1 input), ``everyN`` every N-th frame (a node busy for N - 1 frame times). Per
flight: the per-track median relative error at the stamp; with ``--ego`` the ego-velocity's
RMSE, 1/3-sigma shares of vx, vy and median NEES with a 200 Hz IMU and without gyro
(bench_velocity_accuracy's scoring); with ``--replay`` the tracking error of the interval
displacements (``lk``) and the motion field replayed on the recorded tracks (``rep``) and on
the simulator's exact displacements (``exact``), which splits the per-track error into
tracking and the field's model in time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import velocity_flights as vf  # noqa: E402
from bench_velocity_accuracy import ego_figures, track_errors  # noqa: E402

from optical_flow_ros.core.field_velocity import MotionFieldVelocity  # noqa: E402

CACHE = Path(os.environ.get("FL15I_CACHE", "/tmp/fl15i"))


def variant(flight: vf.Flight, mode: str) -> vf.Flight:
    if mode.startswith("drop"):
        return dataclasses.replace(flight, drop=float(mode[4:]))
    if mode.startswith("every"):
        return dataclasses.replace(flight, every=int(mode[5:]))
    return flight


def path_of(name: str, mode: str, seed: int) -> Path:
    return CACHE / f"{name.replace('/', '_')}_{mode}_{seed}.pkl"


def get(flight: vf.Flight, mode: str, seed: int, *, rerecord: bool = False) -> vf.FlightRecord:
    p = path_of(flight.name, mode, seed)
    if p.exists() and not rerecord:
        return pickle.loads(p.read_bytes())
    rec = vf.record(variant(flight, mode), seed=seed)
    CACHE.mkdir(exist_ok=True)
    p.write_bytes(pickle.dumps(rec))
    return rec


def replay(rec: vf.FlightRecord, *, exact: bool, span: float | None = None,
           degree: int | None = None, tau: float | None = None) -> tuple[float, float]:
    """Median relative per-track error of the field replayed on the recorded tracks.

    exact: displacements from the simulator (no tracking error).
    """
    cfg = rec.flight.tracker
    field = MotionFieldVelocity(span or cfg.velocity_field_span,
                                cfg.velocity_field_degree if degree is None else degree,
                                tau or cfg.velocity_deviation_tau)
    state: dict[int, tuple[np.ndarray, int, float, np.ndarray]] = {}
    fresh = (np.zeros(2), 0, 1.0, np.full((2, 2), np.nan))
    rel = []
    prev = None
    shape = (rec.flight.sim.image_height, rec.flight.sim.image_width)
    for f in rec.frames:
        if prev is None or f.t - prev.t > cfg.max_dt:
            prev = f
            state = {}
            field.restart()
            continue
        ids_prev = {int(i): k for k, i in enumerate(prev.tracks.ids)}
        idx_prev, idx_cur = [], []
        for k, i in enumerate(f.tracks.ids):
            j = ids_prev.get(int(i))
            if j is not None:
                idx_prev.append(j)
                idx_cur.append(k)
        a = prev.tracks.points[idx_prev].astype(np.float64)
        if exact:
            b = rec.sim.pixel_motion(a, prev.t, f.t)
        else:
            b = f.tracks.points[idx_cur].astype(np.float64)
        ids = f.tracks.ids[idx_cur]
        known = [state.get(int(i), fresh) for i in ids]
        dev = np.array([s[0] for s in known]).reshape(-1, 2)
        cnt = np.array([s[1] for s in known], np.int32)
        vfac = np.array([s[2] for s in known], np.float64)
        resid = np.array([s[3] for s in known]).reshape(-1, 2, 2)
        step = field.step(a, b.astype(np.float32), prev.t, f.t, shape, dev, cnt, vfac, resid)
        state = {int(i): (step.deviation[k], int(step.count[k]), float(step.variance_factor[k]),
                          step.residuals[k]) for k, i in enumerate(ids)}
        truth = rec.sim.pixel_velocity(b, f.t)
        v = step.velocities.astype(np.float64)
        ok = np.all(np.isfinite(v), axis=1)
        if f.t >= 0.5 and ok.any():
            e = np.linalg.norm(v[ok] - truth[ok], axis=1)
            rel.append(e / np.maximum(np.linalg.norm(truth[ok], axis=1), 1e-9))
        prev = f
    return float(np.median(np.concatenate(rel))), float(np.mean(np.concatenate(rel)))


def lk_error(rec: vf.FlightRecord) -> float:
    """Median relative error of the LK interval displacement vs the exact one."""
    rel = []
    prev = None
    for f in rec.frames:
        if prev is not None:
            common, ip, ic = np.intersect1d(prev.tracks.ids, f.tracks.ids, return_indices=True)
            a = prev.tracks.points[ip].astype(np.float64)
            d = f.tracks.points[ic].astype(np.float64) - a
            true = rec.sim.pixel_motion(a, prev.t, f.t) - a
            rel.append(np.linalg.norm(d - true, axis=1)
                       / np.maximum(np.linalg.norm(true, axis=1), 1e-9))
        prev = f
    return float(np.median(np.concatenate(rel)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="train")
    ap.add_argument("--modes", default="drop0,drop0.75")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--only", default="")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--rerecord", action="store_true")
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--ego", action="store_true")
    args = ap.parse_args()
    sets = dict(train=vf.TRAIN, held_out=vf.HELD_OUT, fresh=vf.FRESH)
    flights = [f for s in args.set.split(",") for f in sets[s] if args.only in f.name]
    for flight in flights:
        for mode in args.modes.split(","):
            for seed in map(int, args.seeds.split(",")):
                rec = get(flight, mode, seed, rerecord=args.rerecord)
                if args.record:
                    print("recorded", flight.name, mode, seed, len(rec.frames), flush=True)
                    continue
                rel, err, speed = track_errors(rec)
                line = f"{flight.name:<44} {mode:<9} s{seed} trk {100 * rel:5.2f}%"
                if args.replay:
                    line += (f" lk {100 * lk_error(rec):5.2f}%"
                             f" rep {100 * replay(rec, exact=False)[0]:5.2f}%"
                             f" exact {100 * replay(rec, exact=True)[0]:5.2f}%")
                if args.ego:
                    g = ego_figures(rec, use_gyro=True, gyro=vf.gyro_stream(
                        rec, dataclasses.replace(rec.flight.sim, imu_rate=200.0)))
                    line += (f" rmse {100 * g['rmse']:5.2f}% 1s {g['inside_1']['vx']:.2f}"
                             f" {g['inside_1']['vy']:.2f} 3s {g['inside_3']['vx']:.2f}"
                             f" {g['inside_3']['vy']:.2f} nees {g['nees']:5.2f}")
                    n = ego_figures(rec, use_gyro=False)
                    line += (f" | nogyro rmse {100 * n['rmse']:5.2f}% 3s {n['inside_3']['vx']:.2f}"
                             f" {n['inside_3']['vy']:.2f} nees {n['nees']:5.2f}")
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
