"""Image buffers <-> numpy arrays: the cv_bridge role, without ROS.

Pure numpy + OpenCV; nothing here imports rclpy or a ROS package. The functions take the
fields of ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` as plain values, and
:func:`image_msg_to_array` takes any object with those field names (an rclpy message, a
``rosbags`` message, a ``types.SimpleNamespace``).

One table, :data:`_ENCODINGS`, maps each ROS encoding to its channel count, dtype and the
OpenCV conversions to grey and BGR; every function is driven by it. Arrays are in the native
layout of the encoding: ``(H, W)`` for one channel, ``(H, W, C)`` otherwise, rows top to
bottom, in native byte order; the semi-planar YUV 4:2:0 encodings (``nv12``, ``nv21``) are
``(H * 3/2, W)`` uint8, the layout OpenCV converts: H rows of Y, then H/2 rows of interleaved
chroma (a message's ``height`` is H, its ``step`` the bytes of one such row). Sizes are in
pixels (px), ``step`` in bytes (B).

Every error on bad input is an :class:`~optical_flow_ros.core.errors.ImageConversionError`
whose message names the problem and the values involved.
"""

from __future__ import annotations

import operator
import re
import struct
import sys
from dataclasses import dataclass
from typing import Any, Final, Protocol

import cv2
import numpy as np

from optical_flow_ros.core.errors import ImageConversionError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_ENCODINGS",
    "EncodedImage",
    "ImageMessageLike",
    "compressed_format",
    "decode_compressed",
    "decode_image",
    "encode_compressed",
    "encode_image",
    "encoding_layout",
    "image_msg_to_array",
    "image_shape",
    "is_color",
    "to_bgr",
    "to_gray",
    "validate_array",
]

DEFAULT_MAX_PIXELS: Final[int] = 1 << 26
"""Largest width x height accepted by default (64 Mi px, about 8K x 8K), checked before any
allocation so that a corrupt or hostile header cannot exhaust memory."""

_SAME: Final[int] = -1  # conversion code meaning "already in the target layout"
_NATIVE_BIGENDIAN: Final[bool] = sys.byteorder == "big"


@dataclass(frozen=True)
class _Encoding:
    """Layout of one ROS encoding and its OpenCV conversions.

    ``gray`` and ``bgr`` are ``cv2.COLOR_*`` codes applied after reducing the data to 8 bits
    (``_SAME``: no conversion needed; ``None``: the data is not an image).
    """

    channels: int
    dtype: np.dtype
    gray: int | None
    bgr: int | None
    even_width: bool = False  # 4:2:2 chroma subsampling shares chroma between pixel pairs
    planar_420: bool = False  # Y plane then a half-height chroma plane: (H * 3/2, W) array


def _bayer(pattern: str) -> _Encoding:
    """Table entry of ROS ``bayer_<pattern>8``; ``pattern`` is the top-left 2x2 block, row-major.

    OpenCV 5 added ``COLOR_BAYER_<RGGB|...>`` names that follow that same convention (verified
    by the tests on hand-made mosaics). OpenCV <= 4 only has the legacy ``COLOR_Bayer<XY>``
    names, which describe the 2x2 block starting at (1, 1): ROS ``bayer_rggb8`` is
    ``COLOR_BayerBG2BGR`` there. Both name the same numeric codes.
    """
    legacy = {"RGGB": "BG", "BGGR": "RG", "GBRG": "GR", "GRBG": "GB"}[pattern]

    def code(target: str) -> int:
        new = getattr(cv2, f"COLOR_BAYER_{pattern}2{target}", None)
        return new if new is not None else getattr(cv2, f"COLOR_Bayer{legacy}2{target}")

    return _Encoding(1, np.dtype(np.uint8), code("GRAY"), code("BGR"))


_U8, _U16, _F32 = np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)
_MONO8 = _Encoding(1, _U8, _SAME, cv2.COLOR_GRAY2BGR)
_MONO16 = _Encoding(1, _U16, _SAME, cv2.COLOR_GRAY2BGR)
_UYVY = _Encoding(2, _U8, cv2.COLOR_YUV2GRAY_UYVY, cv2.COLOR_YUV2BGR_UYVY, even_width=True)
_YUYV = _Encoding(2, _U8, cv2.COLOR_YUV2GRAY_YUY2, cv2.COLOR_YUV2BGR_YUY2, even_width=True)

