"""Benchmark: raw sensor_msgs/Image transport between two processes over Fast DDS.

Run from the repository root::

    .venv/bin/python bench/bench_transport.py [--seconds 4] [--rate 30] [--profile both|off|on]
        [--cases images|flow]

One publisher process and one subscriber process (this script, re-run with ``--role``), both
with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a domain id of this run's own
(200-210). For 640x480 mono8, 640x480 bgr8, 1280x720 bgr8 and 1920x1080 bgr8 (``--cases
flow``: dense_flow_node's ``flow/dense``, 32FC2, at 640x480, 320x240, 160x120, 1280x720 and
640x360, i.e. full size and ``flow_publish_scale`` 0.5 and 0.25) the publisher (RELIABLE,
keep-last 5, volatile) sends ``--seconds`` of frames at ``--rate`` Hz, each stamped with
``time.time_ns()`` just before ``publish``; the subscriber is either BEST_EFFORT keep-last 1
(REP-2003 sensor QoS, what the package's nodes use) or RELIABLE keep-last 5. Printed per
case: frames delivered / sent and latency p50/p99 in ms (receive time in the callback -
header stamp; one machine, one clock) and ``lost``, the subscription's message-lost event
count (samples the DDS reader saw go missing in transport; frames neither delivered nor lost
were overwritten in the keep-last history before the executor took them).

Each configuration is run twice: without and with ``config/fastdds_large_images.xml``
(``FASTDDS_DEFAULT_PROFILES_FILE``, the Fast DDS 3.x name; 2.x read
``FASTRTPS_DEFAULT_PROFILES_FILE``). ``RMW_FASTRTPS_USE_QOS_FROM_XML`` is not needed: the rmw
always starts from the XML's default participant profile; that variable only concerns
publisher/subscription QoS. Both variables are removed from the children's environment for
the run without the profile.

Per run the script also prints what the two processes hold, read from ``/proc``: the local
addresses of their UDP sockets, the Fast DDS shared-memory segments they map
(``/dev/shm/fastdds_*`` and size), and the change in the kernel's UDP receive-buffer drops
(``/proc/net/snmp`` ``RcvbufErrors``, machine-wide) and in bytes sent by non-loopback
interfaces (``/proc/net/dev``, machine-wide, so other traffic shows too).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# DDS stays on this machine. Children get the domain from the parent's environment; set
# here, before any rclpy import (rclpy is only imported by the --role code paths).
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(200, 210)))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_large_images.xml"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE",
                "RMW_FASTRTPS_USE_QOS_FROM_XML")

CASES = (("640x480 mono8", 640, 480, "mono8", 1),
         ("640x480 bgr8", 640, 480, "bgr8", 3),
         ("1280x720 bgr8", 1280, 720, "bgr8", 3),
         ("1920x1080 bgr8", 1920, 1080, "bgr8", 3))
# dense_flow_node's flow/dense (32FC2, 8 bytes/px) at full size and at flow_publish_scale
# 0.5 and 0.25 of a 640x480 and a 1280x720 camera.
FLOW_CASES = (("640x480 32FC2", 640, 480, "32FC2", 8),
              ("320x240 32FC2", 320, 240, "32FC2", 8),
              ("160x120 32FC2", 160, 120, "32FC2", 8),
              ("1280x720 32FC2", 1280, 720, "32FC2", 8),
              ("640x360 32FC2", 640, 360, "32FC2", 8))
CASE_SETS = {"images": CASES, "flow": FLOW_CASES}
RELIABILITIES = ("best_effort", "reliable")


def topic_name(case_index: int, reliability: str) -> str:
    return f"bench_transport/c{case_index}_{reliability}"


# --------------------------------------------------------------------------- children


def run_subscriber(out: Path, stop: Path, cases: tuple) -> None:
    import rclpy
    from rclpy.event_handler import SubscriptionEventCallbacks
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_transport_sub")
    received: dict[str, list[tuple[int, float]]] = {}
    lost: dict[str, int] = {}

    def make_callback(topic: str):
        records = received.setdefault(topic, [])

        def callback(msg: Image) -> None:
            now = time.time_ns()
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            records.append((int(msg.header.frame_id), (now - stamp) / 1e6))

        return callback

    def make_lost_callback(topic: str):
        def callback(info) -> None:
            lost[topic] = info.total_count

        return callback

    subscriptions = []
    for index in range(len(cases)):
        for reliability in RELIABILITIES:
            if reliability == "reliable":
                qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                 reliability=ReliabilityPolicy.RELIABLE)
            else:
                qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                                 reliability=ReliabilityPolicy.BEST_EFFORT)
            topic = topic_name(index, reliability)
            events = SubscriptionEventCallbacks(message_lost=make_lost_callback(topic))
            subscriptions.append(node.create_subscription(
                Image, topic, make_callback(topic), qos, event_callbacks=events))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    print("ready", flush=True)
    while not stop.exists():
        executor.spin_once(timeout_sec=0.05)
    out.write_text(json.dumps({"received": received, "lost": lost}))
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


def run_publisher(out: Path, seconds: float, rate: float, cases: tuple) -> None:
    import numpy as np
    import rclpy
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_transport_pub")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    rng = np.random.default_rng(0)
    results = []
    for index, (_, width, height, encoding, channels) in enumerate(cases):
        msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0,
                    step=width * channels)
        msg.data = rng.integers(0, 256, height * width * channels, dtype=np.uint8).tobytes()
        for reliability in RELIABILITIES:
            pub = node.create_publisher(Image, topic_name(index, reliability), qos)
            deadline = time.monotonic() + 15.0
            while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            matched = pub.get_subscription_count() >= 1
            time.sleep(1.0)  # let the reader side match this writer too
            print(f"start {index} {reliability}", flush=True)
            period = 1.0 / rate
            start = time.monotonic()
            sent = 0
            while sent < round(seconds * rate):
                delay = start + sent * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now = time.time_ns()
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
                msg.header.frame_id = str(sent)
                pub.publish(msg)
                sent += 1
            time.sleep(0.5)  # let the last frames (and reliable repairs) arrive
            results.append({"case": index, "reliability": reliability, "sent": sent,
                            "matched": matched})
            node.destroy_publisher(pub)
    out.write_text(json.dumps(results))
    node.destroy_node()
    rclpy.try_shutdown()


# --------------------------------------------------------------------------- /proc probes


def udp_sockets(pid: int) -> list[str]:
    """Local addresses of the UDP sockets that process ``pid`` holds."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, family in (("udp", 4), ("udp6", 6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] not in inodes:
                continue
            address, port = fields[1].split(":")
            if family == 4:
                ip = ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                ip = "v6:" + address
            found.append(f"{ip}:{int(port, 16)}")
    return sorted(found)


