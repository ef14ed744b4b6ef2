"""Test peer: best-effort bgr8 frames between two processes, counted at the receiving end.

    python image_burst.py pub WIDTH HEIGHT FRAMES RATE_HZ   # waits for a subscriber, publishes
    python image_burst.py sub SECONDS                       # prints "ready", then the frame ids

Each frame's ``header.frame_id`` is its index; the subscriber prints one JSON line with the
sorted distinct indices it received once its stdin closes (the publisher has finished), or
after SECONDS.
"""

import json
import select
import sys
import time

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                 reliability=ReliabilityPolicy.BEST_EFFORT)


def publish(node: Node, width: int, height: int, frames: int, rate: float) -> None:
    pub = node.create_publisher(Image, "burst", QOS)
    deadline = time.monotonic() + 30.0
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let discovery finish on both sides (best effort: no repairs)
    data = np.random.default_rng(0).integers(0, 256, height * width * 3, np.uint8).tobytes()
    for index in range(frames):
        msg = Image(height=height, width=width, encoding="bgr8", step=width * 3, data=data)
        msg.header.frame_id = str(index)
        pub.publish(msg)
        time.sleep(1.0 / rate)
    time.sleep(1.0)
    print(json.dumps({"sent": frames}), flush=True)


def subscribe(node: Node, seconds: float) -> None:
    got: set[int] = set()

    def on_image(msg: Image) -> None:
        assert len(msg.data) == msg.height * msg.step
        got.add(int(msg.header.frame_id))

    node.create_subscription(Image, "burst", on_image, QOS)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end and not select.select([sys.stdin], [], [], 0)[0]:
        rclpy.spin_once(node, timeout_sec=0.1)
    end = time.monotonic() + 0.5  # what is still queued
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({"received": sorted(got)}), flush=True)


def main() -> None:
    rclpy.init()
    node = Node(f"image_burst_{sys.argv[1]}")
    try:
        if sys.argv[1] == "pub":
            publish(node, int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                    float(sys.argv[5]))
        else:
            subscribe(node, float(sys.argv[2]))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
