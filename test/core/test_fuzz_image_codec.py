"""Fuzzing of optical_flow_ros.core.image_codec with hostile and malformed inputs.

Every input either converts correctly (an array of the declared shape and dtype, holding the
declared bytes) or raises ``ImageConversionError``; nothing else escapes. Memory stays bounded:
the peak of Python-visible allocations (numpy's included, via ``tracemalloc``) during one call
is a small multiple of the input and the output, so a header declaring 2^31 x 2^31 px over a few
bytes of data is refused before anything of that size is allocated.

Two Hypothesis profiles: ``fuzz-ci`` (300 examples per test, derandomised so CI is
reproducible) and ``fuzz-soak``, selected by ``OPTICAL_FLOW_ROS_FUZZ_EXAMPLES=<n>`` (random,
``n`` examples per test; ``bench/soak.py`` runs it with 10,000). The strategies are shared with
the node-level fuzz in ``test/test_robustness_frames.py``.
"""

from __future__ import annotations

import array
import os
import resource
import struct
import tracemalloc
import types
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from optical_flow_ros.core import image_codec as ic
from optical_flow_ros.core.errors import ImageConversionError

# ---- profiles ------------------------------------------------------------------------------

FUZZ_EXAMPLES_ENV = "OPTICAL_FLOW_ROS_FUZZ_EXAMPLES"
_SOAK_EXAMPLES = int(os.environ.get(FUZZ_EXAMPLES_ENV, "0") or 0)
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.data_too_large])
settings.register_profile("fuzz-ci", max_examples=300, derandomize=True, **_COMMON)
settings.register_profile("fuzz-soak", max_examples=max(_SOAK_EXAMPLES, 1), **_COMMON)
FUZZ = settings.get_profile("fuzz-soak" if _SOAK_EXAMPLES else "fuzz-ci")
"""The settings every fuzz test runs under (decorate with ``@FUZZ``)."""

# ---- encodings -----------------------------------------------------------------------------

# Independent statement of the layouts of the supported encodings (sensor_msgs
# image_encodings.hpp), not read from the module under test.
LAYOUT: dict[str, tuple[int, np.dtype]] = {
    "mono8": (1, np.dtype(np.uint8)), "mono16": (1, np.dtype(np.uint16)),
    "8UC1": (1, np.dtype(np.uint8)), "8UC3": (3, np.dtype(np.uint8)),
    "8UC4": (4, np.dtype(np.uint8)), "16UC1": (1, np.dtype(np.uint16)),
    "32FC1": (1, np.dtype(np.float32)), "32FC2": (2, np.dtype(np.float32)),
    "bgr8": (3, np.dtype(np.uint8)), "rgb8": (3, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)), "rgba8": (4, np.dtype(np.uint8)),
    "bayer_rggb8": (1, np.dtype(np.uint8)), "bayer_bggr8": (1, np.dtype(np.uint8)),
    "bayer_gbrg8": (1, np.dtype(np.uint8)), "bayer_grbg8": (1, np.dtype(np.uint8)),
    "yuv422": (2, np.dtype(np.uint8)), "yuv422_yuy2": (2, np.dtype(np.uint8)),
    "uyvy": (2, np.dtype(np.uint8)), "yuyv": (2, np.dtype(np.uint8)),
    "nv12": (1, np.dtype(np.uint8)), "nv21": (1, np.dtype(np.uint8)),
}
NOT_IMAGES = {"32FC2"}  # decodable, but has no grey/BGR conversion
PLANAR = {"nv12", "nv21"}
"""Semi-planar YUV 4:2:0: H rows of Y, then H/2 rows of chroma; the array is (H * 3/2, W)."""


def rows_of(encoding: str, height: int) -> int:
    """Rows of ``step`` bytes an image ``height`` px tall occupies."""
    return height * 3 // 2 if encoding in PLANAR else height


def array_shape(encoding: str, height: int, width: int) -> tuple[int, ...]:
    """Shape of the decoded array of a ``height`` x ``width`` px image."""
    channels = LAYOUT[encoding][0]
    if channels == 1:
        return (rows_of(encoding, height), width)
    return (height, width, channels)


