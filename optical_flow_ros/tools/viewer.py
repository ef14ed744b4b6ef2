"""``view``: a live window on this package's image topics, with the OpenCV seeds' keys.

    ros2 run optical_flow_ros view [TOPIC ...] [--snapshot-dir DIR]
        [--dense-node NAME] [--ros-args ...]

With no topics it shows ``flow/image`` and, once ``dense_flow_node`` answers, the dense
views it has switched on (``flow/dense/hsv`` by default). Any encoding the image conversion
supports is shown (``32FC2`` flow as its HSV colours; topics ending in ``compressed`` as
sensor_msgs/CompressedImage). Under each panel: topic, receive rate, latency (node clock
minus header stamp); at the bottom: the track count from ``flow/tracks`` and the keys:

    Esc / q   quit
    s         save each panel's newest frame as <DIR>/<topic>_<sec>_<nanosec>.png
    1         HSV view on/off: dense node's ``publish_hsv``, and the flow/dense/hsv panel
    2         warp view on/off: dense node's ``publish_warp``, and the flow/dense/warp panel

It subscribes reliable with keep-last 1 (every frame arrives with Fast DDS's default
shared-memory segment, no profile needed) and draws only the newest frame, so it never
slows the nodes. Without a display it says so in one line and exits with 1. Ctrl-C (SIGINT)
or SIGTERM, however many, closes it like the quit key (exit 0).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import CompressedImage, Image

from optical_flow_ros.core.errors import ImageConversionError
from optical_flow_ros.core.view_scale import AutoScale
from optical_flow_ros.ros.snapshot_service import SnapshotError, save_pngs, stamp_label
from optical_flow_ros.ros.stop_signals import run_program, stop_signals
from optical_flow_ros.tools.viewer_node import ImageFeed, ViewerNode, to_display
from optical_flow_ros.tools.viewer_window import (
    Command,
    PanelView,
    ViewerWindow,
    WindowError,
    compose,
)

__all__ = ["DEFAULT_TOPICS", "display_problem", "main"]

DEFAULT_TOPICS = ("flow/image",)
_FRAME_S = 1.0 / 60.0  # window loop period
_STATUS_REFRESH_S = 0.25  # redraw this often even without new frames (status lines)
_CALLBACK_WAIT_S = 0.5  # teardown waits this long for a callback in flight


class _Panel:
    """What the window shows for one topic: the newest decoded frame, or why not."""

    def __init__(self) -> None:
        self.image: np.ndarray | None = None
        self.msg: Image | CompressedImage | None = None
        self.error = ""
        self._flow_scale = AutoScale()  # brightness of a 32FC2 flow topic, smoothed

    def update(self, msg: Image | CompressedImage) -> None:
        try:
            self.image = to_display(msg, flow_scale=self._flow_scale)
            self.msg, self.error = msg, ""
        except ImageConversionError as err:
            self.error = str(err)


def display_problem() -> str | None:
    """Why no window can open here, or None."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display: DISPLAY is not set (run it on a desktop, with ssh -X, or in xvfb-run)"
    return None


