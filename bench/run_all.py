"""Benchmark suite: every figure beside its baseline from the same run; writes BENCHMARKS.md.

Run from the repository root::

    .venv/bin/python bench/run_all.py            # full suite (~6 min on 2 cores)
    .venv/bin/python bench/run_all.py --quick    # shorter runs, same sections (~2 min)

Sections (each with its baseline measured in this run):

1. Tracker core (``LKTracker.update``) vs the seed's ``lk_track.py`` loop with the same
   parameters (``bench/bench_tracker.py``), 640x480 and 1280x720, ~500 tracks, OpenCV 1 and
   2 threads. Budget: core/seed p50 <= 0.8 (seed capped at the same 500 tracks).
2. tracker_node end to end over DDS, separate processes: ``bench/e2e_camera.py`` publishes
   bgr8 frames at 30/60 Hz (640x480) and 30 Hz (1280x720) and times image stamp ->
   ``flow/tracks`` received; ``bench/null_node.py`` (receive, publish an empty cloud) is the
   transport floor; nodes with ``opencv_threads`` 0 (default), 1 and 2 and the floor take
   turns in 2 s blocks. Plus one 60 s continuous run (no-backlog check), one run with a
   1-core CPU hog, and a cProfile of the node process. Budget: tracker p50 <= floor p50 +
   core p50 + 2 ms; no backlog.
3. Dense flow (``bench/bench_dense.py``): ms/frame and EPE per method at 320x240, 640x480,
   1280x720, Farneback the baseline. Then the speed-accuracy frontier of DIS's settings: the
   table from the committed sweep (``bench/dense_sweep.json``, with its date; the sweep
   itself takes ~1 h: ``bench/sweep_dense.py``) and a re-measure, in this run, of the named
   methods on the motorcycle pair and the held-out Middlebury smooth fields, timed against
   DIS medium (``bench/dense_frontier.py``). Budgets: default <= 0.5x DIS medium's time at
   640x480 and within 1.1x of the better of Farneback / DIS medium on each of those scenes.
4. Image <-> numpy conversion (``bench/bench_image_conversion.py``), 640x480 and 1920x1080.
5. Bag processing throughput (``bench/bench_process_bag.py``): ``process_bag``'s command
   line on a 27 s bag with camera_info, range and imu, wall time of the process including
   its start-up. Budget: >= 10x real time.
6. tracker_node under a robot's input mix (``bench/bench_input_mix.py``): image 30/60 Hz +
   camera_info + range 50 Hz + imu 200/1000 Hz, each from its own process, beside the null
   node's floor and the pipeline's own time measured in the same run. Budget: p50 <= floor
   p50 + pipeline p50 + 1 ms, every frame answered, no imu sample lost.
7. Velocities (``bench/bench_velocity_accuracy.py``): per-track velocity error at the image
   stamp, ``flow/velocity`` RMSE, 1-/3-sigma coverage and median NEES on the held-out,
   fresh, lens and steady-turn simulated flights (never tuned on), with the issue's sensor
   noise and without any,
   with and without gyro (one sample per frame, and a 200 Hz IMU), beside the slope
   estimator's RMSE on the same frames; and the per-track estimator's cost (motion_field vs
   slope). The noisy flights again over three draws of their noise
   (``bench/velocity_calibration.py``): the median NEES per draw and pooled, the squared z
   along and across the velocity, and the covariance terms' shares across it.
   Budgets: the issue's bounds.

Writes ``BENCHMARKS.md`` (tables, PASS/FAIL budget lines) and ``bench/results.json`` (raw
figures, machine info, versions). DDS stays on loopback (``ROS_AUTOMATIC_DISCOVERY_RANGE=
LOCALHOST``) on a domain of this run's own; section 2's processes load
``config/fastdds_large_images.xml`` (bgr8 frames of 640x480 and up do not fit Fast DDS's
default 512 KiB shared-memory segment).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
for path in (ROOT, BENCH, ROOT / "test"):
    sys.path.insert(0, str(path))

from optical_flow_ros.ros.fastdds_profile import (  # noqa: E402
    PROFILE_VARIABLES,
    profiles_file_variable,
)
from optical_flow_ros.ros.ros_distro import ros_distro  # noqa: E402
from optical_flow_ros.tools.node_process import NodeProcess, confine_dds  # noqa: E402

# Before anything imports rclpy; every child process inherits these.
DOMAIN_ID = confine_dds()
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
from ros_log_dir import private_ros_log_dir  # noqa: E402

private_ros_log_dir("bench_run_all_logs_")

import bench_dense  # noqa: E402
import bench_image_conversion  # noqa: E402
import bench_tracker  # noqa: E402
import bench_velocity_accuracy  # noqa: E402
import cv2  # noqa: E402
import dense_frontier  # noqa: E402
import e2e_camera  # noqa: E402
import numpy as np  # noqa: E402
import velocity_calibration  # noqa: E402
import velocity_flights  # noqa: E402

from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig  # noqa: E402

DEFAULT_THREADS = cv2.getNumThreads()   # OpenCV's own default in this process (all cores)
FASTDDS_PROFILE = ROOT / "config" / "fastdds_large_images.xml"
TRACKER_RATIO_BUDGET = bench_tracker.TARGET_RATIO
E2E_SLACK_MS = 2.0
BACKLOG_GROWTH_MS = 2.0       # p50 of the last 10 s may exceed the first 10 s by this much
BACKLOG_MIN_PROCESSED = 0.95  # share of sent frames the node must answer in the 60 s run
SHAPES_E2E = {"640x480": (480, 640), "1280x720": (720, 1280)}

Check = tuple[str, bool, str]     # (budget line, passed, figures)


def set_threads(threads: int) -> None:
    """cv2.setNumThreads, with 0 meaning OpenCV's default (as the node's parameter).

    OpenCV's own ``setNumThreads(0)`` would switch threading off, so 0 restores the
    default thread count this process started with.
    """
    cv2.setNumThreads(threads if threads > 0 else DEFAULT_THREADS)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def log(text: str) -> None:
    print(text, flush=True)


# ---- machine -------------------------------------------------------------------------------

def machine_info() -> dict:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "opencv": cv2.__version__,
        "numpy": np.__version__, "ros_distro": ros_distro(), "rclpy": version("rclpy"),
        "rmw_fastrtps_cpp": version("ros-rmw-fastrtps-cpp"),
        "platform": platform.platform(), "cpu_model": model,
        "cpu_count": os.cpu_count(), "cpu_affinity": len(os.sched_getaffinity(0)),
        "cv2_getNumberOfCPUs": cv2.getNumberOfCPUs(),
        "cv2_getNumThreads_default": DEFAULT_THREADS,
        "load_average_start": list(os.getloadavg()),
        "rmw": os.environ["RMW_IMPLEMENTATION"], "ros_domain_id": DOMAIN_ID,
        "git_commit": commit,
    }


# ---- section 1: tracker core vs seed loop ------------------------------------------------

def section_tracker(n_frames: int, rounds: int) -> tuple[dict, list[Check]]:
    """Core vs lk_track.py's loop, bench_tracker's variants, same frames, taking turns."""
    base = TrackerConfig(spread="none", ransac="none", border_margin=0.0)
    node_defaults = TrackerConfig()
    variants: dict[str, Callable[[], object]] = {
        "seed-capped": lambda: bench_tracker.SeedLoop(base, capped=True),
        "core": lambda: bench_tracker.CoreLoop(base),
        "core, node defaults": lambda: bench_tracker.CoreLoop(node_defaults),
        "seed (uncapped)": lambda: bench_tracker.SeedLoop(base, capped=False),
    }
    results, checks = {}, []
    for shape in bench_tracker.SIZES:
        size = f"{shape[1]}x{shape[0]}"
        frames, homs = bench_tracker.make_frames(shape, n_frames)
        errors = {name: bench_tracker.step_error(make(), frames, homs)
                  for name, make in variants.items()}
        for threads in (1, 2):
            set_threads(threads)
            times: dict[str, list[float]] = {v: [] for v in variants}
            counts: dict[str, list[int]] = {v: [] for v in variants}
            for _ in range(rounds):
                for name, make in variants.items():
                    t, c = bench_tracker.time_loop(make(), frames, warmup=10)
                    times[name] += t
                    counts[name] += c
            cell = {name: {"p50_ms": pct(times[name], 50), "p99_ms": pct(times[name], 99),
                           "mean_ms": float(np.mean(times[name])),
                           "mean_tracks": float(np.mean(counts[name])),
                           "step_error_px": errors[name],
                           "times_ms": [round(x, 3) for x in times[name]]}
                    for name in variants}
            ratio = cell["core"]["p50_ms"] / cell["seed-capped"]["p50_ms"]
            cell["ratio_p50_core_over_seed_capped"] = ratio
            cell["ratio_p99_core_over_seed_capped"] = (cell["core"]["p99_ms"]
                                                       / cell["seed-capped"]["p99_ms"])
            results[f"{size} threads={threads}"] = cell
            checks.append((f"1. tracker core / seed loop p50 <= {TRACKER_RATIO_BUDGET}, {size}, "
                           f"{threads} thread{'s' if threads > 1 else ''}",
                           ratio <= TRACKER_RATIO_BUDGET,
                           f"{cell['core']['p50_ms']:.2f} / {cell['seed-capped']['p50_ms']:.2f}"
                           f" ms = {ratio:.2f}"))
            log(f"  {size} {threads} thr: core p50 {cell['core']['p50_ms']:.2f} ms vs seed "
                f"{cell['seed-capped']['p50_ms']:.2f} ms -> {ratio:.2f}")
    set_threads(0)
    return results, checks


# ---- section 2: end to end over DDS ------------------------------------------------------

def core_paced(shape: tuple[int, int], rate: float, threads: int, n: int) -> dict:
    """LKTracker.update (node defaults) on the camera's frames, one call per camera period.

    The CPU idles between frames as it does in the node at that rate (cold caches and
    OpenCV workers: slower than back to back), so this is the core figure the node's
    latency budget adds to the floor.
    """
    set_threads(threads)
    grays = e2e_camera.gray_frames(shape)
    tracker = LKTracker(TrackerConfig())
    period = 1.0 / rate
    times, counts = [], []
    next_t = time.perf_counter()
    for i in range(n + 10):
        delay = next_t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        tracks = tracker.update(grays[e2e_camera.frame_index(i, len(grays))], i * period)
        dt = (time.perf_counter() - t0) * 1e3
        if i >= 10:
            times.append(dt)
            counts.append(len(tracks))
        next_t += period
    set_threads(0)
    return {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "mean_tracks":
            float(np.mean(counts)), "frames": len(times)}


def alternate(phase: str, targets: list[str], shape: str, rate: float, block_s: float,
              rounds: int) -> list[dict]:
    """A warm-up block per target, then ``rounds`` rounds of one block per target.

    The order rotates each round so that no target always follows the same one.
    """
    hw = list(SHAPES_E2E[shape])
    sched = [{"phase": phase, "target": t, "shape": hw, "rate": rate, "seconds": 1.0,
              "record": False} for t in targets]
    for r in range(rounds):
        order = targets[r % len(targets):] + targets[:r % len(targets)]
        sched += [{"phase": phase, "target": t, "shape": hw, "rate": rate,
                   "seconds": block_s, "record": True} for t in order]
    return sched


def summarise(blocks: list[dict], rx: dict[str, dict[int, int]]) -> dict:
    """Latency and resource figures of the recorded blocks of one (phase, target)."""
    lat, sent, answered = [], 0, 0
    cpu_s = wall_s = camera_cpu_s = 0.0
    rss = []
    for block in blocks:
        got = rx.get(block["target"], {})
        for stamp in block["sent"]:
            sent += 1
            if stamp in got:
                answered += 1
                lat.append((got[stamp] - stamp) * 1e-6)
        cpu_s += block["cpu_s"]
        camera_cpu_s += block["camera_cpu_s"]
        wall_s += block["wall_s"]
        rss += [kib for _, kib in block["rss_kib"]] + [block["vm_rss_kib"]]
    diag = blocks[-1]["diagnostics"] if blocks else {}
    return {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "mean_ms":
            float(np.mean(lat)) if lat else float("nan"), "sent": sent, "answered": answered,
            "cpu_percent": 100.0 * cpu_s / wall_s if wall_s else float("nan"),
            "camera_cpu_percent": 100.0 * camera_cpu_s / wall_s if wall_s else float("nan"),
            "rss_mib_max": max(rss) / 1024 if rss else float("nan"),
            "hwm_mib": max(b["vm_hwm_kib"] for b in blocks) / 1024 if blocks else float("nan"),
            "node_processing_ms_p50": diag.get("processing_ms_p50"),
            "node_processing_ms_p99": diag.get("processing_ms_p99"),
            "node_live_tracks": diag.get("live"),
            "latencies_ms": [round(x, 3) for x in lat]}


def backlog(block: dict, rx: dict[int, int]) -> dict:
    """Latency p50 of the first vs the last 10 s of one continuous block; RSS drift."""
    t0, t1 = block["sent"][0], block["sent"][-1]
    first = [(rx[s] - s) * 1e-6 for s in block["sent"] if s - t0 < 10e9 and s in rx]
    last = [(rx[s] - s) * 1e-6 for s in block["sent"] if t1 - s < 10e9 and s in rx]
    rss = block["rss_kib"]
    return {"first10_p50_ms": pct(first, 50), "last10_p50_ms": pct(last, 50),
            "first10_p99_ms": pct(first, 99), "last10_p99_ms": pct(last, 99),
            "rss_mib_first": rss[0][1] / 1024 if rss else float("nan"),
            "rss_mib_last": rss[-1][1] / 1024 if rss else float("nan")}


def profile_table(path: Path, top: int = 15) -> tuple[dict, list[dict]]:
    """Per-frame breakdown of the profile, and its functions by own time per frame.

    The executor's idle wait (``_rclpy_pybind11.wait``) is left out of both.
    """
    stats = pstats.Stats(str(path)).stats

    def cumulative(file_end: str, func: str) -> float:
        return sum(ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                   if name == func and file.endswith(file_end))

    frames = max((nc for (file, _, func), (_, nc, *_rest) in stats.items()
                  if func == "process" and file.endswith("tracker_pipeline.py")), default=0)
    per_frame = 1e3 / max(frames, 1)
    wait = sum(tt for (_, _, func), (_, _, tt, _, _) in stats.items()
               if "_rclpy_pybind11.wait>" in func)
    busy = sum(v[2] for v in stats.values()) - wait      # v = (cc, nc, tt, ct, callers)
    callback = cumulative("image_input.py", "_on_message")
    take = cumulative("", "<built-in method rclpy._rclpy_pybind11.take_message>")
    breakdown = {
        "frames": frames,
        "process busy (all but the idle wait)": busy * per_frame,
        "image callback (decode, grey, track, publish)": callback * per_frame,
        "  of which LKTracker.update": cumulative("lk_tracker.py", "update") * per_frame,
        "  of which publish flow/tracks (whole process: + diagnostics)":
            cumulative("", "<built-in method rclpy._rclpy_pybind11.publish>") * per_frame,
        "take + deserialise the Image": take * per_frame,
        "executor and everything else": (busy - callback - take) * per_frame,
    }
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.items():
        if "_rclpy_pybind11.wait>" in func:
            continue
        name = f"{Path(file).name}:{line}({func})" if line else func
        rows.append({"function": name, "calls": nc, "tottime_ms_per_frame": tt * per_frame,
                     "cumtime_ms_per_frame": ct * per_frame})
    rows.sort(key=lambda r: r["tottime_ms_per_frame"], reverse=True)
    return breakdown, rows[:top]


def section_e2e(quick: bool, workdir: Path,
                profile_out: Path | None = None) -> tuple[dict, list[Check]]:
    """Nodes in their own processes, the camera in another; see the module docstring."""
    block_s = 1.0 if quick else 2.0
    rounds = 2 if quick else 5           # 640x480@30; the other runs one or two fewer
    long_s = 20.0 if quick else 60.0
    floor_s = 4.0 if quick else 6.0
    trackers = {"t0": 0, "t1": 1, "t2": 2}       # name -> opencv_threads
    all_targets = ["null", *trackers]

    log("  core, paced at the camera rate (node defaults), before the node processes start")
    core = {}
    for shape, rate, threads in (("640x480", 30, 0), ("640x480", 60, 0), ("1280x720", 30, 0),
                                 ("640x480", 30, 1), ("640x480", 30, 2)):
        n = 60 if quick else 150
        core[f"{shape}@{rate} threads={threads}"] = core_paced(SHAPES_E2E[shape], rate,
                                                               threads, n)

    schedule = alternate("640x480@30", all_targets, "640x480", 30, block_s, rounds)
    schedule += [{"phase": "640x480@30 continuous", "target": t, "shape": [480, 640],
                  "rate": 30, "seconds": s, "record": rec}
                 for t, s, rec in (("null", 1.0, False), ("null", floor_s / 2, True),
                                   ("t0", long_s, True), ("null", floor_s / 2, True))]
    schedule += alternate("640x480@60", all_targets, "640x480", 60, block_s,
                          max(2, rounds - 1))
    schedule += alternate("1280x720@30", all_targets, "1280x720", 30, block_s,
                          max(2, rounds - 1))
    busy_phase = "640x480@30 + 1-core CPU hog"
    busy_start = len(schedule)
    schedule += alternate(busy_phase, all_targets, "640x480", 30, block_s, max(1, rounds - 2))
    busy_end = len(schedule)
    profile_s = 5.0 if quick else 10.0
    schedule += [{"phase": "profile", "target": "prof", "shape": [480, 640], "rate": 30,
                  "seconds": s, "record": rec} for s, rec in ((1.0, False), (profile_s, True))]

    saved_env = {k: os.environ.get(k) for k in PROFILE_VARIABLES}
    os.environ[profiles_file_variable()] = str(FASTDDS_PROFILE)
    prof_path = workdir / "tracker_node.prof"
    nodes: dict[str, NodeProcess] = {}
    hog = None
    try:
        nodes["null"] = NodeProcess(str(BENCH / "null_node.py"), namespace="/null")
        for name, threads in trackers.items():
            nodes[name] = NodeProcess("optical_flow_ros.nodes.tracker_node", namespace=f"/{name}",
                                      params={"opencv_threads": threads})
        nodes["prof"] = NodeProcess(str(BENCH / "profiled_tracker_node.py"), namespace="/prof",
                                    args=[str(prof_path)])
        plan_path, out_path = workdir / "plan.json", workdir / "e2e.json"
        # The CPU hog runs during its phase only: split the schedule in three camera runs
        # would restart discovery; instead the camera runs once and this process starts and
        # stops the hog when the camera reports the phase (its stdout).
        plan = {"targets": {name: {"ns": f"/{name}", "pid": proc.proc.pid}
                            for name, proc in nodes.items()},
                "schedule": schedule, "out": str(out_path),
                "announce": [busy_start, busy_end]}
        plan_path.write_text(json.dumps(plan))
        total = sum(b["seconds"] for b in schedule)
        log(f"  camera: {len(schedule)} blocks, {total:.0f} s of frames; nodes: "
            f"{', '.join(nodes)} (opencv_threads t0=0 (default {DEFAULT_THREADS}), t1=1, t2=2)")
        camera = subprocess.Popen([sys.executable, str(BENCH / "e2e_camera.py"), str(plan_path)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert camera.stdout is not None
        camera_log = []
        for line in camera.stdout:
            camera_log.append(line)
            if line.startswith("block ") and int(line.split()[1]) == busy_start:
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                log("  CPU hog started")
            elif line.startswith("block ") and int(line.split()[1]) == busy_end and hog:
                hog.send_signal(signal.SIGTERM)
                hog.wait()
                hog = None
                log("  CPU hog stopped")
        rc = camera.wait(timeout=total + 180)
        if rc != 0 or not out_path.exists():
            raise RuntimeError(f"e2e camera failed ({rc}):\n{''.join(camera_log)[-3000:]}\n"
                               + "\n".join(f"{n}: {p.output()[-1500:]}" for n, p in
                                           nodes.items()))
    finally:
        if hog is not None:
            hog.send_signal(signal.SIGTERM)
            hog.wait()
        for proc in nodes.values():
            proc.stop(signal.SIGINT, timeout=20.0)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    raw = json.loads(out_path.read_text())
    rx = {name: {s: r for s, r in pairs} for name, pairs in raw["received"].items()}
    phases: dict[str, dict[str, dict]] = {}
    for phase in dict.fromkeys(b["phase"] for b in raw["blocks"]):
        phases[phase] = {}
        for target in dict.fromkeys(b["target"] for b in raw["blocks"] if b["phase"] == phase):
            blocks = [b for b in raw["blocks"] if b["phase"] == phase and b["target"] == target
                      and b["record"]]
            phases[phase][target] = summarise(blocks, rx)
    long_block = next(b for b in raw["blocks"] if b["phase"] == "640x480@30 continuous"
                      and b["target"] == "t0" and b["record"])
    drift = backlog(long_block, rx.get("t0", {}))
    prof_breakdown, profile = profile_table(prof_path) if prof_path.exists() else ({}, [])
    if profile_out is not None and prof_path.exists():
        profile_out.write_bytes(prof_path.read_bytes())

    checks = []
    for phase, core_key in (("640x480@30", "640x480@30 threads=0"),
                            ("640x480@60", "640x480@60 threads=0"),
                            ("1280x720@30", "1280x720@30 threads=0"),
                            ("640x480@30 continuous", "640x480@30 threads=0")):
        t, f, c = phases[phase]["t0"], phases[phase]["null"], core[core_key]
        limit = f["p50_ms"] + c["p50_ms"] + E2E_SLACK_MS
        checks.append((f"2. node p50 <= floor p50 + core p50 + {E2E_SLACK_MS:g} ms, {phase}",
                       t["p50_ms"] <= limit,
                       f"{t['p50_ms']:.2f} ms <= {f['p50_ms']:.2f} + {c['p50_ms']:.2f} + "
                       f"{E2E_SLACK_MS:g} = {limit:.2f} ms"))
    t = phases["640x480@30 continuous"]["t0"]
    growth = drift["last10_p50_ms"] - drift["first10_p50_ms"]
    share = t["answered"] / t["sent"] if t["sent"] else 0.0
    checks.append((f"2. no backlog over {long_s:g} s at 30 Hz 640x480: p50 last 10 s - first "
                   f"10 s <= {BACKLOG_GROWTH_MS:g} ms, processed/sent >= "
                   f"{BACKLOG_MIN_PROCESSED:.0%}",
                   growth <= BACKLOG_GROWTH_MS and share >= BACKLOG_MIN_PROCESSED,
                   f"{drift['first10_p50_ms']:.2f} -> {drift['last10_p50_ms']:.2f} ms "
                   f"({growth:+.2f}), {t['answered']}/{t['sent']} = {share:.1%}"))
    for phase, by_target in phases.items():
        for target, s in by_target.items():
            log(f"  {phase:30s} {target:5s} p50 {fmt(s['p50_ms'])} p99 {fmt(s['p99_ms'])} ms "
                f"{s['answered']}/{s['sent']} CPU {fmt(s['cpu_percent'], 0)} % RSS "
                f"{fmt(s['rss_mib_max'], 0)} MiB")
    results = {"encoding": "bgr8", "fastdds_profile": str(FASTDDS_PROFILE.relative_to(ROOT)),
               "fastdds_profile_variable": profiles_file_variable(),
               "block_s": block_s, "rounds": rounds, "continuous_s": long_s,
               "opencv_threads": trackers, "core_paced": core, "phases": phases,
               "backlog": drift, "profile_breakdown": prof_breakdown, "profile_top": profile,
               "camera_connected": raw["connected"]}
    return results, checks


# ---- section 3: dense --------------------------------------------------------------------

def section_dense(seconds: float) -> tuple[dict, list[Check]]:
    """bench_dense's cells: ms/frame (median) and EPE per method, resolution, threads."""
    cells = []
    for shape in bench_dense.RESOLUTIONS:
        prev, nxt, truth, border = bench_dense.known_motion_pair(shape)
        for threads in bench_dense.THREADS:
            set_threads(threads)
            timed = bench_dense.median_ms(bench_dense.METHODS, prev, nxt, seconds)
            base_ms = timed[bench_dense.BASELINE][0]
            base_epe = bench_dense.inner_epe(timed[bench_dense.BASELINE][1], truth, border)
            for name in bench_dense.METHODS:
                ms, flow = timed[name]
                epe = bench_dense.inner_epe(flow, truth, border)
                cells.append({"method": name, "size": f"{shape[1]}x{shape[0]}",
                              "threads": threads, "ms": ms, "fps": 1e3 / ms,
                              "speedup_vs_farneback": base_ms / ms, "epe_px": epe,
                              "epe_over_farneback": epe / base_epe})
        log(f"  {shape[1]}x{shape[0]} done")
    set_threads(0)
    left, right, moto_truth = bench_dense.gt.stereo_motorcycle()
    moto = {name: bench_dense.gt.endpoint_error(
        bench_dense.DenseFlow(config).compute(left, right), moto_truth)
        for name, config in bench_dense.METHODS.items()}

    def cell(name: str, size: str, threads: int) -> dict:
        return next(c for c in cells if c["method"] == name and c["size"] == size
                    and c["threads"] == threads)

    fps = cell(bench_dense.DEFAULT, "640x480", 2)["fps"]
    checks = [
        (f"3. dense default (dis_balanced) >= {bench_dense.TARGET_FPS:g} frames/s at 640x480, "
         "2 threads", fps >= bench_dense.TARGET_FPS,
         f"{fps:.0f} fps = {cell(bench_dense.DEFAULT, '640x480', 2)['speedup_vs_farneback']:.0f}"
         " x Farneback"),
        (f"3. dense default EPE <= {bench_dense.TARGET_EPE} px on Middlebury motorcycle",
         moto[bench_dense.DEFAULT] <= bench_dense.TARGET_EPE,
         f"{moto[bench_dense.DEFAULT]:.2f} px (Farneback {moto[bench_dense.BASELINE]:.2f})"),
        (f"3. dense DIS medium EPE <= {bench_dense.TARGET_QUALITY_EPE} px on "
         "motorcycle", moto[bench_dense.QUALITY] <= bench_dense.TARGET_QUALITY_EPE,
         f"{moto[bench_dense.QUALITY]:.2f} px"),
    ]
    return {"cells": cells, "motorcycle_epe_px": moto, "seconds_per_cell": seconds}, checks


