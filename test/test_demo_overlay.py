"""The demo video's velocity caption: the value only when a velocity exists, else why not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from optical_flow_ros.tools.demo_overlay import (
    ARROW_PX_PER_M_S,
    draw_velocity,
    no_velocity_reason,
    velocity_caption,
)
from optical_flow_ros.tools.demo_pictures import export_pictures


@pytest.mark.parametrize(("camera_info", "diagnostic", "reason"), [
    (False, None, "no camera_info"),
    (True, "no flow/velocity: no camera intrinsics (camera_info not received, invalid or of "
           "another image size)", "no camera_info"),
    (True, "no flow/velocity: no valid range reading received and the distance parameter is 0",
     "no distance"),
    (True, "no flow/velocity: no usable distance to the scene (nan m; need [0.05, 500.0] m)",
     "no distance"),
    (True, "no flow/velocity: 12 usable tracks (velocity known, age >= 5) < "
           "velocity_min_inliers 20",
     "12 usable tracks (velocity known, age >= 5) < velocity_min_inliers 20"),
    (True, None, "waiting for flow/velocity"),
])
def test_reason_comes_from_what_the_demo_knows(camera_info, diagnostic, reason):
    assert no_velocity_reason(camera_info=camera_info, diagnostic=diagnostic) == reason


def test_caption_says_the_speed_only_when_there_is_a_velocity():
    assert velocity_caption(np.array([0.6, 0.8, 0.1]), "") == "camera velocity 1.00 m/s"
    assert velocity_caption(None, "no distance") == "no camera velocity (no distance)"


def test_arrow_only_with_a_velocity_and_the_caption_fits():
    frame = np.full((240, 320, 3), 128, np.uint8)
    without = frame.copy()
    long = velocity_caption(None, "x" * 200)
    draw_velocity(without, None, long)
    red = (without[..., 2] > 200) & (without[..., 0] < 50)
    assert not red.any()                                   # no arrow
    assert (without[:200] == 128).all()                    # caption at the bottom only
    assert (without[:, -2:] == 128).all()                  # cut to fit the width
    with_velocity = frame.copy()
    draw_velocity(with_velocity, np.array([0.5, 0.0]), "camera velocity 0.50 m/s")
    red = (with_velocity[..., 2] > 200) & (with_velocity[..., 0] < 50)
    xs = np.flatnonzero(red[120])
    assert xs.min() <= 161 and xs.max() >= 160 + 0.5 * ARROW_PX_PER_M_S - 2


def test_pictures_are_web_sized(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(out / "tracks.png"), rng.integers(0, 256, (480, 640, 3), np.uint8))
    cv2.imwrite(str(out / "velocity.png"), np.full((460, 900, 3), 255, np.uint8))
    written = export_pictures(out, tmp_path / "docs")
    assert sorted(p.name for p in written) == ["demo_tracks.jpg", "demo_velocity.png"]
    assert cv2.imread(str(tmp_path / "docs" / "demo_velocity.png")).shape == (327, 640, 3)
    assert cv2.imread(str(tmp_path / "docs" / "demo_tracks.jpg")).shape == (480, 640, 3)
