"""tracker_node: sparse Lucas-Kanade feature tracking with persistent ids and px/s velocities.

Subscribes:
    image (sensor_msgs/Image), or image/compressed (sensor_msgs/CompressedImage) when
    ``image_transport`` is ``compressed``.
    camera_info (sensor_msgs/CameraInfo, optional): latest kept; makes flow/tracks carry the
    normalised (undistorted) ray of each track.
    range (sensor_msgs/Range, optional), imu (sensor_msgs/Imu, optional): distance to the
    scene and gyro rates for flow/velocity (``optical_flow_ros.ros.velocity_inputs``).
    camera_info, range and imu are polled (``optical_flow_ros.ros.polled_input``): taken all
    at once before each frame is processed and every 50 ms, instead of waking the executor
    per message (at 1 kHz that alone took most of a core).
Publishes:
    flow/tracks (sensor_msgs/PointCloud2): one point per live track, header = the image's
        (fields in ``optical_flow_ros.ros.track_cloud``).
    flow/image (sensor_msgs/Image bgr8): trails, points, track count; only while subscribed.
    flow/velocity (geometry_msgs/TwistWithCovarianceStamped): camera velocity in its optical
        frame, header = the image's, whenever the estimate is valid (needs camera_info and a
        distance: the ``distance`` parameter or range); else a "velocity" diagnostics entry
        says why.
    /diagnostics: per-stage counts (tracked, after FB, after RANSAC, detected), processing
        time, received/dropped/invalid frames, resets; with MAVLink output its counters
        (``mavlink_*``) and a "mavlink" condition while the link is down.
MAVLink (``mavlink_url`` set): each processed frame is sent as an optical-flow sensor's
    OPTICAL_FLOW_RAD and/or OPTICAL_FLOW (and DISTANCE_SENSOR), with a 1 Hz HEARTBEAT
    (``optical_flow_ros.ros.mavlink_output``).
Services:
    ~/reset (std_srvs/Trigger): drop all tracks (ids continue, never reused).
    ~/save_snapshot (std_srvs/Trigger): write the newest input frame and its flow/image
        drawing as PNG files to ``snapshot_dir``; answers with their paths.
Parameters: ``config/tracker.yaml`` (generated from the table below); all but the
start-up-only ones can be changed at runtime.
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Any

from geometry_msgs.msg import TwistWithCovarianceStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger

from optical_flow_ros.core.flow_sensor import FlowMeasurement
from optical_flow_ros.nodes.node_main import run_node
from optical_flow_ros.ros.diagnostics import DiagnosticsReporter
from optical_flow_ros.ros.image_input import Frame, ImageInput
from optical_flow_ros.ros.mavlink_output import MavlinkOutput
from optical_flow_ros.ros.parameters import ParameterBinding
from optical_flow_ros.ros.polled_input import PolledGroup, PolledSubscription
from optical_flow_ros.ros.qos import (
    OUTPUT_DEPTH,
    VIEW_IMAGE_DEPTH,
    keep_last_qos,
    output_publisher,
)
from optical_flow_ros.ros.snapshot_service import SnapshotService
from optical_flow_ros.ros.stop_signals import run_program
from optical_flow_ros.ros.tracker_pipeline import (
    TRACKER_PARAMS,
    TrackerNodeConfig,
    TrackerPipeline,
    build_tracker_node_config,
)

__all__ = ["POLL_PERIOD_S", "TRACKER_PARAMS", "TrackerNode", "main"]

#: Seconds between polls of camera_info, range and imu between frames (each frame
#: polls them too): keeps the caches and counters current without images. Each poll is an
#: executor wake (~0.6-0.9 ms of CPU): an idle node took 8.7 % of a core at 10 ms, 2.6 % at
#: 50 ms; the queues hold far more than 50 ms (imu_depth 1000, range 10).
POLL_PERIOD_S = 0.05


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
        self._pub_tracks = output_publisher(self, PointCloud2, "flow/tracks",
                                            keep_last_qos("reliable", OUTPUT_DEPTH))
        self._pub_image = output_publisher(self, Image, "flow/image",
                                           keep_last_qos("reliable", VIEW_IMAGE_DEPTH))
        self._pub_velocity = output_publisher(self, TwistWithCovarianceStamped, "flow/velocity",
                                              keep_last_qos("reliable", OUTPUT_DEPTH))
        self._camera_info = PolledSubscription(self, CameraInfo, "camera_info",
                                               self._on_camera_info,
                                               keep_last_qos("best_effort", 1), PolledGroup())
        self.create_timer(POLL_PERIOD_S, self._poll_inputs)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._snapshots = SnapshotService(self, lambda: self._params.config.snapshot.snapshot_dir)
        self._mavlink: MavlinkOutput | None = None
        self._mavlink_counted: dict[str, int] = {}
        if config.mavlink.enabled:
            self._mavlink = MavlinkOutput(config.mavlink)
            self.create_timer(1.0, self._on_mavlink_timer)
            self.get_logger().info(f"MAVLink output: {config.mavlink.mavlink_messages} to "
                                   f"{self._mavlink.endpoint.url}")
        self._input = ImageInput(self, self._on_frame, self._diag, config.input)

    def destroy_node(self) -> None:
        """Close the MAVLink link (its thread) with the node."""
        link = getattr(self, "_mavlink", None)   # absent when the constructor failed
        if link is not None:
            link.close()
        super().destroy_node()

    def _on_mavlink_timer(self) -> None:
        link = self._mavlink
        link.heartbeat()
        for level, line in link.events():
            if level == "error":
                self.get_logger().error(line)
            else:
                self.get_logger().info(line)
        for key, value in link.counts().items():
            delta = value - self._mavlink_counted.get(key, 0)
            if delta:
                self._diag.count(key, delta)
                self._mavlink_counted[key] = value
        if link.connected:
            self._diag.clear("mavlink")
        else:
            self._diag.raise_condition(
                "mavlink", f"MAVLink link {link.endpoint.url} down: {link.last_error}")

    def _send_mavlink(self, flow: FlowMeasurement) -> None:
        camera = self._pipeline.camera
        focal = 0.5 * sum(camera.focal_px) if camera is not None else math.nan
        self._mavlink.send(flow, focal_px=focal)

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

    def _poll_inputs(self) -> None:
        """Take the camera_info, range and imu messages queued now."""
        self._camera_info.poll()
        self._pipeline.velocity_inputs.poll()

    def _on_frame(self, frame: Frame) -> None:
        self._poll_inputs()   # the newest intrinsics, distance and gyro samples for this frame
        result = self._pipeline.process(
            frame, draw=self._pub_image.get_subscription_count() > 0)
        if self._mavlink is not None and result.flow is not None:
            self._send_mavlink(result.flow)
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
