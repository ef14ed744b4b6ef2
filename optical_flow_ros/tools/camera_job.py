"""One camera of a bag: its pipelines fed from the bag's messages, outputs to the new bag."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from builtin_interfaces.msg import Time

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.errors import CameraModelError, ImageConversionError
from optical_flow_ros.ros.dense_pipeline import DenseNodeConfig, DensePipeline, DenseWants
from optical_flow_ros.ros.diagnostics import OfflineDiagnostics
from optical_flow_ros.ros.image_input import Frame, frame_from_msg
from optical_flow_ros.ros.tracker_pipeline import TrackerNodeConfig, TrackerPipeline
from optical_flow_ros.tools.bag_cameras import CameraTopics
from optical_flow_ros.tools.bag_io import BagMessage, BagWriter, deserialize, offered_qos
from optical_flow_ros.tools.lookahead_tracker import LookaheadTracker

__all__ = ["CameraJob"]

_IMAGE = "sensor_msgs/msg/Image"
# Output topics (relative to the namespace), their types and the QoS the nodes publish with.
_TRACKER_OUT = {"tracks": ("flow/tracks", "sensor_msgs/msg/PointCloud2", 5),
                "velocity": ("flow/velocity", "geometry_msgs/msg/TwistWithCovarianceStamped", 5),
                "image": ("flow/image", _IMAGE, 1)}
_DENSE_OUT = {"flow": ("flow/dense", _IMAGE, 1), "hsv": ("flow/dense/hsv", _IMAGE, 1),
              "arrows": ("flow/dense/arrows", _IMAGE, 1), "warp": ("flow/dense/warp", _IMAGE, 1)}


class CameraJob:
    """One camera's pipelines, fed from the bag, writing their outputs.

    Args:
        topics: the camera's topics.
        tracker: the tracker_node configuration, or None for no tracking.
        dense: the dense_flow_node configuration, or None for no dense flow.
        draw: also write the debug images.
        writer: where the outputs go (topics declared here).
    """

    def __init__(self, topics: CameraTopics, tracker: TrackerNodeConfig | None,
                 dense: DenseNodeConfig | None, *, draw: bool, writer: BagWriter) -> None:
        self.topics = topics
        self.diagnostics = OfflineDiagnostics()
        self._draw = draw
        self._writer = writer
        self._max_pixels = (tracker or dense).input.max_pixels
        self.tracker: TrackerPipeline | None = None
        self._lookahead: LookaheadTracker | None = None
        # The last valid camera_info read so far (record order), ahead of the pipeline,
        # which gets it only when the messages queued before the next image are handled.
        self._camera_ahead: PinholeCamera | None = None
        self._camera_ahead_key: bytes | None = None
        outputs: list[tuple[str, str, int]] = []
        if tracker is not None:
            self.tracker = TrackerPipeline(tracker, self.diagnostics)
            self._lookahead = LookaheadTracker(
                self.tracker.tracker, trails=draw and tracker.output.draw_trails)
            self.tracker.tracker = self._lookahead  # type: ignore[assignment]  # duck-typed
            outputs += [_TRACKER_OUT[k] for k in ("tracks", "velocity")]
            outputs += [_TRACKER_OUT["image"]] if draw else []
        self.dense = None if dense is None else DensePipeline(dense, self.diagnostics)
        if self.dense is not None:
            wants = self._dense_wants()
            outputs += [_DENSE_OUT[k] for k in DenseWants._fields if getattr(wants, k)]
        for relative, msgtype, depth in outputs:
            writer.add_topic(topics.output(relative), msgtype,
                             qos=[offered_qos("reliable", depth)])

    def _dense_wants(self) -> DenseWants:
        assert self.dense is not None
        return self.dense.wanted(flow=True, hsv=self._draw, arrows=self._draw, warp=self._draw)

    def handlers(self) -> dict[str, Callable[[BagMessage], None]]:
        """Companion topic name -> what to do with its messages (camera_info, range, imu)."""
        out: dict[str, Callable[[BagMessage], None]] = {}
        if self.tracker is not None:
            inputs = self.tracker.velocity_inputs
            if self.topics.camera_info is not None:
                out[self.topics.camera_info] = _CameraInfoFeed(self.tracker.on_camera_info)
            if self.topics.range is not None:
                out[self.topics.range] = _decoded(inputs.on_range)
            if self.topics.imu is not None:   # read from its CDR bytes, as the node does
                out[self.topics.imu] = _cdr_bytes(inputs.on_imu_cdr)
        return out

    def peeks(self) -> dict[str, Callable[[BagMessage], None]]:
        """Topic -> what to read of its messages as soon as they are read.

        Before they wait in the queue: the camera_info, for the lens the next image will be
        tracked with (ahead, :class:`LookaheadTracker`).
        """
        if self._lookahead is None or self.topics.camera_info is None:
            return {}
        return {self.topics.camera_info: self._peek_camera_info}

    def _peek_camera_info(self, message: BagMessage) -> None:
        key = _without_stamp(message.data)
        if key == self._camera_ahead_key:
            return
        try:   # an invalid one is ignored, as the pipeline ignores it
            self._camera_ahead = PinholeCamera.from_camera_info(deserialize(message))
            self._camera_ahead_key = key
        except CameraModelError:
            pass

    def decode(self, message: BagMessage) -> Frame | str:
        """The frame of an image message (tracking started ahead), or why it is invalid.

        A zero stamp is replaced by the record time (the node uses its clock).
        """
        try:
            frame = frame_from_msg(deserialize(message), max_pixels=self._max_pixels)
        except ImageConversionError as err:
            return str(err)
        if frame.stamp == 0.0:
            self.diagnostics.count("frames_unstamped")
            frame.header.stamp = Time(sec=message.timestamp // 10**9,
                                      nanosec=message.timestamp % 10**9)
            frame.stamp = message.timestamp * 1e-9
        if self._lookahead is not None:
            assert self.tracker is not None
            self._lookahead.prefetch(frame.gray, frame.stamp, self.tracker.camera_for(
                self._camera_ahead, frame.gray.shape))
        return frame

    def on_frame(self, message: BagMessage, frame: Frame | str) -> None:
        """Run the pipelines on a decoded frame; write their outputs at its record time."""
        diag = self.diagnostics
        diag.count("frames_received")
        if isinstance(frame, str):
            diag.count("frames_invalid")
            diag.raise_condition("input", f"invalid frames: {frame}")
            return
        write = self._writer.write_message
        ts, topics = message.timestamp, self.topics
        if self.tracker is not None:
            result = self.tracker.process(frame, draw=self._draw)
            if result.error is None:
                write(topics.output(_TRACKER_OUT["tracks"][0]), ts, result.tracks_msg)
                if result.velocity_msg is not None:
                    write(topics.output(_TRACKER_OUT["velocity"][0]), ts, result.velocity_msg)
                if result.image_msg is not None:
                    write(topics.output(_TRACKER_OUT["image"][0]), ts, result.image_msg)
            else:
                diag.raise_condition("tracker", result.error)
        if self.dense is not None:
            dense = self.dense.process(frame, self._dense_wants())
            for key in DenseWants._fields:
                msg = getattr(dense, f"{key}_msg")
                if msg is not None:
                    write(topics.output(_DENSE_OUT[key][0]), ts, msg)
            if dense.error is not None:
                diag.raise_condition("dense", dense.error)

    def close(self) -> None:
        """Stop the tracker's worker thread."""
        if self._lookahead is not None:
            self._lookahead.close()


