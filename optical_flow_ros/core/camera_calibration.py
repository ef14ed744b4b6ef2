"""Camera calibration files in the standard ROS camera_info YAML format.

The format ``camera_calibration``'s calibrator saves and ``camera_info_manager`` /
``camera_calibration_parsers`` read (matrices row-major)::

    image_width: 640
    image_height: 480
    camera_name: narrow_stereo
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    projection_matrix: {rows: 3, cols: 4, data: [fx', 0, cx', Tx, 0, fy', cy', Ty, 0, 0, 1, 0]}

Read as ``camera_calibration_parsers`` reads it: ``camera_name`` may be missing, and a missing
``distortion_model`` is taken as ``plumb_bob`` (flagged in
:attr:`CameraCalibration.distortion_model_assumed` so the caller can say so); other keys are
ignored. Checked more strictly than there, each failure a
:class:`~optical_flow_ros.core.errors.CalibrationError` naming the key: every other key present;
sizes positive integers; each matrix a mapping with ``rows``, ``cols`` and ``data``, of the
shape it must have (K, R 3x3; P 3x4; D one row or one column, any length) and as many values
as ``rows x cols``; all values finite numbers; fx, fy > 0. PyYAML (YAML 1.1) reads ``1e-05``,
as yaml-cpp writes it, as a string, so values that are numeric strings are read as numbers.

Pure Python (PyYAML + numpy); building the ``sensor_msgs/CameraInfo`` message is in
:mod:`optical_flow_ros.ros.camera_info_file`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from optical_flow_ros.core.errors import CalibrationError

__all__ = ["CameraCalibration", "calibration_to_yaml", "parse_calibration", "read_calibration"]

_MATRICES = {  # key -> (rows, cols); None = one row or one column of any length
    "camera_matrix": (3, 3),
    "distortion_coefficients": None,
    "rectification_matrix": (3, 3),
    "projection_matrix": (3, 4),
}


@dataclass(frozen=True, eq=False)
class CameraCalibration:
    """One camera's calibration, as in ``sensor_msgs/CameraInfo``.

    Attributes:
        width: image width the calibration is for, px.
        height: image height, px.
        camera_name: the file's ``camera_name`` ("" when absent).
        k: 3x3 camera matrix, px.
        distortion_model: e.g. ``plumb_bob``, ``rational_polynomial``, ``equidistant``.
        d: distortion coefficients (may be empty).
        r: 3x3 rectification matrix.
        p: 3x4 projection matrix, px.
        distortion_model_assumed: the file had no ``distortion_model``; ``plumb_bob`` was
            assumed, as camera_calibration_parsers does.
    """

    width: int
    height: int
    camera_name: str
    k: np.ndarray
    distortion_model: str
    d: np.ndarray
    r: np.ndarray
    p: np.ndarray
    distortion_model_assumed: bool = False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CameraCalibration):
            return NotImplemented
        return ((self.width, self.height, self.camera_name, self.distortion_model,
                 self.distortion_model_assumed)
                == (other.width, other.height, other.camera_name, other.distortion_model,
                    other.distortion_model_assumed)
                and all(np.array_equal(a, b) for a, b in ((self.k, other.k), (self.d, other.d),
                                                          (self.r, other.r), (self.p, other.p))))


def _number(value: Any, where: str) -> float:
    """A finite float from a YAML value (numeric strings too, see the module docstring)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise CalibrationError(f"{where}: must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise CalibrationError(f"{where}: must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise CalibrationError(f"{where}: must be finite, got {value!r}")
    return number


def _size(doc: Mapping[str, Any], key: str) -> int:
    value = _required(doc, key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CalibrationError(f"{key}: must be a positive integer (px), got {value!r}")
    return value


def _required(doc: Mapping[str, Any], key: str) -> Any:
    if key not in doc:
        raise CalibrationError(f"{key}: missing")
    return doc[key]


def _matrix(doc: Mapping[str, Any], key: str) -> np.ndarray:
    node = _required(doc, key)
    if not isinstance(node, Mapping):
        raise CalibrationError(f"{key}: must be a mapping with rows, cols and data, "
                               f"got {node!r}")
    shape = []
    for dim in ("rows", "cols"):
        if dim not in node:
            raise CalibrationError(f"{key}: {dim} missing")
        value = node[dim]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CalibrationError(f"{key}: {dim} must be a non-negative integer, "
                                   f"got {value!r}")
        shape.append(value)
    rows, cols = shape
    expected = _MATRICES[key]
    if expected is not None and (rows, cols) != expected:
        raise CalibrationError(f"{key}: must be {expected[0]}x{expected[1]}, "
                               f"got {rows}x{cols}")
    if expected is None and rows != 1 and cols != 1:
        raise CalibrationError(f"{key}: must be one row or one column, got {rows}x{cols}")
    if "data" not in node:
        raise CalibrationError(f"{key}: data missing")
    data = node["data"]
    if not isinstance(data, list):
        raise CalibrationError(f"{key}: data must be a list of numbers, got {data!r}")
    if len(data) != rows * cols:
        raise CalibrationError(f"{key}: data has {len(data)} values, {rows}x{cols} needs "
                               f"{rows * cols}")
    values = [_number(v, f"{key}: data[{i}]") for i, v in enumerate(data)]
    array = np.array(values, np.float64)
    return array if expected is None else array.reshape(expected)


def parse_calibration(text: str, *, source: str = "calibration") -> CameraCalibration:
    """Read a calibration from the YAML text of a standard camera_info file.

    Args:
        text: the file's content.
        source: named at the start of every error message (e.g. the file's path).

    Raises:
        CalibrationError: invalid YAML, or a missing or invalid key (named in the message).
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CalibrationError(f"{source}: not valid YAML: {err}".replace("\n", " ")) from err
    try:
        if not isinstance(doc, Mapping):
            raise CalibrationError(f"must be a YAML mapping of the camera_info keys, "
                                   f"got {type(doc).__name__}")
        name = doc.get("camera_name")
        name = "" if name is None else name
        if not isinstance(name, str | int | float) or isinstance(name, bool):
            raise CalibrationError(f"camera_name: must be a string, got {name!r}")
        model = doc.get("distortion_model")
        if model is not None and not (isinstance(model, str) and model):
            raise CalibrationError(f"distortion_model: must be a non-empty string, "
                                   f"got {model!r}")
        width, height = _size(doc, "image_width"), _size(doc, "image_height")
        k = _matrix(doc, "camera_matrix")
        if not (k[0, 0] > 0 and k[1, 1] > 0):
            raise CalibrationError(f"camera_matrix: fx and fy must be > 0, "
                                   f"got {k[0, 0]:g}, {k[1, 1]:g}")
        return CameraCalibration(
            width=width, height=height, camera_name=str(name), k=k,
            distortion_model=model if model is not None else "plumb_bob",
            d=_matrix(doc, "distortion_coefficients"), r=_matrix(doc, "rectification_matrix"),
            p=_matrix(doc, "projection_matrix"), distortion_model_assumed=model is None)
    except CalibrationError as err:
        raise CalibrationError(f"{source}: {err}") from None


def read_calibration(path: str | Path) -> CameraCalibration:
    """Read a standard camera_info YAML file.

    Raises:
        CalibrationError: the file is missing or unreadable, or its content is invalid
            (see :func:`parse_calibration`); the message names the path.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CalibrationError(f"calibration file not found: '{path}'") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CalibrationError(f"calibration file '{path}' cannot be read: {err}") from err
    return parse_calibration(text, source=f"calibration file '{path}'")


def _yaml_float(value: float) -> str:
    text = repr(float(value))
    if "e" in text and "." not in text:
        text = text.replace("e", ".0e")  # YAML 1.1 reads 1e-05 as a string, 1.0e-05 as a float
    return text


def _yaml_string(text: str) -> str:
    """``text`` as a YAML scalar: plain when it reads back as itself, else double-quoted."""
    return text if text and yaml.safe_load(text) == text else json.dumps(text)


def _yaml_matrix(key: str, values: np.ndarray, rows: int, cols: int) -> str:
    data = ", ".join(_yaml_float(v) for v in values.ravel())
    return f"{key}:\n  rows: {rows}\n  cols: {cols}\n  data: [{data}]\n"


def calibration_to_yaml(calibration: CameraCalibration) -> str:
    """The standard camera_info YAML text of ``calibration`` (values written exactly)."""
    c = calibration
    return (f"image_width: {c.width}\nimage_height: {c.height}\n"
            f"camera_name: {_yaml_string(c.camera_name)}\n"
            + _yaml_matrix("camera_matrix", c.k, 3, 3)
            + f"distortion_model: {c.distortion_model}\n"
            + _yaml_matrix("distortion_coefficients", c.d, 1, c.d.size)
            + _yaml_matrix("rectification_matrix", c.r, 3, 3)
            + _yaml_matrix("projection_matrix", c.p, 3, 4))