def section_dense_frontier(quick: bool) -> tuple[dict, list[Check]]:
    """The committed sweep's frontier and a re-measure of the shipped methods now."""
    results = dense_frontier.sw.load(dense_frontier.sw.RESULTS)
    chosen, _ = dense_frontier.sw.choose_default(results)
    data = dense_frontier.remeasure(7 if quick else 15)
    set_threads(0)
    default = data["methods"]["dis_balanced"]
    ratio = default["time"]["2"]["ratio"]
    within, total = dense_frontier.remeasure_within(data, "dis_balanced")
    checks = [
        (f"3. dense default (dis_balanced) <= {dense_frontier.TIME_LIMIT:g}x DIS medium's time "
         "at 640x480, 2 threads", ratio <= dense_frontier.TIME_LIMIT,
         f"{ratio:.2f}x ({default['time']['2']['ms']:.1f} vs "
         f"{default['time']['2']['baseline_ms']:.1f} ms; 1 thread "
         f"{default['time']['1']['ratio']:.2f}x)"),
        (f"3. dense default within {dense_frontier.TOLERANCE:g}x EPE of the better of Farneback "
         "/ DIS medium on the motorcycle pair and 10 Middlebury smooth fields",
         within == total, f"{within}/{total} scenes"),
    ]
    return {"remeasure": data, "sweep_date": results["meta"].get("updated"),
            "sweep_chosen": chosen,
            "sweep_table": dense_frontier.markdown_table(results, chosen,
                                                         dense_frontier.table_names(chosen)),
            "sweep_sizes_table": dense_frontier.sizes_table(results, chosen,
                                                            dense_frontier.table_names(chosen)),
            "sweep_settings": len(results["configs"])}, checks