def _decoded(handler: Callable[[Any], Any]) -> Callable[[BagMessage], None]:
    def feed(message: BagMessage) -> None:
        handler(deserialize(message))
    return feed


def _cdr_bytes(handler: Callable[[bytes], Any]) -> Callable[[BagMessage], None]:
    """A handler of serialised messages (tracker_node's polled imu) fed a bag's raw CDR.

    The imu at a robot's rate (200-1000 Hz) is most of a bag's messages: 11 us each this way,
    53 us deserialised and then read (measured on a 200 Hz sample bag).
    """
    def feed(message: BagMessage) -> None:
        handler(message.data)
    return feed


# CDR of a message with a Header: 4 bytes of encapsulation, then the stamp (sec, nanosec).
_STAMP = slice(4, 12)


def _without_stamp(data: bytes | memoryview) -> bytes:
    """A message's CDR bytes but its header stamp: equal for the same camera_info resent."""
    return bytes(data[:_STAMP.start]) + bytes(data[_STAMP.stop:])


class _CameraInfoFeed:
    """Feeds camera_info to the pipeline, skipping one equal to the last accepted but its stamp.

    Drivers send the same camera_info with every image, only its stamp new; the pipeline
    would decode it and rebuild the same intrinsics each time (it reads the intrinsics, not
    the header). A message whose bytes equal those of the last one it
    accepted, the stamp aside, changes nothing (same intrinsics, condition already clear),
    so it is skipped. Any other message, and every one after an invalid one, goes through as
    the node handles it (counts and conditions included).
    """

    def __init__(self, handler: Callable[[Any], str | None]) -> None:
        self._handler = handler
        self._accepted: bytes | None = None

    def __call__(self, message: BagMessage) -> None:
        key = _without_stamp(message.data)
        if key == self._accepted:
            return
        self._accepted = key if self._handler(deserialize(message)) is None else None
