"""Camera and receiver process of the end-to-end benchmark (section 2 of ``bench/run_all.py``).

    python bench/e2e_camera.py PLAN.json

Publishes pre-rendered bgr8 frames (a real colour photo moving by a known translation and a
small rotation per frame, played forwards then backwards so the motion never jumps) at an
exact rate to ``<ns>/image`` of the node under test, stamping each with the wall clock
(``time.time_ns()``) just before ``publish``, and records when each ``<ns>/flow/tracks``
reply with that stamp arrives (same process, same clock). The plan (JSON, written by
run_all) names the targets (namespace and pid of each node process) and a schedule of
blocks: target, resolution, rate, seconds. Around each block this process reads the target
process's CPU time (``/proc/<pid>/stat`` utime + stime) and, once a second, its RSS
(``/proc/<pid>/status`` VmRSS); it keeps the latest ``/diagnostics`` status of each node.
Writes everything raw to the plan's ``out`` path; run_all does the statistics.

The frame functions are importable without rclpy (run_all times the core on the same frames).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from ground_truth import render, similarity  # noqa: E402
from skimage import data as skdata  # noqa: E402

STEP_PX = (2.0, 1.0)          # translation per frame, px
STEP_RAD = np.deg2rad(0.1)    # rotation per frame about the image centre
MARGIN = 300                  # texture margin around the frame, px
RENDERED = {(480, 640): 90, (720, 1280): 40}   # distinct frames per resolution (memory)
FRAME_ID = "camera_optical_frame"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def colour_texture(shape: tuple[int, int]) -> np.ndarray:
    """The astronaut photo of skimage (BGR), mirrored to ``shape``."""
    img = np.ascontiguousarray(skdata.astronaut()[:, :, ::-1])
    pad = (max(0, shape[0] - img.shape[0]), max(0, shape[1] - img.shape[1]))
    img = np.pad(img, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="symmetric")
    return np.ascontiguousarray(img[:shape[0], :shape[1]])


def make_frames(shape: tuple[int, int], n: int | None = None) -> list[np.ndarray]:
    """``n`` bgr8 frames of ``shape`` (rows, cols), moving by STEP_PX and STEP_RAD per frame."""
    n = n or RENDERED.get(shape, 60)
    h, w = shape
    base = colour_texture((h + MARGIN, w + MARGIN))
    centre = (w / 2.0, h / 2.0)
    start = -MARGIN / 2.0
    return [render(base, similarity(start + STEP_PX[0] * k, start + STEP_PX[1] * k,
                                    STEP_RAD * k, 1.0, centre), shape) for k in range(n)]


def frame_index(i: int, n: int) -> int:
    """Ping-pong through ``n`` rendered frames: continuous motion, no jumps."""
    period = 2 * n - 2
    k = i % period
    return k if k < n else period - k


def gray_frames(shape: tuple[int, int]) -> list[np.ndarray]:
    """The same frames as the camera sends, converted to grey as the node does."""
    return [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in make_frames(shape)]


def cpu_ticks(pid: int) -> int:
    """CPU time (utime + stime) of process ``pid`` in clock ticks, all its threads."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of process ``pid`` in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            values[key] = int(value.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def main() -> int:
    plan = json.loads(Path(sys.argv[1]).read_text())
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image, PointCloud2

    from optical_flow_ros.ros.image_messages import array_to_image_msg
    from optical_flow_ros.ros.qos import keep_last_qos

    resolutions = {tuple(block["shape"]) for block in plan["schedule"]}
    messages: dict[tuple[int, int], list[Image]] = {}
    for shape in sorted(resolutions):
        messages[shape] = [array_to_image_msg(f, "bgr8") for f in make_frames(shape)]
        for msg in messages[shape]:
            msg.header.frame_id = FRAME_ID

    rclpy.init()
    node = Node("bench_camera")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    received: dict[str, list[tuple[int, int]]] = {}
    diagnostics: dict[str, dict[str, str]] = {}
    pubs, subs = {}, []
    for name, target in plan["targets"].items():
        ns = target["ns"]
        pubs[name] = node.create_publisher(Image, f"{ns}/image", keep_last_qos("reliable", 1))
        records = received.setdefault(name, [])

        def on_tracks(msg: PointCloud2, records: list = records) -> None:
            now = time.time_ns()
            records.append((msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
                            now))

        subs.append(node.create_subscription(PointCloud2, f"{ns}/flow/tracks", on_tracks,
                                             keep_last_qos("reliable", 10)))

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)

    def spin_for(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            executor.spin_once(timeout_sec=left)

    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and not (
            all(p.get_subscription_count() > 0 for p in pubs.values())
            and all(s.get_publisher_count() > 0 for s in subs)):
        executor.spin_once(timeout_sec=0.05)
    connected = all(p.get_subscription_count() > 0 for p in pubs.values())
    spin_for(0.5)
    print(f"connected: {connected}", flush=True)

    pos: dict[tuple[str, tuple[int, int]], int] = {}
    blocks = []
    my_pid = os.getpid()
    for index, block in enumerate(plan["schedule"]):
        print(f"block {index}", flush=True)   # run_all starts/stops its CPU hog on these
        name, shape = block["target"], tuple(block["shape"])
        pid = plan["targets"][name]["pid"]
        pub, msgs = pubs[name], messages[shape]
        n_frames = round(block["seconds"] * block["rate"])
        period = 1.0 / block["rate"]
        sent: list[int] = []
        rss: list[tuple[float, int]] = []
        t_wall0, ticks0, my_ticks0 = time.perf_counter(), cpu_ticks(pid), cpu_ticks(my_pid)
        next_t = t_wall0
        k = pos.get((name, shape), 0)
        for i in range(n_frames):
            while (wait := next_t - time.perf_counter()) > 0:
                executor.spin_once(timeout_sec=wait)
            msg = msgs[frame_index(k, len(msgs))]
            k += 1
            now = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
            pub.publish(msg)
            sent.append(now)
            if i % round(block["rate"]) == 0:
                rss.append((time.perf_counter() - t_wall0, rss_kib(pid)[0]))
            next_t += period
        while (wait := next_t - time.perf_counter()) > 0:   # the last frame's period
            executor.spin_once(timeout_sec=wait)
        pos[name, shape] = k
        t_wall1, ticks1, my_ticks1 = time.perf_counter(), cpu_ticks(pid), cpu_ticks(my_pid)
        vm_rss, vm_hwm = rss_kib(pid)
        diag = next((v for key, v in diagnostics.items()
                     if key.startswith(plan["targets"][name]["ns"] + "/")), {})
        blocks.append({**block, "sent": sent, "wall_s": t_wall1 - t_wall0,
                       "cpu_s": (ticks1 - ticks0) / CLK_TCK,
                       "camera_cpu_s": (my_ticks1 - my_ticks0) / CLK_TCK,
                       "rss_kib": rss, "vm_rss_kib": vm_rss, "vm_hwm_kib": vm_hwm,
                       "diagnostics": dict(diag)})
    spin_for(1.5)   # late replies, one more diagnostics period
    Path(plan["out"]).write_text(json.dumps({
        "connected": connected, "blocks": blocks, "received": received,
        "diagnostics": diagnostics}))
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
