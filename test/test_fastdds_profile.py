"""config/fastdds_large_images.xml takes effect on the installed distro's Fast DDS.

Fast DDS 2.14 (Jazzy) and 3.x (Kilted) read the same profile XML from differently named
variables (optical_flow_ros.ros.fastdds_profile). Two processes exchange best-effort bgr8
frames of 640x480 and 1280x720 (larger than Fast DDS's default 512 KiB shared-memory segment):
with the profile every frame arrives; without it frames are lost, which shows that the
profile, not luck, delivers them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from ros_harness import REPO

from optical_flow_ros.ros.fastdds_profile import (
    PROFILE_VARIABLES,
    profile_env,
    profiles_file_variable,
)
from optical_flow_ros.ros.ros_distro import ros_distro

PROFILE = REPO / "config" / "fastdds_large_images.xml"
PEER = REPO / "test" / "peers" / "image_burst.py"
FRAMES = 30


def exchange(width: int, height: int, env: dict[str, str], tmp_path) -> list[int]:
    """Frame indices received of FRAMES sent at 15 Hz between two processes."""
    sub = subprocess.Popen([sys.executable, str(PEER), "sub", "60"], env=env, cwd=tmp_path,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert sub.stdout is not None and sub.stdout.readline().strip() == "ready"
        pub = subprocess.run([sys.executable, str(PEER), "pub", str(width), str(height),
                              str(FRAMES), "15"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=90)
        assert pub.returncode == 0, pub.stderr
        out, err = sub.communicate(timeout=90)  # closes its stdin: the publisher is done
    finally:
        sub.kill()
    assert sub.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])["received"]


def test_the_distro_s_fast_dds_reads_its_own_variable():
    assert ros_distro() in ("jazzy", "kilted")
    assert profiles_file_variable("jazzy") == "FASTRTPS_DEFAULT_PROFILES_FILE"
    assert profiles_file_variable("kilted") == "FASTDDS_DEFAULT_PROFILES_FILE"
    env = profile_env(PROFILE, {"FASTDDS_DEFAULT_PROFILES_FILE": "x", "OTHER": "1"})
    assert env == {"OTHER": "1", profiles_file_variable(): str(PROFILE)}
    assert not set(PROFILE_VARIABLES) & set(profile_env(None, {"FASTRTPS_DEFAULT_PROFILES_FILE":
                                                               "x"}))


@pytest.mark.dds
@pytest.mark.parametrize("width, height", [(640, 480), (1280, 720)])
def test_large_best_effort_frames_all_arrive_with_the_profile(width, height, tmp_path):
    received = exchange(width, height, profile_env(PROFILE), tmp_path)
    assert received == list(range(FRAMES)), f"{ros_distro()}: {len(received)}/{FRAMES}"


@pytest.mark.dds
def test_without_the_profile_large_frames_are_lost(tmp_path):
    received = exchange(640, 480, profile_env(None), tmp_path)
    assert len(received) < FRAMES, f"{ros_distro()}: all {FRAMES} arrived without the profile"
