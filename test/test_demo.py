"""The README's main command, in a short mode: real pipeline over DDS, checked outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest
from ros_harness import REPO

pytestmark = pytest.mark.dds


def test_demo_runs_the_pipeline_and_writes_checked_outputs(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "optical_flow_ros.tools.demo", "--duration", "6", "--out",
         str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[demo] summary" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nodes_alive_at_end"]
    assert summary["frames_tracked"] >= 60  # 30 Hz for 6 s, with slack for a loaded machine
    assert summary["tracks_alive_median"] >= 200
    # Track velocities (px/s) against the simulator's exact motion field.
    assert summary["track_velocity_error_median_pct"] < 5.0
    # Camera velocity (flow/velocity) against sim/twist: the accuracy bounds.
    assert summary["velocity_estimates"] >= 60
    assert summary["velocity_rmse_pct_of_speed"] <= 3.0
    assert summary["velocity_within_3sigma_pct"] >= 90.0
    for name in ("tracks.png", "dense_hsv.png", "velocity.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.std() > 10.0, name
    video = cv2.VideoCapture(str(out / "tracks.mp4"))
    assert video.isOpened() and video.get(cv2.CAP_PROP_FRAME_COUNT) >= 30
