"""The package's executables, started so that a stop is honoured from their first line.

``ros2 run optical_flow_ros NAME`` (the console scripts of setup.py, which ``ros2 launch``
starts too) and ``python -m optical_flow_ros NAME`` both come through :func:`run`: it
installs the stop handlers (:mod:`optical_flow_ros.ros.stop_signals`) before the executable's
module and its heavy imports (rclpy, OpenCV, numpy: most of a second) load, and a SIGINT or
SIGTERM during those imports ends the process at once with exit code 0. From then on the
program's own loop sees the request and tears down once. Only the interpreter's own start
comes before this module (python, site and the ros-* wheels' ``.pth``, which may re-execute
the interpreter once), where Python's defaults still apply.

A third-party module that is not installed ends the executable with one line naming it and
the command that installs it (:func:`~optical_flow_ros.tools.dependencies.missing_message`),
exit code 1, no traceback.

This module imports only the standard library and those two small modules.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from optical_flow_ros.ros.stop_signals import install_for_process, run_program
from optical_flow_ros.tools.dependencies import missing_message

__all__ = ["EXECUTABLES", "main", "run"]

EXECUTABLES: dict[str, str] = {
    "tracker_node": "optical_flow_ros.nodes.tracker_node",
    "dense_flow_node": "optical_flow_ros.nodes.dense_flow_node",
    "sim_camera_node": "optical_flow_ros.nodes.sim_camera_node",
    "video_source_node": "optical_flow_ros.nodes.video_source_node",
    "view": "optical_flow_ros.tools.viewer",
    "process_bag": "optical_flow_ros.tools.process_bag",
    "play_bag": "optical_flow_ros.tools.play_bag",
    "sample_bag": "optical_flow_ros.tools.sample_bag",
    "demo": "optical_flow_ros.tools.demo",
}
"""Executable name -> the module whose ``main()`` it runs."""


def run(name: str) -> int:
    """Run the executable ``name`` with the process's arguments (``sys.argv``).

    Returns:
        Its exit code.
    """
    stop = install_for_process()
    with stop.exit_at_once():
        try:
            module = importlib.import_module(EXECUTABLES[name])
        except ModuleNotFoundError as err:
            message = missing_message(name, (err.name or "").split(".")[0])
            if message is None:
                raise
            print(message, file=sys.stderr)
            return 1
    return run_program(module.main)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m optical_flow_ros NAME [ARGS...]``: run executable NAME with ARGS."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] not in EXECUTABLES:
        print(f"usage: python -m optical_flow_ros NAME [ARGS...]; NAME: "
              f"{', '.join(EXECUTABLES)}", file=sys.stderr)
        return 2
    sys.argv = [argv[1], *argv[2:]]
    return run(argv[1])


# One function per console script (setup.py's entry points name them).

def tracker_node() -> int:
    """``tracker_node``."""
    return run("tracker_node")


def dense_flow_node() -> int:
    """``dense_flow_node``."""
    return run("dense_flow_node")


def sim_camera_node() -> int:
    """``sim_camera_node``."""
    return run("sim_camera_node")


def video_source_node() -> int:
    """``video_source_node``."""
    return run("video_source_node")


def view() -> int:
    """``view``."""
    return run("view")


def process_bag() -> int:
    """``process_bag``."""
    return run("process_bag")


def play_bag() -> int:
    """``play_bag``."""
    return run("play_bag")


def sample_bag() -> int:
    """``sample_bag``."""
    return run("sample_bag")
