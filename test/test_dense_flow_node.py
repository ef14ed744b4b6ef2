"""dense_flow_node in its own process, over real DDS: flow matches the known motion, and the
node publishes exactly what :class:`DensePipeline` (bag processing's per-frame code) computes."""

from __future__ import annotations

import cv2
import ground_truth as gt
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from ros_harness import NodeProcess, stamp_msg
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from optical_flow_ros.core.dense_flow import DenseFlow, DenseFlowConfig
from optical_flow_ros.ros.dense_pipeline import (
    DENSE_FLOW_PARAMS,
    DensePipeline,
    build_dense_node_config,
)
from optical_flow_ros.ros.diagnostics import OfflineDiagnostics
from optical_flow_ros.ros.image_input import frame_from_msg
from optical_flow_ros.ros.image_messages import array_to_image_msg, image_msg_to_array
from optical_flow_ros.ros.parameter_table import config_values, defaults
from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.tools.bag_io import serialize

pytestmark = pytest.mark.dds

SHAPE = (240, 320)
SHIFT = (3.0, -2.0)  # px per frame


def _frames(n: int) -> list[np.ndarray]:
    base = gt.texture("gravel", (SHAPE[0] + 100, SHAPE[1] + 100))
    return [gt.render(base, gt.translation(-50 + SHIFT[0] * i, -50 + SHIFT[1] * i), SHAPE)
            for i in range(n)]


def _set_param(peer, node_name: str, name: str, value: str | float) -> SetParameters.Response:
    client = peer.node.create_client(SetParameters, f"/{node_name}/set_parameters")
    msg = Parameter(name, value=value).to_parameter_msg()
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


