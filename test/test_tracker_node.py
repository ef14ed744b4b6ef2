"""tracker_node in its own process over real DDS, checked against the known motion."""

from __future__ import annotations

import ground_truth as gt
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from ros_harness import NodeProcess, stamp_msg
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger

from optical_flow_ros.ros.image_messages import array_to_image_msg
from optical_flow_ros.ros.qos import VIEW_IMAGE_DEPTH, keep_last_qos
from optical_flow_ros.ros.track_cloud import cloud_to_array

pytestmark = pytest.mark.dds

SHAPE = (240, 320)
VELOCITY = np.array([90.0, -60.0])  # px/s
K = np.array([[300.0, 0.0, 160.0], [0.0, 300.0, 120.0], [0.0, 0.0, 1.0]])


class Harness:
    """The test's side of the graph: image/camera_info publishers, output subscribers."""

    def __init__(self, peer) -> None:
        self.peer = peer
        node = peer.node
        self.tracks: list[PointCloud2] = []
        self.images: list[Image] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.pub_image = node.create_publisher(Image, "image", keep_last_qos("reliable", 10))
        self.pub_info = node.create_publisher(CameraInfo, "camera_info",
                                              keep_last_qos("reliable", 1))
        self.subs = [
            node.create_subscription(PointCloud2, "flow/tracks", self.tracks.append,
                                     keep_last_qos("reliable", 50)),
            node.create_subscription(Image, "flow/image", self.images.append,
                                     keep_last_qos("reliable", 50)),
        ]
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def wait_connected(self, proc) -> None:
        ok = self.peer.wait_for_subscriber(self.pub_image) and all(
            self.peer.wait_for_publisher(sub) for sub in self.subs)
        assert ok, proc.output()

    def send(self, image: np.ndarray, stamp: float, encoding: str = "mono8") -> None:
        """Publish a frame and wait for its flow/tracks."""
        msg = array_to_image_msg(image, encoding)
        msg.header.stamp = stamp_msg(stamp)
        msg.header.frame_id = "camera_optical_frame"
        count = len(self.tracks)
        self.pub_image.publish(msg)
        assert self.peer.spin_until(lambda: len(self.tracks) > count, 10.0), "no flow/tracks"

    def send_raw(self, msg: Image) -> None:
        self.pub_image.publish(msg)
        self.peer.spin_for(0.3)

    def diag(self, key: str) -> str | None:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if "tracker_node" in status.name:
                    return {kv.key: kv.value for kv in status.values}.get(key)
        return None

    def call(self, srv_type, name: str, request):
        return self.peer.call(self.peer.node.create_client(srv_type, name), request)


def _frames(stamps: np.ndarray) -> list[np.ndarray]:
    """The texture moving at VELOCITY px/s, starting at the first stamp."""
    base = gt.texture("gravel", (SHAPE[0] + 200, SHAPE[1] + 200))
    elapsed = stamps - stamps[0]
    return [gt.render(base, gt.translation(-100 + VELOCITY[0] * t, -100 + VELOCITY[1] * t),
                      SHAPE) for t in elapsed]


def _camera_info() -> CameraInfo:
    return CameraInfo(width=SHAPE[1], height=SHAPE[0], distortion_model="plumb_bob",
                      d=[0.0] * 5, k=K.ravel().tolist())