def shm_segments(pid: int) -> list[str]:
    """Fast DDS shared-memory segments mapped by process ``pid`` (name and size)."""
    seen = {}
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].startswith("/dev/shm/fastdds_"):
            name = fields[5].rsplit("/", 1)[1]
            if name.endswith(("_el", "_port_mutex", "_mutex")) or "_port" in name:
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            seen[name] = seen.get(name, 0) + hi - lo
    return [f"{name[:24]} {size / 1024:.0f} KiB" for name, size in sorted(seen.items())]


def udp_rcvbuf_errors() -> int:
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()
             if ln.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


def external_tx_bytes() -> int:
    total = 0
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, data = line.split(":", 1)
        if name.strip() != "lo":
            total += int(data.split()[8])
    return total


# --------------------------------------------------------------------------- orchestration


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run_config(with_profile: bool, seconds: float, rate: float, workdir: Path,
               xml: Path = PROFILE, case_set: str = "images") -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARS}
    if with_profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(xml)
    env["ROS_LOG_DIR"] = str(workdir / "ros_logs")
    tag = "on" if with_profile else "off"
    sub_out, pub_out = workdir / f"sub_{tag}.json", workdir / f"pub_{tag}.json"
    stop = workdir / f"stop_{tag}"
    me = str(Path(__file__).resolve())
    # cwd = workdir: Fast DDS also loads ./DEFAULT_FASTDDS_PROFILES.xml when present.
    sub = subprocess.Popen([sys.executable, me, "--role", "sub", "--out", str(sub_out),
                            "--stop", str(stop), "--cases", case_set], env=env, cwd=workdir,
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None
    sub.stdout.readline()  # "ready"
    errors0, tx0 = udp_rcvbuf_errors(), external_tx_bytes()
    pub = subprocess.Popen([sys.executable, me, "--role", "pub", "--out", str(pub_out),
                            "--seconds", str(seconds), "--rate", str(rate),
                            "--cases", case_set], env=env,
                           cwd=workdir, stdout=subprocess.PIPE, text=True)
    assert pub.stdout is not None
    probes = {}
    for line in pub.stdout:
        if line.startswith("start 0 ") and not probes:
            time.sleep(0.5)
            probes = {name: (udp_sockets(p.pid), shm_segments(p.pid))
                      for name, p in (("pub", pub), ("sub", sub))}
    pub.wait(timeout=120)
    stop.touch()
    sub.wait(timeout=30)
    errors, tx = udp_rcvbuf_errors() - errors0, external_tx_bytes() - tx0
    sub_result = json.loads(sub_out.read_text())
    received, lost = sub_result["received"], sub_result["lost"]
    rows = []
    for result in json.loads(pub_out.read_text()):
        topic = topic_name(result["case"], result["reliability"])
        records = received.get(topic, [])
        latencies = [lat for _, lat in records]
        rows.append({"profile": tag, "case": CASE_SETS[case_set][result["case"]][0],
                     "reliability": result["reliability"], "sent": result["sent"],
                     "delivered": len({frame for frame, _ in records}),
                     "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                     "lost": lost.get(topic, 0), "matched": result["matched"]})
    print(f"\n[profile {tag}] " + (f"FASTDDS_DEFAULT_PROFILES_FILE={xml}" if with_profile
                                   else "no XML profile"))
    for name, (sockets, segments) in probes.items():
        print(f"  {name}: UDP bound {', '.join(sockets)}")
        print(f"  {name}: SHM segments mapped: {'; '.join(segments) or 'none'}")
    print(f"  UDP RcvbufErrors during run (machine-wide): {errors}; "
          f"bytes sent on non-loopback interfaces (machine-wide): {tx}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--profile", choices=("both", "off", "on"), default="both")
    parser.add_argument("--xml", type=Path, default=PROFILE,
                        help="Fast DDS XML for the runs with a profile (default: %(default)s)")
    parser.add_argument("--cases", choices=tuple(CASE_SETS), default="images",
                        help="images: camera frames; flow: flow/dense (32FC2) sizes")
    parser.add_argument("--role", choices=("sub", "pub"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "sub":
        run_subscriber(args.out, args.stop, CASE_SETS[args.cases])
        return
    if args.role == "pub":
        run_publisher(args.out, args.seconds, args.rate, CASE_SETS[args.cases])
        return

    print(f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST "
          f"{args.seconds:g} s at {args.rate:g} Hz per case; publisher RELIABLE keep-last 5")
    configs = {"both": (False, True), "off": (False,), "on": (True,)}[args.profile]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_transport_") as tmp:
        for with_profile in configs:
            rows += run_config(with_profile, args.seconds, args.rate, Path(tmp),
                               args.xml.resolve(), args.cases)
    print(f"\n{'profile':8}{'image':15}{'subscriber':13}{'delivered':>15}"
          f"{'p50 ms':>9}{'p99 ms':>9}{'lost':>6}")
    for row in rows:
        share = f"{row['delivered']}/{row['sent']} {100 * row['delivered'] / row['sent']:3.0f}%"
        note = "" if row["matched"] else "  (publisher never matched)"
        print(f"{row['profile']:8}{row['case']:15}{row['reliability']:13}{share:>15}"
              f"{row['p50']:9.1f}{row['p99']:9.1f}{row['lost']:6d}{note}")


if __name__ == "__main__":
    main()
