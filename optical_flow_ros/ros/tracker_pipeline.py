"""tracker_node's work for one frame, without the node: decoded frame in, messages out.

The live node (``optical_flow_ros.nodes.tracker_node``) and offline bag processing both run
this class, so a bag processed offline gives exactly the messages the node publishes.
Also here: the node's configuration (parameter table and the config it builds), so both
read the same YAML the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np
from geometry_msgs.msg import TwistWithCovarianceStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.ego_velocity import EgoVelocityEstimator
from optical_flow_ros.core.errors import CameraModelError, OpticalFlowError
from optical_flow_ros.core.flow_sensor import FlowMeasurement
from optical_flow_ros.core.image_codec import is_color
from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig, TrackerStats
from optical_flow_ros.core.track_drawing import draw_tracks
from optical_flow_ros.core.track_types import Tracks
from optical_flow_ros.core.velocity_estimator import VelocityConfig, VelocityEstimate
from optical_flow_ros.ros.compute_config import ComputeConfig
from optical_flow_ros.ros.diagnostics import DiagnosticsSink
from optical_flow_ros.ros.image_input import Frame, InputConfig
from optical_flow_ros.ros.image_messages import array_to_image_msg
from optical_flow_ros.ros.mavlink_output import MavlinkConfig
from optical_flow_ros.ros.parameter_table import build_node_config, params_from
from optical_flow_ros.ros.snapshot_service import SnapshotConfig
from optical_flow_ros.ros.track_cloud import tracks_to_cloud
from optical_flow_ros.ros.velocity_inputs import (
    SensorQueueConfig,
    VelocityInputConfig,
    VelocityInputs,
    covariance_sources,
    velocity_msg,
)

__all__ = ["TRACKER_PARAMS", "TrackerNodeConfig", "TrackerOutputConfig", "TrackerPipeline",
           "TrackerResult", "build_tracker_node_config"]


@dataclass(frozen=True)
class TrackerOutputConfig:
    """What tracker_node adds around the tracker: camera model use and the debug drawing."""

    use_camera_info: bool = setting(
        True, "Use camera_info for normalised rays (x, y, 1) in flow/tracks; else (u, v, 0)")
    draw_trails: bool = setting(True, "Draw each track's trail in flow/image")
    draw_count: bool = setting(True, "Draw the track count in flow/image")

    def __post_init__(self) -> None:
        validate_fields(self)


TRACKER_PARAMS = (params_from(InputConfig, read_only=True)
                  + params_from(ComputeConfig, read_only=True)
                  + params_from(TrackerConfig) + params_from(TrackerOutputConfig)
                  + params_from(VelocityInputConfig)
                  + params_from(SensorQueueConfig, read_only=True) + params_from(VelocityConfig)
                  + params_from(SnapshotConfig) + params_from(MavlinkConfig, read_only=True))


class TrackerNodeConfig(NamedTuple):
    """Everything tracker_node is configured with."""

    input: InputConfig
    compute: ComputeConfig
    tracker: TrackerConfig
    output: TrackerOutputConfig
    velocity_input: VelocityInputConfig
    sensor_queues: SensorQueueConfig
    velocity: VelocityConfig
    snapshot: SnapshotConfig
    mavlink: MavlinkConfig


def build_tracker_node_config(values: dict[str, Any]) -> TrackerNodeConfig:
    """Validated node config from parameter values (raises ConfigError)."""
    return build_node_config(TrackerNodeConfig, values)


def _stamp_us(frame: Frame) -> int:
    """The frame's stamp in whole µs (from the header's integers when it is stamped)."""
    stamp = frame.header.stamp
    if stamp.sec or stamp.nanosec:
        return stamp.sec * 1_000_000 + stamp.nanosec // 1000
    return int(frame.stamp * 1e6)


def _fit_window(config: TrackerConfig) -> tuple[int, float, bool]:
    """The ego-velocity's window settings for this tracker.

    Frames the slope fits over (and the gyro samples are fitted over), max_dt, and whether
    the velocities are at the stamp.
    """
    return (min(config.velocity_window, config.track_len), config.max_dt,
            config.velocity_estimator == "motion_field")


class TrackerResult(NamedTuple):
    """The outputs of one frame; ``error`` set (and the rest None) when tracking failed."""

    tracks: Tracks | None
    stats: TrackerStats | None
    tracks_msg: PointCloud2 | None
    image_msg: Image | None
    velocity_msg: TwistWithCovarianceStamped | None
    error: str | None = None
    flow: FlowMeasurement | None = None


class TrackerPipeline:
    """Tracker, camera model and velocity stage for one camera.

    Args:
        config: the node configuration.
        diagnostics: counters, gauges and conditions go here.
        node: when given, the velocity inputs subscribe to ``range`` and ``imu`` on it;
            otherwise feed ``velocity_inputs.on_range`` / ``on_imu`` directly.
    """

    def __init__(self, config: TrackerNodeConfig, diagnostics: DiagnosticsSink, *,
                 node: Node | None = None) -> None:
        self._config = config
        self._diag = diagnostics
        self.tracker = LKTracker(config.tracker)
        self.camera: PinholeCamera | None = None
        # The velocity stage runs here, not in a node of its own, because it needs exactly
        # this frame's tracks and their px/s velocities: no re-serialising of the tracks, no
        # second subscription and no time synchronisation of tracks with range and imu
        # (their latest readings are cached and their age checked against the image stamp).
        self.velocity_inputs = VelocityInputs(node, diagnostics, config.velocity_input,
                                              config.sensor_queues)
        window, max_dt, at_stamp = _fit_window(config.tracker)
        # What the velocity stage keeps from frame to frame: the tracks' timing, the camera's
        # acceleration from its recent estimates and their recent line-bias measures.
        self._ego = EgoVelocityEstimator(window, max_dt, at_stamp=at_stamp)
        self._previous_stamp: float | None = None

    @property
    def config(self) -> TrackerNodeConfig:
        """The configuration in use."""
        return self._config

    def configure(self, config: TrackerNodeConfig) -> bool:
        """Apply a new configuration; True if the tracker itself was reconfigured."""
        self._config = config
        window, max_dt, at_stamp = _fit_window(config.tracker)
        self._ego.configure(window, max_dt, at_stamp=at_stamp)
        self.velocity_inputs.config = config.velocity_input
        if config.tracker == self.tracker.config:
            return False
        self.tracker.configure(config.tracker)
        return True

    def reset(self) -> None:
        """Drop all tracks (ids continue, never reused)."""
        self.tracker.reset()
        self._ego.reset()
        self._diag.count("resets")

    def on_camera_info(self, msg: CameraInfo) -> str | None:
        """Use these intrinsics from now on; returns why not if they are unusable.

        An unusable camera_info (zero/NaN K, non-finite D, unknown model, ...) is counted
        (``camera_info_invalid``) and raises the ``camera_info`` condition until the next
        valid one, but the last valid intrinsics stay in use: one bad message from a driver
        does not switch flow/tracks to pixel coordinates or stop flow/velocity.
        """
        try:
            camera = PinholeCamera.from_camera_info(msg)
        except CameraModelError as err:
            self._diag.count("camera_info_invalid")
            self._diag.raise_condition("camera_info", f"camera_info ignored: {err}")
            return f"camera_info ignored: {err}"
        self.camera = camera
        self._diag.clear("camera_info")
        return None

    def camera_for(self, camera: PinholeCamera | None, shape: tuple[int, ...]
                   ) -> PinholeCamera | None:
        """The intrinsics used for an image of ``shape`` (rows, cols).

        ``camera``: the last valid camera_info. None when camera_info is not to be used or
        is of another size (no diagnostics here; :meth:`process` reports those).
        """
        if camera is None or not self._config.output.use_camera_info:
            return None
        return camera if (camera.height, camera.width) == tuple(shape) else None

    def _camera_for(self, frame: Frame) -> PinholeCamera | None:
        camera = self.camera
        if camera is None or not self._config.output.use_camera_info:
            return None
        if self.camera_for(camera, frame.gray.shape) is None:
            self._diag.raise_condition(
                "camera_info_size", f"camera_info is {camera.width}x{camera.height} but images "
                f"are {frame.gray.shape[1]}x{frame.gray.shape[0]}; using pixel coordinates")
            return None
        self._diag.clear("camera_info_size")   # also when the images changed size to match
        return camera

    def process(self, frame: Frame, *, draw: bool) -> TrackerResult:
        """Track one frame; build flow/tracks, flow/velocity and (if ``draw``) flow/image."""
        interval = self._interval(frame.stamp)
        camera = self._camera_for(frame)
        try:
            tracks = self.tracker.update(frame.gray, frame.stamp, camera)
        except (OpticalFlowError, ValueError, cv2.error) as err:
            self._diag.count("frames_failed")
            return TrackerResult(None, None, None, None, None, f"tracking failed: {err}",
                                 self._flow_measurement(frame, interval, None))
        tracks_msg = tracks_to_cloud(tracks, frame.header, camera)
        velocity, estimate = self._estimate_velocity(frame, tracks, camera)
        image = None
        if draw:
            image = array_to_image_msg(self.draw(frame, tracks, self.trails()), "bgr8",
                                       frame.header)
        stats = self.tracker.stats
        self._report(stats)
        return TrackerResult(tracks, stats, tracks_msg, image, velocity,
                             flow=self._flow_measurement(frame, interval, estimate))

    def trails(self) -> np.ndarray | None:
        """The live tracks' trails as flow/image draws them (None when trails are off)."""
        return self.tracker.trails() if self._config.output.draw_trails else None

    def draw(self, frame: Frame, tracks: Tracks, trails: np.ndarray | None) -> np.ndarray:
        """flow/image's drawing (bgr8) of ``tracks`` over ``frame``."""
        return draw_tracks(frame.bgr if is_color(frame.encoding) else frame.gray, tracks, trails,
                           text=self._config.output.draw_count)

    def _interval(self, stamp: float) -> float:
        """Seconds since the previous frame; 0 after a gap above max_dt or a stamp going back."""
        previous, self._previous_stamp = self._previous_stamp, stamp
        if previous is None or not 0.0 < stamp - previous <= self._config.tracker.max_dt:
            return 0.0
        return stamp - previous

    def _flow_measurement(self, frame: Frame, interval: float,
                          estimate: VelocityEstimate | None) -> FlowMeasurement | None:
        """The frame's flow as a flow sensor reports it (None when MAVLink is off)."""
        if not self._config.mavlink.enabled:
            return None
        inputs = self.velocity_inputs
        gyro = inputs.gyro_integral(frame.stamp - interval, frame.stamp) if interval else None
        nan2, nan3 = np.full(2, np.nan), np.full(3, np.nan)
        # Without a gyro the fit cannot tell roll/pitch rates from translation: the rotation
        # inside its flow rate is unknown (NaN), so no gyro integral replaces it.
        measured = estimate is not None and estimate.gyro_used
        return FlowMeasurement(
            time_usec=_stamp_us(frame), interval=interval,
            flow_rate=estimate.flow_rate if estimate is not None else nan2,
            angular=estimate.angular if measured else nan3,
            gyro_integral=gyro,
            velocity=estimate.linear if estimate is not None else nan3,
            n_inliers=estimate.n_inliers if estimate is not None else 0,
            n_tracks=estimate.n_tracks if estimate is not None else 0,
            range=inputs.range_sample(frame.stamp))

    def _estimate_velocity(self, frame: Frame, tracks: Tracks, camera: PinholeCamera | None
                           ) -> tuple[TwistWithCovarianceStamped | None, VelocityEstimate | None]:
        """flow/velocity (None unless valid and enabled) and the estimate (None if not run)."""
        timing = self._ego.timing(frame.stamp)   # every frame, to follow the tracker
        config = self._config
        publish = config.velocity_input.estimate_velocity
        if not publish:
            self._diag.clear("velocity")
            if not config.mavlink.enabled:
                return None, None
        inputs = self.velocity_inputs
        distance, why_no_distance = inputs.distance(frame.stamp)
        for stamp, value, variance in inputs.take_ranges():
            self._ego.add_range(stamp, value, variance)
        fixed = config.velocity_input.distance > 0.0
        estimate = self._ego.estimate(
            tracks, camera, timing, distance=distance if fixed else None,
            range_max_age=config.velocity_input.sensor_max_age,
            gyro=inputs.gyro(timing, config.velocity.gyro_std), config=config.velocity)
        self._diag.set(velocity_tracks=estimate.n_tracks, velocity_inliers=estimate.n_inliers,
                       velocity_residual_px_s=estimate.residual_std,
                       velocity_gyro=estimate.gyro_used)
        if not publish:
            return None, estimate
        if estimate.valid:
            self._diag.clear("velocity")
            self._diag.count("velocity_published")
            sigma = math.sqrt(0.5 * float(np.trace(estimate.covariance[:2, :2])))
            self._diag.set(velocity_sigma_m_s=f"{sigma:.3g}",   # rms of vx's and vy's
                           velocity_covariance_sources=covariance_sources(estimate))
            return velocity_msg(estimate, frame.header), estimate
        # nothing published: no width to report (the velocity condition says why)
        self._diag.set(velocity_sigma_m_s="", velocity_covariance_sources="")
        reason = estimate.reason
        if estimate.status == "no_distance" and why_no_distance:
            reason = why_no_distance
        self._diag.count(f"velocity_{estimate.status}")
        self._diag.raise_condition("velocity", f"no flow/velocity: {reason}")
        return None, estimate

    def _report(self, stats: TrackerStats) -> None:
        self._diag.count("frames_processed")
        self._diag.count("tracks_detected", stats.n_detected)
        if stats.reset_reason is not None:
            self._diag.count("resets")
        self._diag.set(tracks_in=stats.n_tracked_in, after_lk=stats.n_after_lk,
                       after_fb=stats.n_after_fb, after_ransac=stats.n_after_ransac,
                       detected=stats.n_detected, live=stats.n_live)
