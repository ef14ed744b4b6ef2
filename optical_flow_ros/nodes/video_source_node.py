"""video_source_node: a video file, image sequence or camera device as a camera topic.

The seed's ``create_capture`` (OpenCV ``samples/python/video.py``) as a node; the source and
its checks are :class:`~optical_flow_ros.core.video_capture.VideoSource`. ``source`` is a
video file (anything OpenCV's FFmpeg backend decodes), a still image, a numbered image
sequence (``frames/%06d.png``) or a camera device index (all digits, e.g. ``0``).

Timing: a timer at ``rate`` (0 = the file's own frame rate) publishes file frame after file
frame; frame k of the run carries the stamp ``start + k / rate`` (``start``: the node clock at
the first tick; with ``wait_for_subscribers`` > 0, the first tick at which that many
subscriptions match ``image``), so stamp differences are exact frame periods, as
:class:`~optical_flow_ros.core.frame_schedule.FrameSchedule` describes: a tick more than a
period late skips the frames it missed (counted as ``frames_skipped``), so stamps keep up with
the clock. A camera is read once per tick and stamped with the node clock right after the
frame arrives.

End of a file: with ``loop`` the next frame is the file's frame 0 again (stamps go on
increasing). Without it the node logs one line ("end of stream ..."), publishes nothing more,
waits up to 2 s for reliable subscribers to acknowledge the last frame and exits with code 0:
the process ends, as a finite source should (in a launch file, add
``on_exit=Shutdown()`` to end the whole launch with it). A camera that stops delivering frames
ends the node with an error and exit code 1.

Start-up errors end the process with exit code 2 and one line naming the parameter, without a
traceback: a missing, empty, unreadable or undecodable file, a camera that cannot be opened,
an invalid calibration file, or one whose image size differs from the video's (refused rather
than scaled: a calibration for another resolution is the wrong calibration, and scaling K
silently would hide that). FFmpeg's own log lines are silenced (``OPENCV_FFMPEG_LOGLEVEL=-8``
unless set; 16 shows its errors again), so the node's line is the one that explains.

Publishes:
    image (sensor_msgs/Image, mono8 or bgr8): decoded only while someone subscribes (the file
        is still read frame by frame, so the sequence and timing never depend on subscribers).
    camera_info (sensor_msgs/CameraInfo): with ``camera_info_url`` only; the calibration file
        as is, same header as the image.
    /diagnostics: frames published/skipped/invalid, loops, time per frame (read, decode and
        publish) p50/p99.
Parameters: all start-up only, from the table below.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from optical_flow_ros.core.camera_calibration import CameraCalibration, read_calibration
from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.errors import CalibrationError, ConfigError, VideoSourceError
from optical_flow_ros.core.frame_schedule import FrameSchedule
from optical_flow_ros.core.video_capture import (
    VideoInfo,
    VideoSource,
    VideoSourceConfig,
    playback_rate,
    start_frame,
)
from optical_flow_ros.nodes.node_main import NodeExit, run_node
from optical_flow_ros.ros.camera_info_file import (
    calibration_to_camera_info,
    resolve_camera_info_url,
)
from optical_flow_ros.ros.compute_config import ComputeConfig
from optical_flow_ros.ros.diagnostics import DiagnosticsReporter
from optical_flow_ros.ros.image_messages import array_to_image_msg
from optical_flow_ros.ros.parameter_table import build_node_config, params_from
from optical_flow_ros.ros.parameters import ParameterBinding
from optical_flow_ros.ros.qos import RELIABILITY_CHOICES, keep_last_qos
from optical_flow_ros.ros.stop_signals import run_program
from optical_flow_ros.ros.subscriber_gate import SubscriberGate

__all__ = ["VIDEO_SOURCE_PARAMS", "VideoOutputConfig", "VideoSourceNode", "main"]

_ACK_TIMEOUT = Duration(seconds=2.0)


@dataclass(frozen=True)
class VideoOutputConfig:
    """Frame id, calibration and QoS of video_source_node."""

    frame_id: str = setting("camera_optical_frame", "frame_id of image and camera_info")
    camera_info_url: str = setting(
        "", "Calibration in the standard camera_info YAML (camera_calibration's output): a "
        "path, file:// or package:// URL; its image size must be the video's; empty = no "
        "camera_info")
    image_reliability: str = setting("reliable", "QoS reliability of image and camera_info",
                                     choices=RELIABILITY_CHOICES)
    queue_depth: int = setting(5, "Keep-last depth of image and camera_info", range=(1, 1000))
    wait_for_subscribers: int = setting(
        0, "Publish nothing until this many subscriptions match image; the first frame and the "
        "clock of the stamps start then, so consumers started with the node get every frame "
        "(discovery can take a DDS announcement period, ~3 s); 0 = start at once",
        range=(0, 1000))

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.frame_id:
            raise ConfigError("frame_id: must not be empty")


VIDEO_SOURCE_PARAMS = (params_from(ComputeConfig, read_only=True)
                       + params_from(VideoSourceConfig, read_only=True)
                       + params_from(VideoOutputConfig, read_only=True))


class VideoNodeConfig(NamedTuple):
    """Everything video_source_node is configured with."""

    compute: ComputeConfig
    source: VideoSourceConfig
    output: VideoOutputConfig


def build_video_node_config(values: dict[str, Any]) -> VideoNodeConfig:
    """Validated node config from parameter values (raises ConfigError)."""
    return build_node_config(VideoNodeConfig, values)


# ----- start-up: the source and its calibration -----------------------------------------------

def open_video(config: VideoSourceConfig) -> tuple[VideoSource, float]:
    """The opened source, positioned at ``start_offset``, and its publishing rate (Hz).

    Raises:
        ConfigError: naming ``source``, ``rate`` or ``start_offset`` and the reason.
    """
    try:
        video = VideoSource(config.source, encoding=config.encoding, loop=config.loop)
    except VideoSourceError as err:
        raise ConfigError(f"source: {err}") from err
    try:
        rate = playback_rate(config.rate, video.info)
        first = start_frame(config.start_offset, video.info)
        if first:
            video.seek(first)
    except VideoSourceError as err:
        video.close()
        raise ConfigError(f"start_offset: {err}") from err
    except ConfigError:
        video.close()
        raise
    return video, rate


def load_calibration(url: str, info: VideoInfo) -> CameraCalibration:
    """The calibration ``url`` names, checked against the video's frame size.

    Raises:
        ConfigError: naming ``camera_info_url``: unreadable or invalid file, or another size.
    """
    try:
        calibration = read_calibration(resolve_camera_info_url(url))
    except CalibrationError as err:
        raise ConfigError(f"camera_info_url: {err}") from err
    if (calibration.width, calibration.height) != (info.width, info.height):
        raise ConfigError(f"camera_info_url: the calibration is for {calibration.width}x"
                          f"{calibration.height} images, but the frames of '{info.source}' "
                          f"are {info.width}x{info.height}")
    return calibration


# ----- node -----------------------------------------------------------------------------------

class VideoSourceNode(Node):
    """Publishes the frames of a :class:`~optical_flow_ros.core.video_capture.VideoSource`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("video_source_node", **kwargs)
        self._params = ParameterBinding(self, VIDEO_SOURCE_PARAMS, build_video_node_config)
        config = self._params.config
        config.compute.apply()
        self._video, rate = open_video(config.source)
        info = self._video.info
        self._camera_info: CameraInfo | None = None
        if config.output.camera_info_url:
            calibration = load_calibration(config.output.camera_info_url, info)
            self._camera_info = calibration_to_camera_info(calibration)
            if calibration.distortion_model_assumed:
                self.get_logger().warning("the calibration file gives no distortion_model; "
                                          "plumb_bob assumed (as camera_calibration_parsers)")
        out = config.output
        qos = keep_last_qos(out.image_reliability, out.queue_depth)
        self._pub_image = self.create_publisher(Image, "image", qos)
        self._pub_info = (self.create_publisher(CameraInfo, "camera_info", qos)
                          if self._camera_info is not None else None)
        self._diag = DiagnosticsReporter(self, "video_source")
        self._schedule = FrameSchedule(rate)
        self._published = 0
        count = "" if info.frame_count is None else f", {info.frame_count} frames"
        native = "" if info.fps is None else f", native {info.fps:g} Hz"
        self.get_logger().info(
            f"publishing '{info.source}' ({info.width}x{info.height}{count}{native}) at "
            f"{rate:g} Hz{' in a loop' if config.source.loop and not info.is_device else ''}"
            f"{'' if self._pub_info is None else ' with camera_info'}")
        self._gate = SubscriberGate(self._pub_image, out.wait_for_subscribers,
                                    self.get_logger())
        self._timer = self.create_timer(1.0 / rate, self._on_timer)

    def _grab(self) -> bool:
        try:
            return self._video.grab()
        except VideoSourceError as err:  # looping, but frame 0 no longer reads
            self.get_logger().error(str(err))
            self._finish(1)

    def _next_stamp_ns(self) -> int | None:
        """Advance the source to the frame due now; its stamp (ns), None at the end."""
        if self._video.info.is_device:  # the camera sets the pace: stamp it on arrival
            return self.get_clock().now().nanoseconds if self._grab() else None
        due = self._schedule.next_frame(self.get_clock().now().nanoseconds)
        for _ in range(due.skipped):  # their time passed while this tick was late
            if not self._grab():
                return None
        self._diag.count("frames_skipped", due.skipped)
        return due.stamp_ns if self._grab() else None

    def _on_timer(self) -> None:
        if not self._gate.is_open():
            return
        start = time.perf_counter()
        stamp_ns = self._next_stamp_ns()
        if stamp_ns is None:
            self._end_of_stream()
        header = Header(stamp=Time(nanoseconds=stamp_ns).to_msg(),
                        frame_id=self._params.config.output.frame_id)
        if self._pub_image.get_subscription_count() > 0:
            try:
                image = self._video.retrieve()
            except VideoSourceError as err:
                self._diag.count("frames_invalid")
                self._diag.raise_condition("decode", str(err))
                self.get_logger().warning(str(err), throttle_duration_sec=5.0)
                return
            self._diag.clear("decode")
            self._pub_image.publish(array_to_image_msg(image, self._video.encoding, header))
        if self._pub_info is not None and self._camera_info is not None:
            self._camera_info.header = header
            self._pub_info.publish(self._camera_info)
        self._published += 1
        self._diag.add_processing_time((time.perf_counter() - start) * 1e3)
        self._diag.count("frames_processed")
        self._diag.set(frame_index=self._video.index, loops=self._video.loops)

    def _end_of_stream(self) -> NoReturn:
        info, index = self._video.info, self._video.index
        if info.is_device:
            self.get_logger().error(f"camera device {info.source} stopped delivering frames "
                                    f"after {self._published} published")
            self._finish(1)
        declared = info.frame_count
        damaged = (f"; the file declares {declared} frames (truncated or damaged?)"
                   if declared is not None and index + 1 < declared else "")
        self.get_logger().info(f"end of stream: published {self._published} frames, the last "
                               f"file frame {index}{damaged}; exiting")
        self._finish(0)

    def _finish(self, code: int) -> NoReturn:
        """Stop publishing, let reliable subscribers acknowledge the last frame, exit."""
        self._timer.cancel()
        for pub in (self._pub_image, self._pub_info):
            if pub is not None:
                pub.wait_for_all_acked(_ACK_TIMEOUT)
        self._diag.publish()
        self._video.close()
        raise NodeExit(code)


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``video_source_node`` executable."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET: our line explains
    return run_node(VideoSourceNode, args)


if __name__ == "__main__":
    raise SystemExit(run_program(main))
