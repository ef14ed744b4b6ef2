"""Sweep DIS's parameters for the dense-flow speed-accuracy frontier; results resume from JSON.

Run from the repository root, each chunk under the shared lock (each stops by itself after
``--budget-s`` and writes after every configuration, so rerunning goes on where it stopped)::

    flock /work/locks/heavy.lock .venv/bin/python bench/sweep_dense.py coarse
    flock /work/locks/heavy.lock .venv/bin/python bench/sweep_dense.py refine    # repeat
    flock /work/locks/heavy.lock .venv/bin/python bench/sweep_dense.py confirm
    flock /work/locks/heavy.lock .venv/bin/python bench/sweep_dense.py heldout
    flock /work/locks/heavy.lock .venv/bin/python bench/sweep_dense.py sizes
    .venv/bin/python bench/dense_frontier.py      # table, choice and docs/dense_frontier.png

What one configuration gets (stage ``coarse``/``refine``):

* EPE (px) on every ``train`` scene of ``bench/dense_scenes.py`` at 640x480 (the motorcycle
  pair at its own 741x500). DIS's output does not depend on the thread count (checked:
  identical flows with 1 and 2 threads), so EPE is measured once.
* Time per ``DenseFlow.compute`` call at 640x480 with OpenCV limited to 1 and to 2 threads:
  the configuration and the baseline (DIS medium) alternate call by call, after 2 warm-up
  calls each, ``--rounds`` times; stored are both medians and their ratio. The ratio is what
  is compared (this machine's 2 cores are shared, so absolute ms drift with the load).

Every pair is a single pair from a cold start: no temporal initialisation (the pipeline's
``temporal_init`` feeds the previous flow to DIS as one more candidate per patch; it helps
sustained large motion and is not what is measured here).

Stages: ``baselines`` (Farneback with the tutorial's parameters and the DIS presets),
``coarse`` (a grid over finest scale, patch size, stride, gradient-descent and
variational-refinement iterations at the presets' refinement weights), ``refine`` (one-step
neighbours, including refinement weights alpha/delta/gamma, mean normalisation and spatial
propagation, of the configurations on the current frontier around 0.5x DIS medium's time;
repeat until it adds nothing),
``confirm`` (the frontier and the contenders around 0.5x timed again with 4x the rounds),
``heldout`` (EPE of the named methods, the frontier and the contenders on the held-out
scenes), ``sizes`` (EPE and time of the table's rows at 320x240 and 1280x720). The choice
rule of the default: :func:`choose_default`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
for _path in (ROOT, BENCH):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import cv2  # noqa: E402
import dense_scenes as ds  # noqa: E402
import numpy as np  # noqa: E402

from optical_flow_ros.core.dense_flow import DenseFlow, DenseFlowConfig  # noqa: E402

RESULTS = BENCH / "dense_sweep.json"
BASE_SHAPE = (480, 640)
SIZES = {"320x240": (240, 320), "640x480": (480, 640), "1280x720": (720, 1280)}
THREADS = (1, 2)
TIMING_SCENE = "field-camera-a6"  # DIS's cost hardly depends on the content
BASELINE = "dis_medium"           # timed alternately with every configuration
REFINE_FROM, REFINE_TO = 0.3, 0.6  # x DIS medium's time: the refine stage's range
TARGET_RATIO = 0.45               # x DIS medium's time: where the refine stage starts
TOLERANCE = 1.1                   # the test: EPE within this x the better baseline
TIME_LIMIT = 0.5                  # ... at most this x DIS medium's time at 640x480
TIME_MARGIN = 0.05                # kept below the limit when choosing (timing noise)
WORST_LIMIT = 3.0                 # no training scene's EPE above this x the better baseline

# The swept DIS parameters (DenseFlowConfig field names) and the values a refine step moves
# between; the coarse grid is a subset. Epsilon stays at OpenCV's 0.01.
LADDERS: dict[str, tuple[Any, ...]] = {
    "finest_scale": (0, 1, 2, 3),
    "patch_size": (4, 6, 8, 10, 12, 16),
    "patch_stride": (1, 2, 3, 4, 5, 6, 8, 10, 12),
    "gradient_descent_iterations": (2, 3, 4, 6, 8, 12, 16, 25, 40),
    "variational_refinement_iterations": (0, 1, 2, 3, 5, 8),
    "variational_refinement_alpha": (2.0, 5.0, 10.0, 20.0, 40.0, 80.0),
    "variational_refinement_delta": (0.5, 1.0, 2.0, 5.0, 10.0, 20.0),
    "variational_refinement_gamma": (0.0, 2.0, 5.0, 10.0, 20.0, 40.0),
    "use_mean_normalization": (False, True),
    "use_spatial_propagation": (False, True),
}
SHORT = {"finest_scale": "f", "patch_size": "p", "patch_stride": "s",
         "gradient_descent_iterations": "g", "variational_refinement_iterations": "v",
         "variational_refinement_alpha": "a", "variational_refinement_delta": "d",
         "variational_refinement_gamma": "y", "use_mean_normalization": "m",
         "use_spatial_propagation": "sp"}
# DIS medium's values of the swept parameters (OpenCV 5.0): the base every point starts from.
MEDIUM = {"finest_scale": 1, "patch_size": 8, "patch_stride": 3,
          "gradient_descent_iterations": 25, "variational_refinement_iterations": 5,
          "variational_refinement_alpha": 20.0, "variational_refinement_delta": 5.0,
          "variational_refinement_gamma": 10.0, "use_mean_normalization": True,
          "use_spatial_propagation": True}

NAMED = {name: {"method": name} for name in ("farneback", "dis_ultrafast", "dis_fast",
                                              "dis_medium")}


def point_key(point: dict[str, Any]) -> str:
    """Canonical name of a DIS point, e.g. ``f1-p8-s4-g8-v5-a20-d5-y10-m1-sp1``."""
    parts = []
    for name, short in SHORT.items():
        value = point[name]
        parts.append(f"{short}{int(value) if isinstance(value, bool) else f'{value:g}'}")
    return "-".join(parts)


def point_config(point: dict[str, Any]) -> dict[str, Any]:
    """DenseFlowConfig keywords of a DIS point (every swept field set explicitly)."""
    return {"method": "dis_medium", **point}


def is_valid(point: dict[str, Any]) -> bool:
    """Patches must not leave gaps (stride <= patch size)."""
    return point["patch_stride"] <= point["patch_size"]


def coarse_grid() -> list[dict[str, Any]]:
    """The first pass: structure and effort at the presets' refinement weights."""
    points = []
    for finest in (1, 2):
        for patch in (8, 12):
            for stride in (2, 3, 4, 6, 8):
                for gd in (4, 8, 16, 25):
                    for vr in (0, 2, 5):
                        points.append({**MEDIUM, "finest_scale": finest, "patch_size": patch,
                                       "patch_stride": stride,
                                       "gradient_descent_iterations": gd,
                                       "variational_refinement_iterations": vr})
    for stride in (4, 6, 8):  # full resolution: few, it is expensive
        for gd in (4, 8):
            for vr in (0, 1, 2):
                points.append({**MEDIUM, "finest_scale": 0, "patch_stride": stride,
                               "gradient_descent_iterations": gd,
                               "variational_refinement_iterations": vr})
    return [p for p in points if is_valid(p)]


