"""Write a sample rosbag2 bag from the simulated camera: images and exact ground truth.

    ros2 run optical_flow_ros sample_bag OUT [--frames 150] [--storage mcap|sqlite3]
        [--params config/sim_camera.yaml] [--image-width 320 ...] [--compressed jpeg|png]

The bag holds what ``sim_camera_node`` publishes (built by its own message functions), in
the root namespace unless ``--namespace``:

    /image (sensor_msgs/Image; /image/compressed, sensor_msgs/CompressedImage, with
    --compressed), /camera_info, /range, /imu, /sim/twist (true velocity, optical frame),
    /sim/pose (true pose in the world frame).

Frame k has header stamp ``start + k / rate`` on every topic but imu. The imu runs at the
simulator's own ``--imu-rate`` (default 200 Hz, as ``sim_camera_node``): sample j is stamped
``start + j / imu_rate`` with its own noise (``SimCamera.imu_sample``), so a frame's stamp is
also a sample's when the rates divide; ``--imu-rate 0`` writes one sample per frame, stamped as
the frame. Record times are the stamps, except the image's, which is recorded
``--image-latency`` later (exposure and transfer, as on a real camera), so camera_info, range
and the imu samples up to a frame's stamp come before its image; messages are written in
record-time order. The
scene is every ``SimCameraConfig`` / ``SimOutputConfig`` setting (``sim_camera_node``'s
parameters), from ``--params`` and then the options; the same arguments always give the
same bytes. The bag appears at OUT only once complete: Ctrl-C (SIGINT) or SIGTERM stops
after the current frame and writes nothing, which one line says (exit 0: a stop asked for is a
normal end).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from optical_flow_ros.core.config_fields import FieldSpec, field_specs
from optical_flow_ros.core.errors import OpticalFlowError
from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig, SimFrame
from optical_flow_ros.nodes.sim_camera_node import (
    SIM_CAMERA_PARAMS,
    SimOutputConfig,
    camera_info_msg,
    imu_msg,
    pose_msg,
    range_msg,
    twist_msg,
)
from optical_flow_ros.ros.image_messages import array_to_compressed_msg, array_to_image_msg
from optical_flow_ros.ros.parameter_table import build_config, config_values
from optical_flow_ros.ros.stop_signals import StopSignals, run_program, stop_signals
from optical_flow_ros.tools.bag_io import STORAGES, BagWriter, offered_qos
from optical_flow_ros.tools.params_file import node_parameters

__all__ = ["DEFAULT_START_NS", "SampleBagSpec", "Stopped", "main", "write_sample_bag"]

DEFAULT_START_NS = 1_700_000_000 * 10**9
"""Stamp of frame 0 unless ``--start`` says otherwise (a fixed time: reproducible bags)."""

_SCENE_TYPES = (SimCameraConfig, SimOutputConfig)


class Stopped(Exception):  # noqa: N818  (a request, not an error)
    """:func:`write_sample_bag` was asked to stop; nothing was written.

    Args:
        frames: frames written before the stop.
    """

    def __init__(self, frames: int) -> None:
        super().__init__(f"stopped after {frames} frames")
        self.frames = frames


class SampleBagSpec:
    """What to write: the scene and the bag's layout.

    Args:
        camera: the simulated camera and its flight.
        output: frame ids, QoS depth and the simulated rangefinder.
        frames: number of frames.
        start_ns: header stamp of frame 0, ns.
        image_latency_ns: record time of each image after its stamp, ns.
        namespace: prefix of every topic ("" = root).
        compressed: ``""`` for sensor_msgs/Image on ``image``, else ``jpeg`` or ``png``
            CompressedImage on ``image/compressed``.
    """

    def __init__(self, camera: SimCameraConfig, output: SimOutputConfig, *, frames: int,
                 start_ns: int = DEFAULT_START_NS, image_latency_ns: int = 5_000_000,
                 namespace: str = "", compressed: str = "") -> None:
        if frames < 1:
            raise ValueError(f"frames: must be >= 1, got {frames}")
        if not 0 <= image_latency_ns < 1e9 / camera.rate:
            raise ValueError("image latency must be >= 0 and shorter than a frame period")
        self.camera, self.output, self.frames = camera, output, frames
        self.start_ns, self.image_latency_ns = start_ns, image_latency_ns
        self.namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.compressed = compressed

    def topic(self, name: str) -> str:
        """Full name of a relative topic."""
        return f"{self.namespace}/{name}"

    @property
    def image_topic(self) -> str:
        """The image topic's full name."""
        return self.topic("image/compressed" if self.compressed else "image")


