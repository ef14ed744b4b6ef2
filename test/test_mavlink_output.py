"""tracker_node as an autopilot's optical-flow sensor: MAVLink over real sockets on 127.0.0.1.

A pymavlink peer in this process (``udpin`` on a free port, or a TCP listener) decodes what
tracker_node sends (``udpout``) while sim_camera_node flies a tilted, turning camera over
gravel with range and gyro, over real DDS; the decoded fields are compared with the
simulator's exact truth of the same stamps (sim/twist and range carry them).
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TwistStamped
from ros_harness import REPO, NodeProcess
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, Range
from std_msgs.msg import Header

from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig
from optical_flow_ros.nodes.sim_camera_node import camera_info_msg
from optical_flow_ros.ros.image_messages import array_to_image_msg
from optical_flow_ros.ros.qos import keep_last_qos

pymavlink = pytest.importorskip("pymavlink")
from pymavlink import mavutil  # noqa: E402
from pymavlink.dialects.v20 import common  # noqa: E402

pytestmark = pytest.mark.dds

# 320x240 at f = 250 px, 15 fps, 2 m over gravel at ~0.85 m/s, yawing, +/-5 deg roll/pitch.
SIM = dict(rate=15.0, image_width=320, image_height=240, focal_length=250.0, altitude=2.0,
           velocity_x=0.8, velocity_y=0.3, yaw_rate=0.2, roll_amplitude=math.radians(5.0),
           pitch_amplitude=math.radians(5.0), attitude_period=3.0, gyro_noise_std=0.002)
WANTED = 40        # OPTICAL_FLOW_RAD messages with a valid flow to compare


def _free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _trapezoid(stamps_us: list[int], values: list) -> np.ndarray:
    """Integral over the stamps (µs) of values linear between them, value * s."""
    v = np.asarray(values, np.float64)
    steps = np.diff(np.asarray(stamps_us, np.float64)) * 1e-6
    return (0.5 * (v[1:] + v[:-1]) * steps[:, None]).sum(axis=0)


def _stamp_us(header: Header) -> int:
    return header.stamp.sec * 1_000_000 + header.stamp.nanosec // 1000


class Peer:
    """The autopilot's side: a pymavlink udpin link decoding MAVLink 2 (common dialect)."""

    def __init__(self, port: int) -> None:
        self.link = mavutil.mavlink_connection(f"udpin:127.0.0.1:{port}")
        self.link.mav = common.MAVLink(self.link)   # MAVLink 2, common, whatever the env says
        # A datagram that is not MAVLink is BAD_DATA, skipped, as an autopilot skips it: the
        # port is one the OS just freed, and a DDS participant may still send RTPS to it (a
        # CI run failed on "invalid MAVLink prefix '82'": 'R', RTPS's first byte).
        self.link.mav.robust_parsing = True
        self.messages: list = []

    def poll(self) -> None:
        while (msg := self.link.recv_msg()) is not None:
            if msg.get_type() != "BAD_DATA":
                self.messages.append(msg)

    def of_type(self, name: str) -> list:
        return [m for m in self.messages if m.get_type() == name]

    def close(self) -> None:
        self.link.close()


class Truth:
    """sim/twist and range of each stamp (µs): the exact raw flow rate and the gyro."""

    def __init__(self, node) -> None:
        self.twist: dict[int, TwistStamped] = {}
        self.range: dict[int, float] = {}
        qos = keep_last_qos("reliable", 100)
        node.create_subscription(TwistStamped, "sim/twist",
                                 lambda m: self.twist.__setitem__(_stamp_us(m.header), m), qos)
        node.create_subscription(Range, "range",
                                 lambda m: self.range.__setitem__(_stamp_us(m.header), m.range),
                                 qos)

    def flow_rate(self, stamp_us: int) -> np.ndarray | None:
        """(wx - vy/d, wy + vx/d) in the optical frame, rad/s (None if not received)."""
        if stamp_us not in self.twist or stamp_us not in self.range:
            return None
        t, d = self.twist[stamp_us].twist, self.range[stamp_us]
        return np.array([t.angular.x - t.linear.y / d, t.angular.y + t.linear.x / d])

    def rates(self, stamp_us: int) -> np.ndarray | None:
        if stamp_us not in self.twist:
            return None
        a = self.twist[stamp_us].twist.angular
        return np.array([a.x, a.y, a.z])


