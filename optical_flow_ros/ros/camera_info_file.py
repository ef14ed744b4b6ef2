"""``sensor_msgs/CameraInfo`` from a calibration file named as camera drivers name it.

``camera_info_url`` takes the forms ``camera_info_manager`` accepts for a local file: a plain
path (``~`` expanded), ``file:///absolute/path.yaml`` or ``package://<package>/<path in its
share folder>`` (found through the ament index, i.e. a sourced workspace). The file is the
standard camera_info YAML (:mod:`optical_flow_ros.core.camera_calibration`).
"""

from __future__ import annotations

from pathlib import Path

from sensor_msgs.msg import CameraInfo

from optical_flow_ros.core.camera_calibration import CameraCalibration
from optical_flow_ros.core.errors import CalibrationError

__all__ = ["calibration_to_camera_info", "resolve_camera_info_url"]


def resolve_camera_info_url(url: str) -> Path:
    """The file a ``camera_info_url`` names (not checked for existence).

    Raises:
        CalibrationError: an unsupported scheme, or a ``package://`` package that the ament
            index does not know.
    """
    if url.startswith("file://"):
        return Path(url.removeprefix("file://")).expanduser()
    if url.startswith("package://"):
        package, _, relative = url.removeprefix("package://").partition("/")
        if not package or not relative:
            raise CalibrationError(f"'{url}': expected package://<package>/<path>")
        from ament_index_python.packages import get_package_share_directory

        try:
            share = get_package_share_directory(package, print_warning=False)
        except (KeyError, OSError, ValueError) as err:  # PackageNotFoundError is a KeyError
            raise CalibrationError(f"'{url}': package '{package}' not found in the ament "
                                   f"index (is its workspace sourced?): {err}") from None
        return Path(share) / relative
    if "://" in url:
        raise CalibrationError(f"'{url}': only file paths, file:// and package:// URLs are "
                               "supported")
    return Path(url).expanduser()


def calibration_to_camera_info(calibration: CameraCalibration) -> CameraInfo:
    """The CameraInfo of a calibration (header, binning and ROI left at their defaults)."""
    msg = CameraInfo()
    msg.width, msg.height = calibration.width, calibration.height
    msg.distortion_model = calibration.distortion_model
    msg.d = [float(v) for v in calibration.d]
    msg.k = [float(v) for v in calibration.k.ravel()]
    msg.r = [float(v) for v in calibration.r.ravel()]
    msg.p = [float(v) for v in calibration.p.ravel()]
    return msg
