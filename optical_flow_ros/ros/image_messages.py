"""``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` <-> numpy arrays.

A thin layer over :mod:`optical_flow_ros.core.image_codec`, which does all checks and
conversions. Message ``data`` is always written as ``array('B')``: rclpy stores that as is,
while a numpy array goes through a per-element Python check (~57 ms at 640x480 bgr8) and
``bytes`` costs a second copy. Received messages hold ``array('B')``, which the decoders view
without copying.
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from optical_flow_ros.core.image_codec import (
    DEFAULT_MAX_PIXELS,
    decode_compressed,
    encode_compressed,
    image_msg_to_array,
    image_shape,
    validate_array,
)

__all__ = [
    "array_to_compressed_msg",
    "array_to_image_msg",
    "compressed_msg_to_array",
    "image_msg_to_array",
]


def _byte_array(buffer: bytes | np.ndarray) -> array.array:
    """Copy a C-contiguous array or bytes into the ``array('B')`` rclpy stores for uint8[]."""
    data = array.array("B")
    data.frombytes(buffer.reshape(-1).view(np.uint8) if isinstance(buffer, np.ndarray) else buffer)
    return data


def array_to_image_msg(
    array: np.ndarray, encoding: str, header: Header | None = None
) -> Image:
    """Build a ``sensor_msgs/Image`` from an array (the cv_bridge ``cv2_to_imgmsg`` role).

    Args:
        array: ``(H, W)`` or ``(H, W, C)`` with the encoding's dtype, ``(H * 3/2, W)`` for
            nv12/nv21 (see :func:`~optical_flow_ros.core.image_codec.validate_array`).
        encoding: ROS encoding, e.g. ``"bgr8"``, ``"mono8"``, ``"32FC2"``.
        header: Copied into the message; default an empty header.

    Returns:
        The message, rows unpadded (``step = width * bytes per pixel``), host byte order.

    Raises:
        ImageConversionError: The array does not match the encoding.

    """
    packed = validate_array(array, encoding)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = image_shape(packed, encoding)
    msg.encoding = encoding
    msg.is_bigendian = int(packed.dtype.byteorder == ">")
    msg.step = packed.strides[0]
    msg.data = _byte_array(packed)
    return msg


def compressed_msg_to_array(
    msg: CompressedImage, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, str]:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG).

    Args:
        msg: The message (any object with ``format`` and ``data``, e.g. from rosbags).
        max_pixels: Refuse images whose header declares more px, before decoding.

    Returns:
        ``(array, encoding)``; encoding is ``"mono8"``, ``"mono16"``, ``"bgr8"`` or
        ``"bgra8"``.

    Raises:
        ImageConversionError: Unknown or ``compressedDepth`` format, corrupt, truncated or
            oversized data.

    """
    return decode_compressed(msg.data, fmt=msg.format, max_pixels=max_pixels)


def array_to_compressed_msg(
    array: np.ndarray,
    fmt: str = "jpeg",
    header: Header | None = None,
    *,
    jpeg_quality: int = 95,
    png_level: int = 3,
) -> CompressedImage:
    """Compress an array into a ``sensor_msgs/CompressedImage``.

    Args:
        array: uint8 ``(H, W)`` mono8, ``(H, W, 3)`` bgr8, ``(H, W, 4)`` bgra8 (PNG only) or
            uint16 ``(H, W)`` mono16 (PNG only).
        fmt: ``"jpeg"`` or ``"png"``.
        header: Copied into the message; default an empty header.
        jpeg_quality: JPEG quality, 0-100.
        png_level: PNG compression level, 0-9.

    Returns:
        The message, ``format`` in image_transport's form, e.g.
        ``"bgr8; jpeg compressed bgr8"``.

    Raises:
        ImageConversionError: Unknown format, an array the format cannot store, or an
            encoder failure.

    """
    data, format_string = encode_compressed(
        array, fmt=fmt, jpeg_quality=jpeg_quality, png_level=png_level
    )
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = format_string
    msg.data = _byte_array(data)
    return msg
