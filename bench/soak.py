"""Soak: every node at 60 Hz 640x480 from the simulated camera for minutes; then the long fuzz.

Run from the repository root (not part of CI)::

    .venv/bin/python bench/soak.py                       # 10 min at 60 Hz + 10,000-example fuzz
    .venv/bin/python bench/soak.py --minutes 2 --fuzz-examples 0

sim_camera_node (640x480 mono8, moving and yawing over gravel, with camera_info, range and
imu) feeds tracker_node (tracks + velocity) and dense_flow_node (DIS); a listener in this
process subscribes to flow/tracks and flow/dense (so dense flow is computed) and /diagnostics.
Every 5 s the resident set size (VmRSS from /proc) of each node process is sampled; the
listener times every output from the frame's publication (see :class:`Listener`). The node
logs are scanned for tracebacks and ERROR lines. At the end each node gets SIGINT (exit code
and time reported).

Then the fuzz suites run with ``OPTICAL_FLOW_ROS_FUZZ_EXAMPLES=<n>`` (default 10,000
examples per test): ``test/core/test_fuzz_image_codec.py``, ``test/core/test_fuzz_flow.py``
and ``test/test_robustness_frames.py``. They run after the soak, not during it, so that they
do not disturb its latency figures on a 2-core machine.

PASS/FAIL, per node: RSS growth after the warm-up (the first minute) < 5 MB (median of the
last minute's samples minus median of the first minute after warm-up), counted without the
shared-memory pages of Fast DDS's segments (see :func:`rss_mb`; both are printed); no latency
growth
(last-minute p50 <= 1.2 x second-minute p50 + 2 ms); zero tracebacks and ERROR lines in the
logs; SIGINT ends it within 2 s with exit code 0; the fuzz passes.
Exit code 0 when everything passes. DDS stays on loopback on a domain of this run's own.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optical_flow_ros.tools.node_process import NodeProcess, confine_dds  # noqa: E402

DOMAIN_ID = confine_dds()  # before rclpy starts; the node processes inherit it
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="soak_logs_"))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from optical_flow_ros.ros.fastdds_profile import profiles_file_variable  # noqa: E402
from optical_flow_ros.ros.qos import keep_last_qos  # noqa: E402

SAMPLE_S = 5.0
WARM_UP_S = 60.0
RSS_BUDGET_MB = 5.0
LATENCY_RATIO, LATENCY_SLACK_MS = 1.2, 2.0
SHUTDOWN_LIMIT_S = 2.0
FASTDDS_PROFILE = ROOT / "config" / "fastdds_large_images.xml"
FUZZ_FILES = ["test/core/test_fuzz_image_codec.py", "test/core/test_fuzz_flow.py",
              "test/test_robustness_frames.py"]
NODES = {
    "sim_camera_node": "optical_flow_ros.nodes.sim_camera_node",
    "tracker_node": "optical_flow_ros.nodes.tracker_node",
    "dense_flow_node": "optical_flow_ros.nodes.dense_flow_node",
}
OUTPUTS = {"flow/tracks": ("tracker_node", PointCloud2), "flow/dense": ("dense_flow_node", Image)}


def rss_mb(pid: int) -> tuple[float, float] | None:
    """(VmRSS, RssShmem) of a process in MB, None once it is gone.

    RssShmem is the part in shared memory: Fast DDS's segments (32 MiB per process with the
    large-image profile), whose pages count in every process that touches them as more
    buffers come into use, up to the segment size. It is bounded, not a leak; the soak's
    budget applies to the private part, RSS - RssShmem.
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = dict(re.findall(r"^(VmRSS|RssShmem):\s+(\d+) kB", text, re.MULTILINE))
    if "VmRSS" not in values:
        return None
    return int(values["VmRSS"]) / 1024.0, int(values.get("RssShmem", 0)) / 1024.0


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class Listener:
    """flow/tracks, flow/dense, camera_info and /diagnostics, timed on arrival.

    Latency of an output = its arrival minus the arrival of the camera_info with the same
    stamp, which sim_camera_node publishes right after the image in the same tick: the time
    from the camera publishing a frame to the node's answer, both seen by this process, so
    independent of how the camera stamps its frames. ``stamp_latency`` keeps arrival minus
    header stamp for reference.
    """

    def __init__(self, start: float) -> None:
        self.start = start
        self.node = rclpy.create_node("soak_listener")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.latency: dict[str, list[tuple[float, float]]] = defaultdict(list)  # (t s, ms)
        self.stamp_latency: dict[str, list[float]] = defaultdict(list)        # ms
        self.published: dict[int, float] = {}   # stamp ns -> camera_info arrival (monotonic)
        self.diagnostics: dict[str, dict[str, str]] = {}
        for topic, (_, msg_type) in OUTPUTS.items():
            self.node.create_subscription(msg_type, topic, self._timer_for(topic),
                                          keep_last_qos("best_effort", 1))
        self.node.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                      keep_last_qos("reliable", 10))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics,
                                      keep_last_qos("reliable", 10))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        now = time.monotonic()
        self.published[_stamp_ns(msg)] = now
        if len(self.published) > 1000:  # forget frames older than ~5 s
            for stamp in [s for s, t in self.published.items() if t < now - 5.0]:
                del self.published[stamp]

    def _timer_for(self, topic: str):
        def on_message(msg) -> None:
            now, wall = time.monotonic(), time.time()
            stamp_ns = _stamp_ns(msg)
            self.stamp_latency[topic].append((wall - stamp_ns * 1e-9) * 1e3)
            published = self.published.get(stamp_ns)
            if published is not None:
                self.latency[topic].append((now - self.start, (now - published) * 1e3))
        return on_message

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            values["level"] = str(int.from_bytes(status.level, "little")
                                  if isinstance(status.level, bytes) else status.level)
            self.diagnostics[status.hardware_id] = values

    def spin_for(self, seconds: float) -> None:
        """Spin the listener for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(end - time.monotonic(), 0.0)))

    def close(self) -> None:
        """Destroy the listener node."""
        self.executor.shutdown()
        self.node.destroy_node()


def log_problems(text: str) -> tuple[int, int, int]:
    """(tracebacks, ERROR lines, WARN lines) in a node's output."""
    lines = text.splitlines()
    return (sum("Traceback" in line for line in lines), sum("[ERROR]" in line for line in lines),
            sum("[WARN]" in line for line in lines))


