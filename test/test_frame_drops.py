"""Dropped-frame counting from message infos as each distro's rclpy gives them.

Kilted (rclpy 9): ``publisher_gid`` present, numbers followed per publisher. Jazzy (rclpy 7):
no gid, counted only while the topic has one publisher. The infos below have exactly the keys
each distro's rclpy passes (checked over DDS in test_message_info_keys_of_the_installed_rclpy).
"""

from __future__ import annotations

import importlib.metadata

import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from optical_flow_ros.ros.frame_drops import DropCounter

GID_A = {"implementation_identifier": "rmw_fastrtps_cpp", "data": bytes(range(16))}
GID_B = {"implementation_identifier": "rmw_fastrtps_cpp", "data": bytes(range(16, 32))}


def jazzy_info(seq: int | None) -> dict:
    return {"source_timestamp": 1, "received_timestamp": 2,
            "publication_sequence_number": seq, "reception_sequence_number": None}


def kilted_info(seq: int | None, gid: dict) -> dict:
    return {**jazzy_info(seq), "publisher_gid": gid}


def total(counter: DropCounter, infos: list[dict]) -> list[int]:
    return [counter.missed(info) for info in infos]


def test_kilted_gaps_are_counted_per_publisher_however_they_interleave():
    counter = DropCounter(lambda: pytest.fail("not asked when the gid is there"))
    a = [kilted_info(s, GID_A) for s in (1, 2, 5, 6)]      # 3 and 4 lost
    b = [kilted_info(s, GID_B) for s in (1, 3, 4)]         # 2 lost
    assert total(counter, [a[0], b[0], a[1], a[2], b[1], a[3], b[2]]) == [0, 0, 0, 2, 1, 0, 0]


def test_jazzy_gaps_are_counted_with_one_publisher_and_a_restart_is_no_gap():
    counter = DropCounter(lambda: 1)
    seqs = [1, 2, 3, 7, 8, 1, 2, 4]  # 4-6 lost; the publisher restarts; 3 lost
    assert total(counter, [jazzy_info(s) for s in seqs]) == [0, 0, 0, 3, 0, 0, 0, 1]


def test_jazzy_with_two_publishers_counts_nothing_then_resumes_when_one_is_left():
    publishers = [2]
    counter = DropCounter(lambda: publishers[0])
    interleaved = [1, 2, 3, 4, 5, 1, 6, 7, 2]  # two writers: gaps that are no loss
    assert sum(total(counter, [jazzy_info(s) for s in interleaved])) == 0
    publishers[0] = 1
    assert total(counter, [jazzy_info(s) for s in (8, 9, 12)]) == [0, 0, 2]


def test_no_sequence_number_counts_nothing():
    counter = DropCounter(lambda: 1)
    assert total(counter, [jazzy_info(None), jazzy_info(0), kilted_info(None, GID_A)]) == [0] * 3


@pytest.mark.dds
def test_message_info_keys_of_the_installed_rclpy(ros_peer):
    """The info rclpy passes over DDS has the keys the cases above model, for its distro."""
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    infos: list[dict] = []
    sub = ros_peer.node.create_subscription(String, "info_keys",
                                            lambda _msg, info: infos.append(dict(info)), qos)
    pub = ros_peer.node.create_publisher(String, "info_keys", qos)
    assert ros_peer.wait_for_subscriber(pub) and ros_peer.wait_for_publisher(sub)
    for _ in range(3):
        pub.publish(String(data="x"))
    assert ros_peer.spin_until(lambda: len(infos) == 3, 10.0)
    assert [i["publication_sequence_number"] for i in infos] == [1, 2, 3]
    rclpy_major = int(importlib.metadata.version("rclpy").split(".")[0])
    expected = set(jazzy_info(1)) | ({"publisher_gid"} if rclpy_major >= 9 else set())
    assert set(infos[0]) == expected
    counter = DropCounter(lambda: ros_peer.node.count_publishers(sub.topic_name))
    assert total(counter, infos) == [0, 0, 0]
