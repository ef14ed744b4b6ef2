"""The gyro fields of a serialised sensor_msgs/Imu, read straight from its CDR bytes.

A 1 kHz IMU makes deserialisation the largest per-message cost left once the executor no
longer wakes for each sample: rclpy builds the whole message (header, quaternion, three
vectors, three covariance arrays) for ~30 us, of which the velocity stage needs the stamp,
the angular velocity and its covariance. Those are at fixed places after the frame id in
plain (XCDR1) CDR, the encoding ROS 2's Fast DDS middleware writes: this reads them for ~1 us.
Any other encoding (another middleware's XCDR2, say) is left to rclpy (:func:`gyro_fields`
returns None), so the values are always those of the deserialised message.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["GyroFields", "gyro_fields"]

GyroFields = tuple[float, np.ndarray, np.ndarray]
"""(header stamp s, angular velocity (3,) rad/s, its covariance (3, 3) (rad/s)^2)."""

# Encapsulation identifiers (RTPS 10.5): plain CDR, big- and little-endian.
_CDR_BE, _CDR_LE = b"\x00\x00", b"\x00\x01"
_HEADER = {_CDR_BE: struct.Struct(">iII"), _CDR_LE: struct.Struct("<iII")}
_DOUBLES = {_CDR_BE: np.dtype(">f8"), _CDR_LE: np.dtype("<f8")}
_ENCAPSULATION = 4     # bytes before the body; CDR alignment counts from the body's start
# After the frame id (aligned to 8): orientation (4 doubles) and its covariance (9), then
# angular_velocity (3) and its covariance (9).
_ANGULAR_OFFSET = (4 + 9) * 8
_ANGULAR_DOUBLES = 3 + 9


def gyro_fields(data: bytes) -> GyroFields | None:
    """Stamp, angular velocity and its covariance of a serialised Imu; None if not plain CDR.

    Args:
        data: the message as the middleware delivers it (encapsulation header first).

    Returns:
        The same values as ``deserialize_message(data, Imu)`` gives (stamp as
        ``sec + nanosec * 1e-9``), or None for an encoding this does not read.

    Raises:
        ValueError: plain CDR too short for an Imu (a truncated message).
    """
    kind = data[:2]
    header = _HEADER.get(kind)
    if header is None:
        return None
    if len(data) < _ENCAPSULATION + header.size:
        raise ValueError(f"serialised Imu of {len(data)} bytes is too short")
    sec, nanosec, frame_id_len = header.unpack_from(data, _ENCAPSULATION)
    body = 12 + frame_id_len                   # after the frame id, from the body's start
    body += -body % 8                          # doubles are 8-aligned in plain CDR
    start = _ENCAPSULATION + body + _ANGULAR_OFFSET
    if len(data) < start + _ANGULAR_DOUBLES * 8:
        raise ValueError(f"serialised Imu of {len(data)} bytes is too short "
                         f"(frame id of {frame_id_len} bytes)")
    values = np.frombuffer(data, _DOUBLES[kind], _ANGULAR_DOUBLES, start)
    if kind == _CDR_BE:
        values = values.astype(np.float64)
    return sec + nanosec * 1e-9, values[:3], values[3:].reshape(3, 3)
