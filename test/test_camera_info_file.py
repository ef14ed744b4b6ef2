"""camera_info_url forms (path, file://, package://) and the CameraInfo built from a file."""

from __future__ import annotations

import pytest
from video_files import (
    CALIBRATION_D,
    CALIBRATION_K,
    CALIBRATION_P,
    CALIBRATION_R,
    CALIBRATION_YAML,
)

from optical_flow_ros.core.camera_calibration import parse_calibration, read_calibration
from optical_flow_ros.core.errors import CalibrationError
from optical_flow_ros.ros.camera_info_file import (
    calibration_to_camera_info,
    resolve_camera_info_url,
)


def test_plain_paths_and_file_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_camera_info_url("/a/b.yaml").as_posix() == "/a/b.yaml"
    assert resolve_camera_info_url("rel/b.yaml").as_posix() == "rel/b.yaml"
    assert resolve_camera_info_url("~/cam.yaml") == tmp_path / "cam.yaml"
    assert resolve_camera_info_url("file:///opt/cams/cam.yaml").as_posix() == "/opt/cams/cam.yaml"


def test_package_url_through_the_ament_index(tmp_path, monkeypatch):
    # A workspace prefix as colcon installs one: the index marker and the share folder.
    (tmp_path / "share/ament_index/resource_index/packages").mkdir(parents=True)
    (tmp_path / "share/ament_index/resource_index/packages/my_cameras").touch()
    (tmp_path / "share/my_cameras/calibration").mkdir(parents=True)
    calibration = tmp_path / "share/my_cameras/calibration/front.yaml"
    calibration.write_text(CALIBRATION_YAML.format(width=160, height=120))
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    path = resolve_camera_info_url("package://my_cameras/calibration/front.yaml")
    assert path == calibration
    assert read_calibration(path).width == 160
    with pytest.raises(CalibrationError, match="package 'other_pkg' not found"):
        resolve_camera_info_url("package://other_pkg/front.yaml")


@pytest.mark.parametrize(("url", "message"), [
    ("package://", "expected package://<package>/<path>"),
    ("package://my_cameras", "expected package://<package>/<path>"),
    ("http://example.invalid/cam.yaml", "only file paths, file:// and package://"),
])
def test_unsupported_urls(url, message):
    with pytest.raises(CalibrationError, match=message):
        resolve_camera_info_url(url)


def test_camera_info_carries_the_file_exactly():
    cal = parse_calibration(CALIBRATION_YAML.format(width=160, height=120))
    msg = calibration_to_camera_info(cal)
    assert (msg.width, msg.height, msg.distortion_model) == (160, 120, "plumb_bob")
    assert list(msg.k) == CALIBRATION_K and list(msg.d) == CALIBRATION_D
    assert list(msg.r) == CALIBRATION_R and list(msg.p) == CALIBRATION_P
    assert (msg.binning_x, msg.binning_y, msg.roi.width) == (0, 0, 0)
