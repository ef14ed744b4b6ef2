"""What the ``view`` command receives of the nodes' image topics, with no Fast DDS profile set.

    .venv/bin/python bench/bench_viewer.py [--seconds 10] [--sizes 640x480 1280x720]

Starts sim_camera_node (30 Hz, mono8), tracker_node and dense_flow_node (with the warp view)
as a user starts them by hand, and the viewer's own ROS node (tools/viewer_node.ViewerNode,
the subscriptions the window shows) in this process, on flow/image, flow/dense/hsv and
flow/dense/warp; and, for comparison, a best-effort subscription of each (what the viewer
used before). Prints per topic: frames published (flow/image: flow/tracks messages, one per
tracked frame; dense views: dense_flow_node's frames_processed), frames and rate the viewer
received (its status line's figure), and the best-effort reader's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optical_flow_ros.tools.node_process import NodeProcess, confine_dds  # noqa: E402

TOPICS = ("/flow/image", "/flow/dense/hsv", "/flow/dense/warp")


def _measure(width: int, height: int, seconds: float) -> None:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image, PointCloud2

    from optical_flow_ros.ros.qos import keep_last_qos
    from optical_flow_ros.tools.viewer_node import ViewerNode

    nodes = [NodeProcess("optical_flow_ros.nodes.tracker_node"),
             NodeProcess("optical_flow_ros.nodes.dense_flow_node",
                         params={"publish_warp": True}),
             NodeProcess("optical_flow_ros.nodes.sim_camera_node",
                         params={"image_width": width, "image_height": height, "rate": 30.0})]
    context = Context()
    rclpy.init(context=context)
    try:
        viewer = ViewerNode(TOPICS, context=context)
        probe = Node("bench_viewer_probe", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(viewer)
        executor.add_node(probe)
        counts = {"tracks": 0, "dense": 0}
        best_effort = dict.fromkeys(TOPICS, 0)

        def on_tracks(_msg: PointCloud2) -> None:
            counts["tracks"] += 1

        def on_diagnostics(msg: DiagnosticArray) -> None:
            for status in msg.status:
                if status.name.startswith("/dense_flow_node"):
                    values = {kv.key: kv.value for kv in status.values}
                    counts["dense"] = int(values.get("frames_processed", 0))

        probe.create_subscription(PointCloud2, "/flow/tracks", on_tracks,
                                  keep_last_qos("reliable", 100))
        probe.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
        for topic in TOPICS:
            def count(_msg: Image, topic: str = topic) -> None:
                best_effort[topic] += 1
            probe.create_subscription(Image, topic, count, keep_last_qos("best_effort", 1))

        def spin(duration: float) -> None:
            end = time.monotonic() + duration
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)

        spin(8.0)   # discovery, first frames, warm-up
        feeds = {feed.topic: feed for feed in viewer.feeds()}
        start = ({t: feeds[t].status().frames for t in TOPICS}, dict(counts), dict(best_effort))
        t0 = time.monotonic()
        spin(seconds)
        elapsed = time.monotonic() - t0
        end = ({t: feeds[t].status().frames for t in TOPICS}, dict(counts), dict(best_effort))
        for topic in TOPICS:
            key = "tracks" if topic == "/flow/image" else "dense"
            published = end[1][key] - start[1][key]
            got = end[0][topic] - start[0][topic]
            lost_be = end[2][topic] - start[2][topic]
            print(f"{width}x{height} bgr8 {topic:18s} published {published:4d} "
                  f"({published / elapsed:4.1f} Hz) | viewer {got:4d} ({got / elapsed:4.1f} fps, "
                  f"status line {feeds[topic].status().fps:4.1f}) = "
                  f"{100 * got / max(published, 1):5.1f} % | best effort "
                  f"{lost_be:4d} ({lost_be / elapsed:4.1f} fps)", flush=True)
        executor.shutdown()
        viewer.destroy_node()
        probe.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        for node in nodes:
            node.stop()


def main() -> None:
    """Measure each size in turn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1280x720"])
    args = parser.parse_args()
    os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    confine_dds(int(os.environ["ROS_DOMAIN_ID"]) if "ROS_DOMAIN_ID" in os.environ else None)
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        _measure(width, height, args.seconds)


if __name__ == "__main__":
    main()
