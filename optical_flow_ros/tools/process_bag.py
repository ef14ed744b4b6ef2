"""Process a recorded bag offline: the nodes' per-frame work, outputs to a new bag.

    python -m optical_flow_ros.tools.process_bag IN OUT [--image-topic T ...]
        [--params config/tracker.yaml] [--dense [--dense-params config/flow.yaml]]
        [--no-tracker] [--draw] [--include-inputs] [--storage mcap|sqlite3]
        [--namespace NS ...] [--camera-info-topic T] [--range-topic T] [--imu-topic T]
        [--overwrite] [--quiet]

IN is a bag folder or a bare ``.mcap`` / ``.db3`` file. Every frame of the image topic(s)
(``sensor_msgs/Image`` or ``CompressedImage``; found automatically when the bag has exactly
one) goes, in record order, through exactly what the nodes run per frame
(:class:`~optical_flow_ros.ros.tracker_pipeline.TrackerPipeline`,
:class:`~optical_flow_ros.ros.dense_pipeline.DensePipeline`), configured by the nodes' own
YAML files. The camera's ``camera_info``, ``range`` and ``imu`` are fed in where the node
would receive them: the topics of those names next to the image topic (``/cam/image_raw`` ->
``/cam/camera_info``), else the bag's only topic of that type, else none.

OUT is a new bag with the messages the nodes publish, under the names they have when started
in the root namespace (``--namespace NS`` prefixes them; one per image topic when there are
several): ``/flow/tracks``, ``/flow/velocity`` and, with ``--draw``, ``/flow/image``; with
``--dense``: ``/flow/dense`` and, with ``--draw``, ``/flow/dense/hsv``, ``/arrows``, ``/warp``
as the YAML enables them. Headers are the images' (stamp and frame id); record times are the
images' record times. ``--include-inputs`` copies the input messages too (raw, unchanged).
A zero image stamp is replaced by the image's record time (the node uses its clock).

Deterministic: the same bag and settings give byte-identical outputs, equal to what a live
``tracker_node`` publishes when the bag is played to it without loss. OUT appears only when
complete. Ctrl-C (SIGINT) or SIGTERM stops after the current frame and closes a valid bag
with the frames so far (exit 130); a second Ctrl-C abandons it. Exit codes: 0 done, 1 bad
input (missing topic, unknown type, damaged bag, bad parameters; nothing written), 130
interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np
import yaml
from builtin_interfaces.msg import Time

from optical_flow_ros.core.errors import ConfigError, ImageConversionError, OpticalFlowError
from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig, TrackerStats
from optical_flow_ros.core.track_types import Tracks
from optical_flow_ros.nodes.dense_flow_node import (
    DENSE_FLOW_PARAMS,
    DenseNodeConfig,
    build_dense_node_config,
)
from optical_flow_ros.nodes.parameter_table import Param, config_values, defaults
from optical_flow_ros.ros.dense_pipeline import DensePipeline, DenseWants
from optical_flow_ros.ros.diagnostics import OfflineDiagnostics
from optical_flow_ros.ros.image_input import Frame, frame_from_msg
from optical_flow_ros.ros.tracker_pipeline import (
    TRACKER_PARAMS,
    TrackerNodeConfig,
    TrackerPipeline,
    build_tracker_node_config,
)
from optical_flow_ros.tools.bag_io import (
    STORAGES,
    BagError,
    BagMessage,
    BagReader,
    BagTopic,
    BagWriter,
    deserialize,
    offered_qos,
)

__all__ = ["IMAGE_TYPES", "CameraJob", "CameraTopics", "LookaheadTracker", "NodeParameters",
           "ProcessOptions", "ProcessSummary", "find_cameras", "main", "node_parameters",
           "process_bag"]

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
_RANGE_TYPE = "sensor_msgs/msg/Range"
_IMU_TYPE = "sensor_msgs/msg/Imu"
_IMAGE = "sensor_msgs/msg/Image"
# Output topics (relative to the namespace), their types and the QoS the nodes publish with.
_TRACKER_OUT = {"tracks": ("flow/tracks", "sensor_msgs/msg/PointCloud2", 5),
                "velocity": ("flow/velocity", "geometry_msgs/msg/TwistWithCovarianceStamped", 5),
                "image": ("flow/image", _IMAGE, 1)}
_DENSE_OUT = {"flow": ("flow/dense", _IMAGE, 1), "hsv": ("flow/dense/hsv", _IMAGE, 1),
              "arrows": ("flow/dense/arrows", _IMAGE, 1), "warp": ("flow/dense/warp", _IMAGE, 1)}
EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 130
_ROS_BUILTIN_PARAMS = frozenset({"use_sim_time"})   # every node has it; meaningless offline


# ----- parameters files -------------------------------------------------------------------------

class NodeParameters(NamedTuple):
    """Parameter values for a node from a YAML file: defaults overridden by the file."""

    values: dict[str, Any]
    ignored: list[str]   # entries for this node that are not among its parameters


def _applies_to(key: str, node_name: str) -> bool:
    name = key.strip("/")
    return name in ("**", node_name) or name.endswith(f"/{node_name}")


def node_parameters(path: str | Path | None, node_name: str,
                    table: Sequence[Param]) -> NodeParameters:
    """A node's parameter values as ``ros2 run ... --params-file path`` would set them.

    Entries under ``/**``, ``<node_name>`` or ``<namespace>/<node_name>`` apply, in file
    order; names the node does not declare are ignored (as rclpy ignores them) and listed.

    Raises:
        ConfigError: the file cannot be read or is not a ROS parameters file.
    """
    values: dict[str, Any] = dict(defaults(table))
    if path is None:
        return NodeParameters(values, [])
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the parameters file: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a ROS parameters file (expected "
                          "'<node or /**>: ros__parameters: {...}')")
    known = {p.name for p in table}
    ignored: list[str] = []
    for key, entry in data.items():
        if not _applies_to(str(key), node_name):
            continue
        params = entry.get("ros__parameters") if isinstance(entry, dict) else None
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: '{key}' has no 'ros__parameters' mapping")
        for name, value in params.items():
            if name in known:
                values[name] = value
            elif name not in _ROS_BUILTIN_PARAMS:
                ignored.append(str(name))
    return NodeParameters(values, ignored)


# ----- what to process --------------------------------------------------------------------------

@dataclass(frozen=True)
class CameraTopics:
    """One camera's input topics in the bag and the namespace of its outputs."""

    image: str
    camera_info: str | None = None
    range: str | None = None
    imu: str | None = None
    namespace: str = ""

    def output(self, relative: str) -> str:
        """Full output topic name."""
        return f"{self.namespace}/{relative}"


@dataclass
class ProcessOptions:
    """Everything ``process_bag`` is told (the command line's options)."""

    image_topics: Sequence[str] = ()
    namespaces: Sequence[str] = ()
    tracker: bool = True
    tracker_params: str | Path | None = None
    dense: bool = False
    dense_params: str | Path | None = None
    draw: bool = False
    include_inputs: bool = False
    storage: str = "mcap"
    overwrite: bool = False
    camera_info_topic: str | None = None
    range_topic: str | None = None
    imu_topic: str | None = None


@dataclass
class ProcessSummary:
    """What a run did."""

    output: Path
    frames: int = 0
    frames_total: int = 0
    bag_seconds: float = 0.0        # record time covered by the frames processed
    elapsed_s: float = 0.0
    interrupted: bool = False
    written: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    conditions: dict[str, str] = field(default_factory=dict)
    cameras: list[CameraTopics] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float:
        """Bag time processed per wall-clock second."""
        return self.bag_seconds / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def _normalise_namespace(ns: str) -> str:
    ns = ns.strip("/")
    return f"/{ns}" if ns else ""


def _image_topics(reader: BagReader, requested: Sequence[str]) -> list[BagTopic]:
    if requested:
        if len(set(requested)) != len(requested):
            raise BagError("an --image-topic is given twice")
        return [reader.topic(name, msgtypes=IMAGE_TYPES) for name in requested]
    found = reader.topics_of_type(*IMAGE_TYPES)
    if len(found) == 1:
        return found
    if not found:
        raise BagError(f"{reader.path}: no image topic (sensor_msgs/Image or CompressedImage); "
                       f"the bag has: {reader.describe_topics()}")
    raise BagError(f"{reader.path}: several image topics ({', '.join(t.name for t in found)}); "
                   "choose with --image-topic")


def _companion(reader: BagReader, image: BagTopic, name: str, msgtype: str,
               explicit: str | None) -> str | None:
    """The camera_info/range/imu topic for ``image``: explicit, sibling, or the only one."""
    if explicit is not None:
        return None if explicit in ("", "none") else reader.topic(explicit,
                                                                  msgtypes=(msgtype,)).name
    base = image.name
    if image.msgtype == "sensor_msgs/msg/CompressedImage" and base.endswith("/compressed"):
        base = base[: -len("/compressed")]
    sibling = f"{base.rsplit('/', 1)[0]}/{name}"
    topic = reader.topics.get(sibling)
    if topic is not None and topic.msgtype == msgtype:
        return sibling
    only = reader.topics_of_type(msgtype)
    return only[0].name if len(only) == 1 else None


def find_cameras(reader: BagReader, options: ProcessOptions) -> list[CameraTopics]:
    """The cameras to process and their companion topics (see the module docstring).

    Raises:
        BagError: a missing or ambiguous topic, or output names that would collide.
    """
    images = _image_topics(reader, options.image_topics)
    namespaces = [_normalise_namespace(ns) for ns in options.namespaces]
    if len(images) > 1 and len(namespaces) != len(images):
        raise BagError(f"{len(images)} image topics need one --namespace each (in the same "
                       "order), so that their outputs do not collide")
    if len(namespaces) > len(images):
        raise BagError(f"{len(namespaces)} --namespace options for {len(images)} image topic(s)")
    if len(set(namespaces)) != len(namespaces):
        raise BagError("--namespace values must differ")
    namespaces += [""] * (len(images) - len(namespaces))
    return [CameraTopics(
        image=image.name,
        camera_info=_companion(reader, image, "camera_info", _INFO_TYPE,
                               options.camera_info_topic),
        range=_companion(reader, image, "range", _RANGE_TYPE, options.range_topic),
        imu=_companion(reader, image, "imu", _IMU_TYPE, options.imu_topic),
        namespace=ns) for image, ns in zip(images, namespaces, strict=True)]


# ----- one camera -------------------------------------------------------------------------------

class _Update(NamedTuple):
    tracks: Tracks | None
    error: Exception | None
    stats: TrackerStats
    trails: np.ndarray | None


class LookaheadTracker:
    """Stands in for a TrackerPipeline's LKTracker and runs ``update`` one frame ahead.

    Offline, the next frame is known before the pipeline asks for this frame's tracks, so
    the real tracker's update of the next frame (OpenCV, which releases the GIL) runs in a
    worker thread while the pipeline estimates this frame's velocity and its outputs are
    written. The real tracker gets exactly the calls it would get in order, one at a time,
    so its results are the same; ``stats`` and ``trails()`` are those of the frame
    :meth:`update` last returned. It offers what :meth:`TrackerPipeline.process` uses of
    the tracker (``update``, ``stats``, ``trails``, ``config``); offline nothing
    reconfigures or resets it.

    Args:
        tracker: the pipeline's tracker.
        trails: keep each frame's trails (for drawing).
    """

    def __init__(self, tracker: LKTracker, *, trails: bool) -> None:
        self._tracker = tracker
        self._keep_trails = trails
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="lookahead_tracker")
        self._ahead: deque[tuple[np.ndarray, float, Future[_Update]]] = deque()
        self._last = _Update(None, None, tracker.stats, None)

    @property
    def config(self) -> TrackerConfig:
        """The tracker's settings."""
        return self._tracker.config

    @property
    def stats(self) -> TrackerStats:
        """Counts of the frame :meth:`update` returned last."""
        return self._last.stats

    def trails(self) -> np.ndarray:
        """Trails of the frame :meth:`update` returned last (needs ``trails=True``)."""
        if self._last.trails is None:
            raise RuntimeError("trails were not kept for this frame")
        return self._last.trails

    def prefetch(self, gray: np.ndarray, stamp: float) -> None:
        """Start updating the tracker with the next frame in the worker."""
        self._ahead.append((gray, stamp, self._worker.submit(self._run, gray, stamp)))

    def _run(self, gray: np.ndarray, stamp: float) -> _Update:
        try:
            tracks = self._tracker.update(gray, stamp)
        except Exception as err:  # handed to the caller of update(), as if raised there
            return _Update(None, err, self._tracker.stats, None)
        return _Update(tracks, None, self._tracker.stats,
                       self._tracker.trails() if self._keep_trails else None)

    def update(self, gray: np.ndarray, stamp: float) -> Tracks:
        """The tracks of this frame: computed ahead when prefetched, else now."""
        if self._ahead:
            ahead_gray, ahead_stamp, future = self._ahead.popleft()
            if ahead_gray is not gray or ahead_stamp != stamp:
                raise RuntimeError("LookaheadTracker: frames asked for out of order")
            self._last = future.result()
        else:
            self._last = self._run(gray, stamp)
        if self._last.error is not None:
            raise self._last.error
        assert self._last.tracks is not None
        return self._last.tracks

    def close(self) -> None:
        """Wait for the worker (a frame computed ahead and not asked for is dropped)."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._ahead.clear()


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
            for topic, handler in ((self.topics.camera_info, self.tracker.on_camera_info),
                                   (self.topics.range, inputs.on_range),
                                   (self.topics.imu, inputs.on_imu)):
                if topic is not None:
                    out[topic] = _decoded(handler)
        return out

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
            self._lookahead.prefetch(frame.gray, frame.stamp)
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


# ----- progress and interruption ----------------------------------------------------------------

class Progress:
    """Progress (frames done/total, frames/s, x real time) on a stream.

    One updating line on a terminal, a line every few seconds otherwise.
    """

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self._total = total
        self._stream = stream
        self._tty = bool(stream is not None and stream.isatty())
        self._period = 0.25 if self._tty else 5.0
        self._start = time.perf_counter()
        self._last = self._start
        self._width = 0

    def line(self, frames: int, bag_seconds: float) -> str:
        """The progress text."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        return (f"{frames}/{self._total} frames  {frames / elapsed:.1f} frames/s  "
                f"{bag_seconds / elapsed:.1f}x real time")

    def update(self, frames: int, bag_seconds: float) -> None:
        """Show progress if the period has passed."""
        now = time.perf_counter()
        if self._stream is None or now - self._last < self._period:
            return
        self._last = now
        self._write(self.line(frames, bag_seconds), "\r" if self._tty else "\n")

    def finish(self, frames: int, bag_seconds: float) -> None:
        """Final line."""
        if self._stream is not None:
            self._write(self.line(frames, bag_seconds), "\n")

    def _write(self, text: str, end: str) -> None:
        assert self._stream is not None
        width, self._width = self._width, len(text)
        self._stream.write((text.ljust(width) if self._tty else text) + end)   # blank leftovers
        self._stream.flush()


@contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """While active, SIGINT/SIGTERM only set a flag (the callable yielded returns it).

    A second SIGINT raises KeyboardInterrupt as usual. Signal handlers can only be set
    from the main thread; elsewhere the flag never turns true.
    """
    stop = [False]

    def handler(signum: int, _frame: object) -> None:
        if stop[0] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop[0] = True

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:   # not the main thread
        previous = {}
    try:
        yield lambda: stop[0]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ----- the run ----------------------------------------------------------------------------------

def _configs(options: ProcessOptions) -> tuple[TrackerNodeConfig | None,
                                                DenseNodeConfig | None, list[str]]:
    notes: list[str] = []
    tracker = dense = None
    if options.tracker:
        params = node_parameters(options.tracker_params, "tracker_node", TRACKER_PARAMS)
        tracker = build_tracker_node_config(config_values(TRACKER_PARAMS, params.values))
        if params.ignored:
            notes.append(f"{options.tracker_params}: ignored (not tracker_node parameters): "
                         f"{', '.join(params.ignored)}")
    if options.dense:
        params = node_parameters(options.dense_params, "dense_flow_node", DENSE_FLOW_PARAMS)
        dense = build_dense_node_config(config_values(DENSE_FLOW_PARAMS, params.values))
        if params.ignored:
            notes.append(f"{options.dense_params}: ignored (not dense_flow_node parameters): "
                         f"{', '.join(params.ignored)}")
    if tracker is None and dense is None:
        raise ConfigError("nothing to do: the tracker is off (--no-tracker) and --dense not given")
    return tracker, dense, notes


def process_bag(source: str | Path, output: str | Path, options: ProcessOptions, *,
                progress: TextIO | None = None,
                should_stop: Callable[[], bool] = lambda: False) -> ProcessSummary:
    """Process ``source`` into a new bag at ``output`` (see the module docstring).

    Args:
        source: input bag folder or ``.mcap`` / ``.db3`` file.
        output: the bag folder to create.
        options: what to run and write.
        progress: stream for the progress line (None: silent).
        should_stop: polled after every frame; when true, the bag is closed with what was
            processed so far and the summary says ``interrupted``.

    Raises:
        BagError: missing topic, unknown type, damaged input, unwritable output (then
            nothing is left at ``output``).
        ConfigError: invalid parameters.
    """
    tracker_config, dense_config, notes = _configs(options)
    for note in notes:
        if progress is not None:
            progress.write(f"note: {note}\n")
    (tracker_config or dense_config).compute.apply()
    with BagReader(source) as reader:
        cameras = find_cameras(reader, options)
        summary = ProcessSummary(output=Path(output), cameras=cameras,
                                 frames_total=sum(reader.topics[c.image].count
                                                  for c in cameras))
        with BagWriter(output, storage=options.storage, overwrite=options.overwrite) as writer:
            jobs = [CameraJob(c, tracker_config, dense_config, draw=options.draw, writer=writer)
                    for c in cameras]
            try:
                if options.include_inputs:
                    for topic in reader.topics.values():
                        writer.add_topic(topic.name, topic.msgtype, like=topic)
                _Run(reader, writer, jobs, options.include_inputs, summary,
                     Progress(summary.frames_total, progress), should_stop).run()
            finally:
                for job in jobs:
                    job.close()
            summary.written = dict(writer.counts)
        for job in jobs:
            summary.counters.update({f"{job.topics.image}: {k}": v
                                     for k, v in job.diagnostics.counters.items()})
            summary.conditions.update({f"{job.topics.image}: {k}": v
                                       for k, v in job.diagnostics.conditions.items()})
    return summary


class _Queued(NamedTuple):
    message: BagMessage
    job: CameraJob | None = None
    frame: Frame | str | None = None


class _Run:
    """The message loop: record order, each image handled once the next one is decoded.

    Messages wait in a queue until the next image has been read and its tracking started
    (:class:`LookaheadTracker`); then everything queued before it is handled in record order,
    exactly the order a node receives them in.
    """

    def __init__(self, reader: BagReader, writer: BagWriter, jobs: list[CameraJob],
                 include_inputs: bool, summary: ProcessSummary, progress: Progress,
                 should_stop: Callable[[], bool]) -> None:
        self._reader, self._writer = reader, writer
        self._include_inputs = include_inputs
        self._summary, self._progress, self._should_stop = summary, progress, should_stop
        self._image_jobs = {job.topics.image: job for job in jobs}
        self._handlers: dict[str, list[Callable[[BagMessage], None]]] = {}
        for job in jobs:
            for topic, handler in job.handlers().items():
                self._handlers.setdefault(topic, []).append(handler)
        self._first_image_ns: int | None = None

    def run(self) -> None:
        summary = self._summary
        names = (list(self._reader.topics) if self._include_inputs
                 else [*self._image_jobs, *self._handlers])
        start = time.perf_counter()
        queue: deque[_Queued] = deque()
        for message in self._reader.messages(list(dict.fromkeys(names))):
            job = self._image_jobs.get(message.topic)
            if job is None:
                queue.append(_Queued(message))
                continue
            frame = job.decode(message)
            if not self._handle(queue):
                break
            queue.append(_Queued(message, job, frame))
        else:
            self._handle(queue)
        summary.elapsed_s = time.perf_counter() - start
        self._progress.finish(summary.frames, summary.bag_seconds)

    def _handle(self, queue: deque[_Queued]) -> bool:
        """Handle the queued messages; False when asked to stop (after a frame)."""
        summary = self._summary
        while queue:
            message, job, frame = queue.popleft()
            if self._include_inputs:
                self._writer.write(message.topic, message.timestamp, message.data)
            for handler in self._handlers.get(message.topic, ()):
                handler(message)
            if job is None or frame is None:
                continue
            job.on_frame(message, frame)
            summary.frames += 1
            if self._first_image_ns is None:
                self._first_image_ns = message.timestamp
            summary.bag_seconds = (message.timestamp - self._first_image_ns) * 1e-9
            self._progress.update(summary.frames, summary.bag_seconds)
            if self._should_stop():
                summary.interrupted = True
                queue.clear()
                return False
        return True


# ----- command line -----------------------------------------------------------------------------

def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="process_bag", description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="bag folder or .mcap/.db3 file")
    parser.add_argument("output", type=Path, help="bag folder to create")
    parser.add_argument("--image-topic", action="append", default=[], dest="image_topics",
                        help="image topic (repeat for several; default: the bag's only one)")
    parser.add_argument("--namespace", action="append", default=[], dest="namespaces",
                        help="output namespace (one per --image-topic when several)")
    parser.add_argument("--params", type=Path, help="tracker_node parameters YAML "
                        "(e.g. config/tracker.yaml; default: the node's defaults)")
    parser.add_argument("--no-tracker", dest="tracker", action="store_false",
                        help="do not run the tracker (flow/tracks, flow/velocity)")
    parser.add_argument("--dense", action="store_true", help="run dense flow (flow/dense)")
    parser.add_argument("--dense-params", type=Path,
                        help="dense_flow_node parameters YAML (e.g. config/flow.yaml)")
    parser.add_argument("--draw", action="store_true",
                        help="also write flow/image and the flow/dense views")
    parser.add_argument("--include-inputs", action="store_true",
                        help="copy every input message into the output bag")
    parser.add_argument("--storage", choices=STORAGES, default="mcap",
                        help="output storage (default mcap, as rosbag2)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--camera-info-topic", help="camera_info topic ('none' to ignore it)")
    parser.add_argument("--range-topic", help="range topic ('none' to ignore it)")
    parser.add_argument("--imu-topic", help="imu topic ('none' to ignore it)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    return parser.parse_args(argv)


def _report(summary: ProcessSummary, stream: TextIO) -> None:
    for cam in summary.cameras:
        stream.write(f"camera {cam.image}: camera_info {cam.camera_info or '-'}, range "
                     f"{cam.range or '-'}, imu {cam.imu or '-'}\n")
    written = ", ".join(f"{t} {n}" for t, n in summary.written.items())
    stream.write(f"wrote {summary.output}: {written}\n")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counters.items()))
    stream.write(f"counts: {counts}\n")
    for key, message in sorted(summary.conditions.items()):
        stream.write(f"last warning of {key}: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 done, 1 bad input, 130 interrupted)."""
    args = _parse(argv)
    options = ProcessOptions(
        image_topics=args.image_topics, namespaces=args.namespaces, tracker=args.tracker,
        tracker_params=args.params, dense=args.dense, dense_params=args.dense_params,
        draw=args.draw, include_inputs=args.include_inputs, storage=args.storage,
        overwrite=args.overwrite, camera_info_topic=args.camera_info_topic,
        range_topic=args.range_topic, imu_topic=args.imu_topic)
    try:
        with stop_on_signals() as should_stop:
            summary = process_bag(args.input, args.output, options,
                                  progress=None if args.quiet else sys.stderr,
                                  should_stop=should_stop)
    except (OpticalFlowError, ValueError) as err:
        print(f"process_bag: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"process_bag: interrupted twice; {args.output} not written", file=sys.stderr)
        return EXIT_INTERRUPTED
    _report(summary, sys.stderr)
    if summary.interrupted:
        print(f"process_bag: interrupted after {summary.frames} of {summary.frames_total} "
              f"frames; {summary.output} holds them", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
