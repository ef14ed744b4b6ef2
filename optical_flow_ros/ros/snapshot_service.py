"""``~/save_snapshot`` (std_srvs/Trigger): a node's current input frame and view as PNG files.

The seeds' ``s`` key, as a service any node offers. The node hands the service its newest
frame after each one with a callable that renders the visualisation of that frame
(:meth:`SnapshotService.update`); the callable runs only when a snapshot is requested, so a
node whose view topic nobody subscribes to still draws nothing per frame. On request the
service writes

    <snapshot_dir>/<node name>_<stamp sec>_<stamp nanosec>_input.png   (the frame as received)
    <snapshot_dir>/<node name>_<stamp sec>_<stamp nanosec>_view.png    (its visualisation)

and answers with their paths, one per line. A missing folder is created; an unwritable
folder, a full disk or a failing renderer answers ``success: false`` with the reason and
the node keeps running.

The folder is the ``snapshot_dir`` parameter (:class:`SnapshotConfig`), which a node adds to
its parameter table, so it can be changed at runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rclpy.node import Node
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.errors import ConfigError, OpticalFlowError
from optical_flow_ros.ros.image_input import Frame

__all__ = ["SnapshotConfig", "SnapshotError", "SnapshotService", "save_pngs", "stamp_label"]

# Encodings whose decoded array PNG stores as is (lossless, same values); others go to BGR.
_PNG_NATIVE = frozenset({"mono8", "8UC1", "mono16", "16UC1", "bgr8", "8UC3", "bgra8", "8UC4"})


class SnapshotError(OpticalFlowError):
    """A snapshot could not be written (folder, disk or encoder); the message says why."""


@dataclass(frozen=True)
class SnapshotConfig:
    """Where ``~/save_snapshot`` writes its PNG files."""

    snapshot_dir: str = setting(
        "~/.ros/optical_flow_snapshots",
        "Folder where ~/save_snapshot writes the input and view PNG files (~ expanded, "
        "created when absent)")

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.snapshot_dir.strip():
            raise ConfigError("snapshot_dir: must not be empty")


def stamp_label(header: Header) -> str:
    """``<sec>_<nanosec, 9 digits>`` of a header stamp: file names that sort by time."""
    return f"{header.stamp.sec}_{header.stamp.nanosec:09d}"


def _write_png(path: Path, image: np.ndarray) -> None:
    try:
        ok, encoded = cv2.imencode(".png", image)
    except cv2.error as err:
        raise SnapshotError(f"cannot encode {path.name} as PNG: {err}") from err
    if not ok:
        raise SnapshotError(f"cannot encode {path.name} as PNG ({image.dtype}, {image.shape})")
    try:
        with open(path, "wb") as file:  # close() reports a full disk as OSError(ENOSPC)
            file.write(encoded.tobytes())
    except OSError as err:
        if path.is_file():
            path.unlink(missing_ok=True)  # no truncated PNG left behind
        raise SnapshotError(f"cannot write {path}: {err.strerror or err}") from err


def save_pngs(images: Sequence[tuple[Path, np.ndarray]]) -> list[Path]:
    """Write each ``(path, image)`` as PNG, creating the folders; stop at the first failure.

    Args:
        images: Target paths and uint8/uint16 images (gray, BGR or BGRA).

    Returns:
        The paths written, in order.

    Raises:
        SnapshotError: A folder cannot be created, a file cannot be written (unwritable
            folder, full disk) or an image cannot be encoded. Files already written stay.

    """
    written = []
    for path, image in images:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SnapshotError(f"cannot create folder {path.parent}: "
                                f"{err.strerror or err}") from err
        _write_png(path, image)
        written.append(path)
    return written


def _input_image(frame: Frame) -> np.ndarray:
    """The frame as PNG stores it: as received when PNG can hold it, else as BGR."""
    return frame.image if frame.encoding in _PNG_NATIVE else frame.bgr


class SnapshotService:
    """The ``~/save_snapshot`` service of one node.

    Args:
        node: The node offering the service.
        folder: Returns the current ``snapshot_dir`` (read at each request, so a runtime
            parameter change applies to the next snapshot).

    Frames and requests must reach it from the same executor thread (as with a node spun
    by ``rclpy.spin``), so the renderer always sees the state of the frame it was given.
    """

    def __init__(self, node: Node, folder: Callable[[], str]) -> None:
        self._node = node
        self._folder = folder
        self._frame: Frame | None = None
        self._render: Callable[[], np.ndarray] | None = None
        self.service = node.create_service(Trigger, "~/save_snapshot", self._on_request)

    def update(self, frame: Frame, render_view: Callable[[], np.ndarray]) -> None:
        """Remember the newest frame and how to draw its visualisation (not called here)."""
        self._frame, self._render = frame, render_view

    def save(self) -> list[Path]:
        """Write the newest frame and its view now.

        Returns:
            The two paths written (input, view).

        Raises:
            SnapshotError: No frame yet, the view cannot be rendered, or a file cannot be
                written.

        """
        frame, render = self._frame, self._render
        if frame is None or render is None:
            raise SnapshotError("no frame received yet")
        try:
            view = render()
        except (OpticalFlowError, ValueError, cv2.error) as err:
            raise SnapshotError(f"cannot render the view: {err}") from err
        folder = Path(os.path.expanduser(self._folder()))
        base = f"{self._node.get_name()}_{stamp_label(frame.header)}"
        return save_pngs([(folder / f"{base}_input.png", _input_image(frame)),
                          (folder / f"{base}_view.png", view)])

    def _on_request(self, _request: Trigger.Request,
                    response: Trigger.Response) -> Trigger.Response:
        try:
            paths = self.save()
        except SnapshotError as err:
            self._node.get_logger().warning(f"snapshot failed: {err}")
            response.success, response.message = False, f"snapshot failed: {err}"
            return response
        self._node.get_logger().info(f"snapshot saved: {', '.join(map(str, paths))}")
        response.success, response.message = True, "\n".join(map(str, paths))
        return response