def _spin(ros_peer, peer: Peer, done, timeout: float, *procs: NodeProcess) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ros_peer.spin_for(0.05)
        peer.poll()
        if done():
            return
    raise AssertionError("timed out\n" + "\n".join(p.output()[-3000:] for p in procs))


def test_flow_rad_and_optical_flow_match_the_simulated_truth(ros_peer):
    port = _free_port()
    peer = Peer(port)
    truth = Truth(ros_peer.node)
    params = dict(opencv_threads=1, mavlink_url=f"udpout:127.0.0.1:{port}",
                  mavlink_messages="both", mavlink_system_id=42, mavlink_component_id=77,
                  mavlink_sensor_id=3, mavlink_distance_sensor=True)
    try:
        with NodeProcess("optical_flow_ros.nodes.sim_camera_node", params=SIM) as sim, \
                NodeProcess("optical_flow_ros.nodes.tracker_node", params=params) as tracker:
            def enough() -> bool:
                good = [m for m in peer.of_type("OPTICAL_FLOW_RAD")
                        if m.quality > 0 and m.time_usec - m.integration_time_us in truth.twist]
                return len(good) >= WANTED and bool(peer.of_type("HEARTBEAT"))

            _spin(ros_peer, peer, enough, 60.0, sim, tracker)
            ros_peer.spin_for(0.3)                  # the truth of the last frames
            peer.poll()
            assert tracker.alive(), tracker.output()
    finally:
        peer.close()

    heartbeat = peer.of_type("HEARTBEAT")[0]
    assert (heartbeat.get_srcSystem(), heartbeat.get_srcComponent()) == (42, 77)
    assert heartbeat.type == 18 and heartbeat.autopilot == 8     # onboard controller, no autopilot
    assert all(m.get_msgbuf()[0] == 0xFD for m in peer.messages)           # MAVLink 2

    rad = peer.of_type("OPTICAL_FLOW_RAD")
    flow = {m.time_usec: m for m in peer.of_type("OPTICAL_FLOW")}
    distance = {m.current_distance: m for m in peer.of_type("DISTANCE_SENSOR")}
    assert all((m.get_srcSystem(), m.get_srcComponent(), m.sensor_id) == (42, 77, 3)
               for m in rad)
    measured, expected, gyro_err = [], [], []
    first_truth = min(truth.twist)         # the truth subscription matched after a few frames
    for m in rad:
        if m.time_usec < first_truth:
            continue
        assert m.time_usec in truth.twist, "time_usec is not an image stamp"   # exact µs
        if m.quality == 0:
            continue
        start = m.time_usec - m.integration_time_us
        # The interval is whole frames (more than one when the tracker dropped a frame).
        dt = m.integration_time_us * 1e-6
        assert dt * 15.0 == pytest.approx(round(dt * 15.0), abs=1e-4) and dt > 0.0
        inside = sorted(k for k in truth.twist if start <= k <= m.time_usec)
        if not inside or inside[0] != start or truth.flow_rate(m.time_usec) is None:
            continue
        rates = [truth.flow_rate(k) for k in inside]
        if any(r is None for r in rates):
            continue
        # The mean over the interval: trapezoid over every frame's exact truth (O(dt^2) of the
        # slow sinusoids: < 0.2 %).
        expected.append(_trapezoid(inside, rates) / dt)
        measured.append(np.array([m.integrated_x, m.integrated_y]) / dt)
        gyro_err.append(np.array([m.integrated_xgyro, m.integrated_ygyro, m.integrated_zgyro])
                        - _trapezoid(inside, [truth.rates(k) for k in inside]))
        assert m.distance == pytest.approx(truth.range[m.time_usec], rel=1e-6)
        assert m.time_delta_distance_us <= 200_000
        # OPTICAL_FLOW as ArduPilot's AP_OpticalFlow_MAV reads it: flow_rate_x/y (rad/s),
        # quality, sensor_id; the rest as the spec (and PX4Flow) fill them.
        f = flow[m.time_usec]
        assert f.quality == m.quality and f.sensor_id == 3
        assert (f.flow_rate_x, f.flow_rate_y) == pytest.approx(
            (m.integrated_x / dt, m.integrated_y / dt), rel=1e-5, abs=1e-7)
        assert (f.flow_x, f.flow_y) == pytest.approx(
            (-10 * 250.0 * m.integrated_y, 10 * 250.0 * m.integrated_x), abs=1.0)
        assert f.ground_distance == pytest.approx(m.distance)
        v = truth.twist[m.time_usec].twist.linear
        assert np.hypot(f.flow_comp_m_x - v.x, f.flow_comp_m_y - v.y) < 0.1 * np.hypot(v.x, v.y)
    measured, expected = np.array(measured), np.array(expected)
    assert len(measured) >= WANTED - 5, len(measured)
    rms = np.sqrt(np.mean(expected**2, axis=0))
    rmse = np.sqrt(np.mean((measured - expected) ** 2, axis=0))
    print(f"flow rate per axis: rms truth {rms} rad/s, rmse {rmse} rad/s "
          f"({100 * rmse / rms} %), max abs error {np.abs(measured - expected).max(axis=0)}")
    assert (rmse <= 0.05 * rms).all(), (rmse, rms)
    # Signs: every sample whose truth is clear of the error level has the truth's sign.
    clear = np.abs(expected) > 3 * rmse
    assert clear.sum() >= len(measured)
    assert (np.sign(measured[clear]) == np.sign(expected[clear])).all()
    gyro_err = np.array(gyro_err)
    print(f"{len(measured)} frames; signs checked on {clear.sum(axis=0)} per axis; gyro "
          f"integral max abs error {np.abs(gyro_err).max(axis=0)} rad per interval")
    assert np.abs(gyro_err).max() < 0.002, np.abs(gyro_err).max(axis=0)   # rad per interval
    # DISTANCE_SENSOR: the range in cm, looking down.
    assert distance, "no DISTANCE_SENSOR"
    d = next(iter(distance.values()))
    assert d.orientation == 25 and d.min_distance == 5 and d.max_distance == 10000
    assert 190 <= d.current_distance <= 215 and d.id == 3


