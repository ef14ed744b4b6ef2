"""sim_camera_node: a simulated downward camera over a textured plane, with exact ground truth.

The renderer and trajectory are :class:`~optical_flow_ros.core.sim_camera.SimCamera` (frames
and conventions documented there). A timer publishes frame k with every message of that frame
carrying the same header stamp ``start + k / rate``, where ``start`` is the node clock at the
first tick and the truth is evaluated at sim time ``t = k / rate``; so stamp differences are
exactly sim-time differences. With ``wait_for_subscribers`` > 0 the first tick is the
first one at which that many subscriptions match ``image`` (nothing is published before).
``k`` follows the clock: when a tick comes more than a period late, the frames it missed are
skipped (counted as ``frames_skipped``), as a real camera drops them, so stamps never fall
behind the clock.

Publishes:
    image (sensor_msgs/Image, mono8 or bgr8): rendered only while someone subscribes.
    camera_info (sensor_msgs/CameraInfo): K, D (plumb_bob k1, k2, 0, 0, 0), R = I, P = [K|0].
    range (sensor_msgs/Range): distance along the optical axis to the ground, m (with
        ``range_noise_std`` relative white noise, its variance stated in ``variance``); per
        REP-117 -inf below ``range_min`` and +inf beyond ``range_max``.
    imu (sensor_msgs/Imu): angular velocity only (true camera rate in the optical frame plus
        ``gyro_noise_std`` white noise, covariance diagonal = std^2); orientation and linear
        acceleration not provided (covariance[0] = -1). At ``imu_rate`` Hz: sample j carries
        the stamp ``start + j / imu_rate`` (the frames' ``start``, so every frame's stamp is
        also a sample's when the rates divide) and is published by its own timer once the
        clock has passed it (ticks at most every IMU_TICK_S, each publishing the samples
        due; a backlog beyond IMU_BACKLOG_S is skipped and counted as
        ``imu_samples_skipped``). With ``imu_rate`` 0: one sample per frame, with the frame.
    sim/twist (geometry_msgs/TwistStamped): true linear (m/s) and angular (rad/s) velocity of
        the camera in its optical frame (reliable, keep-last at least TRUTH_DEPTH).
    sim/pose (geometry_msgs/PoseStamped): true pose of the optical frame in ``world_frame_id``
        (x forward, y left, z up; ground plane z = 0).
    /diagnostics: frames published/skipped, render time.
All but sim/pose carry ``frame_id``. After ``frame_count`` frames (0 = never) the node stops
publishing and logs it. Parameters: all start-up only, from the table below.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, Imu, Range
from std_msgs.msg import Header

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.core.frame_schedule import FrameSchedule
from optical_flow_ros.core.sim_camera import CameraState, SimCamera, SimCameraConfig
from optical_flow_ros.nodes.node_main import run_node
from optical_flow_ros.ros.compute_config import ComputeConfig
from optical_flow_ros.ros.diagnostics import DiagnosticsReporter
from optical_flow_ros.ros.image_messages import array_to_image_msg
from optical_flow_ros.ros.parameter_table import build_node_config, params_from
from optical_flow_ros.ros.parameters import ParameterBinding
from optical_flow_ros.ros.qos import RELIABILITY_CHOICES, keep_last_qos
from optical_flow_ros.ros.stop_signals import run_program
from optical_flow_ros.ros.subscriber_gate import SubscriberGate

__all__ = ["SIM_CAMERA_PARAMS", "SimCameraNode", "SimOutputConfig", "main"]

RADIATION_TYPES = {"infrared": Range.INFRARED, "ultrasound": Range.ULTRASOUND}


@dataclass(frozen=True)
class SimOutputConfig:
    """Frames, QoS and the simulated rangefinder of sim_camera_node."""

    frame_id: str = setting("camera_optical_frame",
                            "frame_id of image, camera_info, range, imu and sim/twist")
    world_frame_id: str = setting("sim_world", "frame_id of sim/pose")
    frame_count: int = setting(0, "Frames to publish before stopping; 0 = no limit",
                               range=(0, 2**31 - 1))
    wait_for_subscribers: int = setting(
        0, "Publish nothing until this many subscriptions match image; the flight (sim time "
        "0) and the clock of the stamps start then, so consumers started with the node see it "
        "from its start (discovery can take a DDS announcement period, ~3 s); 0 = at once",
        range=(0, 1000))
    image_reliability: str = setting("reliable", "QoS reliability of image and camera_info",
                                     choices=RELIABILITY_CHOICES)
    queue_depth: int = setting(5, "Keep-last depth of every publisher (sim/twist: at least 90)",
                                 range=(1, 1000))
    range_radiation: str = setting("infrared", "radiation_type of range",
                                   choices=tuple(RADIATION_TYPES))
    range_min: float = setting(0.05, "min_range of range, m", range=(0.0, 1e6))
    range_max: float = setting(100.0, "max_range of range, m", range=(0.0, 1e6))
    range_field_of_view: float = setting(0.05, "field_of_view of range, rad",
                                         range=(0.0, math.pi))

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.frame_id or not self.world_frame_id:
            raise ConfigError("frame_id/world_frame_id: must not be empty")
        if self.range_max <= self.range_min:
            raise ConfigError(f"range_max: must be > range_min ({self.range_min} m), "
                              f"got {self.range_max}")


SIM_CAMERA_PARAMS = (params_from(ComputeConfig, read_only=True)
                     + params_from(SimCameraConfig, read_only=True)
                     + params_from(SimOutputConfig, read_only=True))


class SimNodeConfig(NamedTuple):
    """Everything sim_camera_node is configured with."""

    compute: ComputeConfig
    camera: SimCameraConfig
    output: SimOutputConfig


def build_sim_node_config(values: dict[str, Any]) -> SimNodeConfig:
    """Validated node config from parameter values (raises ConfigError)."""
    return build_node_config(SimNodeConfig, values)


# ----- messages from the truth ----------------------------------------------------------------

def camera_info_msg(camera: PinholeCamera) -> CameraInfo:
    """CameraInfo of the simulated camera (header left empty)."""
    msg = CameraInfo()
    msg.width, msg.height = camera.width, camera.height
    msg.distortion_model = camera.distortion_model
    msg.d = [float(v) for v in camera.d]
    msg.k = camera.k.ravel().tolist()
    msg.r = np.eye(3).ravel().tolist()
    msg.p = np.hstack((camera.k, np.zeros((3, 1)))).ravel().tolist()
    return msg


def range_msg(header: Header, reading: float, variance: float, out: SimOutputConfig) -> Range:
    """The rangefinder on the optical axis (REP-117 +-inf outside its limits).

    ``reading`` m, ``variance`` m^2 (0 = unknown); ``variance`` is set only where the
    message has the field (Kilted; Jazzy's Range has none).
    """
    distance = reading
    if distance > out.range_max:
        distance = math.inf
    elif distance < out.range_min:
        distance = -math.inf
    msg = Range(header=header, radiation_type=RADIATION_TYPES[out.range_radiation],
                field_of_view=out.range_field_of_view, min_range=out.range_min,
                max_range=out.range_max, range=distance)
    if hasattr(msg, "variance"):
        msg.variance = float(variance)
    return msg


def imu_msg(header: Header, gyro: np.ndarray, noise_std: float) -> Imu:
    """Gyro-only Imu in the optical frame (orientation/acceleration not provided)."""
    msg = Imu(header=header)
    msg.orientation_covariance[0] = -1.0
    msg.linear_acceleration_covariance[0] = -1.0
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = map(float, gyro)
    msg.angular_velocity_covariance = (np.eye(3) * noise_std**2).ravel().tolist()
    return msg


def twist_msg(header: Header, state: CameraState) -> TwistStamped:
    """True twist of the camera in its optical frame."""
    msg = TwistStamped(header=header)
    lin, ang = msg.twist.linear, msg.twist.angular
    lin.x, lin.y, lin.z = map(float, state.velocity)
    ang.x, ang.y, ang.z = map(float, state.angular_velocity)
    return msg


def pose_msg(header: Header, state: CameraState) -> PoseStamped:
    """True pose of the optical frame in the world frame."""
    msg = PoseStamped(header=header)
    pos, rot = msg.pose.position, msg.pose.orientation
    pos.x, pos.y, pos.z = map(float, state.position)
    rot.x, rot.y, rot.z, rot.w = map(float, state.quaternion)
    return msg


# ----- node -----------------------------------------------------------------------------------

#: The IMU timer ticks at most this often, s; each tick publishes every sample due.
IMU_TICK_S = 0.004
#: Samples further behind the clock than this are skipped (the node was stalled), s.
IMU_BACKLOG_S = 0.25

#: Keep-last depth of sim/twist at least (3 s at 30 Hz): with 5, a demo listener busy writing
#: its video lost the truth of half the estimates (77 of 140 in one run).
TRUTH_DEPTH = 90


class SimCameraNode(Node):
    """Publishes :class:`~optical_flow_ros.core.sim_camera.SimCamera` frames and their truth."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("sim_camera_node", **kwargs)
        self._params = ParameterBinding(self, SIM_CAMERA_PARAMS, build_sim_node_config)
        config = self._params.config
        config.compute.apply()
        self._sim = SimCamera(config.camera)
        self._info = camera_info_msg(self._sim.camera)
        out = config.output
        image_qos = keep_last_qos(out.image_reliability, out.queue_depth)
        qos = keep_last_qos("reliable", out.queue_depth)
        self._pub_image = self.create_publisher(Image, "image", image_qos)
        self._pub_info = self.create_publisher(CameraInfo, "camera_info", image_qos)
        self._pub_range = self.create_publisher(Range, "range", qos)
        self._pub_imu = self.create_publisher(Imu, "imu", qos)
        # The truth is for scoring: a slow evaluator (the demo encoding its video) must not
        # lose it to the writer's keep-last window, so it keeps TRUTH_DEPTH (small messages).
        self._pub_twist = self.create_publisher(
            TwistStamped, "sim/twist", keep_last_qos("reliable", max(out.queue_depth, TRUTH_DEPTH)))
        self._pub_pose = self.create_publisher(PoseStamped, "sim/pose", qos)
        self._diag = DiagnosticsReporter(self, "sim_camera")
        self._schedule = FrameSchedule(config.camera.rate)
        self._published = 0
        self._imu_next = 0   # the next IMU sample to publish (imu_rate > 0)
        self._gate = SubscriberGate(self._pub_image, out.wait_for_subscribers, self.get_logger())
        self._timer = self.create_timer(1.0 / config.camera.rate, self._on_timer)
        self._imu_timer = None
        if config.camera.imu_rate > 0.0:
            self._imu_timer = self.create_timer(max(1.0 / config.camera.imu_rate, IMU_TICK_S),
                                                self._on_imu_timer)

    def _next_frame(self, now_ns: int) -> tuple[int, float, int]:
        """(index, sim time s, stamp ns) of the frame due at ``now_ns``; never repeats."""
        due = self._schedule.next_frame(now_ns)
        self._diag.count("frames_skipped", due.skipped)
        return due.index, self._sim.frame_time(due.index), due.stamp_ns

    def _on_timer(self) -> None:
        if not self._gate.is_open():
            return
        config = self._params.config
        index, t, stamp_ns = self._next_frame(self.get_clock().now().nanoseconds)
        stamp = Time(nanoseconds=stamp_ns).to_msg()
        header = Header(stamp=stamp, frame_id=config.output.frame_id)
        state = self._sim.state(t)
        if self._pub_image.get_subscription_count() > 0:
            start = time.perf_counter()
            image = self._sim.image(index)
            self._diag.add_processing_time((time.perf_counter() - start) * 1e3)
            self._pub_image.publish(array_to_image_msg(image, config.camera.encoding, header))
        self._info.header = header
        self._pub_info.publish(self._info)
        reading = self._sim.range_reading(index, state)
        self._pub_range.publish(range_msg(header, reading, self._sim.range_variance(reading),
                                          config.output))
        if self._imu_timer is None:   # one sample per frame
            self._pub_imu.publish(imu_msg(header, self._sim.gyro(index, state),
                                          config.camera.gyro_noise_std))
        self._pub_twist.publish(twist_msg(header, state))
        self._pub_pose.publish(pose_msg(Header(stamp=stamp, frame_id=config.output.world_frame_id),
                                        state))
        self._published += 1
        self._diag.count("frames_processed")
        self._diag.set(sim_time_s=t, frame_index=index)
        limit = config.output.frame_count
        if limit and self._published >= limit:
            self._timer.cancel()
            if self._imu_timer is not None:
                self._imu_timer.cancel()
            self.get_logger().info(f"published {self._published} frames (frame_count); "
                                   f"stopped publishing at sim time {t:.3f} s")

    def _on_imu_timer(self) -> None:
        """Publish every IMU sample whose stamp the clock has passed (after the first frame)."""
        start_ns = self._schedule.start_ns
        if start_ns is None:
            return
        camera = self._params.config.camera
        elapsed = (self.get_clock().now().nanoseconds - start_ns) * 1e-9
        stop = math.floor(elapsed * camera.imu_rate + 1e-9) + 1   # samples 0 .. stop - 1 due
        first = max(self._imu_next, stop - max(1, round(IMU_BACKLOG_S * camera.imu_rate)))
        if first > self._imu_next:
            self._diag.count("imu_samples_skipped", first - self._imu_next)
        frame_id = self._params.config.output.frame_id
        for j in range(first, stop):
            t, gyro = self._sim.imu_sample(j)
            stamp = Time(nanoseconds=start_ns + round(t * 1e9)).to_msg()
            self._pub_imu.publish(imu_msg(Header(stamp=stamp, frame_id=frame_id), gyro,
                                          camera.gyro_noise_std))
        self._imu_next = max(self._imu_next, stop)


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``sim_camera_node`` executable."""
    return run_node(SimCameraNode, args)


if __name__ == "__main__":
    raise SystemExit(run_program(main))
