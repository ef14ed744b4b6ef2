"""One sensor of the input-mix benchmark (``bench/bench_input_mix.py``) in its own process.

    python bench/input_mix_publisher.py ROLE PLAN.json

ROLE is ``camera`` (mono8 ``image`` + ``camera_info`` with every image; receives
``flow/tracks`` of every target for the latency, keeps the latest ``/diagnostics`` of each
node and reads the target's CPU time around each block), ``range`` (sensor_msgs/Range) or
``imu`` (sensor_msgs/Imu, gyro only). The plan (JSON, written by bench_input_mix) names the
targets (namespace, pid, which inputs they subscribe to) and a schedule of blocks (phase,
target, image rate, imu rate, range rate, seconds). Every process publishes to the block's
target only, at exact rates on the system clock; all of them start the schedule at the same
time ``t0`` (system clock, ns) that bench_input_mix writes to their stdin once every process
has printed ``ready`` (its publishers matched). Each message is stamped with
``time.time_ns()`` just before ``publish``, as a driver stamps its readings. Writes what it
sent and received, raw, to ``<out>.<role>.json``; bench_input_mix does the statistics.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "test"))

import e2e_camera  # noqa: E402
import numpy as np  # noqa: E402
from sensor_msgs.msg import CameraInfo, Imu, Range  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

FRAME_ID = "camera_optical_frame"
FOCAL_PX = 500.0
DISTANCE_M = 2.0
GYRO_STD = 0.002          # rad/s, in the imu covariance
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stamped(stamp_s: float) -> Header:
    out = Header(frame_id=FRAME_ID)
    out.stamp.sec, out.stamp.nanosec = divmod(round(stamp_s * 1e9), 1_000_000_000)
    return out


def camera_info_msg(shape: tuple[int, int], header: Header) -> CameraInfo:
    """The camera's calibration: f = 500 px, principal point at the centre, no distortion."""
    h, w = shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    return CameraInfo(header=header, width=w, height=h, distortion_model="plumb_bob",
                      d=[0.0] * 5, k=[FOCAL_PX, 0.0, cx, 0.0, FOCAL_PX, cy, 0.0, 0.0, 1.0],
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[FOCAL_PX, 0.0, cx, 0.0, 0.0, FOCAL_PX, cy, 0.0, 0.0, 0.0, 1.0, 0.0])


def range_msg(stamp_s: float, distance: float) -> Range:
    """A range reading (m) stamped ``stamp_s`` (s)."""
    return Range(header=_stamped(stamp_s), radiation_type=Range.INFRARED,
                 field_of_view=0.05, min_range=0.1, max_range=40.0, range=float(distance))


def imu_msg(stamp_s: float, rate: np.ndarray) -> Imu:
    """A gyro-only Imu (rad/s, optical frame) stamped ``stamp_s`` (s), with its covariance."""
    msg = Imu(header=_stamped(stamp_s))
    msg.orientation_covariance[0] = -1.0
    msg.linear_acceleration_covariance[0] = -1.0
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = map(float, rate)
    msg.angular_velocity_covariance = [GYRO_STD**2, 0.0, 0.0, 0.0, GYRO_STD**2, 0.0, 0.0, 0.0,
                                       GYRO_STD**2]
    return msg