def test_a_textureless_frame_still_sends_quality_zero(ros_peer):
    """Frames from this process: gravel, then flat grey; no range and no imu."""
    port = _free_port()
    peer = Peer(port)
    sim = SimCamera(SimCameraConfig(**{k: v for k, v in SIM.items() if k != "gyro_noise_std"}))
    pub_image = ros_peer.node.create_publisher(Image, "image", keep_last_qos("reliable", 5))
    pub_info = ros_peer.node.create_publisher(CameraInfo, "camera_info",
                                              keep_last_qos("reliable", 5))
    info = camera_info_msg(sim.camera)
    textured, flat = 14, 4
    stamps = [1000.0 + 0.1 * k for k in range(textured + flat)]
    params = dict(opencv_threads=1, mavlink_url=f"udpout:127.0.0.1:{port}")
    try:
        with NodeProcess("optical_flow_ros.nodes.tracker_node", params=params) as tracker:
            assert ros_peer.wait_for_subscriber(pub_image, 30.0), tracker.output()
            for k, stamp in enumerate(stamps):
                image = (sim.render(k / 15.0) if k < textured
                         else np.full((240, 320), 128, np.uint8))
                header = Header(frame_id="camera_optical_frame")
                header.stamp.sec, header.stamp.nanosec = int(stamp), round(stamp % 1 * 1e9)
                info.header = header
                pub_info.publish(info)
                pub_image.publish(array_to_image_msg(image, "mono8", header))
                sent = _stamp_us(header)
                _spin(ros_peer, peer, lambda s=sent: any(
                    m.time_usec == s for m in peer.of_type("OPTICAL_FLOW_RAD")), 20.0, tracker)
            assert tracker.alive(), tracker.output()
    finally:
        peer.close()
    rad = {m.time_usec: m for m in peer.of_type("OPTICAL_FLOW_RAD")}
    assert len(rad) == len(stamps)
    by_frame = [rad[round(s * 1e6)] for s in stamps]
    assert by_frame[0].quality == 0 and by_frame[0].integration_time_us == 0   # no interval yet
    assert max(m.quality for m in by_frame[:textured]) > 0
    for m in by_frame[textured:]:          # flat grey: no tracks, no flow, still sent
        assert m.quality == 0 and (m.integrated_x, m.integrated_y) == (0.0, 0.0)
        assert m.integration_time_us == 100_000
    for m in by_frame:
        assert m.distance == -1.0                                  # no range: unknown
        assert all(math.isnan(v) for v in (m.integrated_xgyro, m.integrated_ygyro,
                                           m.integrated_zgyro))   # no imu: the autopilot's gyro