# ---- section 4: conversion ---------------------------------------------------------------

def section_conversion(reps: int, naive_reps: int) -> tuple[dict, list[Check]]:
    rows = bench_image_conversion.measure(reps, naive_reps, list(bench_image_conversion.SIZES))
    out = [{"case": case, "direction": direction, "ours_ms": ours, "baseline": baseline,
            "baseline_ms": base, "speedup": base / ours}
           for case, direction, ours, baseline, base in rows]
    return {"rows": out, "reps": reps, "naive_reps": naive_reps}, []


# ---- section 5: process-bag --------------------------------------------------------------

def section_process_bag(quick: bool) -> tuple[dict, list[Check]]:
    """Run bench/bench_process_bag.py (its own CLI) if it exists and imports.

    Its table (configuration, x real time, frames/s, frames) and its own PASS/FAIL lines
    are read from its output; the script is someone else's and may change, so whatever
    cannot be parsed is kept as text.
    """
    script = BENCH / "bench_process_bag.py"
    if not script.exists():
        return {"available": False, "reason": "bench/bench_process_bag.py does not exist"}, []
    try:
        importlib.import_module("bench_process_bag")
    except Exception as err:  # any import failure means "not available"
        return {"available": False, "reason": f"import failed: {err!r}"}, []
    cmd = [sys.executable, str(script), "--rounds", "1" if quick else "3"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              timeout=300 if quick else 600)
    except subprocess.TimeoutExpired:
        return {"available": True, "ok": False, "reason": "timed out"}, []
    output = proc.stdout + proc.stderr
    columns: list[str] = []
    rows: list[dict] = []
    for line in output.splitlines():       # its table: columns split by 2+ spaces
        fields = re.split(r"\s{2,}", line.strip())
        if not columns:
            if "x real time" in fields:
                columns = fields
        elif len(fields) == len(columns):
            rows.append(dict(zip(columns, fields, strict=True)))
        elif rows:
            break
    checks = []
    for line in output.splitlines():
        if line.startswith(("PASS ", "FAIL ")):
            name, _, figures = line[4:].strip().partition(": ")
            checks.append((f"5. {name} (bench_process_bag.py's own target)",
                           line.startswith("PASS"), figures))
    return {"available": True, "ok": proc.returncode == 0, "returncode": proc.returncode,
            "command": " ".join(Path(c).name if c == sys.executable else c for c in cmd),
            "columns": columns, "rows": rows, "output": output[-4000:]}, checks