def pixel_shape(image: np.ndarray, encoding: str) -> tuple[int, int]:
    """(height, width) in px of a decoded array."""
    rows, width = image.shape[:2]
    return (rows * 2 // 3 if encoding in PLANAR else rows), width

# Every other encoding sensor_msgs/image_encodings.hpp (Kilted) names, and some seen in the wild.
ROS_UNSUPPORTED = (
    ["rgb16", "rgba16", "bgr16", "bgra16", "uyvy", "yuyv", "nv12", "nv21", "nv24", "yuv420",
     "bayer_rggb16", "bayer_bggr16", "bayer_gbrg16", "bayer_grbg16", "jpeg", "png"]
    + [f"{bits}{kind}C{n}" for bits, kind in [("8", "U"), ("8", "S"), ("16", "U"), ("16", "S"),
                                            ("32", "S"), ("32", "F"), ("64", "F")]
       for n in range(1, 5)]
)
ROS_UNSUPPORTED = [e for e in ROS_UNSUPPORTED if e not in LAYOUT]
# (channels, dtype) a garbage encoding is given when sizing its fields
_GUESS = (1, np.dtype(np.uint8))

encodings = st.one_of(
    st.sampled_from(sorted(LAYOUT)),
    st.sampled_from(ROS_UNSUPPORTED),
    st.sampled_from(sorted(LAYOUT)).map(str.upper),
    st.sampled_from(sorted(LAYOUT)).map(lambda e: f" {e}\x00"),
    st.text(max_size=24),
)
"""ROS encoding strings: supported, unsupported, near misses and garbage."""

# ---- raw image fields ----------------------------------------------------------------------

_HUGE = [2**15, 2**16 - 1, 2**16, 2**24, 2**31 - 1, 2**31, 2**32 - 1]
dimensions = st.one_of(st.integers(0, 48), st.sampled_from(_HUGE), st.integers(-3, -1),
                       st.integers(0, 2**31))
DATA_CAP = 1 << 18
"""Most bytes of data a generated message carries, whatever its header declares."""


def _as_container(raw: bytes, kind: str) -> Any:
    """The same bytes in one of the containers rclpy, rosbags or users hand over."""
    if kind == "bytes":
        return raw
    if kind == "bytearray":
        return bytearray(raw)
    if kind == "array":
        return array.array("B", raw)
    if kind == "memoryview":
        return memoryview(raw)
    if kind == "ndarray":
        return np.frombuffer(raw, np.uint8)
    if kind == "ndarray_u16":  # another dtype over the same bytes (odd lengths: one short)
        return np.frombuffer(raw[: len(raw) // 2 * 2], np.uint16)
    return list(raw)  # a plain list of ints


CONTAINERS = ["bytes", "bytearray", "array", "memoryview", "ndarray", "ndarray_u16", "list"]


@st.composite
def raw_images(draw: st.DrawFn) -> dict[str, Any]:
    """Fields of a sensor_msgs/Image: half well-formed, half inconsistent with each other.

    Returns a dict with ``data``, ``encoding``, ``width``, ``height``, ``step``,
    ``is_bigendian`` and the ``raw`` bytes behind ``data``.
    """
    valid = draw(st.booleans())
    if valid:  # a supported encoding, a sane size, a step and data that fit
        encoding = draw(st.sampled_from(sorted(LAYOUT)))
        width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
        if encoding in PLANAR:  # 4:2:0 needs even sizes (odd ones: the hostile half)
            width, height = width + width % 2, height + height % 2
    else:
        encoding = draw(encodings)
        width, height = draw(dimensions), draw(dimensions)
    channels, dtype = LAYOUT.get(encoding, _GUESS)
    row = max(width, 0) * channels * dtype.itemsize
    exact_or_padded = st.one_of(st.just(row), st.integers(0, 16).map(lambda pad: row + pad))
    step = draw(exact_or_padded if valid else st.one_of(
        exact_or_padded,
        st.integers(1, 8).map(lambda short: row - short),       # too small
        st.integers(-2**31, 2**33),                             # anything
        st.sampled_from(_HUGE)))
    declared = max(step, 0) * rows_of(encoding, max(height, 0))
    longer = st.integers(1, 64).map(lambda d: declared + d)
    length = draw(st.one_of(st.just(declared), longer) if valid else st.one_of(
        st.just(declared), st.integers(1, 16).map(lambda d: declared - d), longer,
        st.integers(0, 512), st.just(0)))
    length = min(max(length, 0), DATA_CAP)
    seed = draw(st.integers(0, 2**32 - 1))
    raw = np.random.default_rng(seed).integers(0, 256, length, np.uint8).tobytes()
    if draw(st.booleans()) and dtype == np.float32 and length >= 4:
        # float data with NaN/inf/huge values
        specials = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 0.5], np.float32)
        raw = np.resize(specials, length // 4).tobytes() + raw[length // 4 * 4:]
    container = draw(st.sampled_from(CONTAINERS[:5] if valid else CONTAINERS))
    return dict(data=_as_container(raw, container), raw=raw, encoding=encoding, width=width,
                height=height, step=step,
                is_bigendian=draw(st.sampled_from([0, 1, 2, 255, True, False])))


def expected_pixels(raw: bytes, encoding: str, width: int, height: int, step: int,
                    is_bigendian: Any) -> np.ndarray:
    """What a correct decoder returns: the declared rows of ``raw``, in native byte order."""
    channels, dtype = LAYOUT[encoding]
    row_bytes = width * channels * dtype.itemsize
    n_rows = rows_of(encoding, height)
    rows = np.frombuffer(raw, np.uint8, count=step * n_rows).reshape(n_rows, step)
    pixels = np.ascontiguousarray(rows[:, :row_bytes]).view(
        dtype.newbyteorder(">" if is_bigendian else "<"))
    return pixels.reshape(array_shape(encoding, height, width)).astype(dtype)


# ---- compressed data -----------------------------------------------------------------------

def _smooth(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, (3, 4, *shape[2:]),
                                                 dtype=dtype)
    return cv2.resize(small, shape[1::-1], interpolation=cv2.INTER_LINEAR)


def _encode(image: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, image, params or [])
    assert ok
    return buf.tobytes()


# Real files (small, so that a decoded mutation stays cheap): (format, bytes).
REAL_FILES: list[tuple[str, bytes]] = [
    ("png", _encode(_smooth((24, 32), np.uint8, 0), ".png")),
    ("png", _encode(_smooth((17, 9, 3), np.uint8, 1), ".png")),
    ("png", _encode(_smooth((16, 16, 4), np.uint8, 2), ".png")),
    ("png", _encode(_smooth((12, 20), np.uint16, 3), ".png")),
    ("png", _encode(_smooth((8, 8, 3), np.uint16, 4), ".png")),  # 16-bit colour: refused
    ("png", _encode(_smooth((24, 32), np.uint8, 5), ".png", [cv2.IMWRITE_PNG_COMPRESSION, 0])),
    ("jpeg", _encode(_smooth((24, 32), np.uint8, 6), ".jpg")),
    ("jpeg", _encode(_smooth((24, 40, 3), np.uint8, 7), ".jpg")),
    ("jpeg", _encode(_smooth((33, 17, 3), np.uint8, 8), ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])),
]

FORMAT_STRINGS = st.one_of(
    st.sampled_from(["jpeg", "jpg", "png", "JPEG", "PNG", "bgr8; jpeg compressed bgr8",
                     "mono8; png compressed mono8", "rgb8; jpeg compressed bgr8",
                     "16UC1; compressedDepth png", "32FC1; compressedDepth rvl", "tiff",
                     "webp", "", ";", "; ", "bgr8; ", "bgr8;jpeg"]),
    st.text(max_size=32))


def _png_declare(data: bytearray, width: int, height: int, fix_crc: bool) -> None:
    if len(data) >= 33:
        data[16:24] = struct.pack(">II", width % 2**32, height % 2**32)
        if fix_crc:
            data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))