class _Viewer:
    """The window loop: keys to actions, newest frames to panels, panels to the window."""

    def __init__(self, window: ViewerWindow, node: ViewerNode, snapshot_dir: Path) -> None:
        self._window = window
        self._node = node
        self._snapshot_dir = snapshot_dir
        self._panels: dict[str, _Panel] = {}  # resolved topic -> panel
        self._last_draw = 0.0

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Until a quit key, the window's close button, a stop request or ROS shutdown.

        Returns:
            The exit code.
        """
        while rclpy.ok() and not should_stop():
            if not self._handle_keys():
                return 0
            self._refresh()
            time.sleep(_FRAME_S)
        return 0

    def _handle_keys(self) -> bool:
        """Act on the keys pressed; False on quit."""
        for command in self._window.poll():
            if command is Command.QUIT:
                return False
            if command is Command.SNAPSHOT:
                self._node.say(self._save())
            elif command is Command.TOGGLE_HSV:
                self._node.toggle("hsv")
            elif command is Command.TOGGLE_WARP:
                self._node.toggle("warp")
        return True

    def _refresh(self) -> None:
        feeds = self._node.feeds()
        self._panels = {f.topic: self._panels.get(f.topic) or _Panel() for f in feeds}
        fresh = False
        for feed in feeds:
            msg = feed.take()  # only the newest message is decoded, once
            if msg is not None:
                self._panels[feed.topic].update(msg)
                fresh = True
        now = time.monotonic()
        if fresh or now - self._last_draw > _STATUS_REFRESH_S:
            self._window.show(compose([self._view(f) for f in feeds], self._node.footer(),
                                     max_size=self._window.max_size))
            self._last_draw = now

    def _view(self, feed: ImageFeed) -> PanelView:
        panel = self._panels[feed.topic]
        status = feed.status().text() + (f"  {panel.error}" if panel.error else "")
        return PanelView(panel.image, status, f"waiting for {feed.topic}")

    def _save(self) -> str:
        """Write each panel's newest frame as <topic>_<stamp>.png; the footer message."""
        items = [(self._snapshot_dir / f"{topic.strip('/').replace('/', '_')}_"
                  f"{stamp_label(panel.msg.header)}.png", panel.image)
                 for topic, panel in self._panels.items()
                 if panel.image is not None and panel.msg is not None]
        if not items:
            return "snapshot: no frame yet"
        try:
            paths = save_pngs(items)
        except SnapshotError as err:
            return f"snapshot failed: {err}"
        return f"saved {', '.join(p.name for p in paths)} to {self._snapshot_dir}"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="view",
        description="A live window on optical_flow_ros image topics, with the OpenCV seeds' keys.",
        epilog="keys: Esc/q quit, s snapshot, 1 HSV view on/off, 2 warp view on/off")
    parser.add_argument("topics", nargs="*", metavar="TOPIC",
                        help="image topics (default: flow/image, plus the dense node's views)")
    parser.add_argument("--snapshot-dir", type=Path, metavar="DIR",
                        default=Path("~/.ros/optical_flow_snapshots"),
                        help="folder for the s key's PNG files (default: %(default)s)")
    parser.add_argument("--dense-node", default="dense_flow_node", metavar="NAME",
                        help="dense flow node whose views keys 1 and 2 switch; relative names "
                             "resolve in the viewer's namespace (default: %(default)s)")
    return parser.parse_args(argv)


def _spin(executor: SingleThreadedExecutor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except Exception:
        # A signal shuts the context down from its own thread: between the executor's check
        # of the context and its next wait set, that wait set fails to initialise (RCLError
        # "the given context is not valid"). That is the stop, not a fault.
        if executor.context.ok():
            raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``view`` executable."""
    argv = list(sys.argv if argv is None else argv)
    args = _parse(remove_ros_args(args=argv)[1:])
    problem = display_problem()
    if problem is not None:
        print(f"view: {problem}", file=sys.stderr)
        return 1
    with stop_signals() as stop:
        try:
            window = ViewerWindow("optical_flow_ros view")
        except WindowError as err:
            print(f"view: cannot open a window: {err}", file=sys.stderr)
            return 1
        try:
            if stop.requested:
                return 0
            rclpy.init(args=argv)   # its signal handlers chain to the stop handlers
            return _show(window, args, lambda: stop.requested)
        except Exception:
            if stop.requested or not rclpy.ok():   # the stop shut the context down under it
                return 0
            raise
        finally:
            window.close()
            rclpy.try_shutdown()


def _show(window: ViewerWindow, args: argparse.Namespace,
          should_stop: Callable[[], bool]) -> int:
    """The window loop with the viewer node spinning in a thread; torn down once."""
    node = ViewerNode(args.topics or DEFAULT_TOPICS, dense_node=args.dense_node,
                      show_dense=not args.topics)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    thread = threading.Thread(target=_spin, args=(executor,), daemon=True)
    thread.start()
    try:
        return _Viewer(window, node, args.snapshot_dir.expanduser()).run(should_stop)
    finally:
        executor.shutdown(timeout_sec=_CALLBACK_WAIT_S)
        thread.join(timeout=_CALLBACK_WAIT_S)
        node.destroy_node()


if __name__ == "__main__":
    raise SystemExit(run_program(main))