_REFINEMENT_WEIGHTS = ("variational_refinement_alpha", "variational_refinement_delta",
                       "variational_refinement_gamma")


def neighbours(point: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Points one ladder step away from ``point`` in one parameter.

    The refinement weights are left alone when refinement is off (they would change nothing).
    """
    for name, ladder in LADDERS.items():
        if name in _REFINEMENT_WEIGHTS and point["variational_refinement_iterations"] == 0:
            continue
        value = point[name]
        i = ladder.index(value) if value in ladder else None
        steps = (i - 1, i + 1) if i is not None else ()
        for j in steps:
            if 0 <= j < len(ladder):
                candidate = {**point, name: ladder[j]}
                if is_valid(candidate):
                    yield candidate


# ----- measuring ------------------------------------------------------------------------------

def interleaved_ms(config: DenseFlowConfig, baseline: DenseFlowConfig, prev: np.ndarray,
                   nxt: np.ndarray, rounds: int) -> tuple[float, float]:
    """Median ms per compute call of ``config`` and ``baseline``, called alternately."""
    flows = (DenseFlow(config), DenseFlow(baseline))
    for flow in flows:
        for _ in range(2):
            flow.compute(prev, nxt)
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for i in order:
            t0 = time.perf_counter()
            flows[i].compute(prev, nxt)
            times[i].append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times[0])), 1e3 * float(np.median(times[1]))


def timing(config: DenseFlowConfig, pair: ds.Scene, rounds: int) -> dict[str, dict[str, float]]:
    """Time per call with 1 and 2 OpenCV threads, against DIS medium in the same loop."""
    baseline = DenseFlowConfig(**NAMED[BASELINE])
    out = {}
    for threads in THREADS:
        cv2.setNumThreads(threads)
        ms, base_ms = interleaved_ms(config, baseline, pair.prev, pair.next, rounds)
        out[str(threads)] = {"ms": round(ms, 4), "baseline_ms": round(base_ms, 4),
                             "ratio": round(ms / base_ms, 5)}
    cv2.setNumThreads(2)
    return out


def epes(config: DenseFlowConfig, scenes: list[ds.Scene]) -> dict[str, float]:
    """EPE (px) of ``config`` on each scene, from a fresh DenseFlow (no temporal state)."""
    cv2.setNumThreads(2)
    return {s.name: round(ds.scene_epe(DenseFlow(config).compute(s.prev, s.next), s), 5)
            for s in scenes}


# ----- results file ---------------------------------------------------------------------------

def load(path: Path) -> dict[str, Any]:
    """The results so far (a fresh skeleton when ``path`` does not exist)."""
    if path.exists():
        return json.loads(path.read_text())
    return {"meta": {}, "scenes": {}, "configs": {}}


def save(results: dict[str, Any], path: Path) -> None:
    """Write atomically (a killed chunk never leaves half a file)."""
    meta = results["meta"]
    meta.setdefault("created", datetime.date.today().isoformat())
    meta["updated"] = datetime.date.today().isoformat()
    meta.update(opencv=cv2.__version__, numpy=np.__version__,
                python=platform.python_version(), machine=platform.machine(),
                cpus=cv2.getNumberOfCPUs(),
                measures=("single pairs from a cold start, no temporal initialisation; EPE "
                          "with 2 threads (identical with 1); ms: median per compute call, "
                          "alternating with DIS medium in the same loop"))
    compact = {"sort_keys": True, "separators": (",", ":")}
    entries = sorted(results["configs"].items())
    lines = ["{", f'"meta":{json.dumps(meta, **compact)},',
             f'"scenes":{json.dumps(results["scenes"], **compact)},', '"configs":{']
    lines += [f"{json.dumps(key)}:{json.dumps(entry, **compact)}"
              + ("," if i < len(entries) - 1 else "") for i, (key, entry) in enumerate(entries)]
    lines += ["}}"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")  # one line per configuration: small, diffable
    os.replace(tmp, path)


def record_scenes(results: dict[str, Any], split: str, scenes: list[ds.Scene]) -> None:
    results["scenes"][split] = {
        s.name: {"kind": s.kind, "max_motion_px": round(s.max_motion, 2),
                 "size": f"{s.prev.shape[1]}x{s.prev.shape[0]}"} for s in scenes}


class Runner:
    """Measures configurations into the results file until the time budget runs out."""

    def __init__(self, path: Path, budget_s: float, rounds: int) -> None:
        self.path = path
        self.results = load(path)
        self.deadline = time.monotonic() + budget_s
        self.rounds = rounds
        self._scenes: dict[tuple[str, str], list[ds.Scene]] = {}

    def scenes(self, split: str, size: str = "640x480") -> list[ds.Scene]:
        """The scenes of ``split`` at ``size``, built once per run."""
        if (split, size) not in self._scenes:
            native = size == "640x480"
            self._scenes[split, size] = ds.build_scenes(split, SIZES[size],
                                                        motorcycle_native=native)
            if native:
                record_scenes(self.results, split, self._scenes[split, size])
        return self._scenes[split, size]

    def out_of_time(self) -> bool:
        """True once the run's time budget is spent."""
        return time.monotonic() > self.deadline

    def entry(self, key: str, config: dict[str, Any], stage: str) -> dict[str, Any]:
        """The results entry of ``key``, created when new."""
        return self.results["configs"].setdefault(
            key, {"config": config, "stage": stage, "epe": {}, "time": {}})

    def measure_train(self, key: str, config: dict[str, Any], stage: str) -> bool:
        """EPE on the training scenes and 640x480 timing; False when out of time."""
        entry = self.entry(key, config, stage)
        if "train" in entry["epe"] and "640x480" in entry["time"]:
            return True
        if self.out_of_time():
            return False
        cfg = DenseFlowConfig(**config)
        scenes = self.scenes("train")
        t0 = time.monotonic()
        entry["epe"]["train"] = epes(cfg, scenes)
        pair = next(s for s in scenes if s.name == TIMING_SCENE)
        entry["time"]["640x480"] = timing(cfg, pair, self.rounds)
        save(self.results, self.path)
        worst = max(entry["epe"]["train"].values())
        print(f"{key:40s} {entry['time']['640x480']['2']['ratio']:6.3f}x medium (2 thr) "
              f"motorcycle {entry['epe']['train']['motorcycle']:6.3f} worst {worst:7.3f} "
              f"[{time.monotonic() - t0:4.1f} s]", flush=True)
        return True

    def run_points(self, points: Iterable[dict[str, Any]], stage: str) -> bool:
        """Measure each DIS point on the training scenes; False when out of time."""
        for point in points:
            if not self.measure_train(point_key(point), point_config(point), stage):
                print("time budget used up: rerun to continue", flush=True)
                return False
        return True

    def measure_extra(self, key: str, what: str, work: Callable[[dict[str, Any]], Any]) -> bool:
        """Run ``work(entry)`` once for ``what`` (stored under entry['done'])."""
        entry = self.results["configs"][key]
        done = entry.setdefault("done", [])
        if what in done:
            return True
        if self.out_of_time():
            print("time budget used up: rerun to continue", flush=True)
            return False
        work(entry)
        done.append(what)
        save(self.results, self.path)
        print(f"{key:40s} {what} done", flush=True)
        return True


# ----- frontier -------------------------------------------------------------------------------

def cost_key(key: str) -> str:
    """The settings a configuration's time depends on: all but the refinement weights.

    OpenCV's refinement runs a fixed number of iterations whatever alpha, delta and gamma
    are, so points differing only in those cost the same; their timings are pooled.
    """
    if key in NAMED:
        return key
    point = parse_key(key)
    for name in _REFINEMENT_WEIGHTS:
        point[name] = MEDIUM[name]
    return point_key(point)


def pooled_ratios(results: dict[str, Any], size: str = "640x480") -> dict[str, dict[str, float]]:
    """Per configuration: time / DIS medium's per thread count, pooled over its cost key.

    The median of the ratios of all configurations with the same :func:`cost_key`, a
    ``confirm`` re-timing (4x the rounds) counting 4 times: 7 alternating rounds alone
    scatter by ~10 % on this shared machine.
    """
    pools: dict[str, dict[str, list[float]]] = {}
    for key, entry in results["configs"].items():
        if size not in entry["time"]:
            continue
        weight = 4 if "confirm" in entry.get("done", ()) and size == "640x480" else 1
        pool = pools.setdefault(cost_key(key), {str(t): [] for t in THREADS})
        for threads in pool:
            pool[threads] += [entry["time"][size][threads]["ratio"]] * weight
    medians = {ck: {t: float(np.median(v)) for t, v in pool.items()} for ck, pool in pools.items()}
    return {key: medians[cost_key(key)] for key, entry in results["configs"].items()
            if size in entry["time"]}


def scores(results: dict[str, Any], split: str = "train") -> dict[str, dict[str, float]]:
    """Per configuration: worst and geometric-mean EPE ratio to the better baseline, time.

    The better baseline of a scene is the lower EPE of Farneback and DIS medium there.
    Only configurations measured on ``split`` (and timed at 640x480) are scored; time
    ratios are :func:`pooled_ratios`.
    """
    configs = results["configs"]
    far, med = configs["farneback"]["epe"][split], configs[BASELINE]["epe"][split]
    best = {s: min(far[s], med[s]) for s in med}
    times = pooled_ratios(results)
    out = {}
    for key, entry in configs.items():
        epe = entry["epe"].get(split)
        if epe is None or key not in times:
            continue
        ratios = np.array([epe[s] / best[s] for s in best])
        geo_epe = float(np.exp(np.mean(np.log([max(epe[s], 1e-6) for s in best]))))
        out[key] = {"worst": float(ratios.max()), "geo": float(np.exp(np.log(ratios).mean())),
                    "geo_epe": geo_epe, "ratio2": times[key]["2"], "ratio1": times[key]["1"],
                    "within": int((ratios <= 1.1).sum()), "scenes": len(ratios)}
    return out


def pareto(points: dict[str, dict[str, float]], cost: str, error: str) -> list[str]:
    """Keys not dominated in (cost, error), sorted by cost."""
    keys = sorted(points, key=lambda k: (points[k][cost], points[k][error]))
    front, best = [], float("inf")
    for k in keys:
        if points[k][error] < best:
            front.append(k)
            best = points[k][error]
    return front


def frontier_keys(results: dict[str, Any], max_ratio: float = 0.7, min_ratio: float = 0.0,
                  errors: tuple[str, ...] = ("worst", "geo", "outside")) -> list[str]:
    """Swept points on a frontier between ``min_ratio`` and ``max_ratio`` x DIS medium's time.

    Frontiers over that time (2 threads) of ``errors``: ``worst`` scene ratio, ``geo``
    (geometric-mean ratio), ``outside`` (scenes not within 1.1x: the issue's test).
    """
    sc = {k: {**v, "outside": v["scenes"] - v["within"]} for k, v in scores(results).items()
          if k not in NAMED and min_ratio <= v["ratio2"] <= max_ratio}
    keys = set()
    for error in errors:
        keys |= set(pareto(sc, "ratio2", error))
    return sorted(keys, key=lambda k: sc[k]["ratio2"])


def choose_default(results: dict[str, Any]) -> tuple[str, bool]:
    """The default by the choice rule; True when it meets the tolerance on every scene.

    The rule, fixed before the held-out scenes were measured: among swept settings whose
    640x480 time is at most 0.45x DIS medium's with 2 threads and 0.5x with 1 thread (0.05
    of margin for timing noise; :func:`pooled_ratios`), that are within 1.1x on the real
    motorcycle pair and nowhere worse than 3x the better baseline (no training scene lost
    outright), the one within 1.1x on the most training scenes; ties broken by the lower
    geometric-mean EPE ratio. Held-out scenes only report.
    """
    sc = scores(results)
    configs = results["configs"]
    motorcycle_limit = TOLERANCE * configs[BASELINE]["epe"]["train"]["motorcycle"]
    fits = {k: v for k, v in sc.items() if k not in NAMED
            and v["ratio2"] <= TIME_LIMIT - TIME_MARGIN and v["ratio1"] <= TIME_LIMIT
            and v["worst"] <= WORST_LIMIT
            and configs[k]["epe"]["train"]["motorcycle"] <= motorcycle_limit}
    best = max(fits, key=lambda k: (fits[k]["within"], -fits[k]["geo"]))
    return best, fits[best]["within"] == fits[best]["scenes"]


def table_rows(results: dict[str, Any], chosen: str, step: float = 1.25) -> list[str]:
    """Keys for the table: the named methods, the chosen one, and the frontier thinned out.

    The frontier is the geometric-mean one (2 threads) from 0.1x DIS medium's time up; of
    its points, the first at least ``step`` times slower than the previous row is kept.
    """
    sc = scores(results)
    swept = {k: v for k, v in sc.items() if k not in NAMED and v["ratio2"] >= 0.1}
    thinned, last = [], 0.0
    for key in pareto(swept, "ratio2", "geo"):
        if sc[key]["ratio2"] >= step * last:
            thinned.append(key)
            last = sc[key]["ratio2"]
    keys = [*NAMED, chosen, *thinned]
    return sorted(dict.fromkeys(keys), key=lambda k: sc[k]["ratio2"])


def parse_key(key: str) -> dict[str, Any]:
    """Inverse of :func:`point_key`."""
    point = {}
    for part, (name, short) in zip(key.split("-"), SHORT.items(), strict=True):
        text = part[len(short):]
        kind = type(MEDIUM[name])
        point[name] = bool(int(text)) if kind is bool else kind(float(text))
    return point


# ----- stages ---------------------------------------------------------------------------------

def stage_baselines(run: Runner) -> bool:
    return all(run.measure_train(name, config, "baselines") for name, config in NAMED.items())


def stage_coarse(run: Runner) -> bool:
    return stage_baselines(run) and run.run_points(coarse_grid(), "coarse")


def stage_refine(run: Runner) -> bool:
    """Neighbours of the frontier, round after round, until the frontier stops changing.

    Only the geometric-mean and within-1.1x frontiers from 0.3x to 0.6x DIS medium's time
    are refined: the region around the target (0.5x); elsewhere the frontier stays at the
    coarse grid's resolution (and the first refine rounds', which went from 0.2x to 0.7x and
    included the worst-scene frontier).
    """
    while True:
        front = frontier_keys(run.results, REFINE_TO, REFINE_FROM, ("geo", "outside"))
        # Nearest the target first, so that an interrupted round has done what matters.
        sc = scores(run.results)
        front.sort(key=lambda k: abs(sc[k]["ratio2"] - TARGET_RATIO))
        todo = [p for k in front for p in neighbours(parse_key(k))
                if point_key(p) not in run.results["configs"]]
        todo = list({point_key(p): p for p in todo}.values())
        print(f"frontier {len(front)} points, {len(todo)} new neighbours", flush=True)
        if not todo:
            return True
        if not run.run_points(todo, "refine"):
            return False


def contenders(results: dict[str, Any]) -> set[str]:
    """Swept settings between 0.3x and 0.6x DIS medium's time within 1.1x on half the scenes."""
    return {k for k, v in scores(results).items()
            if k not in NAMED and 0.3 <= v["ratio2"] <= 0.6 and 2 * v["within"] >= v["scenes"]}


def stage_confirm(run: Runner) -> bool:
    """Re-time, with 4x the rounds, one setting per cost of the frontier and the contenders.

    Contenders: settings between 0.3x and 0.6x DIS medium's time within 1.1x on at least
    half the training scenes. Pooling (:func:`pooled_ratios`) carries each re-timing to
    every setting of the same cost.
    """
    keys = set(frontier_keys(run.results)) | contenders(run.results)
    representatives: dict[str, str] = {}
    for key in sorted(keys):
        representatives.setdefault(cost_key(key), key)
    for key in [*representatives.values(), "dis_fast"]:
        def work(entry: dict[str, Any]) -> None:
            pair = next(s for s in run.scenes("train") if s.name == TIMING_SCENE)
            entry["time"]["640x480"] = timing(DenseFlowConfig(**entry["config"]), pair,
                                              4 * run.rounds)
        if not run.measure_extra(key, "confirm", work):
            return False
    return True


def stage_heldout(run: Runner) -> bool:
    """EPE on the held-out scenes: named methods, frontier, contenders, the table's rows."""
    chosen, _ = choose_default(run.results)
    keys = [*NAMED, *sorted(set(frontier_keys(run.results)) | contenders(run.results)
                            | set(table_rows(run.results, chosen)))]
    for key in keys:
        def work(entry: dict[str, Any]) -> None:
            entry["epe"]["heldout"] = epes(DenseFlowConfig(**entry["config"]),
                                           run.scenes("heldout"))
        if not run.measure_extra(key, "heldout", work):
            return False
    return True


def stage_sizes(run: Runner) -> bool:
    """EPE (training scenes) and time at 320x240 and 1280x720: the rows of the table."""
    chosen, _ = choose_default(run.results)
    for key in table_rows(run.results, chosen):
        for size in ("320x240", "1280x720"):
            def work(entry: dict[str, Any], size: str = size) -> None:
                cfg = DenseFlowConfig(**entry["config"])
                scenes = run.scenes("train", size)
                entry["epe"][f"train@{size}"] = epes(cfg, scenes)
                pair = next(s for s in scenes if s.name == TIMING_SCENE)
                entry["time"][size] = timing(cfg, pair, run.rounds)
            if not run.measure_extra(key, f"size {size}", work):
                return False
    return True


STAGES = {"baselines": stage_baselines, "coarse": stage_coarse, "refine": stage_refine,
          "confirm": stage_confirm, "heldout": stage_heldout, "sizes": stage_sizes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--budget-s", type=float, default=540.0,
                        help="stop after this many seconds (rerun to resume)")
    parser.add_argument("--rounds", type=int, default=7,
                        help="alternating timing rounds per thread count")
    args = parser.parse_args()
    print(f"OpenCV {cv2.__version__}, {cv2.getNumberOfCPUs()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}; results -> {args.results}", flush=True)
    run = Runner(args.results, args.budget_s, args.rounds)
    finished = STAGES[args.stage](run)
    save(run.results, args.results)
    print("stage complete" if finished else "stage incomplete", flush=True)
    return 0 if finished else 3


if __name__ == "__main__":
    sys.exit(main())
