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
    ~/save_snapshot (std_srvs/Trigger): write the newest input frame and its flow/image
        drawing as PNG files to ``snapshot_dir``; answers with their paths.
Parameters: ``config/tracker.yaml`` (generated from the table below); all but the
start-up-only ones can be changed at runtime.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from geometry_msgs.msg import TwistWithCovarianceStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger

from optical_flow_ros.nodes.node_main import run_node
from optical_flow_ros.ros.diagnostics import DiagnosticsReporter
from optical_flow_ros.ros.image_input import Frame, ImageInput
from optical_flow_ros.ros.parameters import ParameterBinding
from optical_flow_ros.ros.qos import VIEW_IMAGE_DEPTH, keep_last_qos
from optical_flow_ros.ros.snapshot_service import SnapshotService
from optical_flow_ros.ros.stop_signals import run_program
from optical_flow_ros.ros.tracker_pipeline import (
    TRACKER_PARAMS,
    TrackerNodeConfig,
    TrackerPipeline,
    build_tracker_node_config,
)

__all__ = ["TRACKER_PARAMS", "TrackerNode", "main"]


class TrackerNode(Node):
    """Wires camera topics to :class:`~optical_flow_ros.ros.tracker_pipeline.TrackerPipeline`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("tracker_node", **kwargs)
        self._params = ParameterBinding(self, TRACKER_PARAMS, build_tracker_node_config,
                                        self._on_config_change)
        config = self._params.config
        config.compute.apply()
        self._diag = DiagnosticsReporter(self, "lk_tracker")
        self._pipeline = TrackerPipeline(config, self._diag, node=self)  # + range, imu subs
        self._pub_tracks = self.create_publisher(PointCloud2, "flow/tracks",
                                                 keep_last_qos("reliable", 5))
        self._pub_image = self.create_publisher(Image, "flow/image",
                                                keep_last_qos("reliable", VIEW_IMAGE_DEPTH))
        self._pub_velocity = self.create_publisher(
            TwistWithCovarianceStamped, "flow/velocity", keep_last_qos("reliable", 5))
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                 keep_last_qos("best_effort", 1))
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._snapshots = SnapshotService(self, lambda: self._params.config.snapshot.snapshot_dir)
        self._input = ImageInput(self, self._on_frame, self._diag, config.input)

    def _on_config_change(self, config: TrackerNodeConfig, changed: set[str]) -> None:
        if self._pipeline.configure(config):
            self.get_logger().info(f"tracker reconfigured ({', '.join(sorted(changed))})")

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._pipeline.reset()
        response.success, response.message = True, "tracker reset"
        return response

    def _on_camera_info(self, msg: CameraInfo) -> None:
        problem = self._pipeline.on_camera_info(msg)
        if problem:
            self.get_logger().warning(problem, throttle_duration_sec=5.0)

    def _on_frame(self, frame: Frame) -> None:
        result = self._pipeline.process(
            frame, draw=self._pub_image.get_subscription_count() > 0)
        if result.error is not None:
            self.get_logger().warning(result.error, throttle_duration_sec=5.0)
            return
        # A snapshot draws on request only; the trails are this frame's (0.06 ms to copy).
        self._snapshots.update(frame, partial(self._pipeline.draw, frame, result.tracks,
                                              self._pipeline.trails()))
        self._pub_tracks.publish(result.tracks_msg)
        if result.velocity_msg is not None:
            self._pub_velocity.publish(result.velocity_msg)
        if result.image_msg is not None:
            self._pub_image.publish(result.image_msg)
        if result.stats.reset_reason is not None:
            self.get_logger().info(f"tracker reset: {result.stats.reset_reason}",
                                   throttle_duration_sec=5.0)
        self._diag.add_processing_time((time.perf_counter() - frame.received_at) * 1e3)


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``tracker_node`` executable."""
    return run_node(TrackerNode, args)


if __name__ == "__main__":
    raise SystemExit(run_program(main))
