"""dense_flow_node in its own process, over real DDS: flow matches the known motion."""

from __future__ import annotations

import ground_truth as gt
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from ros_harness import NodeProcess, stamp_msg
from sensor_msgs.msg import Image

from optical_flow_ros.ros.image_messages import array_to_image_msg, image_msg_to_array
from optical_flow_ros.ros.qos import keep_last_qos

pytestmark = pytest.mark.dds

SHAPE = (240, 320)
SHIFT = (3.0, -2.0)  # px per frame


def _frames(n: int) -> list[np.ndarray]:
    base = gt.texture("gravel", (SHAPE[0] + 100, SHAPE[1] + 100))
    return [gt.render(base, gt.translation(-50 + SHIFT[0] * i, -50 + SHIFT[1] * i), SHAPE)
            for i in range(n)]


def _set_param(peer, node_name: str, name: str, value: str) -> SetParameters.Response:
    client = peer.node.create_client(SetParameters, f"/{node_name}/set_parameters")
    msg = ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING,
                                                       string_value=value))
    return peer.call(client, SetParameters.Request(parameters=[msg])).results[0]


def _diag_value(arrays: list[DiagnosticArray], key: str) -> str | None:
    for array in reversed(arrays):
        for status in array.status:
            if status.name.startswith("/dense_flow_node"):
                return {kv.key: kv.value for kv in status.values}.get(key)
    return None


def _run_sequence(peer, pub, frames, got, *, start_index=0):
    for i, frame in enumerate(frames):
        msg = array_to_image_msg(frame, "mono8")
        msg.header.stamp = stamp_msg(10.0 + (start_index + i) / 30.0)
        msg.header.frame_id = "camera_optical_frame"
        count = len(got)
        pub.publish(msg)
        if i == 0:  # no predecessor, no flow; let it be taken before the next overwrites it
            peer.spin_for(0.5)
        else:
            assert peer.spin_until(lambda c=count: len(got) > c, 10.0)


def test_flow_matches_translation_and_method_switches_at_runtime(ros_peer):
    got: list[Image] = []
    pub = ros_peer.node.create_publisher(Image, "image", keep_last_qos("reliable", 10))
    flow_sub = ros_peer.node.create_subscription(Image, "flow/dense", got.append,
                                                 keep_last_qos("reliable", 10))
    diagnostics: list[DiagnosticArray] = []
    ros_peer.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    with NodeProcess("optical_flow_ros.nodes.dense_flow_node") as node:
        assert ros_peer.wait_for_subscriber(pub), node.output()
        assert ros_peer.wait_for_publisher(flow_sub), node.output()
        frames = _frames(8)
        _run_sequence(ros_peer, pub, frames[:4], got)
        reply = _set_param(ros_peer, "dense_flow_node", "method", "farneback")
        assert reply.successful, reply.reason
        refused = _set_param(ros_peer, "dense_flow_node", "dis_preset", "slowest")
        assert not refused.successful and "dis_preset" in refused.reason
        _run_sequence(ros_peer, pub, frames[4:], got, start_index=4)
        assert ros_peer.spin_until(
            lambda: _diag_value(diagnostics, "frames_processed") == "7", 5.0)
        assert _diag_value(diagnostics, "method") == "farneback"
        assert node.alive(), node.output()
    assert len(got) == 7, len(got)  # one flow per frame after the first; the switch keeps going
    truth = np.broadcast_to(np.float32(SHIFT), SHAPE + (2,))
    margin = 16
    for msg in got:
        assert msg.encoding == "32FC2" and msg.header.frame_id == "camera_optical_frame"
        flow = image_msg_to_array(msg)
        inner = (slice(margin, -margin), slice(margin, -margin))
        epe = gt.endpoint_error(flow[inner], truth[inner])
        assert epe < 0.3, epe
    # Stamps of the outputs are the current frames'.
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got]
    np.testing.assert_allclose(stamps, [10.0 + i / 30.0 for i in range(1, 8)], atol=1e-6)
