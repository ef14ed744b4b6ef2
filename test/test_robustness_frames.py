"""Fuzzing of each node's frame handling, in process: hostile streams never escape a callback.

tracker_node and dense_flow_node (raw and compressed input) are constructed in an rclpy
context of the test process, and Hypothesis-generated streams of ``sensor_msgs/Image`` or
``CompressedImage`` messages are handed to their camera callback (``ImageInput._on_message``)
exactly as the executor would: well-formed frames of changing size, encoding and content
mixed with malformed ones (see ``test/core/test_fuzz_image_codec.py``), stamps that repeat,
go backwards, jump or are zero, publication sequence numbers with gaps, and runtime parameter
changes in between. No DDS traffic is needed; the nodes' outputs are published to nobody.

Checked after every stream: no exception escaped, and the counters add up: every received
frame is invalid, processed or failed (tracker) or, for dense flow, also the first of a
pair, a reset (size change, stamp not increasing) or idle.

Profiles as in the codec fuzz: 300 derandomised examples per test in CI,
``OPTICAL_FLOW_ROS_FUZZ_EXAMPLES=<n>`` for the soak.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from core.test_fuzz_image_codec import (
    FUZZ,
    LAYOUT,
    PLANAR,
    compressed_payloads,
    raw_images,
    rows_of,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rclpy.parameter import Parameter
from ros_harness import RosPeer
from sensor_msgs.msg import CompressedImage, Image

from optical_flow_ros.core.image_codec import encode_compressed, encode_image
from optical_flow_ros.nodes.dense_flow_node import DenseFlowNode
from optical_flow_ros.nodes.tracker_node import TrackerNode

pytestmark = pytest.mark.dds

NODE_FUZZ = settings(FUZZ, suppress_health_check=[*FUZZ.suppress_health_check,
                                                  HealthCheck.function_scoped_fixture])

_rng = np.random.default_rng(7)
BASE = cv2.GaussianBlur(_rng.integers(0, 256, (220, 300), np.uint8), (5, 5), 1.2)
"""Smooth random texture the well-formed frames are cut from (moving a little each frame)."""

SIZES = [(48, 64), (64, 48), (96, 128), (120, 160), (17, 33), (33, 100), (8, 8), (2, 3),
         (1, 1), (1, 64), (64, 1)]


_UYVY_FIRST = {"yuv422", "uyvy"}    # chroma byte first; yuv422_yuy2 and yuyv: luma first
_YUV422 = _UYVY_FIRST | {"yuv422_yuy2", "yuyv"}


def _frame_array(gray: np.ndarray, encoding: str) -> np.ndarray:
    """``gray`` in the layout of ``encoding`` (channels, depth); neutral chroma for YUV."""
    channels, dtype = LAYOUT[encoding]
    if dtype == np.uint16:
        data = gray.astype(np.uint16) * 257
    elif dtype == np.float32:
        data = gray.astype(np.float32) / 255.0
    else:
        data = gray
    if encoding in PLANAR:  # Y plane, then H/2 rows of chroma
        return np.vstack([data, np.full((data.shape[0] // 2, data.shape[1]), 128, np.uint8)])
    if channels == 1:
        return data
    if encoding in _YUV422:
        chroma = np.full_like(data, 128)
        pair = (chroma, data) if encoding in _UYVY_FIRST else (data, chroma)
        return np.dstack(pair)
    return np.dstack([data] * channels)


def _size_refused(encoding: str, height: int, width: int) -> bool:
    """Whether the chroma subsampling of ``encoding`` cannot hold this size."""
    if encoding in PLANAR:
        return bool(width % 2 or height % 2)
    return encoding in _YUV422 and bool(width % 2)


@st.composite
def stamps(draw: st.DrawFn, count: int) -> list[tuple[int, int]]:
    """(sec, nanosec) per frame: mostly 30 Hz, with repeats, loops, gaps, zero and extremes."""
    t = draw(st.floats(1.0, 1e6))
    out = []
    for _ in range(count):
        step = draw(st.sampled_from([1 / 30, 1 / 30, 1 / 30, 1 / 60, 0.0, -1 / 30, -50.0, 0.7,
                                     10.0, 1e-9, "zero", "max", "negative"]))
        if step == "zero":
            out.append((0, 0))
            continue
        if step == "max":
            out.append((2**31 - 1, 999_999_999))
            continue
        if step == "negative":
            out.append((-draw(st.integers(1, 2**31)), 0))
            continue
        t = max(t + step, 0.0)
        sec = int(t)
        out.append((sec, min(int(round((t - sec) * 1e9)), 999_999_999)))
    return out


def _clip_u32(value: int) -> int:
    return min(max(value, 0), 2**32 - 1)


frame_sizes = st.one_of(st.sampled_from(SIZES), st.tuples(st.integers(1, 96), st.integers(1, 96)))


@st.composite
def raw_frame(draw: st.DrawFn, index: int, size: tuple[int, int],
              encoding: str) -> Image:
    """A well-formed Image of the stream's size and encoding, or a hostile one."""
    msg = Image()
    if draw(st.integers(0, 2)):  # two thirds well-formed
        height, width = size
        gray = np.ascontiguousarray(BASE[index % 50:][:height, index % 70:][:, :width])
        encoded = encode_image(_frame_array(gray, encoding), encoding) if not _size_refused(
            encoding, height, width) else None
        if encoded is None:  # odd size for YUV: send it anyway, it must be refused
            step = width * LAYOUT[encoding][0]
            msg.encoding, msg.width, msg.height, msg.step = encoding, width, height, step
            msg.data = bytes(step * rows_of(encoding, height))
        else:
            msg.encoding, msg.width, msg.height = encoded.encoding, encoded.width, encoded.height
            msg.step, msg.is_bigendian = encoded.step, int(encoded.is_bigendian)
            msg.data = encoded.data
        event(f"raw: well-formed {encoding}")
        return msg
    fields = draw(raw_images())
    msg.encoding = fields["encoding"]
    msg.width, msg.height = _clip_u32(fields["width"]), _clip_u32(fields["height"])
    msg.step = _clip_u32(fields["step"])
    msg.is_bigendian = int(fields["is_bigendian"]) % 256
    msg.data = fields["raw"]
    event("raw: hostile")
    return msg


