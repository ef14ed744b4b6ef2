"""Stream faults a robot's camera, bag or drivers produce: no crash, no stuck state.

In process where the fault is in the data (the nodes are built in an rclpy context of the test
process, frames are handed to their camera callback and their publishers record instead of
sending): encoding change, duplicate stamps, long gaps, zero stamps, camera_info with
zero/NaN K, Range NaN/inf/out of [min, max], IMU NaN, and for dense_flow_node also resolution
change and stamps going backwards. (tracker_node's malformed frames, backward stamps,
resolution change and ~/reset: test_tracker_node.py.)

Over real DDS where the fault is in the transport: a publisher that disappears and returns,
and frames arriving faster than they are processed (keep-last-1 input: latency stays flat,
the overwritten frames are counted as dropped).
"""

from __future__ import annotations

import math
import time

import cv2
import ground_truth as gt
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter
from ros_harness import NodeProcess, RosPeer, stamp_msg
from sensor_msgs.msg import CameraInfo, Image, Imu, PointCloud2, Range

from optical_flow_ros.core.fit_window import VelocityTiming
from optical_flow_ros.core.textures import load_texture
from optical_flow_ros.core.track_types import Tracks
from optical_flow_ros.nodes.dense_flow_node import DenseFlowNode
from optical_flow_ros.nodes.sim_camera_node import SimCameraNode
from optical_flow_ros.nodes.tracker_node import TrackerNode
from optical_flow_ros.ros.diagnostics import Counts, OfflineDiagnostics
from optical_flow_ros.ros.image_input import frame_from_msg
from optical_flow_ros.ros.image_messages import array_to_image_msg
from optical_flow_ros.ros.parameter_table import config_values, defaults
from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.ros.track_cloud import cloud_to_array
from optical_flow_ros.ros.tracker_pipeline import (
    TRACKER_PARAMS,
    TrackerPipeline,
    build_tracker_node_config,
)
from optical_flow_ros.ros.velocity_inputs import VelocityInputConfig, VelocityInputs
from optical_flow_ros.tools.bag_io import serialize

pytestmark = pytest.mark.dds

SHAPE = (240, 320)
VELOCITY = (60.0, -30.0)  # px/s of the texture in the image
K = [250.0, 0.0, 160.0, 0.0, 250.0, 120.0, 0.0, 0.0, 1.0]
BASE = gt.texture("gravel", (SHAPE[0] + 400, SHAPE[1] + 400))


