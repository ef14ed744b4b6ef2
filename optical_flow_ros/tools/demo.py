"""The demo: the full pipeline over real DDS on an embedded default, with a summary.

    scripts/demo.sh [--duration 15] [--source sim | topic:/camera/image_raw | video:FILE]
        [--out DIR] [--pictures DIR]

Starts, each in its own process: ``sim_camera_node`` (a camera flying over a real photo
texture, with exact ground truth), ``tracker_node`` and ``dense_flow_node``; listens to their
outputs from this process, prints progress once a second, then a summary (frames, rate,
latency from image stamp to flow/tracks p50/p99, tracks alive, track velocity error against
the exact motion field, camera velocity RMSE against the simulator's truth), and writes to
the output folder: ``tracks.mp4`` (annotated frames: trails, points, camera-velocity
arrow), ``tracks.png`` and ``dense_hsv.png`` snapshots, ``velocity.png`` (estimated vs true
camera velocity over time with the 3-sigma band) and ``summary.json``.
``--source topic:<image topic>`` feeds an existing camera to the pipeline instead of the
simulator, ``--source video:FILE`` starts ``video_source_node`` playing FILE (in a loop, mono8)
instead; without the simulator's truth the summary omits the figures scored against it.
The nodes' settings come from config/demo.yaml, the file ``ros2 launch optical_flow_ros
demo.launch.py`` starts the same graph with. DDS stays on this machine (LOCALHOST
discovery, a ROS domain of the demo's own). ``--pictures docs`` then writes the README's
pictures from the outputs (``tools/demo_pictures.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from optical_flow_ros.ros.stop_signals import StopSignals, run_program, stop_signals
from optical_flow_ros.tools.demo_pictures import export_pictures
from optical_flow_ros.tools.demo_recording import summarize
from optical_flow_ros.tools.node_process import NodeProcess, confine_dds, stop_all

__all__ = ["main"]

#: The demo graph's settings, shared with launch/demo.launch.py: a section per node.
DEMO_PARAMS_FILE = "demo.yaml"

_NODE_STOP_S = 1.0  # the nodes end within this after SIGINT, or are killed


def demo_params_file() -> Path:
    """config/demo.yaml of this checkout, else of the installed package (share/)."""
    checkout = Path(__file__).resolve().parents[2] / "config" / DEMO_PARAMS_FILE
    if checkout.is_file():
        return checkout
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory("optical_flow_ros")) / "config" / DEMO_PARAMS_FILE


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds to run")
    parser.add_argument("--source", default="sim",
                        help="'sim' (default: simulated camera with truth), "
                             "'topic:<image topic>' (an existing camera) or 'video:FILE' "
                             "(video_source_node playing FILE in a loop)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.add_argument("--pictures", type=Path, metavar="DIR",
                        help="also write the README's pictures (demo_tracks.jpg, "
                             "demo_dense_hsv.png, demo_velocity.png) to DIR, e.g. docs")
    args = parser.parse_args(argv)
    if args.source != "sim" and not args.source.startswith(("topic:", "video:")):
        parser.error("--source must be 'sim', 'topic:<image topic>' or 'video:FILE', "
                     f"got {args.source!r}")
    video = args.source.removeprefix("video:")
    if args.source.startswith("video:") and not Path(video).expanduser().is_file():
        parser.error(f"--source video:FILE: no such file: {video!r}")
    if args.duration <= 0:
        parser.error("--duration must be > 0")
    return args


def _start_nodes(source: str) -> list[NodeProcess]:
    topic = source.startswith("topic:")
    remaps = {"image": source.removeprefix("topic:")} if topic else {}
    params_file = demo_params_file()
    nodes = []
    if source == "sim":
        nodes.append(NodeProcess("optical_flow_ros.nodes.sim_camera_node",
                                 params_file=params_file))
    elif source.startswith("video:"):
        path = str(Path(source.removeprefix("video:")).expanduser().resolve())
        nodes.append(NodeProcess("optical_flow_ros.nodes.video_source_node",
                                 params_file=params_file, params={"source": path}))
    for node in ("tracker_node", "dense_flow_node"):
        nodes.append(NodeProcess(f"optical_flow_ros.nodes.{node}", remaps=remaps,
                                 params_file=params_file))
    return nodes


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    print("\n[demo] summary")
    for key, value in summary.items():
        print(f"  {key:34s} {value}")
    names = ("tracks.mp4", "tracks.png", "dense_hsv.png", "velocity.png", "summary.json")
    print(f"[demo] outputs in {out}/: {' '.join(n for n in names if (out / n).exists())}")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code (non-zero if no frame was tracked).

    Ctrl-C (SIGINT) or SIGTERM, however many, to the demo or to its whole process group (a
    terminal's Ctrl-C) ends the run early: the nodes are stopped, the outputs of what was
    recorded are written, exit code 0.
    """
    args = _parse(argv)
    with stop_signals() as stop:
        if stop.requested:
            return 0
        return _run(args, stop)


def _run(args: argparse.Namespace, stop: StopSignals) -> int:
    domain = confine_dds()
    from optical_flow_ros.tools.demo_listener import DemoListener  # after confine_dds: rclpy

    args.out.mkdir(parents=True, exist_ok=True)
    print(f"[demo] source {args.source}, {args.duration:.0f} s, ROS_DOMAIN_ID={domain} "
          "(loopback only)", flush=True)
    nodes = _start_nodes(args.source)
    listener = DemoListener(args.out, truth=args.source == "sim")
    rec = listener.recorder
    start = time.monotonic()
    try:
        listener.wait_for_graph(timeout=30.0, should_stop=lambda: stop.requested)
        start = time.monotonic()
        next_report = start + 1.0
        while time.monotonic() - start < args.duration and not stop.requested:
            listener.spin_once(0.05)
            if time.monotonic() >= next_report:
                next_report += 1.0
                if not all(n.alive() for n in nodes):
                    print("[demo] a node exited early; stopping", file=sys.stderr)
                    break
                lat = np.median(rec.latencies_ms[-30:]) if rec.latencies_ms else float("nan")
                tracks = rec.track_counts[-1] if rec.track_counts else 0
                print(f"[demo] {time.monotonic() - start:5.1f} s | frames tracked "
                      f"{len(rec.latencies_ms):5d} | tracks {tracks:4d} | latency p50 "
                      f"{lat:6.1f} ms", flush=True)
        elapsed = time.monotonic() - start
    finally:
        # A node that ended with 0 after the stop request got it too (a terminal's Ctrl-C
        # goes to the whole process group): that is no failure.
        alive = all(n.alive() or (stop.requested and n.proc.poll() == 0) for n in nodes)
        stop_all(nodes, timeout=_NODE_STOP_S)
        listener.close()
    if stop.requested:
        print(f"\n[demo] stopped after {elapsed:.1f} s", flush=True)
    summary = summarize(rec, elapsed, alive)
    listener.write_outputs()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary, args.out)
    if args.pictures is not None:
        written = export_pictures(args.out, args.pictures)
        print(f"[demo] pictures: {' '.join(str(p) for p in written)}")
    if not rec.latencies_ms:
        if stop.requested:
            print("[demo] stopped before any frame was tracked", flush=True)
            return 0
        print("[demo] FAILED: no flow/tracks received. Node output:", file=sys.stderr)
        for node in nodes:
            print(node.output()[-2000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(run_program(main))
