"""Camera input shared by the nodes: subscribe, decode, count what is bad, hand on the newest.

Subscribes to ``image`` (sensor_msgs/Image) or, with ``transport="compressed"``, to
``<image>/compressed`` (sensor_msgs/CompressedImage), the resolved image topic plus
``/compressed`` as image_transport names it. Keep-last depth 1 by default: while the
node is busy the middleware overwrites the waiting frame, so the callback always gets the
newest one and no backlog builds up; the frames overwritten are counted as dropped from the
publisher's sequence numbers (:mod:`optical_flow_ros.ros.frame_drops`, on Jazzy only while the
topic has one publisher). A frame that cannot be decoded is counted, logged (throttled)
and skipped; it never reaches the algorithm.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.errors import ImageConversionError
from optical_flow_ros.core.image_codec import DEFAULT_MAX_PIXELS, to_bgr, to_gray
from optical_flow_ros.ros.diagnostics import DiagnosticsReporter
from optical_flow_ros.ros.frame_drops import DropCounter
from optical_flow_ros.ros.image_messages import compressed_msg_to_array, image_msg_to_array
from optical_flow_ros.ros.qos import RELIABILITY_CHOICES, keep_last_qos

if TYPE_CHECKING:  # rclpy 9 (Kilted) only; rclpy 7 (Jazzy) passes a plain dict
    from rclpy.subscription import MessageInfo

__all__ = ["TRANSPORTS", "Frame", "ImageInput", "InputConfig", "frame_from_msg",
           "stamp_to_seconds"]

TRANSPORTS = ("raw", "compressed")
_LOG_THROTTLE_S = 5.0


@dataclass(frozen=True)
class InputConfig:
    """How a node subscribes to its camera (read at start-up)."""

    image_transport: str = setting(
        "raw", "Input transport: raw subscribes to image, compressed to image/compressed",
        choices=TRANSPORTS)
    input_reliability: str = setting(
        "best_effort", "Input QoS reliability (best_effort also matches reliable publishers)",
        choices=RELIABILITY_CHOICES)
    input_depth: int = setting(
        1, "Input QoS keep-last depth; 1 always processes the newest frame, never a backlog",
        range=(1, 100))
    max_pixels: int = setting(
        DEFAULT_MAX_PIXELS, "Frames declaring more pixels than this are refused unread",
        range=(1, 1 << 30))

    def __post_init__(self) -> None:
        validate_fields(self)


def stamp_to_seconds(header: Header) -> float:
    """Header stamp as float seconds."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


@dataclass
class Frame:
    """One decoded camera frame.

    Attributes:
        header: the image's header (stamp, optical frame id), passed on to the outputs.
        stamp: header stamp in seconds (node clock time if the driver left it zero).
        image: the decoded image in its native layout.
        encoding: its encoding (e.g. ``bgr8``, ``mono8``).
        gray: uint8 grey image every flow algorithm uses.
        received_at: ``time.perf_counter()`` when the message reached the node (s), so
            processing time covers decoding too ("callback in to publish out").
    """

    header: Header
    stamp: float
    image: np.ndarray
    encoding: str
    gray: np.ndarray = field(repr=False)
    received_at: float = field(default_factory=time.perf_counter)

    @cached_property
    def bgr(self) -> np.ndarray:
        """uint8 BGR version for drawing (computed on first use)."""
        return to_bgr(self.image, self.encoding)


def frame_from_msg(msg: Image | CompressedImage, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                   received_at: float | None = None) -> Frame:
    """Decode an image message into a :class:`Frame`, as every node and bag processing do.

    The frame keeps the message's header; a zero stamp stays zero (the caller decides what
    stands in for it: the node clock live, the bag's record time offline).

    Args:
        msg: a ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage``.
        max_pixels: frames declaring more pixels than this are refused unread.
        received_at: ``time.perf_counter()`` when the message arrived (default: now).

    Raises:
        ImageConversionError: the message cannot be decoded.
    """
    if isinstance(msg, CompressedImage):
        image, encoding = compressed_msg_to_array(msg, max_pixels=max_pixels)
    else:
        image, encoding = image_msg_to_array(msg, max_pixels=max_pixels), msg.encoding
    return Frame(header=msg.header, stamp=stamp_to_seconds(msg.header), image=image,
                 encoding=encoding, gray=to_gray(image, encoding),
                 received_at=time.perf_counter() if received_at is None else received_at)