def test_tracks_follow_the_motion_with_px_per_s_velocities_and_rays(ros_peer):
    rng = np.random.default_rng(3)
    stamps = 100.0 + np.cumsum(rng.uniform(0.025, 0.040, 12))  # irregular intervals
    h = Harness(ros_peer)
    with NodeProcess("optical_flow_ros.nodes.tracker_node") as proc:
        h.wait_connected(proc)
        h.pub_info.publish(_camera_info())
        ros_peer.spin_for(0.3)
        for frame, stamp in zip(_frames(stamps), stamps, strict=True):
            h.send(frame, stamp)
        assert ros_peer.spin_until(lambda: len(h.images) > 0, 5.0)
        assert proc.alive(), proc.output()
    clouds = [cloud_to_array(m) for m in h.tracks]
    assert len(clouds) == len(stamps)
    for msg, stamp in zip(h.tracks, stamps, strict=True):
        assert abs(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 - stamp) < 1e-6
        assert msg.header.frame_id == "camera_optical_frame"
    first, last = clouds[0], clouds[-1]
    assert len(first) >= 100 and len(last) >= 100
    assert len(np.unique(last["id"])) == len(last)
    # Same id, displacement = truth over the elapsed time.
    common, i0, i1 = np.intersect1d(first["id"], last["id"], return_indices=True)
    assert len(common) >= 50
    moved = np.column_stack([last["u"][i1] - first["u"][i0], last["v"][i1] - first["v"][i0]])
    expected = VELOCITY * (stamps[-1] - stamps[0])
    assert np.abs(moved - expected).mean() < 0.3
    # Velocities in px/s (not px/frame) within 1 % for tracks with a full window.
    old = last[last["age"] >= 5]
    assert len(old) >= 50
    speed_error = np.hypot(old["vu"] - VELOCITY[0], old["vv"] - VELOCITY[1])
    assert np.median(speed_error) / np.hypot(*VELOCITY) < 0.01
    # New tracks have unknown velocity, not zero.
    new = last[last["age"] == 1]
    assert np.isnan(new["vu"]).all()
    # Normalised rays from camera_info: (u - cx) / fx, (v - cy) / fy, 1.
    np.testing.assert_allclose(last["x"], (last["u"] - K[0, 2]) / K[0, 0], atol=1e-6)
    np.testing.assert_allclose(last["y"], (last["v"] - K[1, 2]) / K[1, 1], atol=1e-6)
    assert (last["z"] == 1.0).all()
    # The debug image is the input's size, bgr8, with the image's header.
    assert h.images[-1].encoding == "bgr8"
    assert (h.images[-1].height, h.images[-1].width) == SHAPE


def test_bad_input_parameters_and_resets_do_not_stop_the_node(ros_peer):
    stamps = 50.0 + np.arange(6) / 30.0
    frames = _frames(stamps)
    h = Harness(ros_peer)
    with NodeProcess("optical_flow_ros.nodes.tracker_node") as proc:
        h.wait_connected(proc)
        for frame, stamp in zip(frames[:3], stamps[:3], strict=True):
            h.send(frame, stamp)
        ids_before = cloud_to_array(h.tracks[-1])["id"]
        # Malformed frames: data too short, unknown encoding. Counted, not fatal.
        short = array_to_image_msg(frames[3], "mono8")
        short.data = short.data[:100]
        h.send_raw(short)
        h.send_raw(Image(height=2, width=2, encoding="no_such_encoding", step=2, data=b"1234"))
        # A runtime parameter change that OpenCV cannot use is refused with the reason.
        bad = ParameterMsg(name="win_size", value=ParameterValue(
            type=ParameterType.PARAMETER_INTEGER, integer_value=4))
        reply = h.call(SetParameters, "/tracker_node/set_parameters",
                       SetParameters.Request(parameters=[bad])).results[0]
        assert not reply.successful and "win_size" in reply.reason and "odd" in reply.reason
        # Still tracking, same ids continue.
        h.send(frames[3], stamps[3])
        assert np.isin(ids_before, cloud_to_array(h.tracks[-1])["id"]).mean() > 0.8
        # A stamp going backwards (bag loop) resets: only new ids afterwards.
        h.send(frames[0], stamps[0])
        after_loop = cloud_to_array(h.tracks[-1])["id"]
        assert after_loop.min() > ids_before.max()
        # Resolution change resets too; ~/reset works.
        h.send(np.ascontiguousarray(frames[4][:200, :300]), stamps[4] + 10)
        assert cloud_to_array(h.tracks[-1])["id"].min() > after_loop.max()
        result = h.call(Trigger, "/tracker_node/reset", Trigger.Request())
        assert result.success
        # >= 3: a re-sent ~/reset (first answer lost in discovery) may count once more.
        assert ros_peer.spin_until(lambda: int(h.diag("resets") or 0) >= 3, 5.0), proc.output()
        assert h.diag("frames_invalid") == "2"
        assert proc.alive(), proc.output()
    assert "Traceback" not in proc.output()


