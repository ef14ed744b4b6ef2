"""Standard camera_info YAML files: exact values, a lossless round trip, each malformed case named.

The hand-written file is laid out as camera_calibration's calibrator saves it (matrices as
mappings of rows, cols and a flow list of data).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from optical_flow_ros.core.camera_calibration import (
    CameraCalibration,
    calibration_to_yaml,
    parse_calibration,
    read_calibration,
)
from optical_flow_ros.core.errors import CalibrationError

STANDARD = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [415.12614, 0., 318.52373,
         0., 410.49986, 240.14929,
         0., 0., 1.]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.017697, -0.007270, 0.005751, -0.000139, 0.]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1., 0., 0.,
         0., 1., 0.,
         0., 0., 1.]
projection_matrix:
  rows: 3
  cols: 4
  data: [415.12614, 0., 318.52373, 0.,
         0., 410.27547, 239.89776, 0.,
         0., 0., 1., 0.]
"""


def _doc() -> dict:
    return yaml.safe_load(STANDARD)


def _text(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def test_standard_file_values_are_exact(tmp_path):
    path = tmp_path / "cam.yaml"
    path.write_text(STANDARD)
    cal = read_calibration(path)
    assert (cal.width, cal.height, cal.camera_name, cal.distortion_model) == (
        640, 480, "narrow_stereo", "plumb_bob")
    assert not cal.distortion_model_assumed
    assert cal.k.tolist() == [[415.12614, 0, 318.52373], [0, 410.49986, 240.14929], [0, 0, 1]]
    assert cal.d.tolist() == [-0.017697, -0.007270, 0.005751, -0.000139, 0.0]
    assert cal.r.tolist() == np.eye(3).tolist()
    assert cal.p.tolist() == [[415.12614, 0, 318.52373, 0], [0, 410.27547, 239.89776, 0],
                              [0, 0, 1, 0]]
    assert cal.k.dtype == np.float64 and cal.p.shape == (3, 4)


def test_round_trip_is_exact(tmp_path):
    cal = parse_calibration(STANDARD)
    text = calibration_to_yaml(cal)
    assert parse_calibration(text) == cal
    # awkward values survive too: tiny exponents, a name YAML would read as a number
    odd = CameraCalibration(width=7, height=5, camera_name="0123", k=cal.k * 1.1e-3,
                            distortion_model="rational_polynomial",
                            d=np.array([1e-05, -2.5e-12, 0.1, 0, 0, 0, 0, 3.0]), r=cal.r,
                            p=cal.p * np.pi)
    path = tmp_path / "odd.yaml"
    path.write_text(calibration_to_yaml(odd))
    assert read_calibration(path) == odd
    # what a PyYAML reader of the file sees: numbers, not strings
    assert all(isinstance(v, float) for v in yaml.safe_load(path.read_text())
               ["distortion_coefficients"]["data"])


def test_the_writer_uses_the_standard_layout():
    doc = yaml.safe_load(calibration_to_yaml(parse_calibration(STANDARD)))
    assert list(doc) == ["image_width", "image_height", "camera_name", "camera_matrix",
                         "distortion_model", "distortion_coefficients", "rectification_matrix",
                         "projection_matrix"]
    assert doc["distortion_coefficients"]["rows"] == 1
    assert doc["distortion_coefficients"]["cols"] == 5


def test_yaml_cpp_exponents_read_as_numbers():
    # yaml-cpp writes 1e-05; PyYAML (YAML 1.1) reads that as the string "1e-05"
    text = STANDARD.replace("-0.000139", "1e-05")
    assert parse_calibration(text).d[3] == 1e-05


def test_optional_keys_as_camera_calibration_parsers_reads_them():
    doc = _doc()
    del doc["camera_name"], doc["distortion_model"]
    cal = parse_calibration(_text(doc))
    assert cal.camera_name == "" and cal.distortion_model == "plumb_bob"
    assert cal.distortion_model_assumed


@pytest.mark.parametrize(("model", "coefficients"), [
    ("rational_polynomial", 8), ("equidistant", 4), ("plumb_bob", 0)])
def test_other_models_and_lengths(model, coefficients):
    doc = _doc()
    doc["distortion_model"] = model
    doc["distortion_coefficients"] = {"rows": 1, "cols": coefficients,
                                      "data": [0.01 * i for i in range(coefficients)]}
    cal = parse_calibration(_text(doc))
    assert cal.distortion_model == model and cal.d.shape == (coefficients,)


def _set(path: str, value: object):
    def change(doc: dict) -> None:
        *parents, key = path.split(".")
        node = doc
        for parent in parents:
            node = node[parent]
        node[key] = value
    return change


def _delete(path: str):
    def change(doc: dict) -> None:
        *parents, key = path.split(".")
        node = doc
        for parent in parents:
            node = node[parent]
        del node[key]
    return change


REQUIRED = ["image_width", "image_height", "camera_matrix", "distortion_coefficients",
            "rectification_matrix", "projection_matrix"]

MALFORMED = {
    # case: (change to the standard document, what the message must say)
    **{f"missing {key}": (_delete(key), f"{key}: missing") for key in REQUIRED},
    "K rows": (_set("camera_matrix.rows", 2), "camera_matrix: must be 3x3, got 2x3"),
    "K data short": (_set("camera_matrix.data", [1.0] * 8),
                     "camera_matrix: data has 8 values, 3x3 needs 9"),
    "P as 3x3": (_set("projection_matrix", {"rows": 3, "cols": 3, "data": [0.0] * 9}),
                 "projection_matrix: must be 3x4"),
    "R data long": (_set("rectification_matrix.data", [0.0] * 10),
                    "rectification_matrix: data has 10 values"),
    "D 2x3": (_set("distortion_coefficients", {"rows": 2, "cols": 3, "data": [0.0] * 6}),
              "distortion_coefficients: must be one row or one column"),
    "D count mismatch": (_set("distortion_coefficients.cols", 4),
                         "distortion_coefficients: data has 5 values, 1x4 needs 4"),
    "K text": (_set("camera_matrix.data", [1.0, 0, 1, 0, "abc", 1, 0, 0, 1]),
               "camera_matrix: data[4]: must be a number, got 'abc'"),
    "K bool": (_set("camera_matrix.data", [True] + [1.0] * 8),
               "camera_matrix: data[0]: must be a number"),
    "K null": (_set("camera_matrix.data", [1.0] * 8 + [None]),
               "camera_matrix: data[8]: must be a number"),
    "K nested": (_set("camera_matrix.data", [[1.0, 0, 0]] * 3),
                 "camera_matrix: data has 3 values"),
    "P nan": (_set("projection_matrix.data", [float("nan")] + [1.0] * 11),
              "projection_matrix: data[0]: must be finite"),
    "D inf": (_set("distortion_coefficients.data", [0.0, float("inf"), 0, 0, 0]),
              "distortion_coefficients: data[1]: must be finite"),
    "fx zero": (_set("camera_matrix.data", [0.0, 0, 1, 0, 1, 1, 0, 0, 1]),
                "camera_matrix: fx and fy must be > 0"),
    "width zero": (_set("image_width", 0), "image_width: must be a positive integer"),
    "height negative": (_set("image_height", -480), "image_height: must be a positive integer"),
    "width text": (_set("image_width", "640"), "image_width: must be a positive integer"),
    "width float": (_set("image_width", 640.5), "image_width: must be a positive integer"),
    "K not a mapping": (_set("camera_matrix", [1.0] * 9), "camera_matrix: must be a mapping"),
    "K rows missing": (_delete("camera_matrix.rows"), "camera_matrix: rows missing"),
    "K data missing": (_delete("camera_matrix.data"), "camera_matrix: data missing"),
    "K data not a list": (_set("camera_matrix.data", "1 0 0"),
                          "camera_matrix: data must be a list"),
    "K cols negative": (_set("camera_matrix.cols", -3),
                        "camera_matrix: cols must be a non-negative integer"),
    "model empty": (_set("distortion_model", ""), "distortion_model: must be a non-empty string"),
    "model number": (_set("distortion_model", 5), "distortion_model: must be a non-empty string"),
    "name a list": (_set("camera_name", ["a"]), "camera_name: must be a string"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_names_the_key(case):
    change, message = MALFORMED[case]
    doc = _doc()
    change(doc)
    with pytest.raises(CalibrationError) as err:
        parse_calibration(_text(doc), source="cam.yaml")
    assert str(err.value).startswith("cam.yaml: ")
    assert message in str(err.value), str(err.value)


@pytest.mark.parametrize(("text", "message"), [
    ("image_width: [640\n", "not valid YAML"),
    ("- 1\n- 2\n", "must be a YAML mapping"),
    ("", "must be a YAML mapping"),
])
def test_not_a_calibration_document(text, message):
    with pytest.raises(CalibrationError, match=message) as err:
        parse_calibration(text)
    assert "\n" not in str(err.value)


def test_missing_and_unreadable_files_name_the_path(tmp_path):
    with pytest.raises(CalibrationError, match=f"not found: '{tmp_path / 'no.yaml'}'"):
        read_calibration(tmp_path / "no.yaml")
    with pytest.raises(CalibrationError, match="cannot be read"):
        read_calibration(tmp_path)  # a folder
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(CalibrationError, match=f"'{binary}'"):
        read_calibration(binary)