class _MessageInfoCallback:
    """A subscription callback that takes the message and its MessageInfo, on every executor.

    rclpy makes a callback whose signature takes two arguments a message-info callback. The
    Python executors then call it with ``(msg, info)``; rclpy 9.1's
    ``rclpy.experimental.EventsExecutor`` passes the same pair as one tuple instead (a
    two-argument function fails there). This accepts both.
    """

    __signature__ = inspect.Signature([
        inspect.Parameter("msg", inspect.Parameter.POSITIONAL_ONLY),
        inspect.Parameter("info", inspect.Parameter.POSITIONAL_ONLY)])

    def __init__(self, callback: Callable[[Any, MessageInfo], None]) -> None:
        self._callback = callback

    def __call__(self, *args: Any) -> None:
        msg, info = args if len(args) == 2 else args[0]
        self._callback(msg, info)


class ImageInput:
    """Camera subscription of a node.

    Args:
        node: the owning node.
        on_frame: called with each decoded frame.
        diagnostics: counters ``frames_received``, ``frames_dropped``, ``frames_invalid``,
            ``frames_unstamped`` go here.
        config: transport, QoS and size limit.
    """

    def __init__(self, node: Node, on_frame: Callable[[Frame], None],
                 diagnostics: DiagnosticsReporter, config: InputConfig) -> None:
        self._node = node
        self._on_frame = on_frame
        self._diag = diagnostics
        self._max_pixels = config.max_pixels
        self._shape: tuple[int, ...] | None = None
        # Like image_transport: the compressed topic follows the (remapped) image topic, so
        # image:=/cam/image_raw subscribes to /cam/image_raw/compressed.
        msg_type, topic = (Image, "image") if config.image_transport == "raw" else (
            CompressedImage, node.resolve_topic_name("image") + "/compressed")
        self.subscription = node.create_subscription(
            msg_type, topic, _MessageInfoCallback(self._on_message),
            keep_last_qos(config.input_reliability, config.input_depth))
        self._drops = DropCounter(
            lambda: node.count_publishers(self.subscription.topic_name))

    def _count_dropped(self, info: MessageInfo) -> None:
        missed = self._drops.missed(info)
        if missed:
            self._diag.count("frames_dropped", missed)

    def _on_message(self, msg: Image | CompressedImage, info: MessageInfo) -> None:
        received_at = time.perf_counter()
        self._diag.count("frames_received")
        self._count_dropped(info)
        try:
            frame = frame_from_msg(msg, max_pixels=self._max_pixels, received_at=received_at)
        except ImageConversionError as err:
            self._diag.count("frames_invalid")
            self._diag.raise_condition("input", f"invalid frames: {err}")
            self._node.get_logger().warning(f"skipping invalid frame: {err}",
                                            throttle_duration_sec=_LOG_THROTTLE_S)
            return
        self._diag.clear("input")
        shape = frame.gray.shape
        if self._shape is not None and shape != self._shape:
            self._diag.count("resolution_changes")
            self._node.get_logger().info(
                f"input resolution changed from {self._shape[1]}x{self._shape[0]} to "
                f"{shape[1]}x{shape[0]}; restarting")
        self._shape = shape
        if frame.stamp == 0.0:
            self._diag.count("frames_unstamped")
            self._node.get_logger().warning(
                "image header stamp is zero; using the node clock (velocities lose accuracy)",
                throttle_duration_sec=60.0)
            now = self._node.get_clock().now()
            frame.header.stamp = now.to_msg()
            frame.stamp = now.nanoseconds * 1e-9
        self._on_frame(frame)