@st.composite
def compressed_frame(draw: st.DrawFn, index: int, size: tuple[int, int],
                     encoding: str) -> CompressedImage:
    """A JPEG/PNG of the moving texture (mono or colour), or a mutated one."""
    if draw(st.integers(0, 2)):
        height, width = size
        gray = np.ascontiguousarray(BASE[index % 50:][:height, index % 70:][:, :width])
        image = gray if LAYOUT[encoding][0] == 1 else cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        data, fmt = encode_compressed(image, fmt=draw(st.sampled_from(["jpeg", "png"])))
        event("compressed: well-formed")
        return CompressedImage(format=fmt, data=data)
    data, fmt = draw(compressed_payloads())
    event("compressed: mutated")
    raw = bytes(data) if not isinstance(data, np.ndarray) else data.tobytes()
    return CompressedImage(format=fmt, data=raw)


GID_A = {"implementation_identifier": "rmw_fastrtps_cpp", "data": list(range(16))}
GID_B = {"implementation_identifier": "rmw_fastrtps_cpp", "data": list(range(16, 32))}


@st.composite
def message_infos(draw: st.DrawFn, count: int) -> list[dict]:
    """MessageInfo dicts: sequence numbers with gaps and restarts, two publishers, or none."""
    infos, seq = [], draw(st.integers(0, 1000))
    for _ in range(count):
        seq = max(seq + draw(st.sampled_from([1, 1, 1, 2, 5, 0, -3, 1000])), 0)
        kind = draw(st.sampled_from(["a", "a", "b", "no_gid", "no_seq"]))
        infos.append({
            "source_timestamp": 0, "received_timestamp": 0,
            "publication_sequence_number": None if kind == "no_seq" else seq,
            "reception_sequence_number": None,
            "publisher_gid": {"a": GID_A, "b": GID_B}.get(kind),
        })
    return infos


@st.composite
def streams(draw: st.DrawFn, transport: str, params: dict[str, list]) -> list:
    """1-8 frames, each (message, info) to deliver, with parameter changes (name, value) among
    them; size and encoding stay for a few frames, then change."""
    count = draw(st.integers(1, 8))
    frame = raw_frame if transport == "raw" else compressed_frame
    frame_stamps = draw(stamps(count))
    infos = draw(message_infos(count))
    steps: list = []
    size, encoding = draw(frame_sizes), draw(st.sampled_from(sorted(LAYOUT)))
    for i in range(count):
        if params and draw(st.integers(0, 5)) == 0:
            name = draw(st.sampled_from(sorted(params)))
            steps.append(("param", name, draw(st.sampled_from(params[name]))))
        if draw(st.integers(0, 4)) == 0:  # resolution or encoding change mid-stream
            size, encoding = draw(frame_sizes), draw(st.sampled_from(sorted(LAYOUT)))
        msg = draw(frame(i, size, encoding))
        msg.header.stamp.sec, msg.header.stamp.nanosec = frame_stamps[i]
        steps.append(("frame", msg, infos[i]))
    return steps