def write_sample_bag(path: str | Path, spec: SampleBagSpec, *, storage: str = "mcap",
                     overwrite: bool = False, stop: StopSignals | None = None) -> Path:
    """Render ``spec.frames`` frames and write them with their truth to a new bag at ``path``.

    Args:
        path: the bag folder to create.
        spec: what to write.
        storage: ``mcap`` or ``sqlite3``.
        overwrite: replace an existing bag at ``path``.
        stop: stop requests, seen before every frame: then nothing is written (None: none).

    Raises:
        BagError: the bag cannot be written (e.g. ``path`` exists).
        Stopped: a stop was requested (``path`` is untouched).
    """
    with stop.exit_at_once() if stop else nullcontext():   # nothing to undo yet
        sim = SimCamera(spec.camera)   # the photo texture: most of a second
    out = spec.output
    image_type = "sensor_msgs/msg/CompressedImage" if spec.compressed else "sensor_msgs/msg/Image"
    image_qos = [offered_qos(out.image_reliability, out.queue_depth)]
    qos = [offered_qos("reliable", out.queue_depth)]
    topics = [("camera_info", "sensor_msgs/msg/CameraInfo", image_qos),
              ("range", "sensor_msgs/msg/Range", qos), ("imu", "sensor_msgs/msg/Imu", qos),
              ("sim/twist", "geometry_msgs/msg/TwistStamped", qos),
              ("sim/pose", "geometry_msgs/msg/PoseStamped", qos)]
    info = camera_info_msg(sim.camera)
    with BagWriter(path, storage=storage, overwrite=overwrite) as writer:
        writer.add_topic(spec.image_topic, image_type, qos=image_qos)
        for name, msgtype, profile in topics:
            writer.add_topic(spec.topic(name), msgtype, qos=profile)
        pending: tuple[int, Any] | None = None   # the last image: (record time ns, message)
        previous_t = -1.0   # s: before imu sample 0
        for index in range(spec.frames):
            if stop is not None and stop.requested:
                raise Stopped(index)   # the writer deletes its partial bag
            frame = sim.frame(index)
            stamp_ns = spec.start_ns + _ns(frame.t)
            header = _header(stamp_ns, out.frame_id)
            for sample_ns, gyro in _imu_samples(sim, frame, previous_t, spec.start_ns):
                if pending is not None and pending[0] < sample_ns:
                    writer.write_message(spec.image_topic, *pending)
                    pending = None
                writer.write_message(spec.topic("imu"), sample_ns,
                                     imu_msg(_header(sample_ns, out.frame_id), gyro,
                                             spec.camera.gyro_noise_std))
            if pending is not None:
                writer.write_message(spec.image_topic, *pending)
            info.header = header
            state = frame.state
            rangefinder = range_msg(header, frame.range, sim.range_variance(frame.range), out)
            for name, msg in (
                    ("camera_info", info), ("range", rangefinder),
                    ("sim/twist", twist_msg(header, state)),
                    ("sim/pose", pose_msg(_header(stamp_ns, out.world_frame_id), state))):
                writer.write_message(spec.topic(name), stamp_ns, msg)
            image = (array_to_compressed_msg(frame.image, spec.compressed, header)
                     if spec.compressed else
                     array_to_image_msg(frame.image, spec.camera.encoding, header))
            pending = (stamp_ns + spec.image_latency_ns, image)
            previous_t = frame.t
        if pending is not None:
            writer.write_message(spec.image_topic, *pending)
    return Path(path)


def _ns(t: float) -> int:
    """Sim time ``t`` (s) as ns after the start, rounded as ``sim_camera_node`` stamps it."""
    return round(t * 1e9)