def _expected_flow(method: str, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """What the node's flow method computes, with its one OpenCV thread."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return DenseFlow(DenseFlowConfig(method=method)).compute(prev, nxt)
    finally:
        cv2.setNumThreads(threads)


def test_flow_matches_translation_and_method_switches_by_name(ros_peer):
    got: list[Image] = []
    pub = ros_peer.node.create_publisher(Image, "image", keep_last_qos("reliable", 10))
    flow_sub = ros_peer.node.create_subscription(Image, "flow/dense", got.append,
                                                 keep_last_qos("reliable", 10))
    diagnostics: list[DiagnosticArray] = []
    ros_peer.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    frames = _frames(10)
    # The method of each pair (frames[i], frames[i + 1]): the default, then switched by name.
    methods = ["dis_balanced"] * 2 + ["dis_medium"] * 3 + ["dis_ultrafast"] * 2 + ["farneback"] * 2
    with NodeProcess("optical_flow_ros.nodes.dense_flow_node") as node:
        assert ros_peer.wait_for_subscriber(pub), node.output()
        assert ros_peer.wait_for_publisher(flow_sub), node.output()
        _run_sequence(ros_peer, pub, frames[:3], got)
        start = 3
        for method, count in (("dis_medium", 3), ("dis_ultrafast", 2), ("farneback", 2)):
            reply = _set_param(ros_peer, "dense_flow_node", "method", method)
            assert reply.successful, reply.reason
            _run_sequence(ros_peer, pub, frames[start:start + count], got, start_index=start)
            start += count
        for old_name in ("dis", "DIS_MEDIUM"):
            refused = _set_param(ros_peer, "dense_flow_node", "method", old_name)
            assert not refused.successful and "method" in refused.reason
            assert "dis_balanced" in refused.reason  # the reason lists the names
        assert ros_peer.spin_until(
            lambda: _diag_value(diagnostics, "frames_processed") == "9", 5.0)
        assert _diag_value(diagnostics, "method") == "farneback"
        assert node.alive(), node.output()
    assert len(got) == 9, len(got)  # one flow per frame after the first; switches keep going
    truth = np.broadcast_to(np.float32(SHIFT), SHAPE + (2,))
    inner = (slice(16, -16), slice(16, -16))
    for i, (msg, method) in enumerate(zip(got, methods, strict=True)):
        assert msg.encoding == "32FC2" and msg.header.frame_id == "camera_optical_frame"
        flow = image_msg_to_array(msg)
        np.testing.assert_array_equal(flow, _expected_flow(method, frames[i], frames[i + 1]),
                                      err_msg=f"pair {i}: {method}")
        epe = gt.endpoint_error(flow[inner], truth[inner])
        assert epe < 0.3, (method, epe)
    # Stamps of the outputs are the current frames'.
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got]
    np.testing.assert_allclose(stamps, [10.0 + i / 30.0 for i in range(1, 10)], atol=1e-6)


def test_flow_publish_scale_sends_smaller_flow_in_its_own_px(ros_peer):
    got: list[Image] = []
    pub = ros_peer.node.create_publisher(Image, "image", keep_last_qos("reliable", 10))
    flow_sub = ros_peer.node.create_subscription(Image, "flow/dense", got.append,
                                                 keep_last_qos("reliable", 10))
    frames = _frames(4)
    with NodeProcess("optical_flow_ros.nodes.dense_flow_node",
                     params={"flow_publish_scale": 0.5}) as node:
        assert ros_peer.wait_for_subscriber(pub), node.output()
        assert ros_peer.wait_for_publisher(flow_sub), node.output()
        _run_sequence(ros_peer, pub, frames[:2], got)
        reply = _set_param(ros_peer, "dense_flow_node", "flow_publish_scale", 0.25)
        assert reply.successful, reply.reason
        refused = _set_param(ros_peer, "dense_flow_node", "flow_publish_scale", 0.0)
        assert not refused.successful and "flow_publish_scale" in refused.reason
        _run_sequence(ros_peer, pub, frames[2:], got, start_index=2)
        assert node.alive(), node.output()
    assert [(m.height, m.width) for m in got] == [(120, 160), (60, 80), (60, 80)]
    for i, (msg, scale) in enumerate(zip(got, (0.5, 0.25, 0.25), strict=True)):
        flow = image_msg_to_array(msg)
        full = _expected_flow("dis_balanced", frames[i], frames[i + 1])
        # Each published pixel is the mean of the full-resolution pixels it covers, times
        # the scale: exactly resize_flow's INTER_AREA (checked on its own in test_flow_resize).
        k = round(1 / scale)
        blocks = full.reshape(flow.shape[0], k, flow.shape[1], k, 2).mean(axis=(1, 3)) * scale
        np.testing.assert_allclose(flow, blocks, atol=1e-4)
        # In px of the published image: the true shift times the scale.
        border = round(16 * scale)
        inner = flow[border:-border, border:-border].reshape(-1, 2)
        np.testing.assert_allclose(np.median(inner, axis=0), np.float32(SHIFT) * scale,
                                   atol=0.05 * scale + 0.01)


OUTPUTS = ("flow/dense", "flow/dense/hsv", "flow/dense/arrows", "flow/dense/warp")


def _colour(gray: np.ndarray) -> np.ndarray:
    """A bgr8 frame whose channels differ, so the arrows and warp views show colour."""
    return np.dstack([gray, 255 - gray, gray // 2])


def _expected(params: dict, steps: list) -> tuple[dict[str, list[bytes]], OfflineDiagnostics]:
    """What DensePipeline makes of ``steps`` (image messages, or "reset"), serialised per topic
    (CDR with the alignment padding zeroed, so equal messages have equal bytes).

    One OpenCV thread, as the node runs (its ``opencv_threads`` default).
    """
    values = defaults(DENSE_FLOW_PARAMS)
    values.update(params)
    diag = OfflineDiagnostics()
    pipeline = DensePipeline(build_dense_node_config(config_values(DENSE_FLOW_PARAMS, values)),
                             diag)
    wants = pipeline.wanted(flow=True, hsv=True, arrows=True, warp=True)
    out: dict[str, list[bytes]] = {topic: [] for topic in OUTPUTS}
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for step in steps:
            if step == "reset":
                pipeline.reset()
                continue
            result = pipeline.process(frame_from_msg(step), wants)
            for topic, msg in zip(OUTPUTS, (result.flow_msg, result.hsv_msg, result.arrows_msg,
                                            result.warp_msg), strict=True):
                if msg is not None:
                    out[topic].append(serialize(msg))
    finally:
        cv2.setNumThreads(threads)
    return out, diag


def test_node_publishes_what_the_pipeline_computes_resets_and_idles(ros_peer):
    params = {"publish_warp": True, "input_reliability": "reliable", "input_depth": 10}
    got: dict[str, list[Image]] = {topic: [] for topic in OUTPUTS}
    pub = ros_peer.node.create_publisher(Image, "image", keep_last_qos("reliable", 10))
    subs = [ros_peer.node.create_subscription(Image, topic, got[topic].append,
                                              keep_last_qos("reliable", 10))
            for topic in OUTPUTS]
    diagnostics: list[DiagnosticArray] = []
    ros_peer.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    reset = ros_peer.node.create_client(Trigger, "/dense_flow_node/reset")
    small = [_colour(f[:96, :128]) for f in _frames(10)]
    other = [_colour(f[:80, :112]) for f in _frames(10)]
    # (frame, stamp s, whether the node publishes for it); "reset" calls ~/reset
    plan = [(small[0], 1.0, False),           # first frame
            (small[1], 1.1, True), (small[2], 1.2, True),
            (small[3], 1.2, False),           # duplicate stamp: reset
            (small[4], 1.3, True),
            "reset",
            (small[5], 1.4, False),           # first frame after ~/reset
            (small[6], 1.5, True),
            (other[7], 1.6, False),           # size change: reset
            (other[8], 1.7, True)]
    steps: list = []
    with NodeProcess("optical_flow_ros.nodes.dense_flow_node", params=params) as node:
        assert ros_peer.wait_for_subscriber(pub), node.output()
        for sub in subs:
            assert ros_peer.wait_for_publisher(sub), node.output()
        for item in plan:
            if item == "reset":
                reply = ros_peer.call(reset, Trigger.Request())
                assert reply.success, reply.message
                steps.append("reset")
                continue
            image, stamp, publishes = item
            msg = array_to_image_msg(image, "bgr8")
            msg.header.stamp = stamp_msg(stamp)
            msg.header.frame_id = "camera_optical_frame"
            steps.append(msg)
            count = len(got["flow/dense"])
            pub.publish(msg)
            if publishes:
                assert ros_peer.spin_until(
                    lambda c=count: all(len(got[t]) > c for t in OUTPUTS), 10.0), node.output()
            else:
                ros_peer.spin_for(0.5)
                assert len(got["flow/dense"]) == count, f"output for the frame at {stamp} s"
        assert ros_peer.spin_until(
            lambda: _diag_value(diagnostics, "frames_processed") == "5", 5.0)
        assert _diag_value(diagnostics, "resets") == "3"
        # Nobody listens any more: frames are only remembered, nothing is computed.
        for sub in subs:
            ros_peer.node.destroy_subscription(sub)
        ros_peer.spin_for(1.0)
        for i, stamp in ((9, 1.8), (9, 1.9)):
            msg = array_to_image_msg(other[i], "bgr8")
            msg.header.stamp = stamp_msg(stamp)
            pub.publish(msg)
            ros_peer.spin_for(0.3)
        assert ros_peer.spin_until(
            lambda: _diag_value(diagnostics, "frames_idle") == "2", 5.0), node.output()
        assert _diag_value(diagnostics, "frames_processed") == "5"
        assert _diag_value(diagnostics, "frames_received") == "11"
        assert node.alive(), node.output()
    assert "Traceback" not in node.output()
    expected, diag = _expected(params, steps)
    assert diag.counters["frames_processed"] == 5 and diag.counters["resets"] == 3
    for topic in OUTPUTS:
        assert len(got[topic]) == len(expected[topic]) == 5, topic
        for i, (msg, want) in enumerate(zip(got[topic], expected[topic], strict=True)):
            assert serialize(msg) == want, (topic, i)
    assert {(m.height, m.width) for m in got["flow/dense/warp"]} == {(96, 128), (80, 112)}