_ENCODINGS: Final[dict[str, _Encoding]] = {
    "mono8": _MONO8,
    "mono16": _MONO16,
    "8UC1": _MONO8,
    "8UC3": _Encoding(3, _U8, cv2.COLOR_BGR2GRAY, _SAME),  # cv_bridge treats 8UC3 as BGR
    "8UC4": _Encoding(4, _U8, cv2.COLOR_BGRA2GRAY, cv2.COLOR_BGRA2BGR),
    "16UC1": _MONO16,
    "32FC1": _Encoding(1, _F32, _SAME, cv2.COLOR_GRAY2BGR),
    "32FC2": _Encoding(2, _F32, None, None),  # e.g. dense flow (u, v) in px: not an image
    "bgr8": _Encoding(3, _U8, cv2.COLOR_BGR2GRAY, _SAME),
    "rgb8": _Encoding(3, _U8, cv2.COLOR_RGB2GRAY, cv2.COLOR_RGB2BGR),
    "bgra8": _Encoding(4, _U8, cv2.COLOR_BGRA2GRAY, cv2.COLOR_BGRA2BGR),
    "rgba8": _Encoding(4, _U8, cv2.COLOR_RGBA2GRAY, cv2.COLOR_RGBA2BGR),
    "bayer_rggb8": _bayer("RGGB"),
    "bayer_bggr8": _bayer("BGGR"),
    "bayer_gbrg8": _bayer("GBRG"),
    "bayer_grbg8": _bayer("GRBG"),
    # ROS "yuv422" is UYVY (U0 Y0 V0 Y1); "yuv422_yuy2" is YUYV (Y0 U0 Y1 V0). Since Jazzy
    # sensor_msgs names them "uyvy" and "yuyv" (the old names are kept, deprecated).
    "yuv422": _UYVY,
    "yuv422_yuy2": _YUYV,
    "uyvy": _UYVY,
    "yuyv": _YUYV,
    # Semi-planar YUV 4:2:0 (V4L2 NV12/NV21): the chroma plane holds U V pairs (nv12) or
    # V U pairs (nv21), one pair per 2 x 2 px.
    "nv12": _Encoding(1, _U8, cv2.COLOR_YUV2GRAY_NV12, cv2.COLOR_YUV2BGR_NV12,
                      even_width=True, planar_420=True),
    "nv21": _Encoding(1, _U8, cv2.COLOR_YUV2GRAY_NV21, cv2.COLOR_YUV2BGR_NV21,
                      even_width=True, planar_420=True),
}

# Encodings sensor_msgs names that are refused with a reason rather than as unknown.
_UNSUPPORTED: Final[dict[str, str]] = {
    "nv24": "YUV 4:4:4 semi-planar, which OpenCV has no conversion for",
}

SUPPORTED_ENCODINGS: Final[tuple[str, ...]] = tuple(_ENCODINGS)
"""The ROS image encodings this module decodes, encodes and converts."""

# Compressed images: what cv2.imdecode(IMREAD_UNCHANGED) returns -> ROS encoding.
_DECODED_ENCODING: Final[dict[tuple[np.dtype, int], str]] = {
    (_U8, 1): "mono8",
    (_U8, 3): "bgr8",
    (_U8, 4): "bgra8",
    (_U16, 1): "mono16",
}
# Which of those each compressed format can store, and OpenCV's file extension for it.
_COMPRESSED: Final[dict[str, tuple[str, frozenset[str]]]] = {
    "jpeg": (".jpg", frozenset({"mono8", "bgr8"})),
    "png": (".png", frozenset(_DECODED_ENCODING.values())),
}
_FORMAT_ALIASES: Final[dict[str, str]] = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
_PNG_SIGNATURE: Final[bytes] = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (every SOFn except DHT 0xC4, JPG 0xC8 and DAC 0xCC).
_JPEG_SOF: Final[frozenset[int]] = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE: Final[frozenset[int]] = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_JPEG_FILL: Final[re.Pattern[bytes]] = re.compile(rb"\xff+")
# The end of a scan's entropy-coded data: 0xFF followed by a marker code, i.e. neither a stuffed
# zero, a restart marker RST0-7 nor another fill byte. One 0xFF, so the search stays linear.
_JPEG_SCAN_END: Final[re.Pattern[bytes]] = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOS: Final[int] = 0xDA
_JPEG_EOI: Final[int] = 0xD9
_JPEG_MAX_SEGMENTS: Final[int] = 4096


class ImageMessageLike(Protocol):
    """The fields of ``sensor_msgs/Image`` that :func:`image_msg_to_array` reads."""

    encoding: str
    width: int
    height: int
    step: int
    is_bigendian: int
    data: Any


