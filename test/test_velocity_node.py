"""tracker_node's flow/velocity over real DDS, fed by sim_camera_node (both in their own
processes): the published twist against the simulator's exact sim/twist of the same stamp.

The flight: 320x240 at f = 250 px (the field of view of 640x480 at 500 px), 15 fps, 2 m over
gravel at ~0.85 m/s with yaw and a +/-5 deg roll/pitch coning motion, every sensor noisy as it
says (image 2 grey levels; gyro 0.005 rad/s with that covariance in the imu message, at the
simulator's own 200 Hz, as a robot's IMU, polled by the tracker between frames; range 1 % with
its variance in the range message; gyro in the optical frame, so the imu rotation parameters
stay 0). Bounds: horizontal RMSE <= 5 % of the mean speed (15 fps, a quarter of the pixels),
and the covariance calibrated as in the core tests but with the looser bands that 60 estimates
allow: per-axis 1 sigma 45-90 %, 3 sigma >= 95 %, median NEES 0.6-2.5. Measured with the 200 Hz
imu (32 runs, seeds 0-29, other suites running beside them): 30 passed, RMSE 0.86-2.17 %
(median 1.13), 1 sigma 0.58-0.81, 3 sigma >= 0.953 (3 of 64 outside on 2 runs: the thinnest
margin, on runs that score the flight's first estimates, where the field's variance is least
known), median NEES 0.78-1.73; the 2 failures had a gap in the estimates (a node stalled by the
load: after it, errors up to 1.6 m/s). With one sample per frame (15 runs): 15 passed,
1.14-2.12 %, 0.67-0.84, >= 0.969, 0.83-1.43. A node stopped for 0.4 s mid-flight (SIGSTOP)
failed it at either imu rate. On the covariance merged since (15e), 200 Hz, 6 runs: 6 passed,
1.06-1.82 %, 0.55-0.73, >= 0.953, 1.27-1.70.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TwistStamped, TwistWithCovarianceStamped
from ros_harness import NodeProcess, stamp_msg
from sensor_msgs.msg import Imu, PointCloud2, Range
from std_msgs.msg import Header

from optical_flow_ros.core.fit_window import VelocityTiming
from optical_flow_ros.core.sim_camera import R_BODY_OPTICAL
from optical_flow_ros.core.velocity_estimator import COVARIANCE_TERMS, VelocityEstimate
from optical_flow_ros.ros.diagnostics import DiagnosticsReporter
from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.ros.velocity_inputs import VelocityInputConfig, VelocityInputs, velocity_msg

pytestmark = pytest.mark.dds

SIM = dict(rate=15.0, image_width=320, image_height=240, focal_length=250.0, altitude=2.0,
           velocity_x=0.8, velocity_y=0.3, yaw_rate=0.2, roll_amplitude=math.radians(5.0),
           pitch_amplitude=math.radians(5.0), attitude_period=3.0, gyro_noise_std=0.005,
           image_noise_std=2.0, range_noise_std=0.01,   # imu_rate: the simulator's 200 Hz
           queue_depth=50)   # the truth (sim/twist) must reach a listener starved by load
WANTED = 60          # flow/velocity messages to compare


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


class Listener:
    """flow/velocity, flow/tracks, sim/twist and the tracker's diagnostics."""

    def __init__(self, peer) -> None:
        self.peer = peer
        self.velocity: list[TwistWithCovarianceStamped] = []
        self.tracks: list[PointCloud2] = []
        self.truth: dict[int, TwistStamped] = {}
        self.status: list[DiagnosticStatus] = []
        node = peer.node
        qos = keep_last_qos("reliable", 50)
        node.create_subscription(TwistWithCovarianceStamped, "flow/velocity",
                                 self.velocity.append, qos)
        node.create_subscription(PointCloud2, "flow/tracks", self.tracks.append, qos)
        node.create_subscription(TwistStamped, "sim/twist",
                                 lambda m: self.truth.__setitem__(_stamp_ns(m), m), qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.status += [s for s in msg.status if "tracker_node" in s.name]

    def spin_until(self, done, timeout: float, *procs: NodeProcess) -> None:
        ok = self.peer.spin_until(done, timeout)
        assert ok, "\n".join(p.output() for p in procs)


# A wide-angle lens in camera_info: tracker_node gives the camera to the tracker, whose
# motion field is then fitted in the undistorted image (in the raw one the ego-velocity was
# off by tens of percent).
@pytest.mark.parametrize("lens", [{}, dict(k1=-0.25, k2=0.05)], ids=["pinhole", "wide_angle"])
def test_flow_velocity_matches_the_simulated_truth(ros_peer, lens):
    listener = Listener(ros_peer)
    with NodeProcess("optical_flow_ros.nodes.sim_camera_node", params={**SIM, **lens}) as sim, \
            NodeProcess("optical_flow_ros.nodes.tracker_node",
                        params=dict(opencv_threads=1)) as tracker:
        # Count estimates whose truth arrived: on a loaded machine the test's sim/twist reader
        # may match later than flow/velocity's, and its first estimates then have no truth.
        listener.spin_until(lambda: sum(_stamp_ns(m) in listener.truth
                                        for m in listener.velocity) >= WANTED, 60.0, sim, tracker)
        ros_peer.spin_for(0.3)
        assert sim.alive() and tracker.alive(), tracker.output()
    pairs = [(m, listener.truth[_stamp_ns(m)]) for m in listener.velocity
             if _stamp_ns(m) in listener.truth]
    assert len(pairs) >= WANTED - 2
    err, speed, inside, z, nees = [], [], [], [], []
    for est, true in pairs:
        assert est.header.frame_id == "camera_optical_frame"
        t = est.twist.twist
        value = np.array([t.linear.x, t.linear.y, t.linear.z,
                          t.angular.x, t.angular.y, t.angular.z])
        tt = true.twist
        truth = np.array([tt.linear.x, tt.linear.y, tt.linear.z,
                          tt.angular.x, tt.angular.y, tt.angular.z])
        cov = np.asarray(est.twist.covariance).reshape(6, 6)
        np.testing.assert_allclose(cov, cov.T, atol=1e-12)
        sigma = np.sqrt(np.diag(cov))
        inside.append(np.abs(value - truth) <= 3.0 * sigma)
        err.append(value[:2] - truth[:2])
        speed.append(np.hypot(*truth[:2]))
        z.append((value - truth)[:2] / sigma[:2])
        nees.append(err[-1] @ np.linalg.solve(cov[:2, :2], err[-1]))
    rmse = math.sqrt(np.mean(np.sum(np.square(err), axis=1))) / np.mean(speed)
    assert rmse <= 0.05, rmse
    inside_1 = np.mean(np.abs(np.array(z)) <= 1.0, axis=0)
    assert np.all((inside_1 >= 0.45) & (inside_1 <= 0.9)), inside_1
    assert np.all(np.mean(np.array(inside)[:, :2], axis=0) >= 0.95), np.mean(inside, axis=0)
    assert 0.6 <= np.median(nees) <= 2.5, np.median(nees)
    # /diagnostics says how wide the published covariance is and what it is made of
    values = [{kv.key: kv.value for kv in s.values} for s in listener.status]
    latest = next(v for v in reversed(values) if v.get("velocity_covariance_sources"))
    sigmas = [math.sqrt(0.5 * (m.twist.covariance[0] + m.twist.covariance[7]))
              for m in listener.velocity]
    assert min(sigmas) <= float(latest["velocity_sigma_m_s"]) * (1 + 1e-3)
    assert float(latest["velocity_sigma_m_s"]) <= max(sigmas) * (1 + 1e-3)
    shares = dict(part.rsplit(" ", 2)[:2] for part in
                  latest["velocity_covariance_sources"].split(", "))
    assert set(shares) <= set(COVARIANCE_TERMS) and "distance" in shares, shares
    assert 90 <= sum(float(v) for v in shares.values()) <= 101, shares


def test_without_camera_info_there_is_no_velocity_and_the_diagnostics_say_why(ros_peer):
    listener = Listener(ros_peer)
    with NodeProcess("optical_flow_ros.nodes.sim_camera_node", params=SIM) as sim, \
            NodeProcess("optical_flow_ros.nodes.tracker_node",
                        remaps={"camera_info": "no_camera_info"}) as tracker:
        def warned() -> bool:
            return len(listener.tracks) >= 20 and any(
                "camera_info" in s.message for s in listener.status)

        listener.spin_until(warned, 40.0, sim, tracker)
        assert tracker.alive(), tracker.output()
    assert not listener.velocity
    status = next(s for s in reversed(listener.status) if "camera_info" in s.message)
    assert status.level == DiagnosticStatus.WARN
    assert status.message.startswith("no flow/velocity: no camera intrinsics")
    counts = {kv.key: kv.value for kv in status.values}
    assert int(counts["velocity_no_intrinsics"]) > 0
    assert "velocity_published" not in counts
    assert counts["velocity"] == status.message      # the condition's own entry (the demo reads it)
    assert counts["velocity_covariance_sources"] == counts["velocity_sigma_m_s"] == ""


# ----- the inputs' cache and the message, in this process ---------------------------------------

def _range(stamp: float, value: float) -> Range:
    return Range(header=Header(stamp=stamp_msg(stamp)), min_range=0.1, max_range=10.0,
                 range=value)


def _imu(stamp: float, rate, cov0: float = 0.0) -> Imu:
    msg = Imu(header=Header(stamp=stamp_msg(stamp)))
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = map(float, rate)
    msg.angular_velocity_covariance[0] = cov0
    return msg


def test_range_readings_are_filtered_and_aged(ros_peer):
    diag = DiagnosticsReporter(ros_peer.node, "test")
    inputs = VelocityInputs(ros_peer.node, diag, VelocityInputConfig(sensor_max_age=0.2))
    assert inputs.distance(5.0)[0] is None and "no valid range" in inputs.distance(5.0)[1]
    for bad in (math.nan, math.inf, -math.inf, 0.05, 12.0):
        inputs.on_range(_range(5.0, bad))
    assert diag.counters["range_invalid"] == 5 and inputs.distance(5.0)[0] is None
    inputs.on_range(_range(5.0, 2.5))
    assert inputs.distance(5.1) == (2.5, "")
    value, why = inputs.distance(5.5)
    assert value is None and "0.500 s from the image" in why
    inputs.config = VelocityInputConfig(distance=3.0)            # the fixed distance wins
    assert inputs.distance(99.0) == (3.0, "")


def test_gyro_is_rotated_into_the_optical_frame_and_matched_to_the_window(ros_peer):
    diag = DiagnosticsReporter(ros_peer.node, "test")
    # IMU in a body frame x forward, y left, z up; camera looking down, image top forward.
    config = VelocityInputConfig(imu_roll=math.pi, imu_yaw=-math.pi / 2)
    inputs = VelocityInputs(ros_peer.node, diag, config)
    body_rate = np.array([0.1, -0.2, 0.3])
    for k in range(6):
        inputs.on_imu(_imu(1.0 + 0.1 * k, body_rate))
    inputs.on_imu(_imu(1.6, [math.nan, 0.0, 0.0]))
    inputs.on_imu(_imu(1.6, [1.0, 0.0, 0.0], cov0=-1.0))     # angular velocity not provided
    assert diag.counters["imu_invalid"] == 2
    timing = VelocityTiming(start=1.1, end=1.5, lag=0.2, samples=5)
    gyro = inputs.gyro(timing, gyro_std=0.01)
    expected = R_BODY_OPTICAL.T @ body_rate
    np.testing.assert_allclose(gyro.mean, expected, atol=1e-12)
    np.testing.assert_allclose(gyro.latest, expected, atol=1e-12)
    np.testing.assert_allclose(gyro.covariance, np.eye(3) * 1e-4)
    assert inputs.gyro(VelocityTiming(2.0, 2.5, 0.2, 5), gyro_std=0.01) is None   # stale


def test_velocity_msg_carries_the_header_and_a_row_major_covariance():
    cov = np.arange(36.0).reshape(6, 6)
    est = VelocityEstimate("ok", "", linear=np.array([1.0, 2.0, 3.0]),
                           angular=np.array([0.1, 0.2, 0.3]), covariance=cov)
    header = Header(stamp=stamp_msg(12.5), frame_id="cam_optical")
    msg = velocity_msg(est, header)
    assert msg.header.frame_id == "cam_optical" and msg.header.stamp.sec == 12
    t = msg.twist.twist
    assert (t.linear.x, t.linear.y, t.linear.z) == (1.0, 2.0, 3.0)
    assert (t.angular.x, t.angular.y, t.angular.z) == (0.1, 0.2, 0.3)
    assert msg.twist.covariance[1] == 1.0 and msg.twist.covariance[6] == 6.0
