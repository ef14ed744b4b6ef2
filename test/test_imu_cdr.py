"""The gyro fields read from an Imu's CDR bytes are the deserialised message's, exactly.

Ground truth: rclpy's own serialisation and deserialisation of the same message (frame ids
of every length, so every padding before the doubles), and a big-endian encoding built here
field by field. The velocity inputs fed the bytes end in the same state, sample for sample
and bit for bit, as fed the messages, invalid samples and a bag loop included.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Imu
from std_msgs.msg import Header

from optical_flow_ros.core.fit_window import VelocityTiming
from optical_flow_ros.ros.diagnostics import Counts
from optical_flow_ros.ros.imu_cdr import gyro_fields
from optical_flow_ros.ros.velocity_inputs import VelocityInputConfig, VelocityInputs


def _imu(rng: np.random.Generator, frame_id: str, stamp: float | None = None) -> Imu:
    msg = Imu(header=Header(frame_id=frame_id))
    stamp = rng.uniform(0.0, 2e9) if stamp is None else stamp
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(round(stamp * 1e9), 10**9)
    msg.orientation.x, msg.orientation.w = rng.normal(size=2)
    msg.orientation_covariance = list(rng.normal(size=9))
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = rng.normal(size=3)
    msg.angular_velocity_covariance = list(rng.normal(size=9))
    msg.linear_acceleration.z = 9.81
    msg.linear_acceleration_covariance = list(rng.normal(size=9))
    return msg


def _expected(msg: Imu) -> tuple[float, np.ndarray, np.ndarray]:
    w = msg.angular_velocity
    return (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
            np.array([w.x, w.y, w.z]), np.array(msg.angular_velocity_covariance).reshape(3, 3))


def _assert_fields(got: tuple | None, want: tuple) -> None:
    assert got is not None
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


@pytest.mark.parametrize("frame_id_len", range(0, 18))
def test_fields_equal_the_deserialised_message_for_every_padding(frame_id_len):
    rng = np.random.default_rng(frame_id_len)
    msg = _imu(rng, "f" * frame_id_len)
    data = serialize_message(msg)
    _assert_fields(gyro_fields(data), _expected(deserialize_message(data, Imu)))


def _big_endian(msg: Imu) -> bytes:
    """The plain big-endian CDR of ``msg``, written field by field."""
    frame_id = msg.header.frame_id.encode() + b"\0"
    body = struct.pack(">iII", msg.header.stamp.sec, msg.header.stamp.nanosec,
                       len(frame_id)) + frame_id
    body += b"\0" * (-len(body) % 8)
    q = msg.orientation
    for values in ([q.x, q.y, q.z, q.w], msg.orientation_covariance,
                   [msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z],
                   msg.angular_velocity_covariance,
                   [msg.linear_acceleration.x, msg.linear_acceleration.y,
                    msg.linear_acceleration.z], msg.linear_acceleration_covariance):
        body += struct.pack(f">{len(values)}d", *values)
    return b"\x00\x00\x00\x00" + body


def test_big_endian_cdr_is_read_too():
    rng = np.random.default_rng(3)
    for frame_id in ("", "imu", "imu_link_0"):
        msg = _imu(rng, frame_id)
        _assert_fields(gyro_fields(_big_endian(msg)), _expected(msg))


def test_other_encodings_are_left_to_rclpy_and_truncated_ones_refused():
    data = serialize_message(_imu(np.random.default_rng(4), "imu"))
    assert gyro_fields(b"\x00\x07" + data[2:]) is None          # XCDR2: not read here
    with pytest.raises(ValueError, match="too short"):
        gyro_fields(data[:150])                                  # inside angular_velocity


def test_velocity_inputs_from_bytes_equal_those_from_messages():
    rng = np.random.default_rng(11)
    config = VelocityInputConfig(imu_roll=0.4, imu_pitch=0.1, imu_yaw=-2.0)
    counts = {"msg": Counts(), "cdr": Counts()}
    inputs = {k: VelocityInputs(None, c, config) for k, c in counts.items()}
    stamps = list(50.0 + np.arange(3000) * 1e-3) + list(50.0 + np.arange(500) * 1e-3)  # loop
    for k, stamp in enumerate(stamps):
        msg = _imu(rng, "imu_link", stamp)
        if k % 101 == 7:
            msg.angular_velocity.y = math.nan                      # invalid: counted
        if k % 211 == 5:
            msg.angular_velocity_covariance[0] = -1.0              # not provided: counted
        inputs["msg"].on_imu(msg)
        inputs["cdr"].on_imu_cdr(serialize_message(msg))
    inputs["cdr"].on_imu_cdr(b"\x00\x01\x00\x00\x05")              # not an Imu: counted
    counts["msg"].count("imu_received")
    counts["msg"].count("imu_invalid")
    assert counts["msg"] == counts["cdr"] and counts["cdr"]["imu_invalid"] > 40
    for a, b in zip(inputs["msg"]._gyro.samples(), inputs["cdr"]._gyro.samples(), strict=True):
        np.testing.assert_array_equal(a, b)
    timing = VelocityTiming(start=50.3, end=50.45, lag=0.07, samples=5)
    for a, b in zip(inputs["msg"].gyro(timing, 0.002), inputs["cdr"].gyro(timing, 0.002),
                    strict=True):
        np.testing.assert_array_equal(a, b)
