"""tracker_node: sparse Lucas-Kanade feature tracking with persistent ids and px/s velocities.

Subscribes:
    image (sensor_msgs/Image), or image/compressed (sensor_msgs/CompressedImage) when
    ``image_transport`` is ``compressed``.
    camera_info (sensor_msgs/CameraInfo, optional): latest kept; makes flow/tracks carry the
    normalised (undistorted) ray of each track.
    range (sensor_msgs/Range, optional), imu (sensor_msgs/Imu, optional): distance to the
    scene and gyro rates for flow/velocity (``optical_flow_ros.ros.velocity_inputs``).
Publishes:
    flow/tracks (sensor_msgs/PointCloud2): one point per live track, header = the image's
        (fields in ``optical_flow_ros.ros.track_cloud``).
    flow/image (sensor_msgs/Image bgr8): trails, points, track count; only while subscribed.
    flow/velocity (geometry_msgs/TwistWithCovarianceStamped): camera velocity in its optical
        frame, header = the image's, whenever the estimate is valid (needs camera_info and a
        distance: the ``distance`` parameter or range); else a "velocity" diagnostics entry
        says why.
    /diagnostics: per-stage counts (tracked, after FB, after RANSAC, detected), processing
        time, received/dropped/invalid frames, resets.
Services:
    ~/reset (std_srvs/Trigger): drop all tracks (ids continue, never reused).
Parameters: ``config/tracker.yaml`` (generated from the table below); all but the
start-up-only ones can be changed at runtime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
from geometry_msgs.msg import TwistWithCovarianceStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.errors import CameraModelError, OpticalFlowError
from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig, TrackerStats
from optical_flow_ros.core.track_drawing import draw_tracks
from optical_flow_ros.core.track_types import Tracks
from optical_flow_ros.core.velocity_estimator import (
    FitWindow,
    VelocityConfig,
    estimate_velocity,
)
from optical_flow_ros.nodes.compute_config import ComputeConfig
from optical_flow_ros.nodes.node_main import run_node
from optical_flow_ros.nodes.parameter_table import build_config, params_from
from optical_flow_ros.ros.diagnostics import DiagnosticsReporter
from optical_flow_ros.ros.image_input import Frame, ImageInput, InputConfig
from optical_flow_ros.ros.image_messages import array_to_image_msg
from optical_flow_ros.ros.parameters import ParameterBinding
from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.ros.track_cloud import tracks_to_cloud
from optical_flow_ros.ros.velocity_inputs import VelocityInputConfig, VelocityInputs, velocity_msg

__all__ = ["TRACKER_PARAMS", "TrackerNode", "main"]


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
                  + params_from(VelocityInputConfig) + params_from(VelocityConfig))


class TrackerNodeConfig(NamedTuple):
    """Everything tracker_node is configured with."""

    input: InputConfig
    compute: ComputeConfig
    tracker: TrackerConfig
    output: TrackerOutputConfig
    velocity_input: VelocityInputConfig
    velocity: VelocityConfig


def build_tracker_node_config(values: dict[str, Any]) -> TrackerNodeConfig:
    """Validated node config from parameter values (raises ConfigError)."""
    return TrackerNodeConfig(build_config(InputConfig, values),
                             build_config(ComputeConfig, values),
                             build_config(TrackerConfig, values),
                             build_config(TrackerOutputConfig, values),
                             build_config(VelocityInputConfig, values),
                             build_config(VelocityConfig, values))


def _fit_window_size(config: TrackerConfig) -> int:
    """Frames the tracker fits a velocity over."""
    return min(config.velocity_window, config.track_len)


class TrackerNode(Node):
    """Wires camera frames to :class:`~optical_flow_ros.core.lk_tracker.LKTracker`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("tracker_node", **kwargs)
        self._params = ParameterBinding(self, TRACKER_PARAMS, build_tracker_node_config,
                                        self._on_config_change)
        config = self._params.config
        config.compute.apply()
        self._tracker = LKTracker(config.tracker)
        self._camera: PinholeCamera | None = None
        self._diag = DiagnosticsReporter(self, "lk_tracker")
        self._pub_tracks = self.create_publisher(PointCloud2, "flow/tracks",
                                                 keep_last_qos("reliable", 5))
        self._pub_image = self.create_publisher(Image, "flow/image", keep_last_qos("reliable", 1))
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                 keep_last_qos("best_effort", 1))
        self.create_service(Trigger, "~/reset", self._on_reset)
        # Velocity stage. It runs here, not in a node of its own, because it needs exactly
        # this frame's tracks and their px/s velocities: in the tracker's callback there is no
        # re-serialising of the tracks, no second subscription and no time synchronisation of
        # tracks with range and imu (their latest readings are cached and their age checked
        # against the image stamp).
        self._velocity_inputs = VelocityInputs(self, self._diag, config.velocity_input)
        self._fit_window = FitWindow(_fit_window_size(config.tracker), config.tracker.max_dt)
        self._pub_velocity = self.create_publisher(
            TwistWithCovarianceStamped, "flow/velocity", keep_last_qos("reliable", 5))
        self._input = ImageInput(self, self._on_frame, self._diag, config.input)

    def _on_config_change(self, config: TrackerNodeConfig, changed: set[str]) -> None:
        if config.tracker != self._tracker.config:
            self._tracker.configure(config.tracker)
            self.get_logger().info(f"tracker reconfigured ({', '.join(sorted(changed))})")
        self._fit_window.configure(_fit_window_size(config.tracker), config.tracker.max_dt)
        self._velocity_inputs.config = config.velocity_input

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._tracker.reset()
        self._diag.count("resets")
        response.success, response.message = True, "tracker reset"
        return response

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            camera = PinholeCamera.from_camera_info(msg)
        except CameraModelError as err:
            self._camera = None
            self._diag.count("camera_info_invalid")
            self._diag.raise_condition("camera_info", f"camera_info ignored: {err}")
            self.get_logger().warning(f"camera_info ignored: {err}", throttle_duration_sec=5.0)
            return
        self._diag.clear("camera_info")
        self._camera = camera

    def _camera_for(self, frame: Frame) -> PinholeCamera | None:
        camera = self._camera
        if camera is None or not self._params.config.output.use_camera_info:
            return None
        if (camera.height, camera.width) != frame.gray.shape:
            self._diag.raise_condition(
                "camera_info", f"camera_info is {camera.width}x{camera.height} but images are "
                f"{frame.gray.shape[1]}x{frame.gray.shape[0]}; using pixel coordinates")
            return None
        return camera

    def _on_frame(self, frame: Frame) -> None:
        start = time.perf_counter()
        try:
            tracks = self._tracker.update(frame.gray, frame.stamp)
        except (OpticalFlowError, ValueError, cv2.error) as err:
            self._diag.count("frames_failed")
            self.get_logger().warning(f"tracking failed: {err}", throttle_duration_sec=5.0)
            return
        self._pub_tracks.publish(tracks_to_cloud(tracks, frame.header, self._camera_for(frame)))
        self._estimate_velocity(frame, tracks)
        if self._pub_image.get_subscription_count() > 0:
            out = self._params.config.output
            vis = draw_tracks(frame.bgr if frame.image.ndim == 3 else frame.gray, tracks,
                              self._tracker.trails() if out.draw_trails else None,
                              text=out.draw_count)
            self._pub_image.publish(array_to_image_msg(vis, "bgr8", frame.header))
        self._report(self._tracker.stats)
        self._diag.add_processing_time((time.perf_counter() - start) * 1e3)

    def _estimate_velocity(self, frame: Frame, tracks: Tracks) -> None:
        timing = self._fit_window.update(frame.stamp)   # every frame, to follow the tracker
        config = self._params.config
        if not config.velocity_input.estimate_velocity:
            self._diag.clear("velocity")
            return
        distance, why_no_distance = self._velocity_inputs.distance(frame.stamp)
        estimate = estimate_velocity(
            tracks, self._camera_for(frame), distance=distance,
            gyro=self._velocity_inputs.gyro(timing, config.velocity.gyro_std), timing=timing,
            config=config.velocity)
        self._diag.set(velocity_tracks=estimate.n_tracks, velocity_inliers=estimate.n_inliers,
                       velocity_residual_px_s=estimate.residual_std,
                       velocity_gyro=estimate.gyro_used)
        if estimate.valid:
            self._diag.clear("velocity")
            self._diag.count("velocity_published")
            self._pub_velocity.publish(velocity_msg(estimate, frame.header))
            return
        reason = estimate.reason
        if estimate.status == "no_distance" and why_no_distance:
            reason = why_no_distance
        self._diag.count(f"velocity_{estimate.status}")
        self._diag.raise_condition("velocity", f"no flow/velocity: {reason}")

    def _report(self, stats: TrackerStats) -> None:
        self._diag.count("frames_processed")
        self._diag.count("tracks_detected", stats.n_detected)
        if stats.reset_reason is not None:
            self._diag.count("resets")
            self.get_logger().info(f"tracker reset: {stats.reset_reason}",
                                   throttle_duration_sec=5.0)
        self._diag.set(tracks_in=stats.n_tracked_in, after_lk=stats.n_after_lk,
                       after_fb=stats.n_after_fb, after_ransac=stats.n_after_ransac,
                       detected=stats.n_detected, live=stats.n_live)


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``tracker_node`` executable."""
    return run_node(TrackerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