def test_a_bad_url_ends_the_node_with_one_line_and_exit_2():
    for url in ("udpout:127.0.0.1", "tcp:localhost:99999", "bogus:1:2", "/dev/ttyACM0,fast"):
        proc = NodeProcess("optical_flow_ros.nodes.tracker_node", params=dict(mavlink_url=url))
        code = proc.proc.wait(60)
        out = proc.output()
        lines = [line for line in out.splitlines() if line.strip()]
        assert code == 2, out
        assert len(lines) == 1 and "mavlink_url" in lines[0] and "Traceback" not in out, out


def test_an_unreachable_tcp_endpoint_is_counted_retried_and_the_node_keeps_tracking(ros_peer):
    port = _free_port(socket.SOCK_STREAM)
    statuses: list = []
    tracks: list = []
    node = ros_peer.node
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: statuses.extend(
        s for s in m.status if "tracker_node" in s.name), 10)
    node.create_subscription(PointCloud2, "flow/tracks", tracks.append,
                             keep_last_qos("reliable", 50))

    def counters() -> dict[str, str]:
        return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}

    params = dict(opencv_threads=1, mavlink_url=f"tcp:127.0.0.1:{port}")
    with NodeProcess("optical_flow_ros.nodes.sim_camera_node", params=SIM) as sim, \
            NodeProcess("optical_flow_ros.nodes.tracker_node", params=params) as tracker:
        assert ros_peer.spin_until(
            lambda: int(counters().get("mavlink_connect_failures", 0)) >= 2 and len(tracks) > 20,
            40.0), tracker.output()
        status = statuses[-1]
        assert "mavlink" in counters() and f"tcp:127.0.0.1:{port}" in counters()["mavlink"]
        assert status.level == DiagnosticStatus.WARN
        # The autopilot comes up: the node connects on its next retry and sends.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen(1)
            server.settimeout(15.0)
            conn, _ = server.accept()
            decoder = common.MAVLink(None)
            got: list = []
            conn.settimeout(5.0)
            end = time.monotonic() + 10.0
            while time.monotonic() < end and not any(
                    m.get_type() == "OPTICAL_FLOW_RAD" for m in got):
                got += decoder.parse_buffer(conn.recv(4096)) or []
            conn.close()
        assert any(m.get_type() == "OPTICAL_FLOW_RAD" for m in got)
        assert tracker.alive() and sim.alive()
        out = tracker.output()
    errors = [line for line in out.splitlines() if "MAVLink:" in line and "ERROR" in line]
    assert len(errors) == 1, out          # one clear line, not one per retry
    assert "Traceback" not in out


def test_without_pymavlink_a_mavlink_url_ends_the_node_with_one_line(tmp_path):
    hider = tmp_path / "sitecustomize.py"
    hider.write_text(
        "import sys\n"
        "class _NotInstalled:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pymavlink':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _NotInstalled())\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(tmp_path), str(REPO))))
    result = subprocess.run(
        [sys.executable, "-m", "optical_flow_ros", "tracker_node", "--ros-args", "-p",
         "mavlink_url:=udpout:127.0.0.1:14550"], capture_output=True, text=True, env=env,
        timeout=120)
    assert result.returncode == 2, result.stderr          # mavlink_url cannot be honoured
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'pymavlink'" in lines[0] and "pip install pymavlink" in lines[0]
    assert lines[0].startswith("[ERROR] invalid parameter: mavlink_url")