def _header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def _imu_samples(sim: SimCamera, frame: SimFrame, previous_t: float,
                 start_ns: int) -> list[tuple[int, np.ndarray]]:
    """The imu samples after the previous frame's time ``previous_t`` up to ``frame``'s, s.

    Returns (stamp ns, gyro (3,) rad/s in the optical frame) per sample: at ``imu_rate`` the
    simulator's samples ``j / imu_rate`` in ``(previous_t, frame.t]``, each with its own
    noise; with ``imu_rate`` 0 the frame's own reading at its stamp.
    """
    if sim.config.imu_rate <= 0.0:
        return [(start_ns + _ns(frame.t), frame.gyro)]
    samples = (sim.imu_sample(j) for j in sim.imu_indices(previous_t, frame.t))
    return [(start_ns + _ns(t), gyro) for t, gyro in samples]


def _option_type(spec: FieldSpec) -> Any:
    if spec.value_type is bool:
        return lambda text: text.lower() in ("1", "true", "yes", "on")
    return spec.value_type


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, but not the scene options' None (their help says theirs)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sample_bag", description=__doc__.splitlines()[0],
        formatter_class=_HelpFormatter)
    parser.add_argument("out", type=Path, help="bag folder to create")
    parser.add_argument("--frames", type=int, default=150, help="frames to render")
    parser.add_argument("--storage", choices=STORAGES, default="mcap", help="bag storage")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag")
    parser.add_argument("--params", type=Path,
                        help="sim_camera_node parameters YAML (e.g. config/sim_camera.yaml)")
    parser.add_argument("--namespace", default="", help="prefix of every topic")
    parser.add_argument("--compressed", choices=("jpeg", "png"),
                        help="write sensor_msgs/CompressedImage on image/compressed")
    parser.add_argument("--start", type=float, default=DEFAULT_START_NS * 1e-9,
                        help="header stamp of frame 0, s")
    parser.add_argument("--image-latency", type=float, default=0.005,
                        help="record time of each image after its stamp, s")
    scene = parser.add_argument_group("scene (sim_camera_node parameters)")
    for spec in (s for t in _SCENE_TYPES for s in field_specs(t)):
        if spec.name == "frame_count":
            continue
        scene.add_argument(f"--{spec.name.replace('_', '-')}", dest=spec.name,
                           type=_option_type(spec), default=None, choices=spec.choices,
                           metavar=None if spec.choices else spec.value_type.__name__.upper(),
                           # argparse formats help with %: a description's "1 %" broke --help
                           help=f"{spec.description} (default {spec.default})".replace("%", "%%"))
    return parser.parse_args(argv)


def _scene(args: argparse.Namespace) -> tuple[SimCameraConfig, SimOutputConfig]:
    values: dict[str, Any] = {}
    if args.params is not None:
        params = node_parameters(args.params, "sim_camera_node", SIM_CAMERA_PARAMS)
        values.update(config_values(SIM_CAMERA_PARAMS, params.values))
    values.update({s.name: getattr(args, s.name) for t in _SCENE_TYPES for s in field_specs(t)
                   if getattr(args, s.name, None) is not None})
    return build_config(SimCameraConfig, values), build_config(SimOutputConfig, values)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns 0, or 1 with a one-line error for bad arguments or an unwritable bag."""
    args = _parse(argv)
    try:
        camera, output = _scene(args)
        spec = SampleBagSpec(camera, output, frames=args.frames,
                             start_ns=round(args.start * 1e9),
                             image_latency_ns=round(args.image_latency * 1e9),
                             namespace=args.namespace, compressed=args.compressed or "")
        with stop_signals() as stop:
            path = write_sample_bag(args.out, spec, storage=args.storage,
                                    overwrite=args.overwrite, stop=stop)
    except (OpticalFlowError, ValueError) as err:
        print(f"sample_bag: error: {err}", file=sys.stderr)
        return 1
    except Stopped as stopped:
        print(f"sample_bag: stopped after {stopped.frames} of {args.frames} frames; "
              "no bag written", file=sys.stderr)
        return 0
    print(f"wrote {path}: {spec.frames} frames of {camera.image_width}x{camera.image_height} "
          f"at {camera.rate:g} Hz, topics {spec.image_topic} and "
          f"{', '.join(spec.topic(n) for n in ('camera_info', 'range', 'imu', 'sim/twist'))}, "
          f"{spec.topic('sim/pose')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_program(main))