# ---- section 6: input mix ---------------------------------------------------------------

def section_input_mix(quick: bool, workdir: Path) -> tuple[dict, list[Check]]:
    """Run bench/bench_input_mix.py and read its JSON; its budget lines become checks.

    Targets: tracker_node as shipped, the null node's floor and the node as before (the
    executor woken per sensor message, imu queue depth 5; the executor levers are measured
    by the script itself on request). Per phase
    and target: latency, frames answered, imu received / sent, CPU.
    """
    out = workdir / "input_mix.json"
    cmd = [sys.executable, str(BENCH / "bench_input_mix.py"), "--targets", "null,node,before",
           "--json", str(out)] + (["--quick"] if quick else [])
    env = {**os.environ, "BENCH_DOMAIN_ID": str(DOMAIN_ID)}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env,
                              timeout=400 if quick else 600)
    except subprocess.TimeoutExpired:
        return {"ok": False, "reason": "timed out"}, []
    if proc.returncode != 0 or not out.exists():
        return {"ok": False, "reason": f"exit code {proc.returncode}",
                "output": (proc.stdout + proc.stderr)[-4000:]}, []
    data = json.loads(out.read_text())
    checks = [(f"6. {c['budget']}", c["pass"], c["figures"]) for c in data["checks"]]
    return {"ok": True, **data}, checks


