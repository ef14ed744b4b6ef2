"""The README's main command, in a short mode: real pipeline over DDS, checked outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import yaml
from ros_harness import REPO
from video_files import panning_frames, write_video

from optical_flow_ros.core.velocity_estimator import COVARIANCE_TERMS
from optical_flow_ros.ros.parameter_table import config_values
from optical_flow_ros.tools import docs
from optical_flow_ros.tools.demo import demo_params_file
from optical_flow_ros.tools.params_file import node_parameters
from optical_flow_ros.tools.video_writer import DEFAULT_MAX_KBPS

pytestmark = pytest.mark.dds


def _run_demo(folder: Path, duration_s: float) -> tuple[Path, dict]:
    """The demo's outputs folder and summary; the README's pictures go to ``folder/docs``."""
    out = folder / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "optical_flow_ros", "demo", "--duration", str(duration_s),
         "--out", str(out), "--pictures", str(folder / "docs")],
        cwd=REPO, capture_output=True, text=True, timeout=60 + 10 * duration_s,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[demo] summary" in result.stdout
    # The domain the suite exported (conftest), not one of the demo's own.
    assert f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} " in result.stdout
    return out, json.loads((out / "summary.json").read_text())


def test_demo_runs_the_pipeline_and_writes_checked_outputs(tmp_path):
    run = tmp_path / "short"
    out, summary = _run_demo(run, 6)
    # Enough frames for the statistics below; not a throughput bound (that is bench/'s job:
    # the count follows the machine's load, 26-177 of 180 seen on 2 shared cores, and 2
    # frames in 1.4 s while CI shared the machine). A run the machine starved of frames says
    # nothing of the figures, so it is run once more, longer.
    if summary["frames_tracked"] < 30 or summary.get("velocity_estimates", 0) < 20:
        run = tmp_path / "long"
        out, summary = _run_demo(run, 15)
    assert summary["nodes_alive_at_end"]
    assert summary["frames_tracked"] >= 30
    assert summary["tracks_alive_median"] >= 200
    # Track velocities (px/s) against the simulator's exact motion field.
    assert summary["track_velocity_error_median_pct"] < 5.0
    # Camera velocity (flow/velocity) against sim/twist: the accuracy bounds.
    # Enough estimates scored against their truth for the figures below. Not a share of the
    # tracked frames: on a loaded machine the tracker gets only part of the stream, each
    # longer gap is a stall, and flow/velocity pauses for the two frames after it (measured
    # on 2 busy cores: 24 of 62, 34 of 65, 48 of 127, 91 of 110; the old bound, 40 %,
    # failed CI twice). That flow/velocity arrives for most frames is asserted below
    # (video_frames_with_velocity).
    assert summary["velocity_estimates"] >= 20, summary
    assert summary["velocity_rmse_pct_of_speed"] <= 3.0
    assert summary["velocity_within_3sigma_pct"] >= 90.0
    # What the covariance is made of, from the tracker's diagnostics: the simulated range's
    # 1 % is among its sources, and the shares (of 100 %) name covariance terms.
    sources = dict(part.rsplit(" ", 2)[:2]
                   for part in summary["velocity_covariance_sources"].split(", "))
    assert "distance" in sources and set(sources) <= set(COVARIANCE_TERMS), sources
    for name in ("tracks.png", "dense_hsv.png", "velocity.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.std() > 10.0, name
    video = cv2.VideoCapture(str(out / "tracks.mp4"))
    assert video.isOpened() and video.get(cv2.CAP_PROP_FRAME_COUNT) >= 30
    # H.264 (plays anywhere) within the encoder's cap: DEFAULT_MAX_KBPS over the video's own
    # length plus one 1 s buffer (under 5 MB per 15 s). The video's length, not the run's:
    # frames that arrive while the demo waits for the graph are written too.
    fourcc = int(video.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    assert fourcc in ("avc1", "h264"), fourcc
    video_s = video.get(cv2.CAP_PROP_FRAME_COUNT) / video.get(cv2.CAP_PROP_FPS)
    cap_bytes = DEFAULT_MAX_KBPS * 1e3 / 8.0 * (video_s + 1.0)
    assert (out / "tracks.mp4").stat().st_size < cap_bytes, (video_s, summary)
    # The velocity is drawn once flow/velocity flows: on most frames of the simulator.
    assert summary["video_frames"] >= 30
    # A frame right after a stall (the tracker got no frame for a while: the machine was busy)
    # has none by design (it says so on the frame); measured up to 12 of 64 frames that way.
    stalled = sum(n for reason, n in summary["video_no_velocity_reasons"].items()
                  if "stall" in reason)
    assert (summary["video_frames_with_velocity"] + stalled
            >= 0.7 * summary["video_frames"]), summary
    # The README's pictures, web-sized.
    for name in ("demo_tracks.jpg", "demo_dense_hsv.png", "demo_velocity.png"):
        picture = cv2.imread(str(run / "docs" / name))
        assert picture is not None and picture.shape[1] <= 640, name
    assert (run / "docs" / "demo_tracks.jpg").stat().st_size < 200_000


def test_demo_plays_a_video_file_through_the_same_pipeline(tmp_path):
    # A 320x240 pan over a real photo, 2 s at 30 Hz: the demo loops it for its whole duration.
    video = write_video(tmp_path / "pan.mkv", panning_frames(60, size=(320, 240), shift_px=2,
                                                             texture="astronaut"), 30.0)
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "optical_flow_ros", "demo", "--duration", "5", "--source",
         f"video:{video}", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"source video:{video}" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nodes_alive_at_end"]
    assert summary["frames_tracked"] > 0 and summary["tracks_alive_median"] > 0
    # no simulator, no truth: the figures scored against it are left out, not zero
    assert not {"velocity_rmse_pct_of_speed", "velocity_within_3sigma_pct",
                "track_velocity_error_median_pct"} & set(summary)
    image = cv2.imread(str(out / "tracks.png"))
    assert image is not None and image.shape == (240, 320, 3)
    # No calibration, no distance: no frame claims a velocity, each says why.
    assert summary["video_frames"] > 0
    assert summary["video_frames_with_velocity"] == 0
    assert summary["video_no_velocity_reasons"] == {"no camera_info": summary["video_frames"]}


def test_demo_refuses_a_domain_id_that_is_none(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "optical_flow_ros", "demo", "--duration", "1", "--out",
         str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO), ROS_DOMAIN_ID="front"),
    )
    assert result.returncode == 2
    assert result.stderr.strip() == ("[demo] ROS_DOMAIN_ID='front' is not a ROS domain id "
                                     "(an integer 0-232)")


def test_demo_refuses_a_missing_video_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "optical_flow_ros", "demo", "--source",
         f"video:{tmp_path / 'none.mp4'}", "--out", str(tmp_path / "demo")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 2 and "no such file" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("doc", docs.NODES, ids=lambda d: d.node)
def test_demo_params_file_sets_only_real_parameters_to_valid_values(doc):
    """config/demo.yaml (shared by the demo and demo.launch.py) is what each node accepts."""
    table = doc.table()
    params = node_parameters(demo_params_file(), doc.node, table)
    assert params.ignored == []
    values = config_values(table, params.values)     # raises ConfigError on a bad value
    in_file = yaml.safe_load(demo_params_file().read_text())[f"/**/{doc.node}"]
    assert {k: values[k] for k in in_file["ros__parameters"]} == in_file["ros__parameters"]