def _jpeg_declare(data: bytearray, width: int, height: int) -> None:
    sof = next((i for i in range(2, len(data) - 9)
                if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2)), None)
    if sof is not None:
        data[sof + 5:sof + 9] = struct.pack(">HH", height % 2**16, width % 2**16)


@st.composite
def compressed_payloads(draw: st.DrawFn) -> tuple[Any, str]:
    """(data, format) of a CompressedImage: real JPEG/PNG files, mutated, or garbage."""
    fmt_kind, original = draw(st.sampled_from(REAL_FILES))
    data = bytearray(original)
    mutation = draw(st.sampled_from(["none", "truncate", "flip", "header", "splice",
                                     "garbage", "prefix", "empty"]))
    event(f"compressed mutation: {mutation}")
    if mutation == "truncate":
        del data[draw(st.integers(0, max(len(data) - 1, 0))):]
    elif mutation == "flip":
        for _ in range(draw(st.integers(1, 8))):
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] ^= 1 << draw(st.integers(0, 7))
    elif mutation == "header":
        # declared sizes: tiny, zero or absurd; never a few-megapixel band that would decode
        size = st.one_of(st.integers(0, 64), st.sampled_from(_HUGE), st.integers(2**20, 2**32))
        width, height = draw(size), draw(size)
        if fmt_kind == "png":
            _png_declare(data, width, height, draw(st.booleans()))
        else:
            _jpeg_declare(data, width, height)
    elif mutation == "splice":
        start = draw(st.integers(0, len(data)))
        stop = draw(st.integers(start, min(len(data), start + 64)))
        data[start:stop] = draw(st.binary(max_size=64))
    elif mutation == "garbage":
        data = bytearray(draw(st.binary(max_size=2048)))
    elif mutation == "prefix":
        magic = b"\x89PNG\r\n\x1a\n" if fmt_kind == "png" else b"\xff\xd8"
        data = bytearray(magic + draw(st.binary(max_size=512)))
    elif mutation == "empty":
        data = bytearray()
    fmt = draw(st.one_of(st.just(fmt_kind), FORMAT_STRINGS))
    return _as_container(bytes(data), draw(st.sampled_from(CONTAINERS))), fmt


