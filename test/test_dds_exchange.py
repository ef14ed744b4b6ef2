"""Two nodes in two processes exchange sensor_msgs/Image over real DDS on loopback."""

from __future__ import annotations

import os

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import REPO, NodeProcess
from sensor_msgs.msg import Image

pytestmark = pytest.mark.dds


def test_environment_confines_dds_to_loopback():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 0 <= int(os.environ["ROS_DOMAIN_ID"]) <= 232


def test_image_round_trip_between_processes(ros_peer):
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (48, 64, 3), np.uint8) for _ in range(5)]
    received: list[Image] = []
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub = ros_peer.node.create_publisher(Image, "image", qos)
    ros_peer.node.create_subscription(Image, "image_echo", received.append, qos)
    with NodeProcess(str(REPO / "test/peers/image_echo.py")) as echo:
        assert ros_peer.wait_for_subscriber(pub), echo.output()
        assert ros_peer.spin_until(
            lambda: ros_peer.node.count_publishers("image_echo") > 0, 20.0
        ), echo.output()
        ros_peer.spin_for(0.5)
        for i, frame in enumerate(frames):
            msg = Image(height=48, width=64, encoding="bgr8", step=64 * 3, data=frame.tobytes())
            msg.header.frame_id = f"cam_{i}"
            pub.publish(msg)
        assert ros_peer.spin_until(lambda: len(received) == len(frames), 20.0), echo.output()
    for i, (msg, frame) in enumerate(zip(received, frames, strict=True)):
        assert msg.header.frame_id == f"cam_{i}"
        got = np.frombuffer(msg.data, np.uint8).reshape(48, 64, 3)
        np.testing.assert_array_equal(got, frame)