def frame_at(t: float, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """The texture moved by VELOCITY * t, mono8."""
    return gt.render(BASE, gt.translation(-150 + VELOCITY[0] * t, -150 + VELOCITY[1] * t),
                     shape)


def as_encoding(gray: np.ndarray, encoding: str) -> np.ndarray:
    """``gray`` in another encoding whose grey conversion gives ``gray`` back exactly."""
    if encoding in ("bgr8", "rgb8"):
        return np.dstack([gray] * 3)
    if encoding == "bgra8":
        return np.dstack([gray] * 3 + [np.full_like(gray, 255)])
    if encoding == "mono16":
        return gray.astype(np.uint16) * 257
    if encoding == "32FC1":
        return gray.astype(np.float32) / 255.0
    if encoding in ("yuv422_yuy2", "yuyv"):
        return np.dstack([gray, np.full_like(gray, 128)])
    if encoding == "uyvy":
        return np.dstack([np.full_like(gray, 128), gray])
    if encoding in ("nv12", "nv21"):  # Y plane, then H/2 rows of neutral chroma
        return np.vstack([gray, np.full((gray.shape[0] // 2, gray.shape[1]), 128, np.uint8)])
    return gray


def image_msg(image: np.ndarray, stamp: float, encoding: str = "mono8") -> Image:
    """A camera frame as the driver sends it (stamp in s, the optical frame id)."""
    msg = array_to_image_msg(image, encoding)
    msg.header.stamp = stamp_msg(stamp)
    msg.header.frame_id = "camera_optical_frame"
    return msg


def camera_info(k=K, *, width: int = SHAPE[1], height: int = SHAPE[0], d=(0.0,) * 5,
                model: str = "plumb_bob") -> CameraInfo:
    return CameraInfo(width=width, height=height, distortion_model=model, d=list(d),
                      k=[float(v) for v in k])


# ---- in-process harness --------------------------------------------------------------------

@pytest.fixture(scope="module")
def peer():
    peer = RosPeer("stream_faults")
    yield peer
    peer.close()


class InProcess:
    """A node whose camera callback the test calls and whose publishers record.

    Args:
        node: the node.
        publishers: attribute name of each publisher (or its key in ``publishers_of``) -> key
            of :attr:`out`.
        publishers_of: the node's publishers by name, when they are held in a dict.
    """

    def __init__(self, node, publishers: dict[str, str],
                 publishers_of: dict | None = None) -> None:
        self.node = node
        self.out: dict[str, list] = {key: [] for key in publishers.values()}
        for attr, key in publishers.items():
            pub = getattr(node, attr) if publishers_of is None else publishers_of[attr]
            pub.publish = self.out[key].append
            pub.get_subscription_count = lambda: 1

    @property
    def counters(self):
        return self.node._diag.counters

    def send(self, image: np.ndarray, stamp: float, encoding: str = "mono8") -> None:
        self.node._input._on_message(image_msg(image, stamp, encoding), {})

    def condition(self, key: str) -> str | None:
        return self.node._diag._conditions.get(key, (None, None))[1]


@pytest.fixture
def tracker(peer):
    node = TrackerNode(context=peer.context)
    yield InProcess(node, {"_pub_tracks": "tracks", "_pub_image": "image",
                           "_pub_velocity": "velocity"})
    node.destroy_node()


@pytest.fixture
def dense(peer):
    node = DenseFlowNode(context=peer.context)
    yield InProcess(node, {"flow": "flow", "hsv": "hsv", "arrows": "arrows"},
                    publishers_of=node._outputs)
    node.destroy_node()


def ids(cloud: PointCloud2) -> np.ndarray:
    return cloud_to_array(cloud)["id"]


# ---- tracker_node: stamps and encodings ----------------------------------------------------

def test_tracker_encoding_change_mid_stream_keeps_the_tracks(tracker):
    encodings = ["mono8", "bgr8", "mono16", "rgb8", "32FC1", "yuv422_yuy2", "nv12", "uyvy",
                 "nv21", "yuyv", "bgra8", "mono8"]
    for i, encoding in enumerate(encodings):
        t = i / 30.0
        tracker.send(as_encoding(frame_at(t), encoding), 10.0 + t, encoding)
    clouds = tracker.out["tracks"]
    assert len(clouds) == len(encodings)
    assert tracker.counters["frames_invalid"] == 0 and tracker.counters["resets"] == 0
    assert np.isin(ids(clouds[0]), ids(clouds[-1])).mean() > 0.8
    last = cloud_to_array(clouds[-1])
    old = last[last["age"] >= 5]
    assert np.median(np.hypot(old["vu"] - VELOCITY[0], old["vv"] - VELOCITY[1])) < 2.0
    assert len(tracker.out["image"]) == len(encodings)  # drawing works for each encoding


def test_tracker_duplicate_stamp_restarts_tracking(tracker):
    for i in range(3):
        tracker.send(frame_at(i / 30.0), 5.0 + i / 30.0)
    before = ids(tracker.out["tracks"][-1])
    tracker.send(frame_at(3 / 30.0), 5.0 + 2 / 30.0)   # same stamp again
    after = ids(tracker.out["tracks"][-1])
    assert tracker.counters["resets"] == 1
    assert after.min() > before.max()  # new ids, never reused
    tracker.send(frame_at(4 / 30.0), 5.0 + 4 / 30.0)   # and it goes on
    assert len(ids(tracker.out["tracks"][-1])) >= 100


def test_tracker_long_gap_keeps_tracks_but_restarts_velocities(tracker):
    for i in range(6):
        tracker.send(frame_at(i / 30.0), 1.0 + i / 30.0)
    before = cloud_to_array(tracker.out["tracks"][-1])
    assert np.isfinite(before["vu"][before["age"] >= 3]).all()
    # 10 s without frames (the camera stalled), then the scene where it was 1 frame later
    tracker.send(frame_at(6 / 30.0), 11.0 + 6 / 30.0)
    gap = cloud_to_array(tracker.out["tracks"][-1])
    assert np.isin(before["id"], gap["id"]).mean() > 0.8   # tracking went on
    assert np.isnan(gap["vu"]).all()                       # no velocity across the gap
    tracker.send(frame_at(7 / 30.0), 11.0 + 7 / 30.0)
    after = cloud_to_array(tracker.out["tracks"][-1])
    moving = after[np.isfinite(after["vu"])]
    assert len(moving) >= 0.8 * len(after)
    assert np.median(np.hypot(moving["vu"] - VELOCITY[0], moving["vv"] - VELOCITY[1])) < 3.0
    assert tracker.counters["resets"] == 0


def test_tracker_zero_stamps_use_the_node_clock(tracker):
    for i in range(3):
        tracker.send(frame_at(i / 30.0), 0.0)
        time.sleep(0.01)
    assert tracker.counters["frames_unstamped"] == 3
    assert tracker.counters["frames_processed"] == 3 and tracker.counters["resets"] == 0
    stamps = [c.header.stamp.sec + c.header.stamp.nanosec * 1e-9 for c in tracker.out["tracks"]]
    assert stamps[0] > 1e9 and stamps[0] < stamps[1] < stamps[2]


# ---- tracker_node: camera_info, range and imu ----------------------------------------------

BAD_CAMERA_INFOS = {
    "zero K": camera_info([0.0] * 9),
    "NaN K": camera_info([math.nan] * 9),
    "NaN fx": camera_info([math.nan, *K[1:]]),
    "inf cx": camera_info([*K[:2], math.inf, *K[3:]]),
    "negative fy": camera_info([*K[:4], -250.0, *K[5:]]),
    "NaN distortion": camera_info(d=(math.nan, 0.0, 0.0, 0.0, 0.0)),
    "unknown model": camera_info(model="pinhole_with_mystery"),
    "equidistant with 5 coefficients": camera_info(model="equidistant"),
    "zero size": camera_info(width=0, height=0),
}


def test_tracker_camera_info_with_zero_or_nan_k_is_ignored(tracker):
    node = tracker.node
    t = 0.0
    for name, info in BAD_CAMERA_INFOS.items():
        node._on_camera_info(info)
        assert node._pipeline.camera is None, name
        assert "camera_info ignored" in tracker.condition("camera_info"), name
        tracker.send(frame_at(t), 1.0 + t)
        t += 1 / 30.0
        assert (cloud_to_array(tracker.out["tracks"][-1])["z"] == 0.0).all(), name  # (u, v, 0)
    assert tracker.counters["camera_info_invalid"] == len(BAD_CAMERA_INFOS)
    # a valid one is used at once, and clears the condition
    node._on_camera_info(camera_info())
    tracker.send(frame_at(t), 1.0 + t)
    t += 1 / 30.0
    assert (cloud_to_array(tracker.out["tracks"][-1])["z"] == 1.0).all()
    assert tracker.condition("camera_info") is None
    # a size that does not match the images: pixel coordinates, with a warning
    node._on_camera_info(camera_info(width=640, height=480))
    tracker.send(frame_at(t), 1.0 + t)
    t += 1 / 30.0
    assert (cloud_to_array(tracker.out["tracks"][-1])["z"] == 0.0).all()
    assert "640x480" in tracker.condition("camera_info_size")
    assert tracker.counters["frames_processed"] == len(BAD_CAMERA_INFOS) + 2
    # the images change to the calibrated size: rays again, and the warning is gone
    tracker.send(frame_at(t, (480, 640)), 1.0 + t)
    assert (cloud_to_array(tracker.out["tracks"][-1])["z"] == 1.0).all()
    assert tracker.condition("camera_info_size") is None


# Regression: an invalid camera_info after valid ones used to drop the intrinsics, so
# flow/tracks fell back to pixel coordinates and flow/velocity stopped.
@pytest.mark.parametrize("bad", sorted(BAD_CAMERA_INFOS))
def test_tracker_invalid_camera_info_after_a_valid_one_keeps_the_intrinsics(tracker, bad):
    node = tracker.node
    assert node.set_parameters([Parameter("distance", value=2.0)])[0].successful
    # The same frames through a pipeline that only ever sees the valid camera_info.
    values = defaults(TRACKER_PARAMS)
    values["distance"] = 2.0
    reference = TrackerPipeline(build_tracker_node_config(config_values(TRACKER_PARAMS, values)),
                                OfflineDiagnostics())
    reference.on_camera_info(camera_info())
    node._on_camera_info(camera_info())
    fx, cx, fy, cy = K[0], K[2], K[4], K[5]
    n_before = 8
    for i in range(n_before + 6):
        if i == n_before:
            node._on_camera_info(BAD_CAMERA_INFOS[bad])
            assert "camera_info ignored" in tracker.condition("camera_info")
        t = 3.0 + i / 30.0
        tracker.send(frame_at(i / 30.0), t)
        expected = reference.process(frame_from_msg(image_msg(frame_at(i / 30.0), t)),
                                     draw=False)
        assert serialize(tracker.out["tracks"][-1]) == serialize(expected.tracks_msg), i
        if expected.velocity_msg is not None:
            assert serialize(tracker.out["velocity"][-1]) == serialize(expected.velocity_msg), i
    # Tracks still carry the normalised rays of the valid K (no distortion: (u-cx)/fx, ...).
    cloud = cloud_to_array(tracker.out["tracks"][-1])
    assert len(cloud) >= 100
    np.testing.assert_allclose(cloud["x"], (cloud["u"] - cx) / fx, atol=1e-5)
    np.testing.assert_allclose(cloud["y"], (cloud["v"] - cy) / fy, atol=1e-5)
    assert (cloud["z"] == 1.0).all()
    # flow/velocity went on for every frame after the bad camera_info.
    stamps = [round(stamp_s(m) * 30) for m in tracker.out["velocity"]]
    assert stamps[-6:] == [round((3.0 + i / 30.0) * 30) for i in range(n_before, n_before + 6)]
    assert tracker.counters["camera_info_invalid"] == 1
    assert "camera_info ignored" in tracker.condition("camera_info")
    node._on_camera_info(camera_info())  # the condition clears on the next valid one
    assert tracker.condition("camera_info") is None
    assert tracker.counters["camera_info_invalid"] == 1


def _range(value: float, stamp: float, lo: float = 0.1, hi: float = 20.0) -> Range:
    msg = Range(range=value, min_range=lo, max_range=hi)
    msg.header.stamp = stamp_msg(stamp)
    return msg


def test_range_nan_inf_and_out_of_limits_are_ignored():
    counts = Counts()
    inputs = VelocityInputs(None, counts, VelocityInputConfig())
    assert inputs.distance(1.0)[0] is None
    inputs.on_range(_range(2.0, 1.0))
    bad = [_range(math.nan, 1.01), _range(math.inf, 1.02), _range(-math.inf, 1.03),
           _range(0.05, 1.04), _range(25.0, 1.05), _range(-1.0, 1.06),
           _range(2.0, 1.07, lo=math.nan), _range(2.0, 1.08, hi=math.nan),
           _range(2.0, 1.09, lo=5.0, hi=1.0),
           # within limits that allow it, but no distance: the range filter takes logs
           _range(0.0, 1.10, lo=0.0), _range(-0.5, 1.11, lo=-1.0)]
    for msg in bad:
        inputs.on_range(msg)
    assert counts["range_invalid"] == len(bad)
    assert inputs.take_ranges() == [(1.0, 2.0, 0.0)]   # only the valid one reaches the filter
    assert inputs.distance(1.1) == (2.0, "")       # the last valid reading stays in use
    value, why = inputs.distance(5.0)                # ... while it is recent enough
    assert value is None and "sensor_max_age" in why


def _imu(rates, stamp: float, covariance=(0.0,) * 9) -> Imu:
    msg = Imu()
    msg.header.stamp = stamp_msg(stamp)
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = rates
    msg.angular_velocity_covariance = [float(c) for c in covariance]
    return msg


def test_imu_nan_and_not_provided_are_ignored():
    counts = Counts()
    inputs = VelocityInputs(None, counts, VelocityInputConfig())
    for k in range(10):
        inputs.on_imu(_imu((0.0, 0.0, 0.1), 1.0 + k * 0.01))
    bad = [_imu((math.nan, 0.0, 0.0), 1.1), _imu((0.0, math.inf, 0.0), 1.11),
           _imu((0.0, 0.0, -math.inf), 1.12),
           _imu((0.0, 0.0, 0.1), 1.13, covariance=(-1.0,) + (0.0,) * 8)]
    for msg in bad:
        inputs.on_imu(msg)
    assert counts["imu_invalid"] == len(bad)
    # NaN covariance: the rate is used, the covariance is not (gyro_std instead)
    inputs.on_imu(_imu((0.0, 0.0, 0.1), 1.14, covariance=(math.nan,) * 9))
    timing = VelocityTiming(start=1.05, end=1.14, lag=0.04, samples=5)
    rates = inputs.gyro(timing, 0.002)
    assert rates is not None
    assert np.isfinite(rates.mean).all() and np.isfinite(rates.covariance).all()
    np.testing.assert_allclose(rates.latest, [0.0, 0.0, 0.1])
    # stamps going backwards (bag loop): the history restarts instead of mixing two times
    inputs.on_imu(_imu((0.0, 0.0, -0.5), 0.5))
    assert inputs._gyro.samples()[0].tolist() == [0.5]


def test_tracker_publishes_no_nan_velocity_whatever_range_and_imu_say(tracker):
    node = tracker.node
    node._on_camera_info(camera_info())
    inputs = node._pipeline.velocity_inputs
    for i in range(30):
        t = 2.0 + i / 30.0
        if i < 12:
            inputs.on_range(_range(2.0, t))
            inputs.on_imu(_imu((0.0, 0.0, 0.0), t))
        else:  # the rangefinder and the IMU go bad
            inputs.on_range(_range([math.nan, math.inf, -math.inf, 50.0][i % 4], t))
            inputs.on_imu(_imu((math.nan, 0.0, 0.0), t))
        tracker.send(frame_at(i / 30.0), t)
    published = tracker.out["velocity"]
    assert published, "valid range and imu give flow/velocity"
    for msg in published:
        twist = msg.twist.twist
        values = [twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.x,
                  twist.angular.y, twist.angular.z, *msg.twist.covariance]
        assert np.isfinite(values).all()
    last = published[-1].header.stamp
    assert last.sec + last.nanosec * 1e-9 < 2.0 + 12 / 30.0 + 0.25  # stops within max age
    assert "no flow/velocity" in tracker.condition("velocity")
    assert tracker.counters["range_invalid"] == 18 and tracker.counters["imu_invalid"] == 18
    assert tracker.counters["frames_processed"] == 30


# ---- dense_flow_node -----------------------------------------------------------------------

def test_dense_resolution_change_backwards_and_duplicate_stamps_skip_one_pair(dense):
    t = 100.0
    shift = 0.0

    def send(shape=SHAPE, dt=1 / 30.0, encoding="mono8"):
        nonlocal t, shift
        t += dt
        shift += 1 / 30.0
        dense.send(as_encoding(frame_at(shift, shape), encoding), t, encoding)

    send(), send(), send()                       # 2 flows
    send(shape=(200, 300))                       # resolution change: no flow, reset
    send(shape=(200, 300))                       # flow at the new size
    send(dt=-50.0, shape=(200, 300))             # bag loop: no flow, reset
    send(shape=(200, 300))
    send(dt=0.0, shape=(200, 300))               # duplicate stamp: no flow, reset
    send(shape=(200, 300), encoding="bgr8")      # encoding change: flow as usual
    send(dt=20.0, shape=(200, 300))              # long gap: flow as usual
    flows = dense.out["flow"]
    assert dense.counters["frames_processed"] == 6 and dense.counters["resets"] == 3
    assert len(flows) == 6 and dense.counters["frames_failed"] == 0
    assert [(f.height, f.width) for f in flows] == [SHAPE] * 2 + [(200, 300)] * 4
    for msg in flows[-2:]:
        flow = np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width, 2)
        inner = flow[20:-20, 20:-20].reshape(-1, 2)
        # the image moves by VELOCITY / 30 px per frame
        np.testing.assert_allclose(np.median(inner, axis=0), np.array(VELOCITY) / 30, atol=0.2)


# ---- over DDS: a publisher that goes away, and frames faster than processing ----------------

class Graph:
    """The test's side: image publishers, flow/tracks and tracker diagnostics subscribers."""

    def __init__(self, peer) -> None:
        self.peer = peer
        self.tracks: list[tuple[float, PointCloud2]] = []   # (receive time s, message)
        self.status: list[DiagnosticStatus] = []
        node = peer.node
        self.sub = node.create_subscription(
            PointCloud2, "flow/tracks", lambda m: self.tracks.append((time.time(), m)),
            keep_last_qos("reliable", 100))
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.status += [s for s in msg.status if "tracker_node" in s.name]

    def publisher(self, reliability: str = "reliable", depth: int = 10):
        pub = self.peer.node.create_publisher(Image, "image", keep_last_qos(reliability, depth))
        assert self.peer.wait_for_subscriber(pub)
        self.peer.spin_for(0.5)  # DDS matches each end on its own: let the node's end catch up
        return pub

    def diag(self, key: str) -> str | None:
        if not self.status:
            return None
        return {kv.key: kv.value for kv in self.status[-1].values}.get(key)

    def send(self, pub, image: np.ndarray, stamp: float) -> None:
        msg = array_to_image_msg(image, "mono8")
        msg.header.stamp = stamp_msg(stamp)
        count = len(self.tracks)
        pub.publish(msg)
        assert self.peer.spin_until(lambda: len(self.tracks) > count, 10.0), "no flow/tracks"


def test_camera_publisher_disappears_and_returns(ros_peer):
    graph = Graph(ros_peer)
    with NodeProcess("optical_flow_ros.nodes.tracker_node") as proc:
        assert ros_peer.wait_for_publisher(graph.sub), proc.output()
        pub = graph.publisher()
        for i in range(4):
            graph.send(pub, frame_at(i / 30.0), 30.0 + i / 30.0)
        ids_before = ids(graph.tracks[-1][1])
        ros_peer.node.destroy_publisher(pub)      # the driver dies
        assert ros_peer.spin_until(
            lambda: graph.status and graph.status[-1].level == DiagnosticStatus.STALE, 5.0)
        pub = graph.publisher()                   # and comes back (a new writer, new gid)
        for i in range(4, 8):
            graph.send(pub, frame_at(i / 30.0), 30.0 + i / 30.0)
        assert np.isin(ids_before, ids(graph.tracks[-1][1])).mean() > 0.5  # tracks go on
        assert ros_peer.spin_until(
            lambda: graph.diag("frames_processed") == "8"
            and graph.status[-1].level != DiagnosticStatus.STALE, 5.0), graph.status[-1]
        assert graph.diag("frames_dropped") in (None, "0")  # a new writer is no gap
        assert proc.alive(), proc.output()
    assert "Traceback" not in proc.output()


def test_two_camera_publishers_are_not_counted_as_dropped_frames(ros_peer):
    """Two publishers on one image topic at different rates, every frame processed: nothing
    is dropped. Their sequence numbers interleave (5 of one, then 1 of the other): Kilted's
    publisher_gid tells them apart; Jazzy has no gid, so there counting waits while the
    topic has more than one publisher (ros/frame_drops.py)."""
    graph = Graph(ros_peer)
    with NodeProcess("optical_flow_ros.nodes.tracker_node") as proc:
        assert ros_peer.wait_for_publisher(graph.sub), proc.output()
        first, second = graph.publisher(), graph.publisher()
        ros_peer.spin_for(1.0)  # the node's graph knows both publishers
        for i in range(18):
            graph.send(second if i % 6 == 5 else first, frame_at(i / 30.0), 30.0 + i / 30.0)
        received = ros_peer.spin_until(lambda: graph.diag("frames_received") == "18", 10.0)
        counters = {key: graph.diag(key) for key in ("frames_received", "frames_dropped")}
        assert received and graph.diag("frames_dropped") in (None, "0"), counters
        assert proc.alive(), proc.output()
    assert "Traceback" not in proc.output()


def test_frames_faster_than_processing_are_dropped_and_latency_stays_flat(ros_peer):
    graph = Graph(ros_peer)
    frames = [frame_at(i / 100.0, (480, 640)) for i in range(20)]
    rate_hz, duration_s = 200.0, 3.0
    with NodeProcess("optical_flow_ros.nodes.tracker_node") as proc:
        assert ros_peer.wait_for_publisher(graph.sub), proc.output()
        pub = graph.publisher("best_effort", 1)
        msgs = [array_to_image_msg(f, "mono8") for f in frames]
        start = time.time()
        sent = 0
        while (now := time.time()) < start + duration_s:
            if now >= start + sent / rate_hz:
                msg = msgs[sent % len(msgs)]
                msg.header.stamp = stamp_msg(now)
                pub.publish(msg)
                sent += 1
            ros_peer.executor.spin_once(timeout_sec=0.0)
        ros_peer.spin_for(1.5)
        assert ros_peer.spin_until(lambda: graph.diag("frames_dropped") not in (None, "0"), 3.0)
        received = int(graph.diag("frames_received"))
        dropped = int(graph.diag("frames_dropped"))
        assert proc.alive(), proc.output()
    assert "Traceback" not in proc.output()
    latency = [(stamp_s(m) - start, got - stamp_s(m)) for got, m in graph.tracks]
    first = [lat for t, lat in latency if t < 1.0]
    last = [lat for t, lat in latency if duration_s - 1.0 <= t < duration_s]
    print(f"sent {sent} at {sent / duration_s:.0f} Hz, received {received}, dropped {dropped}, "
          f"processed {len(graph.tracks)}; latency p50 first s {np.median(first) * 1e3:.1f} ms, "
          f"last s {np.median(last) * 1e3:.1f} ms")
    assert sent >= 0.75 * rate_hz * duration_s  # the publisher kept (about) its rate
    assert dropped > 0 and len(graph.tracks) < sent
    assert len(first) >= 5 and len(last) >= 5
    # a backlog would grow the latency by ~1 frame period per processed frame
    assert np.median(last) <= 1.5 * np.median(first) + 0.02


def stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


# Regression: STALE used to be reported only while no condition stood, and tracker_node's
# default config (no range, distance 0) holds a "velocity" WARN forever.
def test_stopped_camera_is_reported_stale_even_with_a_standing_warning(tracker):
    tracker.send(frame_at(0.0), 1.0)
    assert tracker.condition("velocity") is not None  # default config: no distance
    diag = tracker.node._diag
    diag.status()                                      # the report that saw the frame
    status = diag.status()                                # nothing since: the camera stopped
    assert status.level == DiagnosticStatus.STALE
    assert "no flow/velocity" in status.message            # the standing warning is kept


# Regression: round() instead of floor() let a tick more than half a period late take the next
# frame's stamp, and every later stamp stayed a period ahead of the clock.
def test_sim_camera_stamps_never_run_ahead_of_the_clock(peer):
    node = SimCameraNode(context=peer.context)  # not spun: the test plays the timer
    try:
        period = 1e9 / node._sim.config.rate
        start = 1_000_000_000_000
        # in periods after the first tick: on time, 0.6 late, on time, 1.7 late, on time
        for k in [0, 1, 2.6, 3, 4, 6.7, 7, 8]:
            now = start + round(k * period)
            _, _, stamp_ns = node._next_frame(now)
            assert now - period < stamp_ns <= now + 1000, (k, (stamp_ns - start) / period)
    finally:
        node.destroy_node()


@pytest.mark.parametrize("encoding", ["nv12", "bayer_rggb8", "bgr8", "mono8"])
def test_flow_image_is_drawn_in_colour_for_every_colour_encoding(encoding):
    """flow/image draws on the camera's colours, also where the decoded array is 2-D (YUV
    4:2:0, Bayer), and on grey for grey cameras."""
    bgr = cv2.resize(load_texture("astronaut", color=True), (128, 96))
    if encoding == "nv12":
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
        y, chroma = i420[:96 * 128].reshape(96, 128), i420[96 * 128:]
        u, v = chroma[:96 * 128 // 4], chroma[96 * 128 // 4:]
        array = np.vstack([y, np.stack((u, v), axis=-1).reshape(48, 128)])
    elif encoding == "bayer_rggb8":
        array = np.zeros((96, 128), np.uint8)    # R G / G B mosaic of the photo
        array[0::2, 0::2], array[1::2, 1::2] = bgr[0::2, 0::2, 2], bgr[1::2, 1::2, 0]
        array[0::2, 1::2], array[1::2, 0::2] = bgr[0::2, 1::2, 1], bgr[1::2, 0::2, 1]
    elif encoding == "mono8":
        array = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    else:
        array = bgr
    frame = frame_from_msg(array_to_image_msg(array, encoding))
    values = dict(defaults(TRACKER_PARAMS), draw_count=False)
    pipeline = TrackerPipeline(build_tracker_node_config(config_values(TRACKER_PARAMS, values)),
                               OfflineDiagnostics())
    none = Tracks(ids=np.zeros(0, np.int64), points=np.zeros((0, 2), np.float32),
                  velocities=np.zeros((0, 2), np.float32), ages=np.zeros(0, np.int32),
                  fb_errors=np.zeros(0, np.float32), stamp=0.0)
    drawn = pipeline.draw(frame, none, None).astype(int)    # the background alone
    colourfulness = np.abs(drawn[..., 2] - drawn[..., 0]).mean()
    if encoding == "mono8":
        assert colourfulness == 0
    else:
        assert colourfulness > 10, colourfulness
