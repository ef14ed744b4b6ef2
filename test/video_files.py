"""Video files with known content, written in the test's folder by OpenCV's own VideoWriter.

Frame i is a crop of a real colour photo moved ``shift_px`` px left per frame, so every frame
is distinct and its content is known exactly. FFV1 (in .mkv) is lossless in this OpenCV build:
decoded frames equal the written ones bit for bit; mp4v and MJPG are lossy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from optical_flow_ros.core.textures import load_texture

LOSSLESS = ("FFV1", ".mkv")
LOSSY = (("mp4v", ".mp4"), ("MJPG", ".avi"))


def panning_frames(count: int, size: tuple[int, int] = (160, 120), shift_px: int = 3,
                   texture: str = "astronaut") -> list[np.ndarray]:
    """``count`` BGR frames of ``size`` (width, height) px panning over a photo."""
    photo = load_texture(texture, color=True)
    width, height = size
    assert width + shift_px * count <= photo.shape[1] * 2, "photo too small for that many"
    wide = np.hstack((photo, photo[:, ::-1]))  # mirrored: seamless, wide enough
    top = (photo.shape[0] - height) // 2
    return [np.ascontiguousarray(wide[top:top + height, shift_px * i:shift_px * i + width])
            for i in range(count)]


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float,
                fourcc: str = LOSSLESS[0]) -> Path:
    """Write ``frames`` (BGR uint8, one size) at ``fps`` Hz with codec ``fourcc``."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), (path, fourcc)
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def match_frame(image: np.ndarray, frames: Sequence[np.ndarray]) -> int:
    """Index of the frame ``image`` equals exactly (-1 if none)."""
    for index, frame in enumerate(frames):
        if frame.shape == image.shape and np.array_equal(frame, image):
            return index
    return -1


CALIBRATION_YAML = """\
image_width: {width}
image_height: {height}
camera_name: test_camera
camera_matrix:
  rows: 3
  cols: 3
  data: [152.5, 0, 79.25, 0, 151.75, 59.5, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.125, 0.0625, 0.001, -0.002, 0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [150.25, 0, 80.5, 0, 0, 150.75, 60.25, 0, 0, 0, 1, 0]
"""
"""A standard camera_info file as camera_calibration writes it (format with the size)."""

CALIBRATION_K = [152.5, 0, 79.25, 0, 151.75, 59.5, 0, 0, 1]
CALIBRATION_D = [-0.125, 0.0625, 0.001, -0.002, 0]
CALIBRATION_R = [1, 0, 0, 0, 1, 0, 0, 0, 1]
CALIBRATION_P = [150.25, 0, 80.5, 0, 0, 150.75, 60.25, 0, 0, 0, 1, 0]