# ---- section 7: velocities ----------------------------------------------------------------

def section_velocity(quick: bool) -> tuple[dict, list[Check]]:
    """Accuracy and calibration of the velocities (see bench/bench_velocity_accuracy.py)."""
    rows, calibration = [], []
    draws = 2 if quick else velocity_calibration.DRAWS
    for flight in bench_velocity_accuracy.flights("held_out,fresh,lens,turns", quick):
        noisy = velocity_flights.record(flight)   # both tables' first draw
        for variant in (flight, flight.quiet()):
            rows.append(bench_velocity_accuracy.measure(
                variant, slope=variant is flight, rec=noisy if variant is flight else None))
            log("   " + bench_velocity_accuracy.format_row(rows[-1], "gyro"))
        calibration.append(velocity_calibration.measure(flight, draws, first=noisy))
        log("   " + velocity_calibration.format_row(calibration[-1]))
    checks = [(f"7. {text}", ok, figures)
              for text, ok, figures in bench_velocity_accuracy.checks(rows)]
    lo, hi = bench_velocity_accuracy.BOUNDS["nees"]
    pooled = [r["nees"] for r in calibration]
    checks.append((f"7. median NEES of (vx, vy) {lo:g}-{hi:g} pooled over {draws} draws of the "
                   "noise (noisy, gyro one sample per frame)", all(lo <= v <= hi for v in pooled),
                   ", ".join(f"{v:.2f}" for v in pooled)))
    cost = bench_velocity_accuracy.estimator_cost(40 if quick else 90)
    return {"rows": rows, "calibration": calibration, "cost_ms": cost}, checks


# ---- report ------------------------------------------------------------------------------

