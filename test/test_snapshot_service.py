"""~/save_snapshot on dense_flow_node, over DDS: PNGs equal what was published; failures answer."""

from __future__ import annotations

from pathlib import Path

import cv2
import ground_truth as gt
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from ros_harness import NodeProcess, stamp_msg
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from optical_flow_ros.core.dense_flow import DenseFlow, DenseFlowConfig
from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.core.flow_drawing import draw_hsv
from optical_flow_ros.core.view_scale import robust_magnitude
from optical_flow_ros.ros.image_messages import array_to_image_msg, image_msg_to_array
from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.ros.snapshot_service import SnapshotConfig, SnapshotError, save_pngs

SHAPE = (120, 160)


def _frames(n: int) -> list[np.ndarray]:
    base = gt.texture("gravel", (SHAPE[0] + 60, SHAPE[1] + 60))
    return [gt.render(base, gt.translation(-30 + 2.0 * i, -30 - 1.0 * i), SHAPE)
            for i in range(n)]


def _call(peer, client, request) -> object:
    return peer.call(client, request)


def _set_dir(peer, client, folder: str) -> None:
    value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=folder)
    reply = _call(peer, client, SetParameters.Request(
        parameters=[ParameterMsg(name="snapshot_dir", value=value)]))
    assert reply.results[0].successful, reply.results[0].reason


def _read(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} is not a decodable image"
    return image


@pytest.mark.dds
def test_snapshot_matches_published_view_and_failures_answer(ros_peer, tmp_path):
    folder = tmp_path / "snaps"
    hsv: list[Image] = []
    pub = ros_peer.node.create_publisher(Image, "image", keep_last_qos("reliable", 10))
    hsv_sub = ros_peer.node.create_subscription(Image, "flow/dense/hsv", hsv.append,
                                                keep_last_qos("reliable", 10))
    snapshot = ros_peer.node.create_client(Trigger, "/dense_flow_node/save_snapshot")
    set_params = ros_peer.node.create_client(SetParameters, "/dense_flow_node/set_parameters")
    frames = _frames(5)
    with NodeProcess("optical_flow_ros.nodes.dense_flow_node",
                     params={"snapshot_dir": str(folder)}) as node:
        assert snapshot.wait_for_service(timeout_sec=20.0), node.output()
        early = _call(ros_peer, snapshot, Trigger.Request())
        assert not early.success and "no frame" in early.message
        assert ros_peer.wait_for_subscriber(pub), node.output()
        assert ros_peer.wait_for_publisher(hsv_sub), node.output()
        for i, frame in enumerate(frames[:3]):
            msg = array_to_image_msg(frame, "mono8")
            msg.header.stamp = stamp_msg(20.0 + i / 30.0)
            count = len(hsv)
            pub.publish(msg)
            if i == 0:
                ros_peer.spin_for(0.5)
            else:
                assert ros_peer.spin_until(lambda c=count: len(hsv) > c, 10.0), node.output()

        reply = _call(ros_peer, snapshot, Trigger.Request())
        assert reply.success, reply.message
        input_path, view_path = reply.message.splitlines()
        assert Path(input_path).parent == folder and Path(view_path).parent == folder
        assert Path(input_path).name == "dense_flow_node_20_066666667_input.png"
        assert Path(view_path).name == "dense_flow_node_20_066666667_view.png"
        np.testing.assert_array_equal(_read(input_path), frames[2])  # mono8 as received
        np.testing.assert_array_equal(_read(view_path), image_msg_to_array(hsv[-1]))

        # Nobody subscribes any more: the node computes no flow, the snapshot renders it itself.
        ros_peer.node.destroy_subscription(hsv_sub)
        for i, frame in enumerate(frames[3:], start=3):
            msg = array_to_image_msg(frame, "mono8")
            msg.header.stamp = stamp_msg(20.0 + i / 30.0)
            pub.publish(msg)
            ros_peer.spin_for(0.3)
        idle = _call(ros_peer, snapshot, Trigger.Request())
        assert idle.success, idle.message
        input_path, view_path = idle.message.splitlines()
        np.testing.assert_array_equal(_read(input_path), frames[4])
        flow = DenseFlow(DenseFlowConfig()).compute(frames[3], frames[4])
        # auto brightness (the default): this flow's own robust maximum is full brightness
        expected = draw_hsv(flow, scale=255.0 / max(robust_magnitude(flow, 99.0), 1.0))
        assert np.abs(_read(view_path).astype(int) - expected).mean() < 1.0

        # Unwritable folders (tests run as root, so no chmod): under a regular file, and /proc.
        blocker = tmp_path / "a_file"
        blocker.write_text("not a folder")
        for bad in (blocker / "snaps", "/proc/optical_flow_snapshots"):
            _set_dir(ros_peer, set_params, str(bad))
            failed = _call(ros_peer, snapshot, Trigger.Request())
            assert not failed.success
            assert "cannot create folder" in failed.message, failed.message
        assert node.alive(), node.output()
        _set_dir(ros_peer, set_params, str(folder / "again"))
        assert _call(ros_peer, snapshot, Trigger.Request()).success
        assert node.alive(), node.output()
    assert sorted(p.name for p in folder.iterdir()) == [
        "again", "dense_flow_node_20_066666667_input.png", "dense_flow_node_20_066666667_view.png",
        "dense_flow_node_20_133333333_input.png", "dense_flow_node_20_133333333_view.png"]


def test_full_disk_is_an_error_not_a_crash():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(SnapshotError, match="No space left"):
        save_pngs([(Path("/dev/full"), image)])  # writes to /dev/full fail with ENOSPC
    assert Path("/dev/full").exists()  # and it is not "cleaned up"


def test_snapshot_dir_must_not_be_empty():
    with pytest.raises(ConfigError, match="snapshot_dir"):
        SnapshotConfig(snapshot_dir=" ")


@pytest.mark.dds
def test_tracker_snapshot_matches_published_flow_image(ros_peer, tmp_path):
    folder = tmp_path / "tracker_snaps"
    drawn: list[Image] = []
    pub = ros_peer.node.create_publisher(Image, "image", keep_last_qos("reliable", 10))
    image_sub = ros_peer.node.create_subscription(Image, "flow/image", drawn.append,
                                                  keep_last_qos("reliable", 10))
    snapshot = ros_peer.node.create_client(Trigger, "/tracker_node/save_snapshot")
    frames = _frames(4)
    with NodeProcess("optical_flow_ros.nodes.tracker_node",
                     params={"snapshot_dir": str(folder)}) as node:
        assert snapshot.wait_for_service(timeout_sec=20.0), node.output()
        assert ros_peer.wait_for_subscriber(pub) and ros_peer.wait_for_publisher(image_sub), \
            node.output()
        for i, frame in enumerate(frames):
            msg = array_to_image_msg(frame, "mono8")
            msg.header.stamp = stamp_msg(30.0 + i / 30.0)
            count = len(drawn)
            pub.publish(msg)
            assert ros_peer.spin_until(lambda c=count: len(drawn) > c, 10.0), node.output()
        reply = _call(ros_peer, snapshot, Trigger.Request())
        assert reply.success, reply.message
        assert node.alive()
    input_path, view_path = reply.message.splitlines()
    np.testing.assert_array_equal(_read(input_path), frames[-1])
    np.testing.assert_array_equal(_read(view_path), image_msg_to_array(drawn[-1]))