# ---- the invariants ------------------------------------------------------------------------

SLACK = 64 * 1024
"""Allocation allowance of one call beyond its input and output (messages, tracebacks), B."""
MAX_EXPANSION = 2048
"""Most decoded bytes per compressed byte of a complete image: deflate stops at ~1032 (PNG);
a JPEG needs at least one bit per 8x8 block per component (<= 512 px/B; grey or BGR)."""
_RSS_GROWTH_LIMIT_KB = 256 * 1024


@dataclass
class Outcome:
    """What one call did: ``value`` or ``error``, and its peak traced allocation in B."""

    value: Any
    error: ImageConversionError | None
    peak: int


def run_traced(call: Callable[[], Any]) -> Outcome:
    """Run ``call`` under tracemalloc; any exception other than ImageConversionError fails."""
    tracemalloc.start()
    try:
        value = call()
        error = None
    except ImageConversionError as err:
        value, error = None, err
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return Outcome(value=value, error=error, peak=peak)


def input_size(data: Any) -> int:
    """Bytes the input occupies (a list of ints counts one byte per element)."""
    if isinstance(data, np.ndarray):
        return data.nbytes
    try:
        return len(memoryview(data).cast("B"))
    except TypeError:
        return len(data)


def assert_refused_cheaply(outcome: Outcome, data: Any) -> None:
    assert outcome.peak <= 2 * input_size(data) + SLACK, (
        f"refusal allocated {outcome.peak} B for {input_size(data)} B of input: {outcome.error}")


def assert_array_result_bounded(outcome: Outcome, data: Any) -> None:
    out = outcome.value[0] if isinstance(outcome.value, tuple) else outcome.value
    limit = 3 * out.nbytes + 2 * input_size(data) + SLACK
    assert outcome.peak <= limit, f"{outcome.peak} B allocated for a {out.nbytes} B result"