@dataclass(frozen=True)
class EncodedImage:
    """A raw image buffer with the fields of ``sensor_msgs/Image`` (header aside).

    Attributes:
        data: ``step * height`` bytes (``step * height * 3/2`` for nv12/nv21), rows top to
            bottom, no padding.
        width: Columns in px.
        height: Rows in px (of the Y plane for nv12/nv21).
        step: Bytes per row.
        encoding: The ROS encoding string.
        is_bigendian: Byte order of multi-byte samples (the host's order).

    """

    data: bytes
    width: int
    height: int
    step: int
    encoding: str
    is_bigendian: bool = False


def _lookup(encoding: Any) -> _Encoding:
    spec = _ENCODINGS.get(encoding) if isinstance(encoding, str) else None
    if spec is None:
        if encoding in _UNSUPPORTED:
            raise ImageConversionError(
                f"image encoding {encoding!r} is not supported: {_UNSUPPORTED[encoding]}")
        raise ImageConversionError(
            f"unknown image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    return spec


def _count(name: str, value: Any) -> int:
    """Return ``value`` as a non-negative int, or raise naming the field."""
    try:
        number = operator.index(value)
    except TypeError as err:
        raise ImageConversionError(f"{name} must be an integer, got {value!r}") from err
    if number < 0:
        raise ImageConversionError(f"{name} must be >= 0, got {number}")
    return number


def _rows(spec: _Encoding, height: int) -> int:
    """Rows of ``step`` bytes an image of ``height`` px occupies (x 3/2 for 4:2:0 planes)."""
    return height * 3 // 2 if spec.planar_420 else height


def _check_subsampling(encoding: str, spec: _Encoding, width: int, height: int) -> None:
    """Refuse sizes the chroma subsampling of ``encoding`` cannot hold (odd width/height)."""
    if spec.planar_420 and (width % 2 or height % 2):
        raise ImageConversionError(
            f"{encoding!r} needs an even width and height (4:2:0: one chroma pair per 2 x 2 "
            f"px), got {width} x {height} px")
    if spec.even_width and width % 2:
        raise ImageConversionError(f"{encoding!r} needs an even width (pixel pairs), got {width}")


def _check_size(width: int, height: int, max_pixels: Any) -> None:
    limit = _count("max_pixels", max_pixels)
    if width == 0 or height == 0:
        raise ImageConversionError(f"empty image: width {width} px x height {height} px")
    if width * height > limit:
        raise ImageConversionError(
            f"image of {width} x {height} = {width * height} px exceeds max_pixels={limit}"
        )


def _byte_buffer(data: Any) -> np.ndarray:
    """View ``data`` (bytes, bytearray, array('B'), memoryview, uint8 ndarray) as 1-D uint8.

    Objects with the buffer protocol are viewed without a copy; other int sequences are copied.
    """
    try:
        if isinstance(data, np.ndarray):  # rosbags messages hold uint8 ndarrays
            return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        pass
    # A sequence of ints: range-checked here, since numpy 1.x wraps out-of-range values into
    # uint8 (with only a DeprecationWarning) where numpy 2 raises.
    try:
        values = np.asarray(data)
    except (TypeError, ValueError, OverflowError) as err:
        raise ImageConversionError(
            f"image data of type {type(data).__name__} is not a byte buffer: {err}"
        ) from err
    if values.size == 0:
        return np.empty(0, np.uint8)
    if values.dtype.kind not in "biu":
        raise ImageConversionError(
            f"image data of type {type(data).__name__} is not a byte buffer: its elements are"
            f" {values.dtype}, not integers 0-255")
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 255:
        raise ImageConversionError(
            f"image data of type {type(data).__name__} is not a byte buffer: values must be "
            f"0-255, got {low} to {high}")
    return values.astype(np.uint8).reshape(-1)


def encoding_layout(encoding: str) -> tuple[int, np.dtype]:
    """Return the channel count and native sample dtype of a ROS encoding.

    Args:
        encoding: A ROS image encoding, e.g. ``"bgr8"``.

    Returns:
        ``(channels, dtype)``, e.g. ``(3, dtype('uint8'))``.

    Raises:
        ImageConversionError: ``encoding`` is not supported.

    """
    spec = _lookup(encoding)
    return spec.channels, spec.dtype


def is_color(encoding: str) -> bool:
    """True if ``encoding`` carries colour (Bayer and YUV included), False for grey ones.

    Raises:
        ImageConversionError: ``encoding`` is not supported.
    """
    return _lookup(encoding).bgr != cv2.COLOR_GRAY2BGR


def decode_image(
    data: Any,
    *,
    encoding: str,
    width: int,
    height: int,
    step: int,
    is_bigendian: bool | int = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    copy: bool = False,
) -> np.ndarray:
    """View a raw ``sensor_msgs/Image`` buffer as a numpy array in the encoding's layout.

    Without ``copy`` the result shares memory with ``data`` whenever the byte order is native
    and the rows are aligned for the dtype (always for 8-bit encodings): it is a strided view
    that skips row padding, and it is read-only when ``data`` is immutable (``bytes``).

    Args:
        data: ``step * height`` bytes or more: bytes, bytearray, ``array('B')``, memoryview or
            a uint8 ndarray (what rclpy and rosbags messages hold). Extra trailing bytes are
            ignored.
        encoding: ROS encoding, one of :data:`SUPPORTED_ENCODINGS`.
        width: Columns in px.
        height: Rows in px (of the Y plane for nv12/nv21).
        step: Bytes per row, at least ``width * bytes per pixel``; the rest is padding. For
            nv12/nv21 at least ``width`` (one Y byte per px; a chroma row has as many bytes).
        is_bigendian: True if multi-byte samples are big-endian; they are swapped to native.
        max_pixels: Refuse images with more than this many px before touching the data.
        copy: Return a writable, C-contiguous array that owns its memory.

    Returns:
        ``(height, width)`` for one-channel encodings, else ``(height, width, channels)``;
        ``(height * 3/2, width)`` for nv12/nv21; dtype uint8, uint16 or float32 (native
        byte order).

    Raises:
        ImageConversionError: Unknown encoding, empty or oversized image, ``step`` too small,
            ``data`` too short (``step * height``, ``step * height * 3/2`` for nv12/nv21)
            or not a byte buffer, odd width for yuv422/uyvy/yuyv, odd width or height for
            nv12/nv21.

    """
    spec = _lookup(encoding)
    width, height, step = _count("width", width), _count("height", height), _count("step", step)
    _check_size(width, height, max_pixels)
    itemsize = spec.dtype.itemsize
    pixel_bytes = spec.channels * itemsize
    if step < width * pixel_bytes:
        raise ImageConversionError(
            f"step {step} B is smaller than width {width} px x {pixel_bytes} B/px = "
            f"{width * pixel_bytes} B for encoding {encoding!r}"
        )
    _check_subsampling(encoding, spec, width, height)
    rows = _rows(spec, height)
    buffer = _byte_buffer(data)
    if buffer.size < step * rows:
        planes = f" (height {height} x 3/2: Y and chroma planes)" if spec.planar_420 else ""
        raise ImageConversionError(
            f"image data is {buffer.size} B, shorter than step {step} B x "
            f"{'rows' if spec.planar_420 else 'height'} {rows}{planes} = {step * rows} B"
        )
    shape: tuple[int, ...] = (rows, width)
    strides: tuple[int, ...] = (step, pixel_bytes)
    if spec.channels > 1:
        shape, strides = (*shape, spec.channels), (*strides, itemsize)
    swap = itemsize > 1 and bool(is_bigendian) != _NATIVE_BIGENDIAN
    dtype = spec.dtype.newbyteorder("S") if swap else spec.dtype
    view = np.ndarray(shape, dtype=dtype, buffer=buffer, strides=strides)
    if swap or copy or not view.flags.aligned:
        # np.array, not ascontiguousarray: the latter returns the (read-only) view itself
        # when it is already contiguous and native, and copy=True promises owned memory.
        return np.array(view, dtype=spec.dtype, order="C", copy=True)
    return view


def image_msg_to_array(
    msg: ImageMessageLike, *, max_pixels: int = DEFAULT_MAX_PIXELS, copy: bool = False
) -> np.ndarray:
    """Convert any object with ``sensor_msgs/Image`` fields to an array (see :func:`decode_image`).

    Args:
        msg: An rclpy or rosbags ``Image``, or any object with ``encoding``, ``width``,
            ``height``, ``step``, ``is_bigendian`` and ``data`` attributes.
        max_pixels: Refuse images with more than this many px.
        copy: Return an array that owns its memory instead of a view of ``msg.data``.

    Returns:
        The image in its encoding's native layout, as :func:`decode_image` returns it.

    Raises:
        ImageConversionError: A field is missing or any check of :func:`decode_image` fails.

    """
    fields = ("data", "encoding", "width", "height", "step", "is_bigendian")
    missing = [name for name in fields if not hasattr(msg, name)]
    if missing:
        raise ImageConversionError(
            f"{type(msg).__name__} is not an image message: no field {', '.join(missing)}"
        )
    return decode_image(
        msg.data,
        encoding=msg.encoding,
        width=msg.width,
        height=msg.height,
        step=msg.step,
        is_bigendian=msg.is_bigendian,
        max_pixels=max_pixels,
        copy=copy,
    )


def _check_layout(array: Any, encoding: str, spec: _Encoding) -> np.ndarray:
    """Return ``array`` as (H, W[, C]) in native byte order, checked against ``spec``."""
    if not isinstance(array, np.ndarray):
        raise ImageConversionError(f"expected a numpy array, got {type(array).__name__}")
    if array.dtype.newbyteorder("=") != spec.dtype:
        raise ImageConversionError(
            f"encoding {encoding!r} needs dtype {spec.dtype}, got {array.dtype}"
        )
    if spec.channels == 1 and array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    expected_ndim = 2 if spec.channels == 1 else 3
    if (array.ndim != expected_ndim or (expected_ndim == 3 and array.shape[2] != spec.channels)
            or (spec.planar_420 and array.shape[0] % 3)):
        want = "(H, W)" if spec.channels == 1 else f"(H, W, {spec.channels})"
        if spec.planar_420:
            want = "(H * 3/2, W): H rows of Y, then H/2 rows of chroma"
        raise ImageConversionError(
            f"encoding {encoding!r} needs shape {want}, got {array.shape}"
        )
    height, width = _pixel_shape(spec, array)
    if width == 0 or height == 0:
        raise ImageConversionError(f"empty image: width {width} px x height {height} px")
    _check_subsampling(encoding, spec, width, height)
    if not array.dtype.isnative:
        array = array.astype(spec.dtype)
    return array


def _pixel_shape(spec: _Encoding, array: np.ndarray) -> tuple[int, int]:
    """(height, width) in px of an array in ``spec``'s layout."""
    rows, width = array.shape[:2]
    return (rows * 2 // 3 if spec.planar_420 else rows), width


def image_shape(array: np.ndarray, encoding: str) -> tuple[int, int]:
    """Return the ``(height, width)`` in px of an image array in ``encoding``'s layout.

    The array's first two dimensions, except for nv12/nv21, whose ``(H * 3/2, W)`` array is
    an image of H x W px (what ``sensor_msgs/Image`` calls height and width).

    Raises:
        ImageConversionError: Unknown encoding, or the array does not match it.

    """
    spec = _lookup(encoding)
    return _pixel_shape(spec, _check_layout(array, encoding, spec))


def validate_array(array: np.ndarray, encoding: str) -> np.ndarray:
    """Check an array against an encoding and return it C-contiguous in native byte order.

    Args:
        array: ``(H, W)`` (or ``(H, W, 1)``) for one channel, else ``(H, W, C)``.
        encoding: ROS encoding the array is claimed to hold.

    Returns:
        ``array`` itself when already suitable, else a contiguous native-order copy; one-channel
        images are returned as ``(H, W)``.

    Raises:
        ImageConversionError: Unknown encoding, not an ndarray, wrong dtype, channel count or
            number of dimensions, empty image, odd width for yuv422/uyvy/yuyv, rows not a
            multiple of 3 or odd width or height for nv12/nv21.

    """
    return np.ascontiguousarray(_check_layout(array, encoding, _lookup(encoding)))


def encode_image(array: np.ndarray, encoding: str) -> EncodedImage:
    """Pack an array into a ``sensor_msgs/Image``-style buffer without row padding.

    Args:
        array: Image in the encoding's layout (see :func:`validate_array`).
        encoding: ROS encoding, one of :data:`SUPPORTED_ENCODINGS`.

    Returns:
        The bytes and the ``width``/``height``/``step``/``is_bigendian`` fields.

    Raises:
        ImageConversionError: The array does not match the encoding.

    """
    spec = _lookup(encoding)
    packed = np.ascontiguousarray(_check_layout(array, encoding, spec))
    height, width = _pixel_shape(spec, packed)
    return EncodedImage(
        data=packed.tobytes(),
        width=width,
        height=height,
        step=packed.strides[0],
        encoding=encoding,
        is_bigendian=_NATIVE_BIGENDIAN,
    )


def _to_8bit(array: np.ndarray) -> np.ndarray:
    """Reduce uint16 (x 255/65535, rounded, as ROS 2 cv_bridge) or float32 ([0, 1]) to uint8."""
    if array.dtype == _U8:
        return array
    if array.dtype == _U16:
        return cv2.convertScaleAbs(array, alpha=255.0 / 65535.0)
    scaled = np.clip(array, 0.0, 1.0, dtype=np.float32)  # before scaling: no overflow on 3e38
    np.nan_to_num(scaled, copy=False, nan=0.0)
    np.multiply(scaled, np.float32(255.0), out=scaled)
    return np.rint(scaled, out=scaled).astype(np.uint8)


def _convert(array: np.ndarray, encoding: str, target: str) -> np.ndarray:
    spec = _lookup(encoding)
    checked = _check_layout(array, encoding, spec)
    code = spec.gray if target == "gray" else spec.bgr
    if code is None:
        raise ImageConversionError(
            f"encoding {encoding!r} ({spec.channels} x {spec.dtype}) is not an image; "
            f"it has no {target} conversion"
        )
    image = _to_8bit(checked)
    if code == _SAME:
        return image
    try:
        return cv2.cvtColor(image, code)
    except cv2.error as err:
        message = f"OpenCV cannot convert {encoding!r} to {target}: {err}"
        raise ImageConversionError(message) from err


def to_gray(array: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an image in any supported encoding to 8-bit grey, the input of flow algorithms.

    16-bit data is scaled by 255/65535 and rounded, exactly as ROS 2 cv_bridge converts mono16
    to mono8 (so 65535 -> 255); float data in [0, 1] maps to [0, 255], clipped, NaN to 0.
    Bayer mosaics are demosaiced, YUV 4:2:2 and 4:2:0 keep their Y plane.

    Args:
        array: Image in the encoding's layout, as :func:`decode_image` returns it.
        encoding: Its ROS encoding.

    Returns:
        uint8 ``(H, W)`` (H px, also for the ``(H * 3/2, W)`` arrays of nv12/nv21); the input
        itself when it already is 8-bit grey (mono8, 8UC1).

    Raises:
        ImageConversionError: Unknown encoding, array not matching it, or a non-image encoding
            (32FC2).

    """
    return _convert(array, encoding, "gray")


def to_bgr(array: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an image in any supported encoding to 8-bit BGR, for drawing and display.

    Depth reduction is as in :func:`to_gray`; grey images are replicated to three channels.

    Args:
        array: Image in the encoding's layout, as :func:`decode_image` returns it.
        encoding: Its ROS encoding.

    Returns:
        uint8 ``(H, W, 3)`` (H px, as :func:`to_gray`); the input itself when it already is
        bgr8 or 8UC3.

    Raises:
        ImageConversionError: Unknown encoding, array not matching it, or a non-image encoding
            (32FC2).

    """
    return _convert(array, encoding, "bgr")


def compressed_format(fmt: str) -> str:
    """Return ``"jpeg"`` or ``"png"`` from a ``sensor_msgs/CompressedImage.format`` string.

    Accepts plain ``"jpeg"``, ``"jpg"``, ``"png"`` (any case) and image_transport's
    ``"<encoding>; <jpeg|png> compressed <encoding>"``.

    Args:
        fmt: The format string.

    Returns:
        ``"jpeg"`` or ``"png"``.

    Raises:
        ImageConversionError: Unknown format, or ``compressedDepth``, which is not supported.

    """
    if not isinstance(fmt, str):
        raise ImageConversionError(f"compressed format must be a string, got {fmt!r}")
    if "compresseddepth" in fmt.lower():
        raise ImageConversionError(
            f"compressed format {fmt!r} (compressed_depth_image_transport) is not supported; "
            "subscribe to the raw depth image instead"
        )
    words = fmt.rsplit(";", 1)[-1].split()
    kind = _FORMAT_ALIASES.get(words[0].lower()) if words else None
    if kind is None:
        raise ImageConversionError(
            f"unknown compressed image format {fmt!r}; supported: 'jpeg', 'png' and "
            "image_transport's '<encoding>; jpeg|png compressed <encoding>'"
        )
    return kind


def _png_size(buffer: np.ndarray) -> tuple[int, int]:
    """Return (width, height) from a PNG's IHDR chunk, the first after the signature."""
    head = buffer[:24].tobytes()
    if head[:8] != _PNG_SIGNATURE:
        raise ImageConversionError(f"data is not a PNG: it starts with {head[:8]!r}")
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise ImageConversionError(
            f"corrupt or truncated PNG ({buffer.size} B): no IHDR chunk after the signature"
        )
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _jpeg_size(buffer: np.ndarray) -> tuple[int, int]:
    """Return (width, height) from a JPEG's SOFn segment, walking the markers from SOI.

    Segments are skipped by their length fields, so the walk costs one step per segment; it
    gives up after ``_JPEG_MAX_SEGMENTS`` so that hostile data cannot make it slow.
    """
    data = memoryview(buffer)
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise ImageConversionError(f"data is not a JPEG: it starts with {bytes(data[:4])!r}")
    i = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        fill = _JPEG_FILL.match(data, i)  # a marker: one or more 0xFF, then its code
        if fill is None:
            if i >= n:
                break
            raise ImageConversionError(f"corrupt JPEG: expected a marker at byte {i}")
        i = fill.end()
        if i + 1 > n:
            break
        marker = data[i]
        i += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA, 0x00):
            raise ImageConversionError(
                f"corrupt JPEG: marker 0x{marker:02X} at byte {i - 1} before any frame header"
            )
        if i + 2 > n:
            break
        length = data[i] << 8 | data[i + 1]
        if length < 2:
            raise ImageConversionError(f"corrupt JPEG: segment length {length} at byte {i}")
        if marker in _JPEG_SOF:
            if i + 7 > n:
                break
            height = data[i + 3] << 8 | data[i + 4]
            width = data[i + 5] << 8 | data[i + 6]
            if height == 0:
                raise ImageConversionError("JPEG with height set by a DNL marker is not supported")
            return width, height
        i += length
    else:
        raise ImageConversionError(
            f"corrupt JPEG: no frame header (SOF) in the first {_JPEG_MAX_SEGMENTS} segments"
        )
    raise ImageConversionError(f"truncated JPEG ({n} B): no frame header (SOF) found")


def _check_jpeg_complete(buffer: np.ndarray) -> None:
    """Refuse a JPEG whose data ends before its end-of-image (EOI) marker.

    Walks the whole structure from SOI: marker segments by their length fields, each scan's
    entropy-coded data to the first marker after it (:data:`_JPEG_SCAN_END`; stuffed 0xFF00
    and restart markers belong to the scan), then the next segments (a progressive JPEG has
    several scans), until EOI. A frame cut anywhere (a lost packet's tail, a buffer filled only
    partly) therefore has no EOI and is refused, whatever the decoder would make of it
    (OpenCV 4.6's ``imdecode`` returns the image with its missing part grey). Bytes after EOI
    are ignored, as decoders do: drivers pad fixed-size buffers, and MPF appends more images.
    Linear in the size; no allocation.

    Raises:
        ImageConversionError: the data ends before EOI ("truncated JPEG") or holds bytes
            where a marker must be ("corrupt JPEG").
    """
    data = memoryview(buffer)
    n = len(data)
    i = 2  # after SOI, checked by _jpeg_size
    where = "the header segments"
    for _ in range(_JPEG_MAX_SEGMENTS):
        fill = _JPEG_FILL.match(data, i)
        if fill is None:
            if i >= n:
                break
            raise ImageConversionError(f"corrupt JPEG: expected a marker at byte {i}")
        i = fill.end()
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == _JPEG_EOI:
            return
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0x00:
            raise ImageConversionError(f"corrupt JPEG: marker 0x00 at byte {i - 1}")
        if i + 2 > n:
            break
        length = data[i] << 8 | data[i + 1]
        if length < 2:
            raise ImageConversionError(f"corrupt JPEG: segment length {length} at byte {i}")
        i += length
        if i > n:
            where = f"the segment of marker 0x{marker:02X}"
            break
        if marker == _JPEG_SOS:
            end = _JPEG_SCAN_END.search(data, i)
            if end is None:
                where = "the scan data"
                break
            i = end.start()
    else:
        raise ImageConversionError(
            f"corrupt JPEG: no end-of-image marker in the first {_JPEG_MAX_SEGMENTS} segments")
    raise ImageConversionError(
        f"truncated JPEG ({n} B): the data ends inside {where}, before the end-of-image marker")


def decode_compressed(
    data: Any, *, fmt: str, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, str]:
    """Decode JPEG or PNG bytes, refusing oversized images before decoding them.

    The width and height declared in the PNG IHDR / JPEG SOF header are checked against
    ``max_pixels`` first, so a small hostile file cannot make the decoder allocate gigabytes.

    Args:
        data: The compressed bytes (bytes, ``array('B')``, memoryview or uint8 ndarray).
        fmt: ``CompressedImage.format``, see :func:`compressed_format`.
        max_pixels: Refuse images declaring more than this many px.

    Returns:
        ``(array, encoding)`` with encoding ``"mono8"`` ``(H, W)`` uint8, ``"mono16"``
        ``(H, W)`` uint16 (PNG), ``"bgr8"`` ``(H, W, 3)`` or ``"bgra8"`` ``(H, W, 4)`` (PNG).

    Raises:
        ImageConversionError: Unknown or compressedDepth format, data not of that format,
            corrupt or truncated data, oversized image, or a pixel layout with no supported
            encoding (16-bit colour PNG).

    """
    kind = compressed_format(fmt)
    buffer = _byte_buffer(data)
    width, height = _png_size(buffer) if kind == "png" else _jpeg_size(buffer)
    _check_size(width, height, max_pixels)
    if kind == "jpeg":
        # Every 8x8 block of a complete JPEG costs at least one bit: fewer bytes is truncated
        # data, which libjpeg would "decode" at full size as grey filler (hundreds of MB).
        least = -(-width // 8) * -(-height // 8) // 8
        if buffer.size < least:
            raise ImageConversionError(
                f"truncated JPEG ({buffer.size} B): {width} x {height} px need at least "
                f"{least} B")
        _check_jpeg_complete(buffer)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise ImageConversionError(f"OpenCV cannot decode {kind} data: {err}") from err
    if image is None:
        raise ImageConversionError(
            f"corrupt or truncated {kind} data ({buffer.size} B, declared {width} x {height} px)"
        )
    channels = 1 if image.ndim == 2 else image.shape[2]
    encoding = _DECODED_ENCODING.get((image.dtype, channels))
    if encoding is None:
        raise ImageConversionError(
            f"decoded {kind} has {channels} channel(s) of {image.dtype}; supported: 8-bit grey,"
            " BGR, BGRA and 16-bit grey"
        )
    if channels == 1 and image.ndim == 3:
        image = image[:, :, 0]
    return image, encoding


def encode_compressed(
    array: np.ndarray, *, fmt: str = "jpeg", jpeg_quality: int = 95, png_level: int = 3
) -> tuple[bytes, str]:
    """Compress a mono8, mono16, bgr8 or bgra8 array to JPEG or PNG.

    The encoding is inferred from the array: uint8 ``(H, W)`` mono8, ``(H, W, 3)`` bgr8,
    ``(H, W, 4)`` bgra8, uint16 ``(H, W)`` mono16. JPEG stores only mono8 and bgr8. Convert
    other encodings with :func:`to_bgr` or :func:`to_gray` first.

    Args:
        array: The image.
        fmt: ``"jpeg"`` (or ``"jpg"``) or ``"png"``.
        jpeg_quality: JPEG quality, 0-100.
        png_level: PNG zlib compression level, 0-9.

    Returns:
        ``(data, format)`` where ``format`` is image_transport's
        ``"<encoding>; <jpeg|png> compressed <encoding>"``.

    Raises:
        ImageConversionError: Unknown format, an array layout the format cannot store, a
            quality/level out of range, or an OpenCV failure.

    """
    kind = compressed_format(fmt)
    if not isinstance(array, np.ndarray):
        raise ImageConversionError(f"expected a numpy array, got {type(array).__name__}")
    encoding = None
    if array.ndim in (2, 3):  # before reading shape[-1]: a 0-d array has none
        channels = 1 if array.ndim == 2 else array.shape[-1]
        encoding = _DECODED_ENCODING.get((array.dtype, channels))
    extension, storable = _COMPRESSED[kind]
    if encoding is None or encoding not in storable:
        raise ImageConversionError(
            f"{kind} cannot store an array of shape {array.shape} and dtype {array.dtype}; "
            f"it stores {', '.join(sorted(storable))}"
        )
    array = validate_array(array, encoding)
    if kind == "jpeg":
        quality = _count("jpeg_quality", jpeg_quality)
        if quality > 100:
            raise ImageConversionError(f"jpeg_quality must be 0-100, got {quality}")
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    else:
        level = _count("png_level", png_level)
        if level > 9:
            raise ImageConversionError(f"png_level must be 0-9, got {level}")
        params = [cv2.IMWRITE_PNG_COMPRESSION, level]
    try:
        ok, encoded = cv2.imencode(extension, array, params)
    except cv2.error as err:
        raise ImageConversionError(f"OpenCV cannot encode {kind}: {err}") from err
    if not ok:
        raise ImageConversionError(f"OpenCV failed to encode {array.shape} {encoding} as {kind}")
    return encoded.tobytes(), f"{encoding}; {kind} compressed {encoding}"