def test_invalid_yaml_value_stops_the_node_at_start_up_naming_the_parameter(tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text("/**:\n  ros__parameters:\n    spread: diagonal\n")
    proc = NodeProcess("optical_flow_ros.nodes.tracker_node", params_file=params)
    assert proc.proc.wait(30) == 2
    out = proc.output()
    assert "spread" in out and "diagonal" in out and "Traceback" not in out


def _publisher_qos(peer, topic: str, node_name: str, timeout: float = 20.0):
    """The QoS that discovery reports for ``node_name``'s publisher of ``topic``."""
    found = []

    def match() -> bool:
        found[:] = [info.qos_profile for info in peer.node.get_publishers_info_by_topic(topic)
                    if info.node_name == node_name]
        return bool(found)

    assert peer.spin_until(match, timeout), f"no publisher of {topic} from {node_name}"
    return found[0]


def test_output_qos_is_overridden_the_ros2_way_from_yaml(ros_peer, tmp_path):
    from rclpy.qos import ReliabilityPolicy

    params = tmp_path / "qos.yaml"
    params.write_text(
        "/**:\n  ros__parameters:\n    qos_overrides:\n"
        "      /cam/flow/tracks:\n        publisher:\n"
        "          depth: 20\n          reliability: best_effort\n"
        "      /cam/flow/velocity:\n        publisher:\n          depth: 12\n")
    with NodeProcess("optical_flow_ros.nodes.tracker_node", namespace="/cam",
                     params_file=params) as proc:
        tracks = _publisher_qos(ros_peer, "/cam/flow/tracks", "tracker_node")
        velocity = _publisher_qos(ros_peer, "/cam/flow/velocity", "tracker_node")
        image = _publisher_qos(ros_peer, "/cam/flow/image", "tracker_node")
        # Discovery carries reliability, not the writer's depth: the node's parameters do.
        assert tracks.reliability == ReliabilityPolicy.BEST_EFFORT, proc.output()
        assert velocity.reliability == ReliabilityPolicy.RELIABLE
        assert image.reliability == ReliabilityPolicy.RELIABLE
        names = [f"qos_overrides./cam/flow/{topic}.publisher.depth"
                 for topic in ("tracks", "velocity", "image")]
        reply = ros_peer.call(ros_peer.node.create_client(GetParameters,
                                                          "/cam/tracker_node/get_parameters"),
                              GetParameters.Request(names=names))
        assert [v.integer_value for v in reply.values] == [20, 12, VIEW_IMAGE_DEPTH]
        assert proc.alive(), proc.output()
    assert "Traceback" not in proc.output()


@pytest.mark.parametrize(("policy", "value", "reason"), [
    ("reliability", "sometimes", "sometimes"),
    ("depth", "0", "depth must be >= 1"),
])
def test_invalid_qos_override_stops_the_node_at_start_up_naming_it(tmp_path, policy, value,
                                                                    reason):
    params = tmp_path / "bad_qos.yaml"
    params.write_text("/**:\n  ros__parameters:\n    qos_overrides:\n      /flow/tracks:\n"
                      f"        publisher:\n          {policy}: {value}\n")
    proc = NodeProcess("optical_flow_ros.nodes.tracker_node", params_file=params)
    assert proc.proc.wait(30) == 2, proc.output()
    out = proc.output()
    assert "qos_overrides./flow/tracks.publisher" in out and reason in out, out
    assert "Traceback" not in out


def test_compressed_input_is_tracked_like_raw(ros_peer):
    from sensor_msgs.msg import CompressedImage

    from optical_flow_ros.ros.image_messages import array_to_compressed_msg

    stamps = 20.0 + np.arange(5) / 30.0
    tracks: list[PointCloud2] = []
    pub = ros_peer.node.create_publisher(CompressedImage, "cam/image/compressed",
                                         keep_last_qos("reliable", 10))
    sub = ros_peer.node.create_subscription(PointCloud2, "flow/tracks", tracks.append,
                                            keep_last_qos("reliable", 10))
    with NodeProcess("optical_flow_ros.nodes.tracker_node", remaps={"image": "cam/image"},
                     params={"image_transport": "compressed"}) as proc:
        assert ros_peer.wait_for_subscriber(pub) and ros_peer.wait_for_publisher(sub), \
            proc.output()
        for frame, stamp in zip(_frames(stamps), stamps, strict=True):
            msg = array_to_compressed_msg(frame, "png")  # lossless: same truth as raw
            msg.header.stamp = stamp_msg(stamp)
            count = len(tracks)
            pub.publish(msg)
            assert ros_peer.spin_until(lambda c=count: len(tracks) > c, 10.0), proc.output()
    first, last = cloud_to_array(tracks[0]), cloud_to_array(tracks[-1])
    common, i0, i1 = np.intersect1d(first["id"], last["id"], return_indices=True)
    assert len(common) >= 50
    moved = np.column_stack([last["u"][i1] - first["u"][i0], last["v"][i1] - first["v"][i0]])
    assert np.abs(moved - VELOCITY * (stamps[-1] - stamps[0])).mean() < 0.3