def main() -> int:
    role, plan = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image, PointCloud2

    from optical_flow_ros.ros.image_messages import array_to_image_msg
    from optical_flow_ros.ros.qos import keep_last_qos

    rclpy.init()
    node = Node(f"input_mix_{role}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    targets = plan["targets"]
    header = Header(frame_id=FRAME_ID)
    pubs: dict[str, list] = {}
    must_match = []
    received: dict[str, list[tuple[int, int]]] = {}
    diagnostics: dict[str, dict[str, str]] = {}
    subs = []
    qos = keep_last_qos("reliable", 10)
    if role == "camera":
        frames = [array_to_image_msg(f, "mono8", header)
                  for f in e2e_camera.gray_frames(tuple(plan["shape"]))]
        info = camera_info_msg(tuple(plan["shape"]), header)
        for name, target in targets.items():
            ns = target["ns"]
            image_pub = node.create_publisher(Image, f"{ns}/image", keep_last_qos("reliable", 1))
            info_pub = node.create_publisher(CameraInfo, f"{ns}/camera_info",
                                             keep_last_qos("reliable", 1))
            pubs[name] = [image_pub, info_pub]
            must_match += [image_pub] + ([info_pub] if "camera_info" in target["inputs"] else [])
            records = received.setdefault(name, [])

            def on_tracks(msg: PointCloud2, records: list = records) -> None:
                now = time.time_ns()
                records.append((msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
                                now))

            subs.append(node.create_subscription(PointCloud2, f"{ns}/flow/tracks", on_tracks,
                                                 qos))

        def on_diag(msg: DiagnosticArray) -> None:
            for status in msg.status:
                diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

        node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    else:
        msg_type = Range if role == "range" else Imu
        for name, target in targets.items():
            pub = node.create_publisher(msg_type, f"{target['ns']}/{role}", qos)
            pubs[name] = [pub]
            if role in target["inputs"]:
                must_match.append(pub)

    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and not (
            all(p.get_subscription_count() > 0 for p in must_match)
            and all(s.get_publisher_count() > 0 for s in subs)):
        executor.spin_once(timeout_sec=0.05)
    print(f"ready {all(p.get_subscription_count() > 0 for p in must_match)}", flush=True)
    t0 = int(sys.stdin.readline())

    def wait_until(t_ns: int) -> None:
        while (left := (t_ns - time.time_ns()) * 1e-9) > 0:
            if role == "camera":
                executor.spin_once(timeout_sec=left)
            else:
                time.sleep(min(left, 0.05) if left > 0.002 else 0.0)

    rng = np.random.default_rng({"camera": 1, "range": 2, "imu": 3}[role])
    blocks = []
    start = t0
    pos = 0
    for block in plan["schedule"]:
        name = block["target"]
        rate = {"camera": block["image_rate"], "range": block["range_rate"],
                "imu": block["imu_rate"]}[role]
        period_ns = round(1e9 / rate)
        n = round(block["seconds"] * rate) if name is not None else 0   # None: an idle gap
        pid = targets[name]["pid"] if name is not None else os.getpid()
        wait_until(start)
        ticks0, t_wall0 = e2e_camera.cpu_ticks(pid), time.perf_counter()
        sent = []
        for i in range(n):
            wait_until(start + i * period_ns)
            stamp = time.time_ns()
            if role == "camera":
                header.stamp.sec, header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                image = frames[e2e_camera.frame_index(pos, len(frames))]
                pos += 1
                image.header = header
                info.header = header
                pubs[name][1].publish(info)
                pubs[name][0].publish(image)
            elif role == "range":
                pubs[name][0].publish(range_msg(stamp * 1e-9,
                                                DISTANCE_M + rng.normal(0.0, 0.005)))
            else:
                pubs[name][0].publish(imu_msg(stamp * 1e-9, rng.normal(0.0, 0.05, 3)))
            sent.append(stamp)
        start += round(block["seconds"] * 1e9)
        wait_until(start)
        record = {"sent": sent} if role != "range" else {"sent_count": len(sent)}
        if role == "camera":
            record.update(cpu_s=(e2e_camera.cpu_ticks(pid) - ticks0) / CLK_TCK,
                          wall_s=time.perf_counter() - t_wall0,
                          diagnostics={k: dict(v) for k, v in diagnostics.items()})
        blocks.append(record)
    if role == "camera":
        end = time.monotonic() + 1.5     # late replies, one more diagnostics period
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    Path(f"{plan['out']}.{role}.json").write_text(json.dumps({
        "blocks": blocks, "received": received, "diagnostics": diagnostics}))
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