def stop(procs: dict[str, NodeProcess]) -> dict[str, tuple[int | None, float]]:
    """SIGINT to every node at once; (exit code, seconds) each."""
    sent = time.monotonic()
    for proc in procs.values():
        if proc.alive():
            proc.proc.send_signal(signal.SIGINT)
    result: dict[str, tuple[int | None, float]] = {}
    while len(result) < len(procs) and time.monotonic() < sent + 10.0:
        for name, proc in procs.items():
            if name not in result and proc.proc.poll() is not None:
                result[name] = (proc.proc.returncode, time.monotonic() - sent)
        time.sleep(0.01)
    for name, proc in procs.items():
        if name not in result:
            proc.stop(signal.SIGKILL)
            result[name] = (None, time.monotonic() - sent)
    return result


def minute_p50(samples: list[tuple[float, float]], minutes: int) -> list[float]:
    """Median latency (ms) of each whole minute; NaN for a minute without samples."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, ms in samples:
        buckets[int(t // 60.0)].append(ms)
    return [float(np.median(buckets[m])) if buckets[m] else float("nan") for m in range(minutes)]


def rss_growth(samples: list[tuple[float, float]]) -> float:
    """MB: median of the last minute's samples minus median of the first minute after warm-up.

    Medians of a minute (12 samples): a process that allocates and frees multi-MB arrays every
    frame (dense flow: 2.4 MB per flow field) moves its RSS by several MB from one sample to
    the next as glibc maps and unmaps them; a leak moves the median.
    """
    after = [mb for t, mb in samples if t >= WARM_UP_S]
    if len(after) < 2:
        return float("nan")
    n = min(int(60.0 / SAMPLE_S), len(after) // 2)
    return float(np.median(after[-n:]) - np.median(after[:n]))


def run_fuzz(examples: int) -> tuple[bool, str]:
    """The fuzz suites with ``examples`` examples per test; (passed, pytest's summary line)."""
    env = dict(os.environ, OPTICAL_FLOW_ROS_FUZZ_EXAMPLES=str(examples))
    env.pop("ROS_DOMAIN_ID", None)  # the test suite picks its own
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", *FUZZ_FILES, "-q", "-p",
                           "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else proc.stderr.strip()[-300:]
    if proc.returncode != 0:
        print(proc.stdout[-5000:])
    return proc.returncode == 0, f"{summary} ({time.monotonic() - start:.0f} s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="soak duration (min)")
    parser.add_argument("--rate", type=float, default=60.0, help="camera frame rate (Hz)")
    parser.add_argument("--fuzz-examples", type=int, default=10_000,
                        help="Hypothesis examples per fuzz test after the soak; 0 = skip")
    parser.add_argument("--no-fastdds-profile", action="store_true",
                        help=f"do not load {FASTDDS_PROFILE.name} (shared-memory segment for "
                             "large images: flow/dense is 2.4 MB per frame)")
    args = parser.parse_args()
    duration = args.minutes * 60.0
    minutes = max(1, int(round(args.minutes)))
    if not args.no_fastdds_profile:
        os.environ[profiles_file_variable()] = str(FASTDDS_PROFILE)

    sim = dict(rate=args.rate, image_width=640, image_height=480, velocity_x=1.0,
               velocity_amplitude=0.3, yaw_rate=0.2, altitude=5.0)
    print(f"soak: {args.minutes:g} min, sim_camera_node {args.rate:g} Hz 640x480 mono8 -> "
          f"tracker_node, dense_flow_node; ROS_DOMAIN_ID={DOMAIN_ID}", flush=True)
    procs = {"sim_camera_node": NodeProcess(NODES["sim_camera_node"], params=sim),
             "tracker_node": NodeProcess(NODES["tracker_node"]),
             "dense_flow_node": NodeProcess(NODES["dense_flow_node"])}
    rclpy.init()
    listener = Listener(time.monotonic())
    rss: dict[str, list[tuple[float, float]]] = defaultdict(list)      # (t s, private MB)
    total: dict[str, list[tuple[float, float]]] = defaultdict(list)    # (t s, VmRSS MB)
    died: list[str] = []
    try:
        ready_by = time.monotonic() + 60.0
        while (any(not listener.latency[t] for t in OUTPUTS)
               and time.monotonic() < ready_by):
            listener.spin_for(0.5)
        if any(not listener.latency[t] for t in OUTPUTS):
            for name, proc in procs.items():
                print(f"--- {name}\n{proc.output()[-3000:]}")
            raise SystemExit("no output within 60 s")
        start = time.monotonic()
        listener.start = start
        listener.latency.clear()
        listener.stamp_latency.clear()
        next_sample, next_report = start, start + 60.0
        while (now := time.monotonic()) < start + duration:
            if now >= next_sample:
                for name, proc in procs.items():
                    mb = rss_mb(proc.proc.pid)
                    if mb is None or not proc.alive():
                        died.append(name)
                    else:
                        rss[name].append((now - start, mb[0] - mb[1]))
                        total[name].append((now - start, mb[0]))
                if died:
                    break
                next_sample += SAMPLE_S
            if now >= next_report:
                done = int(round((now - start) / 60.0))
                recent = {t: [ms for s, ms in listener.latency[t] if s >= now - start - 60.0]
                          for t in OUTPUTS}
                print(f"  minute {done}: " + ", ".join(
                    f"{t} {len(v) / 60.0:.1f}/s p50 {np.median(v) if v else float('nan'):.1f} ms"
                    for t, v in recent.items()) + "; RSS (private) " + ", ".join(
                    f"{name} {total[name][-1][1]:.1f} ({rss[name][-1][1]:.1f}) MB"
                    for name in procs if rss[name]),
                    flush=True)
                next_report += 60.0
            listener.spin_for(0.1)
        diagnostics = dict(listener.diagnostics)
        logs = {name: proc.output() for name, proc in procs.items()}
        exits = stop(procs)
    finally:
        listener.close()
        rclpy.try_shutdown()
        for proc in procs.values():
            proc.stop(signal.SIGKILL)

    checks: list[tuple[str, bool]] = []
    for label, table in (("RSS", total), ("private RSS (RSS - RssShmem)", rss)):
        print(f"\n{label}, MB, at the start of each minute and at the end; growth after "
              "warm-up:")
        for name in procs:
            series = table[name]
            per_minute = [next((mb for t, mb in series if t >= 60.0 * m), float("nan"))
                          for m in range(minutes)] + ([series[-1][1]] if series else [])
            print(f"  {name:16s} " + " ".join(f"{mb:6.1f}" for mb in per_minute)
                  + f"   growth {rss_growth(series):+.2f} MB")
    for name in procs:
        growth = rss_growth(rss[name])
        checks.append((f"{name}: private RSS growth after warm-up {growth:+.2f} MB < "
                       f"{RSS_BUDGET_MB} MB (total RSS {rss_growth(total[name]):+.2f} MB)",
                       growth < RSS_BUDGET_MB))
    print("\nlatency frame published -> output received, p50 per minute (ms):")
    for topic, (node, _) in OUTPUTS.items():
        samples = listener.latency[topic]
        p50 = minute_p50(samples, minutes)
        stamp_p50 = np.median(listener.stamp_latency[topic])
        print(f"  {topic:12s} " + " ".join(f"{v:6.1f}" for v in p50)
              + f"   ({len(samples)} msgs, {len(samples) / duration:.1f}/s, "
                f"p99 {np.percentile([ms for _, ms in samples], 99):.1f} ms; "
                f"arrival - header stamp p50 {stamp_p50:.1f} ms)")
        second, last = p50[min(1, minutes - 1)], p50[-1]
        bound = LATENCY_RATIO * second + LATENCY_SLACK_MS
        checks.append((f"{node}: last-minute p50 {last:.1f} ms <= {LATENCY_RATIO} x "
                       f"second-minute p50 {second:.1f} + {LATENCY_SLACK_MS:g} = {bound:.1f} ms",
                       bool(last <= bound)))
    print("\nnode diagnostics at the end:")
    for name, values in diagnostics.items():
        keys = [k for k in ("frames_received", "frames_processed", "frames_dropped",
                            "frames_invalid", "frames_failed", "frames_skipped", "resets",
                            "processing_ms_p50", "processing_ms_p99") if k in values]
        print(f"  {name}: " + ", ".join(f"{k} {values[k]}" for k in keys))
    print("\nlogs during the soak (tracebacks, ERROR lines, WARN lines) and shutdown:")
    for name in procs:
        tracebacks, errors, warnings = log_problems(logs[name])
        code, seconds = exits[name]
        at_exit = procs[name].output()[len(logs[name]):]
        after = log_problems(at_exit)
        print(f"  {name:16s} {tracebacks} tracebacks, {errors} ERROR, {warnings} WARN; SIGINT: "
              f"exit {code} after {seconds:.2f} s, {after[0]} tracebacks")
        resets = [line.split("]: ", 1)[-1] for line in logs[name].splitlines() if "reset" in line]
        if resets:
            print(f"    {len(resets)} reset lines, e.g. {resets[:3]}")
        for text, when in ((logs[name], "during the soak"), (at_exit, "at SIGINT")):
            if "Traceback" in text:
                last = text[text.rindex("Traceback"):].splitlines()
                print(f"    last traceback {when}: ... {' | '.join(last[-3:])}")
        checks.append((f"{name}: alive for the whole soak", name not in died))
        checks.append((f"{name}: zero exceptions in the log", tracebacks == 0 and errors == 0))
        checks.append((f"{name}: SIGINT ends it within {SHUTDOWN_LIMIT_S:g} s, exit 0, "
                       "no traceback", code == 0 and seconds <= SHUTDOWN_LIMIT_S
                       and after[0] == 0))
    if args.fuzz_examples > 0:
        print(f"\nfuzz, {args.fuzz_examples} examples per test: {' '.join(FUZZ_FILES)}",
              flush=True)
        passed, summary = run_fuzz(args.fuzz_examples)
        print(f"  {summary}")
        checks.append((f"fuzz with {args.fuzz_examples} examples per test", passed))
    print()
    for line, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {line}")
    ok = all(passed for _, passed in checks)
    print(f"\nsoak {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
