"""The ROS side of the ``view`` command: newest frames, their rate and latency, dense toggles.

:class:`ViewerNode` subscribes to image topics reliable with keep-last 1
(:data:`VIEW_QOS`): the middleware keeps only the newest message of each, and its callbacks
only store the message and time it, and decoding happens when the
window draws (:func:`to_display`, at most once per shown frame). It also counts tracks from
``flow/tracks`` and switches the dense node's ``publish_hsv`` / ``publish_warp``
parameters through ``/<dense node>/set_parameters``, adding or removing the matching
panel when the node accepts.

The node is spun by an executor in another thread; the window thread talks to it through
:meth:`ViewerNode.feeds`, :meth:`ViewerNode.footer` and :meth:`ViewerNode.toggle`, which
are thread-safe. Changes to subscriptions run in the executor thread (queued, then woken
by a guard condition).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.client import Client
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from optical_flow_ros.core.flow_drawing import draw_hsv
from optical_flow_ros.core.image_codec import to_bgr
from optical_flow_ros.core.view_scale import AutoScale
from optical_flow_ros.ros.image_input import stamp_to_seconds
from optical_flow_ros.ros.image_messages import compressed_msg_to_array, image_msg_to_array
from optical_flow_ros.ros.qos import VIEW_IMAGE_DEPTH, keep_last_qos

__all__ = ["ANSWER_TIMEOUT_S", "DENSE_OUTPUTS", "VIEW_QOS", "DenseOutput", "FeedStatus",
           "ImageFeed", "ViewerNode", "to_display"]

_STALE_S = 2.0  # no message for this long: rate 0, track count unknown

#: QoS of the image subscriptions. Reliable, not best effort: with Fast DDS's default 512 KiB
#: shared-memory segment a best-effort reader loses most frames larger than the segment
#: (640x480 bgr8 is 900 KiB: 7-10 of 30 fps received, 1280x720 ~1 fps), while a reliable one
#: gets them all through repairs, with no profile to set. Keep-last VIEW_IMAGE_DEPTH, as the
#: nodes publish them: a frame still being repaired is not replaced by the next one (depth 1
#: on either side lost 30-45 % of 1280x720 frames). The feed keeps only the newest frame for
#: drawing, so the depth is never a backlog on screen, and a slow viewer delays no node.
VIEW_QOS = keep_last_qos("reliable", VIEW_IMAGE_DEPTH)
#: ... and for a topic with a best-effort-only publisher, which a reliable reader cannot match.
BEST_EFFORT = keep_last_qos("best_effort", 1)
_DENSE_POLL_S = 0.5
#: A parameter call unanswered this long is given up (the request or its answer was lost, or
#: the node is stuck): the key can be pressed again and the polling goes on.
ANSWER_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class DenseOutput:
    """An optional output of dense_flow_node that a key switches."""

    parameter: str
    topic: str


#: The views keys ``1`` and ``2`` switch, by name.
DENSE_OUTPUTS = {"hsv": DenseOutput("publish_hsv", "flow/dense/hsv"),
                 "warp": DenseOutput("publish_warp", "flow/dense/warp")}


def to_display(msg: Image | CompressedImage, *,
               flow_scale: AutoScale | None = None) -> np.ndarray:
    """A uint8 BGR image of any image message the conversion supports.

    ``32FC2`` (a flow field, e.g. ``flow/dense``) is shown as its HSV colour coding, its
    robust maximum at full brightness (as dense_flow_node's auto mode): smoothed over the
    frames ``flow_scale`` has seen, or this frame's own when None.

    Raises:
        ImageConversionError: An unsupported encoding or corrupt data.

    """
    if isinstance(msg, CompressedImage):
        image, encoding = compressed_msg_to_array(msg)
    else:
        image, encoding = image_msg_to_array(msg), msg.encoding
    if encoding == "32FC2":
        auto = flow_scale if flow_scale is not None else AutoScale(smoothing=1.0)
        return draw_hsv(image, scale=255.0 / auto.update(image))
    return to_bgr(image, encoding)


@dataclass(frozen=True)
class FeedStatus:
    """What the status line of one topic shows."""

    topic: str
    fps: float
    latency_ms: float | None
    frames: int

    def text(self) -> str:
        """e.g. ``/flow/image  29.8 fps  latency 14 ms``."""
        latency = "-" if self.latency_ms is None else f"{self.latency_ms:.0f} ms"
        return f"{self.topic}  {self.fps:.1f} fps  latency {latency}"


class ImageFeed:
    """The newest message of one topic, with its receive rate and header-stamp latency.

    Args:
        topic: The resolved topic name.
        now: The node clock in seconds (ROS time, so sim time works too).
        monotonic: Wall time for the rate (a parameter for tests).
    """

    def __init__(self, topic: str, now: Callable[[], float],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.topic = topic
        self._now = now
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._msg: Image | CompressedImage | None = None
        self._received: deque[float] = deque(maxlen=30)
        self._latencies: deque[float] = deque(maxlen=30)
        self._frames = 0

    def on_message(self, msg: Image | CompressedImage) -> None:
        """Subscription callback: keep the message, time it; no decoding here."""
        stamp = stamp_to_seconds(msg.header)
        latency = self._now() - stamp if stamp > 0.0 else None
        with self._lock:
            self._msg = msg
            self._frames += 1
            self._received.append(self._monotonic())
            if latency is not None:
                self._latencies.append(latency)

    def take(self) -> Image | CompressedImage | None:
        """The newest message if it arrived since the last call, else None."""
        with self._lock:
            msg, self._msg = self._msg, None
        return msg

    def status(self) -> FeedStatus:
        """Rate over the last messages (0 when none for 2 s) and their median latency."""
        with self._lock:
            received, latencies, frames = list(self._received), list(self._latencies), self._frames
        fps = 0.0
        if len(received) >= 2 and self._monotonic() - received[-1] < _STALE_S:
            fps = (len(received) - 1) / max(received[-1] - received[0], 1e-9)
        latency = float(np.median(latencies)) * 1e3 if latencies else None
        return FeedStatus(self.topic, fps, latency, frames)


class ViewerNode(Node):
    """Subscriptions and parameter calls of the viewer.

    Args:
        topics: Image topics shown from the start (relative names resolve in the node's
            namespace; a name ending in ``compressed`` is a sensor_msgs/CompressedImage).
        dense_node: Name of the dense flow node whose outputs keys ``1``/``2`` switch;
            relative names resolve in this node's namespace.
        show_dense: Add the panels of the dense outputs that are on once the dense node
            answers (the default view when no topics are given).
    """

    def __init__(self, topics: Sequence[str], *, dense_node: str = "dense_flow_node",
                 show_dense: bool = False, **kwargs: object) -> None:
        super().__init__("optical_flow_viewer", **kwargs)
        self._lock = threading.Lock()
        self._feeds: dict[str, tuple[ImageFeed, object]] = {}
        self._requests: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake = self.create_guard_condition(self._run_requests)
        self._show_dense = show_dense
        self._dense_name = self._resolve_node(dense_node)
        self._dense: dict[str, bool] | None = None  # parameter name -> value, once known
        self._pending: set[str] = set()  # "get" or a parameter name: a call awaits its answer
        self._message = ""
        self._message_time = 0.0
        self._tracks: tuple[int, float] | None = None  # (count, monotonic time received)
        for topic in topics:
            self._add(topic)
        self.create_subscription(PointCloud2, "flow/tracks", self._on_tracks, BEST_EFFORT)
        self._get_params = self.create_client(GetParameters,
                                              f"{self._dense_name}/get_parameters")
        self._set_params = self.create_client(SetParameters,
                                              f"{self._dense_name}/set_parameters")
        self._poll = self.create_timer(_DENSE_POLL_S, self._poll_dense)

    # -- called from the window thread ---------------------------------------------------------

    def feeds(self) -> list[ImageFeed]:
        """The feeds shown now, in panel order."""
        with self._lock:
            return [feed for feed, _ in self._feeds.values()]

    def toggle(self, output: str) -> None:
        """Switch a dense output (``"hsv"`` or ``"warp"``) on or off, and its panel."""
        self._call_soon(lambda: self._toggle(DENSE_OUTPUTS[output]))

    def footer(self) -> str:
        """Track count, the dense outputs' states and the latest message (for 5 s)."""
        with self._lock:
            tracks, dense = self._tracks, self._dense
            message = self._message if time.monotonic() - self._message_time < 5.0 else ""
        count = "-" if tracks is None or time.monotonic() - tracks[1] > _STALE_S else tracks[0]
        states = {k: "?" if dense is None else ("on" if dense[out.parameter] else "off")
                  for k, out in DENSE_OUTPUTS.items()}
        keys = f"1 hsv {states['hsv']}  2 warp {states['warp']}  s snapshot  q quit"
        return f"tracks {count}  |  {keys}" + (f"  |  {message}" if message else "")

    def say(self, message: str) -> None:
        """Show ``message`` in the footer for a few seconds (and log it)."""
        self.get_logger().info(message)
        with self._lock:
            self._message, self._message_time = message, time.monotonic()

    # -- executor thread ----------------------------------------------------------------------

    def _call_soon(self, request: Callable[[], None]) -> None:
        self._requests.put(request)
        self._wake.trigger()

    def _run_requests(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            request()

    def _resolve_node(self, name: str) -> str:
        if name.startswith("/"):
            return name.rstrip("/")
        namespace = self.get_namespace().rstrip("/")
        return f"{namespace}/{name}"

    def _add(self, topic: str) -> None:
        if topic in self._feeds:
            return
        msg_type = CompressedImage if topic.endswith("compressed") else Image
        feed = ImageFeed(self.resolve_topic_name(topic),
                         lambda: self.get_clock().now().nanoseconds * 1e-9)
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda _info: self._call_soon(lambda: self._best_effort(topic)))
        sub = self.create_subscription(msg_type, topic, feed.on_message, VIEW_QOS,
                                       event_callbacks=events)
        with self._lock:
            self._feeds[topic] = (feed, sub)

    def _best_effort(self, topic: str) -> None:
        """Subscribe ``topic`` best effort: a publisher offers only that (REP-2003 drivers).

        A reliable reader does not match a best-effort writer; a best-effort one matches all.
        """
        with self._lock:
            entry = self._feeds.get(topic)
        if entry is None or entry[1].qos_profile.reliability == BEST_EFFORT.reliability:
            return
        feed, old = entry
        self.destroy_subscription(old)
        sub = self.create_subscription(old.msg_type, topic, feed.on_message, BEST_EFFORT)
        with self._lock:
            self._feeds[topic] = (feed, sub)
        self.say(f"{feed.topic}: a publisher offers best effort only; subscribed best effort "
                 "(frames over 512 KiB may be lost without config/fastdds_large_images.xml)")

    def _remove(self, topic: str) -> None:
        with self._lock:
            entry = self._feeds.pop(topic, None)
        if entry is not None:
            self.destroy_subscription(entry[1])

    def _on_tracks(self, msg: PointCloud2) -> None:
        with self._lock:
            self._tracks = (msg.width * msg.height, time.monotonic())

    def _poll_dense(self) -> None:
        """Read the dense node's output switches once it is there (then stop polling)."""
        if self._dense is not None or "get" in self._pending:
            return
        if not self._get_params.service_is_ready():
            return
        names = [out.parameter for out in DENSE_OUTPUTS.values()]
        self._call(self._get_params, GetParameters.Request(names=names), "get",
                   lambda reply: self._on_dense_params(names, reply))

    def _call(self, client: Client, request: object, key: str,
              on_answer: Callable[[object | None], None]) -> None:
        """Call a service: ``on_answer(reply)`` on its answer.

        ``on_answer(None)`` after :data:`ANSWER_TIMEOUT_S` without one; a later answer is
        dropped. ``key`` is in ``_pending`` meanwhile.
        """
        self._pending.add(key)
        future = client.call_async(request)

        def finish(reply: object | None) -> None:
            self.destroy_timer(timer)
            self._pending.discard(key)
            on_answer(reply)

        def timed_out() -> None:
            if not future.done():
                client.remove_pending_request(future)  # not cancel(): it runs the callback
                finish(None)

        timer = self.create_timer(ANSWER_TIMEOUT_S, timed_out)
        future.add_done_callback(lambda f: finish(f.result()))

    def _on_dense_params(self, names: list[str], reply: GetParameters.Response | None) -> None:
        if reply is None or len(reply.values) != len(names):
            return  # not the dense node, or it went away: poll again
        values = {n: v.bool_value for n, v in zip(names, reply.values, strict=True)}
        with self._lock:
            self._dense = values
        self._poll.cancel()
        if self._show_dense:
            for out in DENSE_OUTPUTS.values():
                if values[out.parameter]:
                    self._add(out.topic)

    def _toggle(self, out: DenseOutput) -> None:
        if self._dense is None or not self._set_params.service_is_ready():
            self.say(f"{self._dense_name} not found: cannot switch {out.parameter}")
            return
        if out.parameter in self._pending:
            self.say(f"{out.parameter}: still waiting for {self._dense_name} to answer")
            return
        on = not self._dense[out.parameter]
        value = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=on)
        request = SetParameters.Request(parameters=[ParameterMsg(name=out.parameter,
                                                                 value=value)])
        self.say(f"{out.parameter}: asking {self._dense_name} to switch it "
                 f"{'on' if on else 'off'}")
        self._call(self._set_params, request, out.parameter,
                   lambda reply: self._on_toggled(out, on, reply))

    def _on_toggled(self, out: DenseOutput, on: bool,
                    reply: SetParameters.Response | None) -> None:
        if reply is None:
            self.say(f"{self._dense_name} did not answer in {ANSWER_TIMEOUT_S:.0f} s: "
                     f"{out.parameter} unchanged, press again")
            return
        result = reply.results[0] if reply.results else None
        if result is None or not result.successful:
            reason = result.reason if result is not None else "no result"
            self.say(f"{self._dense_name} refused {out.parameter}={on}: {reason}")
            return
        with self._lock:
            if self._dense is not None:
                self._dense[out.parameter] = on
        if on:
            self._add(out.topic)
        else:
            self._remove(out.topic)
        self.say(f"{out.parameter} {'on' if on else 'off'}")