def _max_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class RssGuard:
    """Fails the test if the process's peak RSS grew by more than the limit during it.

    tracemalloc does not see allocations made inside OpenCV or libpng/libjpeg; this catches a
    decoder that allocates an absurd size there.
    """

    def __enter__(self) -> RssGuard:
        self._start = _max_rss_kb()
        return self

    def __exit__(self, *exc: object) -> None:
        grown = _max_rss_kb() - self._start
        assert grown < _RSS_GROWTH_LIMIT_KB, f"peak RSS grew by {grown} kB"


# ---- tests: raw buffers --------------------------------------------------------------------

def _check_conversions(image: np.ndarray, encoding: str) -> None:
    """to_gray/to_bgr of a decoded image: uint8 of the right shape, or refused (32FC2)."""
    height, width = pixel_shape(image, encoding)
    for convert, shape in ((ic.to_gray, (height, width)), (ic.to_bgr, (height, width, 3))):
        outcome = run_traced(lambda c=convert: c(image, encoding))
        if encoding in NOT_IMAGES:
            assert outcome.error is not None
            continue
        assert outcome.error is None, outcome.error
        assert outcome.value.dtype == np.uint8 and outcome.value.shape == shape
        assert outcome.peak <= 4 * image.nbytes + 3 * height * width * 3 + SLACK


@FUZZ
@given(fields=raw_images(),
       max_pixels=st.one_of(st.just(ic.DEFAULT_MAX_PIXELS), st.integers(0, 4096),
                            st.integers(-2, 2**40)))