def table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: dict, checks: list[Check], command: str) -> str:
    m = results["machine"]
    out = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` (do not edit by hand) on {m['date_utc']}, "
        f"{results['runtime_s']:.0f} s in all. Raw figures, per-frame times and machine "
        "details: `bench/results.json`.",
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} CPUs (shared with other users: "
        f"load average {m['load_average_start'][0]:.2f} at the start, "
        f"{m['load_average_end'][0]:.2f} at the end). Python {m['python']}, OpenCV "
        f"{m['opencv']} (default threads {m['cv2_getNumThreads_default']}), numpy "
        f"{m['numpy']}, ROS 2 {m.get('ros_distro', '?')} (rclpy {m['rclpy']}, {m['rmw']} "
        f"{m['rmw_fastrtps_cpp']}): every figure below was measured on this distro.",
        "",
        "Absolute times on this machine are noisy; each figure stands beside its baseline "
        "measured in the same run, and the budgets compare the two. Times are medians (p50) "
        "unless marked p99.",
        "",
        "## Budgets",
        "",
        table(["", "budget", "figures"],
              [["**PASS**" if ok else "**FAIL**", text, figures]
               for text, ok, figures in checks]),
    ]

    s1 = results.get("tracker")
    if s1:
        rows = []
        for key, cell in s1.items():
            seed, core = cell["seed-capped"], cell["core"]
            rows.append([key, f"{seed['p50_ms']:.2f} / {seed['p99_ms']:.2f}",
                         f"{core['p50_ms']:.2f} / {core['p99_ms']:.2f}",
                         f"**{cell['ratio_p50_core_over_seed_capped']:.2f}**",
                         f"{cell['ratio_p99_core_over_seed_capped']:.2f}",
                         f"{seed['mean_tracks']:.0f} / {core['mean_tracks']:.0f}",
                         f"{cell['core, node defaults']['p50_ms']:.2f}",
                         f"{cell['seed (uncapped)']['p50_ms']:.2f} "
                         f"({cell['seed (uncapped)']['mean_tracks']:.0f} tracks)",
                         f"{seed['step_error_px']:.3f} / {core['step_error_px']:.3f}"])
        out += ["", "## 1. Tracker core vs the seed's lk_track.py loop", "",
                "Same frames (gravel texture, 3 px + 0.15 deg per frame), same parameters "
                "(500 corners, quality 0.01, 15x15 window, 2 levels, FB 1 px, detection every 5 "
                "frames, no spread/RANSAC/border). Baseline: lk_track.py's per-frame calls "
                "with detection capped at the same 500 tracks (`seed-capped`; the original "
                "keeps appending tracks, last column). Variants take turns on the same frames.",
                "",
                table(["size, OpenCV threads", "seed ms p50 / p99", "core ms p50 / p99",
                       "core/seed p50", "core/seed p99", "tracks seed / core",
                       "core, node defaults p50", "seed uncapped p50", "step error px seed / "
                       "core"], rows)]

    s2 = results.get("e2e")
    if s2:
        phases, core = s2["phases"], s2["core_paced"]
        rows = []
        for phase, core_key in (("640x480@30", "640x480@30 threads=0"),
                                ("640x480@30 continuous", "640x480@30 threads=0"),
                                ("640x480@60", "640x480@60 threads=0"),
                                ("1280x720@30", "1280x720@30 threads=0")):
            t, f, c = phases[phase]["t0"], phases[phase]["null"], core[core_key]
            rows.append([phase, f"{f['p50_ms']:.2f} / {f['p99_ms']:.2f}",
                         f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f}",
                         f"{t['p50_ms'] - f['p50_ms']:+.2f}", f"{c['p50_ms']:.2f}",
                         f"{t['answered']}/{t['sent']}", f"{f['answered']}/{f['sent']}",
                         f"{t['cpu_percent']:.0f} / {f['cpu_percent']:.0f}",
                         f"{t['rss_mib_max']:.0f} / {f['rss_mib_max']:.0f}",
                         t["node_processing_ms_p50"] or "n/a"])
        d = s2["backlog"]
        out += ["", "## 2. tracker_node end to end over DDS", "",
                "Separate processes: a camera process publishes pre-rendered bgr8 frames (a "
                "colour photo moving 2 px + 0.1 deg per frame, ~500 tracks) at the exact rate, "
                "stamped with the wall clock, and receives `flow/tracks`; latency = receipt - "
                "image stamp. Floor: `bench/null_node.py` (same input QoS, best effort depth "
                "1; answers each image with an empty cloud). The floor and tracker_node "
                "(opencv_threads 0 = default) take turns in "
                f"{s2['block_s']:g} s blocks ({s2['rounds']} rounds), except the continuous "
                f"run ({s2['continuous_s']:g} s, floor before and after). Every process loads "
                f"`{s2['fastdds_profile']}` "
                f"({s2.get('fastdds_profile_variable', 'FASTDDS_DEFAULT_PROFILES_FILE')}): "
                "without it bgr8 "
                "frames of 640x480 and up are lost in Fast DDS's 512 KiB shared-memory "
                "segment. CPU % of one core, from /proc/<pid>/stat; RSS max from "
                "/proc/<pid>/status. `core` = LKTracker.update with the node's defaults on the "
                "same frames, one call per camera period, in the suite's process.",
                "",
                table(["run", "floor ms p50 / p99", "node ms p50 / p99", "node - floor p50",
                       "core p50", "node frames answered/sent", "floor answered/sent",
                       "CPU % node / floor", "RSS MiB node / floor",
                       "node's own processing p50 (diagnostics)"], rows),
                "",
                f"No backlog ({s2['continuous_s']:g} s continuous, 30 Hz 640x480): latency p50 "
                f"first 10 s {d['first10_p50_ms']:.2f} ms, last 10 s {d['last10_p50_ms']:.2f} ms"
                f" (p99 {d['first10_p99_ms']:.2f} -> {d['last10_p99_ms']:.2f} ms); node RSS "
                f"{d['rss_mib_first']:.0f} -> {d['rss_mib_last']:.0f} MiB."]

        rows = []
        for phase in ("640x480@30", "640x480@60", "1280x720@30", "640x480@30 + 1-core CPU hog"):
            f = phases[phase]["null"]
            for target in ("t0", "t1", "t2"):
                t = phases[phase][target]
                threads = s2["opencv_threads"][target]
                label = f"{threads}" + (f" (default = {DEFAULT_THREADS})" if threads == 0 else "")
                rows.append([phase, label, f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f}",
                             f"{t['p50_ms'] - f['p50_ms']:+.2f} / {t['p99_ms'] - f['p99_ms']:+.2f}",
                             f"{t['answered']}/{t['sent']}", f"{t['cpu_percent']:.0f}",
                             t["node_processing_ms_p50"] or "n/a",
                             f"{f['p50_ms']:.2f} / {f['p99_ms']:.2f}"])
        core_rows = [[key, f"{c['p50_ms']:.2f} / {c['p99_ms']:.2f}", f"{c['mean_tracks']:.0f}"]
                     for key, c in core.items()]
        out += ["", "### cv2.setNumThreads: tracker_node with opencv_threads 0 / 1 / 2", "",
                "Three tracker_node processes (opencv_threads 0, 1, 2) and the floor take "
                "turns in the same runs (0 and 2 are the same setting on this 2-CPU machine: "
                "their difference shows the noise). The last run adds a process that keeps "
                "one CPU busy (another node, a compiler, ...).",
                "",
                table(["run", "opencv_threads", "node ms p50 / p99", "node - floor p50 / p99",
                       "answered/sent", "CPU %", "node's own processing p50",
                       "floor ms p50 / p99"], rows),
                "",
                "Core alone, paced at the camera rate (same frames, node defaults):",
                "",
                table(["rate, OpenCV threads (0 = default)", "ms p50 / p99", "tracks"],
                      core_rows)]
        if s2["profile_top"]:
            rows = [[r["function"].replace("|", "/"), r["calls"],
                     f"{r['tottime_ms_per_frame']:.3f}", f"{r['cumtime_ms_per_frame']:.3f}"]
                    for r in s2["profile_top"]]
            brk = s2["profile_breakdown"]
            out += ["", f"### Profile of the tracker_node process (cProfile while frames "
                    f"arrive, {brk['frames']} frames at 30 Hz 640x480 bgr8)", "",
                    "`bench/profiled_tracker_node.py`; ms per frame, the executor's idle wait "
                    "left out; cProfile inflates Python-heavy parts.", "",
                    table(["where", "ms/frame"], [[k.replace("  ", "&nbsp;&nbsp;"),
                                                   f"{v:.3f}"] for k, v in brk.items()
                                                  if k != "frames"]),
                    "", "Top functions by own time:", "",
                    table(["function", "calls", "own ms/frame", "cumulative ms/frame"], rows)]

    s3 = results.get("dense")
    if s3:
        rows = [[c["size"], c["threads"], c["method"], f"{c['ms']:.2f}", f"{c['fps']:.0f}",
                 f"{c['speedup_vs_farneback']:.1f}x", f"{c['epe_px']:.3f}",
                 f"{c['epe_over_farneback']:.2f}"] for c in s3["cells"]]
        moto = s3["motorcycle_epe_px"]
        out += ["", "## 3. Dense flow", "",
                "`DenseFlow.compute` median ms per call after warm-up (methods take turns), "
                "EPE on the 'camera' photo under a known rotation + scaling + translation "
                "(border skipped). Baseline: Farneback with the tutorial's parameters.", "",
                table(["size", "OpenCV threads", "method", "ms", "frames/s",
                       "speed vs Farneback", "EPE px", "EPE / Farneback"], rows),
                "",
                "Middlebury stereo_motorcycle EPE (px): " + ", ".join(
                    f"{name} {epe:.2f}" for name, epe in moto.items())]

    s3b = results.get("dense_frontier")
    if s3b:
        out += ["", "### Dense flow: the speed-accuracy frontier of DIS's settings", "",
                f"From the sweep of {s3b['sweep_date']} (`bench/dense_sweep.json`, "
                f"{s3b['sweep_settings']} settings, `bench/sweep_dense.py`; plot "
                "`docs/dense_frontier.png`): single pairs, no temporal initialisation; EPE "
                "over 40 training scenes (smooth random fields and simulated camera motions "
                "over real photos, 0.3-40 px, and the motorcycle pair) and 42 held-out ones; "
                "ms at 640x480 = the ratio to DIS medium measured alongside x DIS medium's "
                "median ms over the sweep. 'within 1.1x' counts scenes where the setting's "
                "EPE <= 1.1 x the better of Farneback and DIS medium there.", "",
                s3b["sweep_table"], "",
                "The same settings at each size (sweep; ms as measured then, ratio to DIS "
                "medium alongside; geo-mean EPE over the training scenes built at that size):",
                "", s3b["sweep_sizes_table"], "",
                "Re-measured in this run (the shipped methods; EPE px per scene; time "
                "alternating with DIS medium):", "",
                dense_frontier.remeasure_markdown(s3b["remeasure"])]

    s4 = results.get("conversion")
    if s4:
        rows = [[r["case"], r["direction"], f"{r['ours_ms']:.3f}", r["baseline"],
                 f"{r['baseline_ms']:.3f}", f"{r['speedup']:.1f}x"] for r in s4["rows"]]
        out += ["", "## 4. Image <-> numpy conversion", "",
                "`array_to_image_msg` / `image_msg_to_array` (on a message deserialised from "
                "CDR, as a subscriber gets it) vs the usual ways, median ms.", "",
                table(["case", "direction", "ours ms", "baseline", "baseline ms",
                       "baseline / ours"], rows)]

    out += threads_summary(results)

    s5 = results.get("process_bag", {})
    out += ["", "## 5. Bag processing throughput", ""]
    if not s5.get("available"):
        out.append(f"not available ({s5.get('reason', 'not run')})")
    elif s5.get("rows"):
        out += [f"`bench/bench_process_bag.py` (exit code {s5['returncode']}): a sample bag "
                "(640x480 mono8, 30 fps) through `process_bag`; x real time = bag duration / "
                "wall time.", "",
                table(s5["columns"], [[r[c] for c in s5["columns"]] for r in s5["rows"]])]
    else:
        out += [f"`bench/bench_process_bag.py` exit code {s5.get('returncode')}, "
                f"{s5.get('reason', 'output not understood')}:", "", "```",
                s5.get("output", "").strip()[-3000:], "```"]

    s6 = results.get("input_mix", {})
    out += ["", "## 6. tracker_node under a robot's input mix", ""]
    if not s6.get("ok"):
        out += [f"not run or failed ({s6.get('reason', 'not run')})", "", "```",
                s6.get("output", "").strip()[-3000:], "```"]
    else:
        costs = ", ".join(f"{k} {v:.1f}" for k, v in s6["message_costs_us"].items())
        out += ["`bench/bench_input_mix.py`: 640x480 mono8 image + camera_info with every image "
                "+ range 50 Hz + imu, each from its own process; tracker_node as shipped "
                "(`node`), as before (woken per sensor message, imu queue depth 5: `before`), "
                "and the null node's "
                f"transport floor (`null`) take turns in {s6['block_s']:g} s blocks "
                f"({s6['rounds']} per phase). Pipeline alone = frame_from_msg + "
                "TrackerPipeline.process in one process, paced. Per message CPU us: "
                f"{costs}.", ""]
        rows = []
        for phase, cells in s6["phases"].items():
            own = s6["pipeline"][phase]
            rows.append([phase, "pipeline alone", f"{own['p50_ms']:.2f}", f"{own['p99_ms']:.2f}",
                         "", "", f"velocity stage p50 {own['velocity_p50_ms']:.2f} ms"])
            for name, c in cells.items():
                rows.append([phase, name, f"{c['p50_ms']:.2f}", f"{c['p99_ms']:.2f}",
                             f"{c['answered']}/{c['sent']}",
                             f"{c['imu_received']}/{c['imu_sent']}", f"{c['cpu_percent']:.0f} %"])
        out.append(table(["phase", "target", "p50 ms", "p99 ms", "frames answered",
                          "imu received/sent", "CPU / note"], rows))
    s7 = results.get("velocity")
    if s7:
        cost = s7["cost_ms"]
        out += ["", "## 7. Velocities: per-track at the stamp, ego-velocity calibration", "",
                "`bench/bench_velocity_accuracy.py`: simulated flights over real photos "
                "(640x480, f = 500 px, 15-60 Hz, 0.3-3 m/s, 1.2-9.5 m, turning, tilting "
                "+/-3-5 deg at 0.45-0.7 Hz; held-out, fresh and lens sets, never tuned on; the "
                "lens flights' camera_info has k1 = -0.25, k2 = 0.05 or k1 = -0.1; and 12 "
                "steady turns drawn at random, 1.5-6 m, 0.3-2 m/s, 0.1-0.5 rad/s), with the "
                "issue's sensor noise (image 2 grey levels, gyro 0.005 rad/s and range 1 % with "
                "their variances stated) and without any ('/quiet'), tracked by LKTracker with "
                "its defaults and estimated as tracker_node does, with and without gyro. Track "
                "error: median over all tracks and frames of |v - v_true| / |v_true| against "
                "the exact image velocity at the image stamp, and in px/s (median true speed). "
                "RMSE of (vx, vy) over the mean speed (with the flights' gyro, one sample per "
                "frame; with a 200 Hz IMU instead; and of the slope per-track estimator on the "
                "same frames and noise draws); shares of per-axis errors inside the "
                "published 1 and 3 sigma; median NEES of (vx, vy) (chi-square 2 dof: 1.39). "
                "Last column: with gyro and the range readings filtered over time "
                "(distance_filter, off by default): RMSE, the lower of vx's and vy's 3 sigma "
                "shares, median NEES.",
                "", bench_velocity_accuracy.markdown(s7["rows"]), ""]
        if s7.get("calibration"):
            out += ["### Calibration over draws of the noise, and the covariance's sources", "",
                    "`bench/velocity_calibration.py`: the noisy flights above with gyro (one "
                    "sample per frame) flown again with other draws of the same noise (the "
                    "simulator's seed; the same motion): one flight's median NEES is a noisy "
                    "figure (its frames' errors are correlated for seconds). Per flight: the "
                    "median NEES of each draw (the first is the table's above) and of all "
                    "frames; the mean squared z of the horizontal error along the true velocity "
                    "(mostly the range's relative error) and across it; the mean share of each "
                    "source of the published variance across the velocity "
                    "(`VelocityEstimate.covariance_terms`).", "",
                    velocity_calibration.markdown(s7["calibration"]), ""]
        out += [f"Per-track estimator cost (LKTracker.update, 500 tracks, 1 OpenCV thread, "
                f"median ms/frame): motion_field {cost['motion_field']:.2f}, slope "
                f"{cost['slope']:.2f}, difference {cost['difference']:.3f} ms."]
    return "\n".join(out) + "\n"


