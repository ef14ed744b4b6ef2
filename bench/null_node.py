"""Null node: the transport floor that tracker_node's end-to-end latency is measured against.

It subscribes to ``image`` exactly as tracker_node does (sensor_msgs/Image, best effort,
keep-last 1: rclpy deserialises every frame it takes) and answers each frame with an empty
sensor_msgs/PointCloud2 on ``flow/tracks`` (reliable, keep-last 5, as tracker_node) that
carries only the image's header. Image stamp to reply received, through this node, is what
any Python node costs before it does any work. Used by ``bench/run_all.py``::

    python bench/null_node.py [--probe OUT.jsonl] --ros-args -r __ns:=/null

With ``--probe`` each frame's time inside the node is written to OUT.jsonl
(``bench/input_mix_probe.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from input_mix_probe import attach_probe, probe_path  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from optical_flow_ros.nodes.node_main import run_node  # noqa: E402
from optical_flow_ros.ros.qos import keep_last_qos  # noqa: E402


class NullNode(Node):
    """Receives the image, publishes an empty cloud with its header."""

    def __init__(self) -> None:
        super().__init__("null_node")
        self._pub = self.create_publisher(PointCloud2, "flow/tracks",
                                          keep_last_qos("reliable", 5))
        self.subscription = self.create_subscription(Image, "image", self._on_image,
                                                     keep_last_qos("best_effort", 1))

    def _on_image(self, msg: Image) -> None:
        self._pub.publish(PointCloud2(header=msg.header))


def _probed(path: str) -> NullNode:
    node = NullNode()
    attach_probe(node.subscription, node._pub, path)
    return node


if __name__ == "__main__":
    PROBE = probe_path(sys.argv)
    raise SystemExit(run_node(NullNode if PROBE is None else lambda: _probed(PROBE)))
