"""Tests of optical_flow_ros.core.image_codec: raw and compressed image buffers <-> numpy."""

from __future__ import annotations

import array
import struct
import types
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from optical_flow_ros.core import image_codec as ic
from optical_flow_ros.core.errors import ImageConversionError

ENCODINGS = ic.SUPPORTED_ENCODINGS
# Independent statement of the layouts required by REP/sensor_msgs image_encodings.h.
LAYOUT = {
    "mono8": (1, np.uint8), "mono16": (1, np.uint16), "8UC1": (1, np.uint8),
    "8UC3": (3, np.uint8), "8UC4": (4, np.uint8), "16UC1": (1, np.uint16),
    "32FC1": (1, np.float32), "32FC2": (2, np.float32), "bgr8": (3, np.uint8),
    "rgb8": (3, np.uint8), "bgra8": (4, np.uint8), "rgba8": (4, np.uint8),
    "bayer_rggb8": (1, np.uint8), "bayer_bggr8": (1, np.uint8), "bayer_gbrg8": (1, np.uint8),
    "bayer_grbg8": (1, np.uint8), "yuv422": (2, np.uint8), "yuv422_yuy2": (2, np.uint8),
    "uyvy": (2, np.uint8), "yuyv": (2, np.uint8), "nv12": (1, np.uint8), "nv21": (1, np.uint8),
}
# Semi-planar YUV 4:2:0: a Y plane of H rows, then H/2 rows of interleaved chroma, each row
# ``width`` bytes; the array is (H * 3/2, W).
PLANAR = {"nv12", "nv21"}
MULTIBYTE = [e for e in ENCODINGS if np.dtype(LAYOUT[e][1]).itemsize > 1]


def rows(encoding: str, height: int) -> int:
    """Rows of bytes an image of ``height`` px occupies in a message."""
    return height * 3 // 2 if encoding in PLANAR else height