def threads_summary(results: dict) -> list[str]:
    """One table: every figure this run measured with OpenCV at 1 and at 2 threads."""
    rows = []

    def add(what: str, one: float, two: float, unit: str = "ms") -> None:
        rows.append([what, f"{one:.2f} {unit}", f"{two:.2f} {unit}", f"{two / one:.2f}"])

    s1 = results.get("tracker", {})
    for size in ("640x480", "1280x720"):
        if f"{size} threads=1" in s1:
            one, two = s1[f"{size} threads=1"]["core"], s1[f"{size} threads=2"]["core"]
            add(f"1. core back to back {size}, p50", one["p50_ms"], two["p50_ms"])
            add(f"1. core back to back {size}, p99", one["p99_ms"], two["p99_ms"])
    s2 = results.get("e2e")
    if s2:
        core = s2["core_paced"]
        add("2. core paced at 30 Hz 640x480, p50", core["640x480@30 threads=1"]["p50_ms"],
            core["640x480@30 threads=2"]["p50_ms"])
        for phase in ("640x480@30", "640x480@60", "1280x720@30", "640x480@30 + 1-core CPU hog"):
            one, two = s2["phases"][phase]["t1"], s2["phases"][phase]["t2"]
            add(f"2. node latency {phase}, p50", one["p50_ms"], two["p50_ms"])
            add(f"2. node latency {phase}, p99", one["p99_ms"], two["p99_ms"])
            add(f"2. node CPU {phase}", one["cpu_percent"], two["cpu_percent"], "%")
    s3 = results.get("dense")
    if s3:
        for size in ("640x480", "1280x720"):
            ms = {c["threads"]: c["ms"] for c in s3["cells"]
                  if c["method"] == bench_dense.DEFAULT and c["size"] == size}
            if 1 in ms and 2 in ms:
                add(f"3. dense default (dis_balanced) {size}", ms[1], ms[2])
    if not rows:
        return []
    return ["", "## cv2.setNumThreads: 1 vs 2 threads, every figure of this run", "",
            f"OpenCV's default here is {DEFAULT_THREADS} threads (all CPUs). Ratio = 2 threads "
            "/ 1 thread (below 1: threads help). Sections 1 and 3 run one process alone; "
            "section 2 is the node in its process with the camera and DDS beside it.", "",
            table(["figure", "1 thread", "2 threads", "ratio 2/1"], rows)]