# Valid runtime values that change the work done per frame (invalid ones: test_robustness_params).
TRACKER_CHANGES = {
    "downscale": [1.0, 0.5, 0.25], "win_size": [3, 15, 31], "max_level": [0, 2, 5],
    "clahe": [True, False], "ransac": ["none", "fundamental", "homography"],
    "spread": ["none", "mask", "grid"], "detect_interval": [1, 5], "max_corners": [5, 500],
    "use_camera_info": [True, False], "estimate_velocity": [True, False],
    "distance": [0.0, 2.0],
}
DENSE_CHANGES = {
    "method": ["dis_balanced", "dis_ultrafast", "dis_fast", "dis_medium", "farneback"],
    "downscale": [1.0, 0.5, 0.1], "validity": ["none", "texture", "fb", "both"],
    "temporal_init": [True, False], "flow_publish_scale": [1.0, 0.5, 0.01],
    "levels": [1, 3, 8], "winsize": [1, 15],
}


class Fed:
    """A node under fuzz: delivers a stream to its camera callback, checks the counters."""

    def __init__(self, node) -> None:
        self.node = node
        self.counters = node._diag.counters

    def deliver(self, steps: list) -> dict[str, int]:
        before = dict(self.counters)
        for kind, first, second in steps:
            if kind == "param":
                result = self.node.set_parameters([Parameter(first, value=second)])[0]
                assert result.successful, (first, second, result.reason)
            else:
                self.node._input._on_message(first, second)  # must not raise
        self.node._diag.publish()  # the diagnostics of any state can be built
        return {k: self.counters[k] - before.get(k, 0) for k in self.counters}


@pytest.fixture(scope="module")
def peer():
    peer = RosPeer("frame_fuzz")
    yield peer
    peer.close()


def _node(peer, node_type, transport: str, *extra: Parameter):
    overrides = [Parameter("image_transport", value=transport), *extra]
    return node_type(context=peer.context, parameter_overrides=overrides)


@pytest.fixture(scope="module", params=["raw", "compressed"])
def tracker(peer, request):
    node = _node(peer, TrackerNode, request.param)
    node._pub_image.get_subscription_count = lambda: 1  # render flow/image too
    yield request.param, Fed(node)
    node.destroy_node()


def _every_output_listened(node) -> None:
    """As if every output of a dense_flow_node had a subscriber (publish_warp must be on)."""
    assert node.get_parameter("publish_warp").value
    for pub in node._outputs.values():
        pub.get_subscription_count = lambda: 1


@pytest.fixture(scope="module", params=["raw", "compressed"])
def dense(peer, request):
    node = _node(peer, DenseFlowNode, request.param, Parameter("publish_warp", value=True))
    _every_output_listened(node)
    yield request.param, Fed(node)
    node.destroy_node()


@NODE_FUZZ
@given(data=st.data())
def test_tracker_node_survives_any_stream(tracker, data):
    transport, fed = tracker
    delta = fed.deliver(data.draw(streams(transport, TRACKER_CHANGES)))
    received = delta.get("frames_received", 0)
    assert received >= 1
    assert received == (delta.get("frames_invalid", 0) + delta.get("frames_processed", 0)
                        + delta.get("frames_failed", 0)), delta
    event(f"processed {delta.get('frames_processed', 0)} of {received}")


@NODE_FUZZ
@given(data=st.data())
def test_dense_flow_node_survives_any_stream(dense, data):
    transport, fed = dense
    had_previous = fed.node._pipeline.previous is not None
    delta = fed.deliver(data.draw(streams(transport, DENSE_CHANGES)))
    valid = delta.get("frames_received", 0) - delta.get("frames_invalid", 0)
    first = int(not had_previous and valid > 0)  # the first frame only becomes "previous"
    assert valid == (first + delta.get("frames_processed", 0) + delta.get("frames_failed", 0)
                     + delta.get("frames_idle", 0) + delta.get("resets", 0)), delta
    event(f"processed {delta.get('frames_processed', 0)} of {valid} valid")


def _one_pixel(stamp_s: int) -> Image:
    msg = Image(height=1, width=1, encoding="mono8", step=1, data=bytes([stamp_s * 40 % 256]))
    msg.header.stamp.sec = stamp_s
    return msg


# Regression: a cv2.error from the validity masks on 1x1 frames escaped _on_frame and ended
# the node.
@pytest.mark.parametrize("validity", ["texture", "fb", "both"])
def test_dense_flow_node_1x1_frames_with_validity(peer, validity):
    overrides = [Parameter("method", value="farneback"), Parameter("validity", value=validity),
                 Parameter("publish_warp", value=True)]
    node = DenseFlowNode(context=peer.context, parameter_overrides=overrides)
    try:
        _every_output_listened(node)
        for stamp_s in (1, 2):
            node._input._on_message(_one_pixel(stamp_s), {})
        counters = node._diag.counters
        assert counters["frames_processed"] + counters["frames_failed"] == 1
    finally:
        node.destroy_node()
