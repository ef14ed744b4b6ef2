"""Process a recorded bag offline: the nodes' per-frame work, outputs to a new bag.

    ros2 run optical_flow_ros process_bag IN OUT [--image-topic T ...]
        [--params config/tracker.yaml] [--dense [--dense-params config/flow.yaml]]
        [--no-tracker] [--draw] [--include-inputs] [--storage mcap|sqlite3]
        [--namespace NS ...] [--camera-info-topic T] [--range-topic T] [--imu-topic T]
        [--opencv-threads N] [--overwrite] [--quiet]

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
complete. Ctrl-C (SIGINT) or SIGTERM, however many, stops after the current frame and closes
a valid bag with the frames so far, which one line reports: a stop asked for is a normal end
(exit 0). Exit codes: 0 done or stopped, 1 bad input (missing topic, unknown type, damaged
bag, bad parameters; nothing written).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple, TextIO

from optical_flow_ros.core.errors import ConfigError, OpticalFlowError
from optical_flow_ros.ros.dense_pipeline import (
    DENSE_FLOW_PARAMS,
    DenseNodeConfig,
    build_dense_node_config,
)
from optical_flow_ros.ros.image_input import Frame
from optical_flow_ros.ros.stop_signals import run_program, stop_signals
from optical_flow_ros.ros.tracker_pipeline import (
    TRACKER_PARAMS,
    TrackerNodeConfig,
    build_tracker_node_config,
)
from optical_flow_ros.tools.bag_cameras import CameraTopics, find_cameras
from optical_flow_ros.tools.bag_io import STORAGES, BagMessage, BagReader, BagWriter
from optical_flow_ros.tools.camera_job import CameraJob
from optical_flow_ros.tools.params_file import node_config
from optical_flow_ros.tools.progress import Progress

__all__ = ["ProcessOptions", "ProcessSummary", "main", "process_bag"]

EXIT_OK, EXIT_BAD_INPUT = 0, 1


# ----- the run ----------------------------------------------------------------------------------

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
    #: OpenCV threads; 0: one per core. Offline the next frame is always waiting, so unlike
    #: the live nodes (opencv_threads 1 in their YAML, which this replaces) more threads
    #: shorten the run. Results do not depend on it (every point is tracked independently).
    opencv_threads: int = 0


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


def _configs(options: ProcessOptions) -> tuple[TrackerNodeConfig | None,
                                                DenseNodeConfig | None, list[str]]:
    """The nodes' configurations from their YAML files, and notes on ignored names."""
    tracker = dense = None
    notes: list[str | None] = []
    if options.tracker:
        tracker, note = node_config(options.tracker_params, "tracker_node", TRACKER_PARAMS,
                                    build_tracker_node_config)
        notes.append(note)
    if options.dense:
        dense, note = node_config(options.dense_params, "dense_flow_node", DENSE_FLOW_PARAMS,
                                  build_dense_node_config)
        notes.append(note)
    if tracker is None and dense is None:
        raise ConfigError("nothing to do: the tracker is off (--no-tracker) and --dense not given")
    return tracker, dense, [n for n in notes if n is not None]


@contextmanager
def _prompt_thread_switches() -> Iterator[None]:
    """Hand the GIL between threads every 0.1 ms instead of 5 ms while active.

    The look-ahead tracker's thread needs the GIL back after each OpenCV call; with the
    default interval it can wait up to 5 ms while this thread runs numpy code.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


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
    compute = (tracker_config or dense_config).compute
    replace(compute, opencv_threads=options.opencv_threads or os.cpu_count() or 1).apply()
    with BagReader(source) as reader, _prompt_thread_switches():
        cameras = find_cameras(reader, image_topics=options.image_topics,
                               namespaces=options.namespaces,
                               camera_info_topic=options.camera_info_topic,
                               range_topic=options.range_topic, imu_topic=options.imu_topic)
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
        self._peeks: dict[str, list[Callable[[BagMessage], None]]] = {}
        for job in jobs:
            for topic, handler in job.handlers().items():
                self._handlers.setdefault(topic, []).append(handler)
            for topic, peek in job.peeks().items():
                self._peeks.setdefault(topic, []).append(peek)
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
                for peek in self._peeks.get(message.topic, ()):
                    peek(message)
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
    parser.add_argument("--opencv-threads", type=int, default=0,
                        help="OpenCV threads (default 0: one per core; results do not change)")
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
    """Entry point; returns the exit code (0 done or stopped, 1 bad input)."""
    args = _parse(argv)
    options = ProcessOptions(
        image_topics=args.image_topics, namespaces=args.namespaces, tracker=args.tracker,
        tracker_params=args.params, dense=args.dense, dense_params=args.dense_params,
        draw=args.draw, include_inputs=args.include_inputs, storage=args.storage,
        overwrite=args.overwrite, camera_info_topic=args.camera_info_topic,
        range_topic=args.range_topic, imu_topic=args.imu_topic,
        opencv_threads=args.opencv_threads)
    try:
        with stop_signals() as stop:
            summary = process_bag(args.input, args.output, options,
                                  progress=None if args.quiet else sys.stderr,
                                  should_stop=lambda: stop.requested)
    except (OpticalFlowError, ValueError) as err:
        print(f"process_bag: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _report(summary, sys.stderr)
    if summary.interrupted:
        print(f"process_bag: stopped after {summary.frames} of {summary.frames_total} "
              f"frames; {summary.output} holds them", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(run_program(main))