def random_image(encoding: str, height: int = 6, width: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    channels, dtype = LAYOUT[encoding]
    shape = (rows(encoding, height), width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == "f":
        return rng.uniform(-0.25, 1.25, shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def padded_buffer(image: np.ndarray, pad: int, seed: int = 1) -> tuple[bytes, int]:
    """Rows of ``image`` followed by ``pad`` random garbage bytes each."""
    rows = image.reshape(image.shape[0], -1).view(np.uint8)
    garbage = np.random.default_rng(seed).integers(0, 256, (rows.shape[0], pad), np.uint8)
    return np.hstack([rows, garbage]).tobytes(), rows.shape[1] + pad


def decode(encoded: ic.EncodedImage, **kwargs) -> np.ndarray:
    return ic.decode_image(
        encoded.data, encoding=encoded.encoding, width=encoded.width, height=encoded.height,
        step=encoded.step, is_bigendian=encoded.is_bigendian, **kwargs,
    )


def test_table_matches_ros_layouts():
    assert set(ENCODINGS) == set(LAYOUT)
    for encoding, (channels, dtype) in LAYOUT.items():
        assert ic.encoding_layout(encoding) == (channels, np.dtype(dtype))


# ---- raw buffers ---------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
def test_round_trip_exact(encoding):
    image = random_image(encoding)
    encoded = ic.encode_image(image, encoding)
    channels, dtype = LAYOUT[encoding]
    assert (encoded.width, encoded.height) == (8, 6)
    assert encoded.step == 8 * channels * np.dtype(dtype).itemsize
    assert len(encoded.data) == encoded.step * rows(encoding, 6)
    decoded = decode(encoded)
    assert decoded.dtype == np.dtype(dtype) and decoded.shape == image.shape
    np.testing.assert_array_equal(decoded, image)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("pad", [1, 3, 8])
def test_padded_rows_with_garbage(encoding, pad):
    height = 4 if encoding in PLANAR else 5  # 4:2:0 needs an even height
    image = random_image(encoding, height, 6)
    data, step = padded_buffer(image, pad)
    decoded = ic.decode_image(data, encoding=encoding, width=6, height=height, step=step)
    np.testing.assert_array_equal(decoded, image)
    # extra bytes after the last row are ignored
    longer = ic.decode_image(data + b"xyz", encoding=encoding, width=6, height=height,
                             step=step)
    np.testing.assert_array_equal(longer, image)


@pytest.mark.parametrize("encoding", MULTIBYTE)
def test_big_endian_decodes_to_native_values(encoding):
    image = random_image(encoding, 4, 6)
    big = image.astype(image.dtype.newbyteorder(">"))
    decoded = ic.decode_image(big.tobytes(), encoding=encoding, width=6, height=4,
                              step=big.strides[0], is_bigendian=1)
    assert decoded.dtype.isnative and decoded.dtype == image.dtype
    np.testing.assert_array_equal(decoded, image)
    # and padded, with an odd (unaligned) step
    data, step = padded_buffer(big, 3)
    decoded = ic.decode_image(data, encoding=encoding, width=6, height=4, step=step,
                              is_bigendian=True)
    np.testing.assert_array_equal(decoded, image)


def test_big_endian_known_values():
    data = bytes([0x01, 0x02, 0xFF, 0x00])
    for encoding in ("mono16", "16UC1"):
        out = ic.decode_image(data, encoding=encoding, width=2, height=1, step=4, is_bigendian=1)
        assert out.tolist() == [[0x0102, 0xFF00]]
        out = ic.decode_image(data, encoding=encoding, width=2, height=1, step=4)
        assert out.tolist() == [[0x0201, 0x00FF]]
    out = ic.decode_image(struct.pack(">f", 0.75), encoding="32FC1", width=1, height=1, step=4,
                          is_bigendian=True)
    assert out.tolist() == [[0.75]]


def test_unaligned_step_is_copied_and_correct():
    image = random_image("mono16", 3, 4)
    data, step = padded_buffer(image, 1)
    out = ic.decode_image(data, encoding="mono16", width=4, height=3, step=step)
    assert out.flags.aligned
    np.testing.assert_array_equal(out, image)


def test_zero_copy_views_and_copy_option():
    image = random_image("bgr8", 4, 5)
    data, step = padded_buffer(image, 4)
    for buffer in (bytearray(data), array.array("B", data), np.frombuffer(data, np.uint8).copy()):
        view = ic.decode_image(buffer, encoding="bgr8", width=5, height=4, step=step)
        assert np.shares_memory(view, np.frombuffer(buffer, np.uint8))
        np.testing.assert_array_equal(view, image)
    readonly = ic.decode_image(data, encoding="bgr8", width=5, height=4, step=step)
    assert not readonly.flags.writeable
    owned = ic.decode_image(data, encoding="bgr8", width=5, height=4, step=step, copy=True)
    assert owned.flags.writeable and owned.flags.c_contiguous and owned.flags.owndata
    np.testing.assert_array_equal(owned, image)


def test_list_data_is_accepted():
    out = ic.decode_image([1, 2, 3, 4], encoding="mono8", width=2, height=2, step=2)
    assert out.tolist() == [[1, 2], [3, 4]]


def test_image_msg_to_array_duck_typed():
    image = random_image("rgb8", 3, 4)
    encoded = ic.encode_image(image, "rgb8")
    msg = types.SimpleNamespace(encoding="rgb8", width=4, height=3, step=encoded.step,
                                is_bigendian=0, data=encoded.data)
    np.testing.assert_array_equal(ic.image_msg_to_array(msg), image)
    with pytest.raises(ImageConversionError, match="no field step"):
        ic.image_msg_to_array(types.SimpleNamespace(encoding="rgb8", width=4, height=3,
                                                    is_bigendian=0, data=encoded.data))


GOOD = {"encoding": "bgr8", "width": 4, "height": 2, "step": 12}


@pytest.mark.parametrize(
    ("changes", "data", "message"),
    [
        ({"encoding": "bgr16"}, bytes(24), "unknown image encoding 'bgr16'"),
        ({"encoding": "BGR8"}, bytes(24), "unknown image encoding"),
        ({"encoding": None}, bytes(24), "unknown image encoding None"),
        ({}, bytes(23), "image data is 23 B, shorter than step 12 B x height 2 = 24 B"),
        ({"step": 11}, bytes(24), "step 11 B is smaller than width 4 px x 3 B/px = 12 B"),
        ({"width": 0}, bytes(24), "empty image: width 0"),
        ({"height": 0}, bytes(24), "height 0"),
        ({"width": -1}, bytes(24), "width must be >= 0, got -1"),
        ({"step": 1.5}, bytes(24), "step must be an integer"),
        ({"max_pixels": 7}, bytes(24), "4 x 2 = 8 px exceeds max_pixels=7"),
        ({"width": 100_000, "height": 100_000, "step": 300_000}, b"", "exceeds max_pixels"),
        ({"encoding": "yuv422", "width": 3, "step": 6}, bytes(12), "even width"),
        ({"encoding": "yuv422_yuy2", "width": 5, "step": 10}, bytes(20), "even width"),
        ({"encoding": "uyvy", "width": 3, "step": 6}, bytes(12), "even width"),
        ({"encoding": "yuyv", "width": 5, "step": 10}, bytes(20), "even width"),
        ({"encoding": "nv12", "width": 3, "step": 3}, bytes(9),
         "'nv12' needs an even width and height .* got 3 x 2 px"),
        ({"encoding": "nv21", "width": 4, "height": 3, "step": 4}, bytes(24),
         "'nv21' needs an even width and height .* got 4 x 3 px"),
        ({"encoding": "nv12", "width": 4, "step": 3}, bytes(12),
         "step 3 B is smaller than width 4 px x 1 B/px = 4 B"),
        # 2 rows of Y are not enough: 4:2:0 also needs the chroma row
        ({"encoding": "nv12", "width": 4, "step": 4}, bytes(8),
         "image data is 8 B, shorter than step 4 B x rows 3 .*height 2 x 3/2.* = 12 B"),
        ({"encoding": "nv24", "width": 4, "step": 8}, bytes(16),
         "'nv24' is not supported: YUV 4:4:4"),
        ({}, "not bytes", "not a byte buffer"),
        ({}, None, "not a byte buffer"),
        ({}, [300] * 24, "not a byte buffer: values must be 0-255, got 300 to 300"),
        # numpy 1.x would wrap these into uint8 silently: the range is checked explicitly
        ({}, [-1] + [0] * 23, "not a byte buffer: values must be 0-255, got -1 to 0"),
        ({}, [256] + [0] * 23, "not a byte buffer: values must be 0-255, got 0 to 256"),
        ({}, [2**70] * 24, "not a byte buffer"),
        ({}, [0.5] * 24, "not a byte buffer: its elements are float64"),
    ],
)
def test_decode_errors(changes, data, message):
    with pytest.raises(ImageConversionError, match=message.replace("(", r"\(")):
        ic.decode_image(data, **{**GOOD, **changes})


def test_huge_declared_size_refused_before_reading_data():
    with pytest.raises(ImageConversionError, match="exceeds max_pixels"):
        ic.decode_image(None, encoding="mono8", width=1 << 20, height=1 << 20, step=1 << 20)


def test_default_max_pixels_is_configurable_per_call():
    side = 1 << 13  # 8192 x 8192 = 64 Mi px, exactly the default
    with pytest.raises(ImageConversionError, match="shorter than"):
        ic.decode_image(b"", encoding="mono8", width=side, height=side, step=side)
    with pytest.raises(ImageConversionError, match="exceeds max_pixels"):
        ic.decode_image(b"", encoding="mono8", width=side + 1, height=side, step=side + 1)
    out = ic.decode_image(bytes(4), encoding="mono8", width=2, height=2, step=2, max_pixels=4)
    assert out.shape == (2, 2)


@pytest.mark.parametrize(
    ("array", "encoding", "message"),
    [
        (np.zeros((2, 2, 3), np.uint8), "bgr9", "unknown image encoding 'bgr9'"),
        (np.zeros((2, 2, 3), np.uint16), "bgr8", "needs dtype uint8, got uint16"),
        (np.zeros((2, 2), np.uint8), "mono16", "needs dtype uint16, got uint8"),
        (np.zeros((2, 2), np.float64), "32FC1", "needs dtype float32, got float64"),
        (np.zeros((2, 2, 4), np.uint8), "bgr8", r"needs shape \(H, W, 3\), got \(2, 2, 4\)"),
        (np.zeros((2, 2), np.uint8), "bgr8", r"needs shape \(H, W, 3\), got \(2, 2\)"),
        (np.zeros((2, 2, 2), np.uint8), "mono8", r"needs shape \(H, W\), got \(2, 2, 2\)"),
        (np.zeros((2, 2, 3, 1), np.uint8), "bgr8", "needs shape"),
        (np.zeros((0, 2, 3), np.uint8), "bgr8", "empty image"),
        (np.zeros((2, 3, 2), np.uint8), "yuv422", "even width"),
        (np.zeros((2, 3, 2), np.uint8), "yuyv", "even width"),
        (np.zeros((5, 4), np.uint8), "nv12", r"needs shape \(H \* 3/2, W\)"),
        (np.zeros((3, 4, 2), np.uint8), "nv12", r"needs shape \(H \* 3/2, W\)"),
        (np.zeros((3, 3), np.uint8), "nv21", "even width and height .* got 3 x 2 px"),
        (np.zeros((6, 5), np.uint8), "nv12", "even width and height .* got 5 x 4 px"),
        (np.zeros((0, 4), np.uint8), "nv12", "empty image"),
        (np.zeros((6, 4), np.uint16), "nv12", "needs dtype uint8"),
        ([[1, 2]], "mono8", "expected a numpy array, got list"),
    ],
)
def test_encode_errors(array, encoding, message):
    with pytest.raises(ImageConversionError, match=message):
        ic.encode_image(array, encoding)


def test_encode_accepts_trailing_channel_big_endian_and_strided_input():
    image = random_image("mono16", 4, 6)
    out = ic.encode_image(image[:, :, None].astype(">u2"), "mono16")
    assert not out.is_bigendian and out.step == 12
    np.testing.assert_array_equal(decode(out), image)
    strided = random_image("bgr8", 6, 10)[::2, 1::3]
    np.testing.assert_array_equal(decode(ic.encode_image(strided, "bgr8")), strided)


# ---- colour conversions --------------------------------------------------------------------

# encoding -> (code to grey, code to BGR) as cv_bridge would apply them; None = no conversion
CV_REFERENCE = {
    "mono8": (None, cv2.COLOR_GRAY2BGR), "8UC1": (None, cv2.COLOR_GRAY2BGR),
    "8UC3": (cv2.COLOR_BGR2GRAY, None), "8UC4": (cv2.COLOR_BGRA2GRAY, cv2.COLOR_BGRA2BGR),
    "bgr8": (cv2.COLOR_BGR2GRAY, None), "rgb8": (cv2.COLOR_RGB2GRAY, cv2.COLOR_RGB2BGR),
    "bgra8": (cv2.COLOR_BGRA2GRAY, cv2.COLOR_BGRA2BGR),
    "rgba8": (cv2.COLOR_RGBA2GRAY, cv2.COLOR_RGBA2BGR),
    "yuv422": (cv2.COLOR_YUV2GRAY_UYVY, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (cv2.COLOR_YUV2GRAY_YUY2, cv2.COLOR_YUV2BGR_YUY2),
    "uyvy": (cv2.COLOR_YUV2GRAY_UYVY, cv2.COLOR_YUV2BGR_UYVY),
    "yuyv": (cv2.COLOR_YUV2GRAY_YUY2, cv2.COLOR_YUV2BGR_YUY2),
    "nv12": (cv2.COLOR_YUV2GRAY_NV12, cv2.COLOR_YUV2BGR_NV12),
    "nv21": (cv2.COLOR_YUV2GRAY_NV21, cv2.COLOR_YUV2BGR_NV21),
}


def expected_8bit(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:  # ROS 2 cv_bridge: convertTo(CV_8U, 255. / 65535.), rounding
        return np.rint(image / 257.0).astype(np.uint8)
    if image.dtype == np.float32:
        return np.clip(np.rint(image.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return image


@pytest.mark.parametrize("encoding", sorted(CV_REFERENCE))
def test_to_gray_and_to_bgr_match_cvtcolor(encoding):
    image = decode(ic.encode_image(random_image(encoding, 6, 8), encoding))
    gray_code, bgr_code = CV_REFERENCE[encoding]
    gray = ic.to_gray(image, encoding)
    bgr = ic.to_bgr(image, encoding)
    assert gray.dtype == np.uint8 and gray.shape == (6, 8)
    assert bgr.dtype == np.uint8 and bgr.shape == (6, 8, 3)
    expected_gray = image if gray_code is None else cv2.cvtColor(image, gray_code)
    expected_bgr = image if bgr_code is None else cv2.cvtColor(image, bgr_code)
    np.testing.assert_array_equal(gray, expected_gray)
    np.testing.assert_array_equal(bgr, expected_bgr)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_deep_images_scaled_to_8bit(encoding):
    image = random_image(encoding, 5, 7)
    if encoding == "32FC1":
        image[0, :4] = [np.nan, np.inf, -np.inf, 0.5]
    expected = expected_8bit(np.nan_to_num(image, nan=0.0, posinf=2.0, neginf=-1.0))
    np.testing.assert_array_equal(ic.to_gray(image, encoding), expected)
    np.testing.assert_array_equal(ic.to_bgr(image, encoding), np.dstack([expected] * 3))


def test_mono16_scaling_values():
    image = np.array([[0, 128, 129, 385, 386, 32767, 32768, 65535]], np.uint16)
    assert ic.to_gray(image, "mono16").tolist() == [[0, 0, 1, 1, 2, 127, 128, 255]]
    floats = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0]], np.float32)
    assert ic.to_gray(floats, "32FC1").tolist() == [[0, 0, 128, 255, 255]]


def test_32fc2_is_not_an_image():
    flow = np.zeros((3, 4, 2), np.float32)
    np.testing.assert_array_equal(decode(ic.encode_image(flow, "32FC2")), flow)
    for convert in (ic.to_gray, ic.to_bgr):
        with pytest.raises(ImageConversionError, match="'32FC2' .* is not an image"):
            convert(flow, "32FC2")


def test_conversion_validates_array():
    with pytest.raises(ImageConversionError, match="needs shape"):
        ic.to_gray(np.zeros((4, 4), np.uint8), "bgr8")
    with pytest.raises(ImageConversionError, match="unknown image encoding"):
        ic.to_bgr(np.zeros((4, 4), np.uint8), "grey")


# ROS pattern: colours of the top-left 2x2 block, row-major (bayer_rggb8: R G / G B).
BAYER = {"bayer_rggb8": "RGGB", "bayer_bggr8": "BGGR", "bayer_gbrg8": "GBRG",
         "bayer_grbg8": "GRBG"}
BGR_INDEX = {"B": 0, "G": 1, "R": 2}


def mosaic(bgr: np.ndarray, pattern: str) -> np.ndarray:
    """Sample a BGR image through the colour filter array ``pattern``, by hand."""
    raw = np.empty(bgr.shape[:2], np.uint8)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        raw[dy::2, dx::2] = bgr[dy::2, dx::2, BGR_INDEX[colour]]
    return raw


@pytest.mark.parametrize("encoding", sorted(BAYER))
def test_bayer_colours_come_back(encoding):
    # four flat patches of distinct, saturated-ish colours; demosaicing is exact inside them
    colours = np.array([[30, 120, 220], [200, 60, 10], [15, 230, 90], [140, 140, 40]], np.uint8)
    truth = np.empty((32, 48, 3), np.uint8)
    truth[:16, :24], truth[:16, 24:], truth[16:, :24], truth[16:, 24:] = colours
    raw = mosaic(truth, BAYER[encoding])
    image = decode(ic.encode_image(raw, encoding))
    bgr = ic.to_bgr(image, encoding)
    gray = ic.to_gray(image, encoding)
    for (y, x), colour in zip([(8, 12), (8, 36), (24, 12), (24, 36)], colours, strict=True):
        np.testing.assert_array_equal(bgr[y - 3:y + 3, x - 3:x + 3],
                                      np.broadcast_to(colour, (6, 6, 3)))
        expected = cv2.cvtColor(colour[None, None], cv2.COLOR_BGR2GRAY)[0, 0]
        assert abs(int(gray[y, x]) - int(expected)) <= 2, (encoding, colour)


@pytest.mark.parametrize("encoding", sorted(BAYER))
@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 5), (5, 2), (7, 9)])
def test_bayer_odd_and_tiny_sizes(encoding, height, width):
    raw = random_image(encoding, height, width)
    assert ic.to_bgr(raw, encoding).shape == (height, width, 3)
    assert ic.to_gray(raw, encoding).shape == (height, width)


@pytest.mark.parametrize(("encoding", "order"), [("yuv422", "UYVY"), ("yuv422_yuy2", "YUYV"),
                                               ("uyvy", "UYVY"), ("yuyv", "YUYV")])
def test_yuv422_byte_order(encoding, order):
    # two pixels, Y0=50 and Y1=200, U=90, V=160, packed by hand in the ROS byte order
    values = {"Y": [50, 200], "U": [90], "V": [160]}
    counters = {"Y": 0, "U": 0, "V": 0}
    packed = []
    for letter in order:
        packed.append(values[letter][counters[letter]])
        counters[letter] += 1
    image = ic.decode_image(bytes(packed), encoding=encoding, width=2, height=1, step=4)
    assert image.shape == (1, 2, 2)
    assert ic.to_gray(image, encoding).tolist() == [[50, 200]]
    bgr = ic.to_bgr(image, encoding).astype(int)
    assert bgr[0, 1].sum() > bgr[0, 0].sum() + 300  # the brighter pixel is the second one
    assert bgr[0, 0, 2] > bgr[0, 0, 0]  # V > 128, U < 128: reddish, not bluish


def packed_422(bgr: np.ndarray, order: str) -> np.ndarray:
    """``bgr`` as packed YUV 4:2:2, (H, W, 2) uint8 in the byte ``order`` "UYVY" or "YUYV".

    Built by hand, as OpenCV 5's ``COLOR_BGR2YUV_UYVY``/``YUY2`` do (OpenCV 4.6 has neither):
    BT.601 video-range YUV per pixel (OpenCV's I420 of the image with every pixel doubled in
    both directions, the YUV its 4:2:2 decoders expect), chroma averaged over pixel pairs.
    """
    height, width = bgr.shape[:2]
    doubled = np.repeat(np.repeat(bgr, 2, axis=0), 2, axis=1)
    i420 = cv2.cvtColor(doubled, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    luma = 4 * height * width
    y = i420[:luma].reshape(2 * height, 2 * width)[::2, ::2].reshape(height, width // 2, 2)
    chroma = {}
    for name, plane in (("U", i420[luma:][:height * width]), ("V", i420[luma:][height * width:])):
        pairs = plane.reshape(height, width // 2, 2).astype(np.uint16)
        chroma[name] = ((pairs[..., 0] + pairs[..., 1] + 1) // 2).astype(np.uint8)
    samples = {"Y0": y[..., 0], "Y1": y[..., 1], **chroma}
    names = ["Y0", "U", "Y1", "V"] if order == "YUYV" else ["U", "Y0", "V", "Y1"]
    return np.stack([samples[k] for k in names], axis=-1).reshape(height, width, 2)


YUV422 = [("yuv422", "UYVY"), ("yuv422_yuy2", "YUYV"), ("uyvy", "UYVY"), ("yuyv", "YUYV")]


@pytest.mark.parametrize(("encoding", "order"), YUV422)
def test_yuv422_round_trip_close_to_original(encoding, order):
    smooth = cv2.resize(random_image("bgr8", 4, 4), (16, 8), interpolation=cv2.INTER_LINEAR)
    yuv = packed_422(smooth, order)
    image = decode(ic.encode_image(yuv, encoding))
    np.testing.assert_array_equal(image, yuv)
    # grey is the Y samples exactly; colour within YUV 4:2:2 rounding of the original
    np.testing.assert_array_equal(ic.to_gray(image, encoding),
                                  yuv[..., 1 if order == "UYVY" else 0])
    bgr = ic.to_bgr(image, encoding)
    assert np.abs(bgr.astype(int) - smooth).mean() < 6


@pytest.mark.skipif(not hasattr(cv2, "COLOR_BGR2YUV_UYVY"),
                    reason=f"OpenCV {cv2.__version__} has no COLOR_BGR2YUV_UYVY/YUY2 to compare "
                    "the hand packing with (the round trip above covers the decoding)")
@pytest.mark.parametrize(("order", "code"), [("UYVY", "COLOR_BGR2YUV_UYVY"),
                                             ("YUYV", "COLOR_BGR2YUV_YUY2")])
def test_hand_packed_yuv422_is_opencvs(order, code):
    smooth = cv2.resize(random_image("bgr8", 4, 4), (16, 8), interpolation=cv2.INTER_LINEAR)
    ours = packed_422(smooth, order).astype(int)
    theirs = cv2.cvtColor(smooth, getattr(cv2, code)).astype(int)
    assert np.abs(ours - theirs).max() <= 1  # rounding


def semi_planar(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """``bgr`` as nv12/nv21 bytes, (H * 3/2, W), built by hand from OpenCV's I420 planes.

    I420 is Y (H x W), then U and V (H/2 x W/2 each); NV12 interleaves them U V U V ...
    after Y, NV21 V U V U ...
    """
    height, width = bgr.shape[:2]
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    y = i420[:height * width].reshape(height, width)
    quarter = height * width // 4
    u, v = i420[height * width:][:quarter], i420[height * width:][quarter:]
    pairs = (u, v) if encoding == "nv12" else (v, u)
    chroma = np.stack(pairs, axis=-1).reshape(height // 2, width)
    return np.vstack([y, chroma])


def smooth_bgr(height: int, width: int, seed: int = 0) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (3, 4, 3), np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("encoding", sorted(PLANAR))
@pytest.mark.parametrize("pad", [0, 5])
def test_yuv420_semi_planar_matches_cvtcolor_and_round_trips(encoding, pad):
    truth = smooth_bgr(48, 64)
    planes = semi_planar(truth, encoding)
    assert planes.shape == (72, 64)
    data, step = padded_buffer(planes, pad)
    assert len(data) == step * 72
    image = ic.decode_image(data, encoding=encoding, width=64, height=48, step=step)
    np.testing.assert_array_equal(image, planes)
    gray, bgr = ic.to_gray(image, encoding), ic.to_bgr(image, encoding)
    assert gray.shape == (48, 64) and bgr.shape == (48, 64, 3)
    np.testing.assert_array_equal(gray, planes[:48])  # grey is the Y plane, exactly
    code = cv2.COLOR_YUV2BGR_NV12 if encoding == "nv12" else cv2.COLOR_YUV2BGR_NV21
    np.testing.assert_array_equal(bgr, cv2.cvtColor(planes, code))
    # the same colours as OpenCV's own I420 decoding of the planes they were built from
    i420 = cv2.cvtColor(truth, cv2.COLOR_BGR2YUV_I420)
    np.testing.assert_array_equal(bgr, cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420))
    assert np.abs(bgr.astype(int) - truth).mean() < 4  # YUV 4:2:0 round trip
    # a message built from the array has the image's height, not the array's rows
    encoded = ic.encode_image(planes, encoding)
    assert (encoded.width, encoded.height, encoded.step) == (64, 48, 64)
    assert ic.image_shape(planes, encoding) == (48, 64)
    np.testing.assert_array_equal(decode(encoded), planes)


@pytest.mark.parametrize(("encoding", "tint"), [("nv12", "red"), ("nv21", "blue")])
def test_yuv420_chroma_byte_order(encoding, tint):
    # 2 x 2 px, Y = 60 80 / 100 120, then one chroma pair of bytes 90, 160:
    # NV12 reads U = 90, V = 160 (reddish); NV21 reads V = 90, U = 160 (bluish)
    data = bytes([60, 80, 100, 120, 90, 160])
    image = ic.decode_image(data, encoding=encoding, width=2, height=2, step=2)
    assert ic.to_gray(image, encoding).tolist() == [[60, 80], [100, 120]]
    bgr = ic.to_bgr(image, encoding).astype(int)
    blue, red = bgr[..., 0], bgr[..., 2]
    assert ((red > blue + 60) if tint == "red" else (blue > red + 60)).all(), bgr.tolist()


# ---- compressed ----------------------------------------------------------------------------

def compressible(encoding: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = {"mono8": (24, 32), "mono16": (24, 32), "bgr8": (24, 32, 3), "bgra8": (24, 32, 4)}
    dtype = np.uint16 if encoding == "mono16" else np.uint8
    # smooth content so that JPEG is nearly lossless
    small = rng.integers(0, np.iinfo(dtype).max, (3, 4, *shape[encoding][2:]), dtype=dtype)
    return cv2.resize(small, shape[encoding][1::-1], interpolation=cv2.INTER_LINEAR)


def imencode(image: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("encoding", ["mono8", "bgr8", "bgra8", "mono16"])
@pytest.mark.parametrize("fmt", ["png", "PNG", "{e}; png compressed {e}"])
def test_png_round_trip_exact(encoding, fmt):
    image = compressible(encoding)
    for data in (imencode(image, ".png"), ic.encode_compressed(image, fmt="png")[0]):
        out, out_encoding = ic.decode_compressed(data, fmt=fmt.format(e=encoding))
        assert out_encoding == encoding and out.dtype == image.dtype
        np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("encoding", ["mono8", "bgr8"])
@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "bgr8; jpeg compressed bgr8",
                                 "rgb8; jpeg compressed bgr8", "mono8; jpeg compressed mono8"])
def test_jpeg_round_trip_close(encoding, fmt):
    image = compressible(encoding)
    for data in (imencode(image, ".jpg"), ic.encode_compressed(image, fmt="jpeg")[0]):
        out, out_encoding = ic.decode_compressed(array.array("B", data), fmt=fmt)
        assert out_encoding == encoding and out.shape == image.shape
        assert np.abs(out.astype(int) - image).mean() < 3


def test_encode_compressed_format_strings_and_options():
    image = compressible("bgr8")
    assert ic.encode_compressed(image)[1] == "bgr8; jpeg compressed bgr8"
    assert ic.encode_compressed(compressible("mono16"), fmt="png")[1] == (
        "mono16; png compressed mono16")
    low, _ = ic.encode_compressed(image, jpeg_quality=10)
    high, _ = ic.encode_compressed(image, jpeg_quality=100)
    assert len(low) < len(high)
    for kwargs, message in [({"jpeg_quality": 101}, "jpeg_quality must be 0-100"),
                            ({"fmt": "png", "png_level": 10}, "png_level must be 0-9"),
                            ({"fmt": "tiff"}, "unknown compressed image format 'tiff'")]:
        with pytest.raises(ImageConversionError, match=message):
            ic.encode_compressed(image, **kwargs)


@pytest.mark.parametrize(
    ("array", "fmt", "message"),
    [
        (np.zeros((4, 4, 4), np.uint8), "jpeg", "jpeg cannot store"),
        (np.zeros((4, 4), np.uint16), "jpeg", "jpeg cannot store"),
        (np.zeros((4, 4, 3), np.uint16), "png", "png cannot store"),
        (np.zeros((4, 4, 2), np.uint8), "png", "png cannot store"),
        (np.zeros((4, 4), np.float32), "png", "png cannot store"),
        (np.zeros((0, 4), np.uint8), "png", "empty image"),
        ("image", "png", "expected a numpy array"),
    ],
)
def test_encode_compressed_errors(array, fmt, message):
    with pytest.raises(ImageConversionError, match=message):
        ic.encode_compressed(array, fmt=fmt)


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("tiff", "unknown compressed image format 'tiff'"),
        ("", "unknown compressed image format ''"),
        ("bgr8; webp compressed bgr8", "unknown compressed image format"),
        ("16UC1; compressedDepth png", "compressedDepth.* is not supported"),
        ("32FC1; compressedDepth rvl", "compressedDepth.* is not supported"),
        (None, "compressed format must be a string"),
    ],
)
def test_unknown_compressed_formats(fmt, message):
    with pytest.raises(ImageConversionError, match=message):
        ic.decode_compressed(imencode(compressible("mono8"), ".png"), fmt=fmt)


@pytest.mark.parametrize("fmt,ext", [("png", ".png"), ("jpeg", ".jpg")])
@pytest.mark.parametrize("keep", [0.0, 0.02, 0.5, 0.9, 0.999])
def test_truncated_compressed_refused(fmt, ext, keep):
    data = imencode(compressible("bgr8"), ext)
    with pytest.raises(ImageConversionError, match="truncated|not a"):
        ic.decode_compressed(data[: int(len(data) * keep)], fmt=fmt)


def test_int_sequences_in_range_are_bytes():
    image = ic.decode_image([0, 255] * 12, **GOOD)
    np.testing.assert_array_equal(image.reshape(-1), [0, 255] * 12)


JPEG_KINDS = {"baseline": [], "progressive": [cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
              "restart markers": [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]}


def _jpeg(kind: str) -> bytes:
    ok, data = cv2.imencode(".jpg", compressible("bgr8"), JPEG_KINDS[kind])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("kind", sorted(JPEG_KINDS))
@pytest.mark.parametrize("cut", [1, 2, 3, 64, 0.01, 0.1, 0.5])
def test_truncated_jpeg_refused_by_the_codec_itself(kind, cut, monkeypatch):
    # A frame cut anywhere, to the last byte: the codec refuses it from the JPEG's structure
    # (no end-of-image marker), never asking imdecode (OpenCV 4.6's returns such frames with
    # their missing part grey; 5.0's refuses most).
    data = _jpeg(kind)
    assert data.endswith(b"\xff\xd9")
    removed = cut if isinstance(cut, int) else int(len(data) * cut)

    def imdecode(*args, **kwargs):
        raise AssertionError("imdecode called on a truncated JPEG")

    monkeypatch.setattr(ic.cv2, "imdecode", imdecode)
    with pytest.raises(ImageConversionError, match="truncated JPEG .* before the end-of-image"):
        ic.decode_compressed(data[:-removed], fmt="jpeg")


@pytest.mark.parametrize("kind", sorted(JPEG_KINDS))
@pytest.mark.parametrize("trailer", [b"\x00" * 4096, b"\xff" * 7, b"\xff\xd8\xff\xe0 another",
                                     bytes(range(256))])
def test_jpeg_with_bytes_after_end_of_image_decodes(kind, trailer):
    # Drivers pad fixed-size buffers and MPF appends images after EOI: decoders ignore them.
    data = _jpeg(kind)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    image, encoding = ic.decode_compressed(data + trailer, fmt="jpeg")
    assert encoding == "bgr8"
    np.testing.assert_array_equal(image, expected)


def test_jpeg_with_a_marker_where_scan_data_ended_is_corrupt():
    data = bytearray(_jpeg("baseline"))
    data[-2:] = b"\xff\x00"  # EOI replaced by a stuffed zero: the scan runs to the end
    with pytest.raises(ImageConversionError, match="truncated JPEG"):
        ic.decode_compressed(bytes(data), fmt="jpeg")
    data[-2:] = b"\x12\x34"  # EOI overwritten: no marker follows the scan
    with pytest.raises(ImageConversionError, match="truncated JPEG"):
        ic.decode_compressed(bytes(data), fmt="jpeg")


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_refused(fmt, seed):
    noise = np.random.default_rng(seed).integers(0, 256, 2000, np.uint8).tobytes()
    with pytest.raises(ImageConversionError):
        ic.decode_compressed(noise, fmt=fmt)
    # random bytes behind a valid signature
    magic = b"\x89PNG\r\n\x1a\n" if fmt == "png" else b"\xff\xd8\xff\xe0"
    with pytest.raises(ImageConversionError):
        ic.decode_compressed(magic + noise, fmt=fmt)


def test_wrong_signature_named():
    png = imencode(compressible("mono8"), ".png")
    jpeg = imencode(compressible("mono8"), ".jpg")
    with pytest.raises(ImageConversionError, match="not a JPEG"):
        ic.decode_compressed(png, fmt="jpeg")
    with pytest.raises(ImageConversionError, match="not a PNG"):
        ic.decode_compressed(jpeg, fmt="png")


def huge_png() -> bytes:
    """A real PNG with its IHDR rewritten to declare 100000 x 100000 px (CRC fixed)."""
    data = bytearray(imencode(compressible("mono8"), ".png"))
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def huge_jpeg() -> bytes:
    """A real JPEG with its SOF rewritten to declare 60000 x 60000 px."""
    data = bytearray(imencode(compressible("bgr8"), ".jpg"))
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xC0)
    data[sof + 5:sof + 9] = struct.pack(">HH", 60_000, 60_000)
    return bytes(data)


@pytest.mark.parametrize(("fmt", "build"), [("png", huge_png), ("jpeg", huge_jpeg)])
def test_huge_declared_size_refused_before_decoding(fmt, build, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("imdecode must not be called")

    monkeypatch.setattr(ic.cv2, "imdecode", fail)
    with pytest.raises(ImageConversionError, match="exceeds max_pixels"):
        ic.decode_compressed(build(), fmt=fmt)


def test_max_pixels_per_call_for_compressed():
    data = imencode(compressible("mono8"), ".png")  # 32 x 24 = 768 px
    assert ic.decode_compressed(data, fmt="png", max_pixels=768)[0].shape == (24, 32)
    with pytest.raises(ImageConversionError, match="32 x 24 = 768 px exceeds max_pixels=767"):
        ic.decode_compressed(data, fmt="png", max_pixels=767)


def test_progressive_jpeg_header_found():
    image = compressible("bgr8")
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    out, encoding = ic.decode_compressed(buf.tobytes(), fmt="jpeg")
    assert encoding == "bgr8" and out.shape == image.shape


# ---- property test -------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(
    encoding=st.one_of(st.sampled_from(ENCODINGS), st.text(max_size=12)),
    width=st.integers(-2, 40),
    height=st.integers(-2, 40),
    row_padding=st.one_of(st.integers(-3, 9), st.integers(-500, 500)),
    extra=st.one_of(st.integers(-3, 9), st.integers(-500, 500)),
    is_bigendian=st.sampled_from([0, 1, True, False]),
    max_pixels=st.one_of(st.just(ic.DEFAULT_MAX_PIXELS), st.integers(0, 2000)),
)
def test_decode_returns_declared_shape_or_refuses(encoding, width, height, row_padding, extra,
                                                  is_bigendian, max_pixels):
    channels, dtype = LAYOUT.get(encoding, (1, np.uint8))
    step = width * channels * np.dtype(dtype).itemsize + row_padding
    length = max(0, step * rows(encoding, height) + extra)
    data = np.random.default_rng(length).integers(0, 256, length, np.uint8).tobytes()
    try:
        out = ic.decode_image(data, encoding=encoding, width=width, height=height, step=step,
                              is_bigendian=is_bigendian, max_pixels=max_pixels)
    except ImageConversionError:
        event("refused")
        return
    event("decoded")
    if encoding in PLANAR:
        assert out.shape == (height * 3 // 2, width) and height % 2 == width % 2 == 0
    else:
        assert out.shape == ((height, width) if channels == 1 else (height, width, channels))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert 0 < width * height <= max_pixels
    if encoding != "32FC2":
        assert ic.to_gray(out, encoding).shape == (height, width)


def test_hostile_jpeg_headers_are_refused_by_a_bounded_walk():
    """The header walk is bounded (its cost, not a wall-clock time, is what is asserted):
    5 MB of fill bytes are one marker match, a million empty segments stop after
    ``_JPEG_MAX_SEGMENTS`` of them, a scan before the frame header at once."""
    cases = ((b"\xff\xd8" + b"\xff" * 5_000_000, "truncated JPEG"),      # fill bytes only
             (b"\xff\xd8" + b"\xff\xe0\x00\x02" * 1_000_000,          # empty APP0 segments
              f"no frame header \\(SOF\\) in the first {ic._JPEG_MAX_SEGMENTS} segments"),
             (b"\xff\xd8\xff\xda\x00\x08", "marker 0xDA"))               # scan before header
    assert ic._JPEG_MAX_SEGMENTS < 1_000_000
    for data, message in cases:
        with pytest.raises(ImageConversionError, match=message):
            ic.decode_compressed(data, fmt="jpeg")


def test_object_array_data_refused():
    with pytest.raises(ImageConversionError, match="not a byte buffer"):
        ic.decode_image(np.array([object()] * 4), encoding="mono8", width=2, height=2, step=2)


_GREY_ENCODINGS = {"mono8", "mono16", "8UC1", "16UC1", "32FC1"}


@pytest.mark.parametrize("encoding", ic.SUPPORTED_ENCODINGS)
def test_is_color_is_false_exactly_for_the_grey_encodings(encoding):
    assert ic.is_color(encoding) == (encoding not in _GREY_ENCODINGS)


def test_is_color_refuses_unknown_encodings():
    with pytest.raises(ImageConversionError, match="nv24"):
        ic.is_color("nv24")