def test_decode_image_converts_correctly_or_refuses(fields, max_pixels):
    data, encoding = fields["data"], fields["encoding"]
    width, height, step = fields["width"], fields["height"], fields["step"]
    with RssGuard():
        outcome = run_traced(lambda: ic.decode_image(
            data, encoding=encoding, width=width, height=height, step=step,
            is_bigendian=fields["is_bigendian"], max_pixels=max_pixels))
        if outcome.error is not None:
            event("refused")
            assert_refused_cheaply(outcome, data)
            return
        event("decoded")
        out = outcome.value
        assert encoding in LAYOUT
        channels, dtype = LAYOUT[encoding]
        assert out.shape == array_shape(encoding, height, width)
        assert out.dtype == dtype and out.dtype.isnative
        assert 0 < width * height <= max_pixels
        assert step * rows_of(encoding, height) <= input_size(data)
        if encoding in PLANAR:
            assert width % 2 == 0 and height % 2 == 0
        raw = fields["raw"]
        if isinstance(data, np.ndarray) and data.dtype == np.uint16:
            raw = raw[: len(raw) // 2 * 2]
        np.testing.assert_array_equal(
            out, expected_pixels(raw, encoding, width, height, step, fields["is_bigendian"]))
        assert_array_result_bounded(outcome, data)
        _check_conversions(out, encoding)


@FUZZ
@given(fields=raw_images(),
       missing=st.sets(st.sampled_from(["data", "encoding", "width", "height", "step",
                                        "is_bigendian"]), max_size=2),
       copy=st.booleans())
def test_image_msg_to_array_refuses_incomplete_or_hostile_messages(fields, missing, copy):
    msg = types.SimpleNamespace(**{k: v for k, v in fields.items()
                                   if k != "raw" and k not in missing})
    outcome = run_traced(lambda: ic.image_msg_to_array(msg, copy=copy))
    if missing:
        assert outcome.error is not None and "not an image message" in str(outcome.error)
        return
    if outcome.error is not None:
        assert_refused_cheaply(outcome, fields["data"])
        return
    out = outcome.value
    encoding = fields["encoding"]
    assert out.shape == array_shape(encoding, fields["height"], fields["width"])
    assert out.dtype == LAYOUT[encoding][1]
    if copy:
        assert out.flags.owndata and out.flags.writeable and out.flags.c_contiguous


# Regression: copy=True used to return the read-only view itself for unpadded native rows.
@pytest.mark.parametrize("encoding", ["mono8", "bgr8", "mono16", "32FC1"])
def test_decode_image_copy_owns_its_memory(encoding):
    channels, dtype = LAYOUT[encoding]
    step = 4 * channels * dtype.itemsize
    data = bytes(range(step * 3))
    out = ic.decode_image(data, encoding=encoding, width=4, height=3, step=step, copy=True)
    assert out.flags.owndata and out.flags.writeable and out.flags.c_contiguous
    out[0, 0] = 0  # a writable copy: the message buffer is untouched


# ---- tests: compressed ---------------------------------------------------------------------

def _declared_png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


@FUZZ
@given(payload=compressed_payloads(),
       max_pixels=st.one_of(st.just(ic.DEFAULT_MAX_PIXELS), st.integers(0, 2048)))
def test_decode_compressed_converts_correctly_or_refuses(payload, max_pixels):
    data, fmt = payload
    with RssGuard():
        outcome = run_traced(lambda: ic.decode_compressed(data, fmt=fmt, max_pixels=max_pixels))
        if outcome.error is not None:
            event("refused")
            assert_refused_cheaply(outcome, data)
            return
        event("decoded")
        image, encoding = outcome.value
        channels, dtype = {"mono8": (1, np.uint8), "bgr8": (3, np.uint8),
                           "bgra8": (4, np.uint8), "mono16": (1, np.uint16)}[encoding]
        assert image.dtype == dtype
        assert image.shape[2:] == (() if channels == 1 else (channels,))
        height, width = image.shape[:2]
        assert 0 < width * height <= max_pixels
        raw = bytes(memoryview(data).cast("B")) if not isinstance(data, list) else bytes(data)
        if isinstance(data, np.ndarray) and data.dtype == np.uint16:
            raw = data.tobytes()
        # no decompression bomb: a few hundred bytes of truncated JPEG declaring megapixels
        # "decode" as grey filler (test_truncated_jpeg_declaring_megapixels_is_refused)
        assert image.nbytes <= MAX_EXPANSION * len(raw) + SLACK, (
            f"{len(raw)} B of {fmt!r} decoded to {image.shape} {image.dtype}")
        # the size checked against max_pixels is the size decoded
        if raw.startswith(b"\x89PNG"):
            assert (width, height) == _declared_png_size(raw)
        else:
            assert (width, height) == ic._jpeg_size(np.frombuffer(raw, np.uint8))
        assert_array_result_bounded(outcome, data)
        for target in (ic.to_gray, ic.to_bgr):
            assert target(image, encoding).shape[:2] == (height, width)


@FUZZ
@given(fmt=FORMAT_STRINGS, data=st.binary(max_size=256),
       container=st.sampled_from(CONTAINERS))
def test_format_strings_and_random_bytes(fmt, data, container):
    outcome = run_traced(lambda: ic.decode_compressed(_as_container(data, container), fmt=fmt))
    assert outcome.error is not None  # no valid image hides in 256 random bytes
    assert_refused_cheaply(outcome, data)


# ---- tests: conversions of arbitrary arrays ------------------------------------------------

_DTYPES = [np.uint8, np.uint16, np.float32, np.float64, np.int8, np.int16, np.int32, np.bool_,
           np.complex64, ">u2", ">f4", "<u2", np.object_]


def _layout(array_: np.ndarray, kind: str) -> np.ndarray:
    """The same values in another memory layout."""
    if kind == "fortran":
        return np.asfortranarray(array_)
    if kind == "flipped" and array_.ndim >= 2:
        return array_[::-1, ::-1]
    if kind == "strided" and array_.ndim >= 2:
        return np.repeat(np.repeat(array_, 2, axis=0), 2, axis=1)[::2, ::2]
    if kind == "swapped" and array_.dtype.itemsize > 1 and array_.dtype.kind in "uif":
        return array_.astype(array_.dtype.newbyteorder("S"))
    return array_


LAYOUTS = ["c", "fortran", "flipped", "strided", "swapped"]


@st.composite
def arrays(draw: st.DrawFn) -> tuple[Any, str]:
    """(array, encoding): half matching layouts in odd memory layouts, half anything.

    Anything: any dtype and rank, empty dimensions, object arrays, and non-arrays.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        encoding = draw(st.sampled_from(sorted(LAYOUT)))
        channels, dtype = LAYOUT[encoding]
        height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        if encoding in PLANAR:
            height, width = height + height % 2, width + width % 2
        shape = array_shape(encoding, height, width)
        if channels == 1 and draw(st.booleans()):
            shape = (*shape, 1)
        values = rng.uniform(-0.5, 1.5, shape) if dtype.kind == "f" else rng.integers(
            0, np.iinfo(dtype).max, shape, endpoint=True)
        return _layout(values.astype(dtype), draw(st.sampled_from(LAYOUTS))), encoding
    encoding = draw(encodings)
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([None, [[1, 2], [3, 4]], "image", 3.0, b"\x00" * 16])), \
            encoding
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.one_of(st.integers(0, 12), st.sampled_from([1, 2, 3, 4])),
                                min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    if dtype == np.object_:
        array_ = np.empty(shape, dtype)
    else:
        array_ = (rng.standard_normal(shape) * 3e4).astype(dtype)
    return _layout(array_, draw(st.sampled_from(LAYOUTS))), encoding


@FUZZ
@given(case=arrays(), target=st.sampled_from(["gray", "bgr"]))
def test_to_gray_and_to_bgr_of_any_array(case, target):
    image, encoding = case
    convert = ic.to_gray if target == "gray" else ic.to_bgr
    outcome = run_traced(lambda: convert(image, encoding))
    if outcome.error is not None:
        event("refused")
        return
    event("converted")
    assert isinstance(image, np.ndarray) and encoding in LAYOUT and encoding not in NOT_IMAGES
    out = outcome.value
    height, width = pixel_shape(image, encoding)
    assert out.dtype == np.uint8
    assert out.shape == ((height, width) if target == "gray" else (height, width, 3))
    assert outcome.peak <= 6 * image.nbytes + 3 * height * width * 3 + SLACK
    # the same pixels whatever the memory layout
    reference = convert(np.ascontiguousarray(image, image.dtype.newbyteorder("=")), encoding)
    np.testing.assert_array_equal(out, reference)


@FUZZ
@given(case=arrays(), fmt=st.sampled_from(["jpeg", "png"]))
def test_encode_compressed_round_trips_or_refuses(case, fmt):
    image, _ = case
    outcome = run_traced(lambda: ic.encode_compressed(image, fmt=fmt))
    if outcome.error is not None:
        event("refused")
        return
    event("encoded")
    data, format_string = outcome.value
    decoded, _ = ic.decode_compressed(data, fmt=format_string)
    expected = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    assert decoded.shape == expected.shape and decoded.dtype == expected.dtype
    if fmt == "png":
        np.testing.assert_array_equal(decoded, expected)


# Regression: a 0-d array used to raise IndexError (shape[-1] read before the ndim check).
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_encode_compressed_refuses_0d_array(fmt):
    with pytest.raises(ImageConversionError):
        ic.encode_compressed(np.array(7, np.uint8), fmt=fmt)


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A real 32x24 JPEG whose SOF declares ``width`` x ``height`` (its scan is then short)."""
    data = bytearray(_encode(_smooth((24, 32, 3), np.uint8, 9), ".jpg"))
    _jpeg_declare(data, width, height)
    return bytes(data)


def test_truncated_jpeg_declaring_megapixels_is_refused(monkeypatch):
    data = _jpeg_declaring(8192, 8192)
    assert len(data) < 2000

    def fail(*args, **kwargs):
        raise AssertionError(f"imdecode called on {len(data)} B declaring 8192 x 8192 px")

    monkeypatch.setattr(ic.cv2, "imdecode", fail)
    with pytest.raises(ImageConversionError, match="truncated JPEG"):
        ic.decode_compressed(data, fmt="jpeg")


def test_complete_jpegs_of_flat_images_still_decode():
    # the most compressible real JPEGs (flat black, progressive): ~2-9x above one bit per block
    for shape in [(480, 640), (480, 640, 3), (1080, 1920)]:
        for params in ([], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 0]):
            data = _encode(np.zeros(shape, np.uint8), ".jpg", params)
            image, _ = ic.decode_compressed(data, fmt="jpeg")
            assert image.shape[:2] == shape[:2]