def jsonable(value: object) -> object:
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (~2 min)")
    parser.add_argument("--sections", default="1,2,3,4,5,6,7",
                        help="comma-separated sections to run (default: all)")
    parser.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=BENCH / "results.json")
    parser.add_argument("--profile-out", type=Path,
                        help="also keep section 2's tracker_node profile (pstats) here")
    args = parser.parse_args()
    wanted = set(args.sections.split(","))
    t_start = time.perf_counter()
    results: dict = {"machine": machine_info(), "quick": args.quick}
    checks: list[Check] = []
    log(f"ROS 2 {ros_distro()}, ROS_DOMAIN_ID {DOMAIN_ID}, OpenCV {cv2.__version__} default "
        f"threads {DEFAULT_THREADS}, load {os.getloadavg()[0]:.2f}; "
        f"{'quick' if args.quick else 'full'}")
    with tempfile.TemporaryDirectory(prefix="bench_run_all_") as tmp:
        sections = [
            ("1", "tracker", "1. tracker core vs seed loop",
             lambda: section_tracker(60 if args.quick else 100, 1 if args.quick else 2)),
            ("2", "e2e", "2. tracker_node end to end over DDS",
             lambda: section_e2e(args.quick, Path(tmp), args.profile_out)),
            ("3", "dense", "3. dense flow",
             lambda: section_dense(0.2 if args.quick else 0.5)),
            ("3", "dense_frontier", "3. dense flow: speed-accuracy frontier",
             lambda: section_dense_frontier(args.quick)),
            ("4", "conversion", "4. image conversion",
             lambda: section_conversion(10 if args.quick else 30, 2 if args.quick else 3)),
            ("5", "process_bag", "5. process-bag throughput",
             lambda: section_process_bag(args.quick)),
            ("6", "input_mix", "6. tracker_node under a robot's input mix",
             lambda: section_input_mix(args.quick, Path(tmp))),
            ("7", "velocity", "7. velocities: accuracy and calibration",
             lambda: section_velocity(args.quick)),
        ]
        timings = {}
        for number, key, title, run in sections:
            if number not in wanted:
                continue
            log(f"\n== {title}")
            t0 = time.perf_counter()
            results[key], new_checks = run()
            timings[key] = time.perf_counter() - t0
            checks += new_checks
            log(f"   ({timings[key]:.0f} s)")
    results["section_seconds"] = timings
    results["runtime_s"] = time.perf_counter() - t_start
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["checks"] = [{"budget": text, "pass": ok, "figures": figures}
                         for text, ok, figures in checks]
    command = ".venv/bin/python bench/run_all.py" + (" --quick" if args.quick else "")
    args.markdown.write_text(report(results, checks, command))
    args.json.write_text(json.dumps(jsonable(results), indent=1))
    log("\n" + "\n".join(f"{'PASS' if ok else 'FAIL'}  {text}: {figures}"
                         for text, ok, figures in checks))
    log(f"\nwrote {args.markdown} and {args.json} ({results['runtime_s']:.0f} s)")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
