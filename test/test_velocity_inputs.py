"""The velocity inputs' gyro history, without ROS: the same samples as a plain deque, always.

The history keeps the newest 2000 samples within 2 s of the newest one, and restarts when
time goes back (a bag loop). It lives in preallocated arrays that it compacts when full;
here a 1 kHz stream long enough to compact many times, with loops and gaps, is checked
sample for sample against the deque it replaced, and the gyro rates handed to the velocity
stage are compared bit for bit.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from sensor_msgs.msg import Imu
from std_msgs.msg import Header

from optical_flow_ros.core.fit_window import VelocityTiming
from optical_flow_ros.core.gyro_rates import gyro_rates
from optical_flow_ros.ros.diagnostics import Counts
from optical_flow_ros.ros.velocity_inputs import VelocityInputConfig, VelocityInputs, imu_rotation


def _imu(stamp: float, rate: np.ndarray, cov: float) -> Imu:
    msg = Imu(header=Header())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(round(stamp * 1e9), 10**9)
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = map(float, rate)
    msg.angular_velocity_covariance = [cov, 0.0, 0.0, 0.0, cov, 0.0, 0.0, 0.0, cov]
    return msg


def _stream(rng: np.random.Generator) -> list[float]:
    """Stamps at 1 kHz with jitter, a 3 s gap, a loop back in time and a 300 Hz stretch."""
    stamps = list(100.0 + np.arange(4500) * 1e-3 + rng.uniform(0, 2e-4, 4500))
    stamps += list(stamps[-1] + 3.0 + np.arange(500) * 1e-3)          # a gap longer than 2 s
    stamps += list(100.0 + np.arange(3000) * 1e-3)                    # the bag loops
    stamps += list(stamps[-1] + 1e-3 + np.arange(900) / 300.0)        # slower IMU
    return stamps


def test_gyro_history_equals_the_deque_it_replaced():
    rng = np.random.default_rng(7)
    config = VelocityInputConfig(imu_roll=0.3, imu_pitch=-0.2, imu_yaw=1.1, sensor_max_age=0.2)
    counts = Counts()
    inputs = VelocityInputs(None, counts, config)
    rot = imu_rotation(config)
    ref_t: deque[float] = deque(maxlen=2000)
    ref_w: deque[np.ndarray] = deque(maxlen=2000)
    stamps = _stream(rng)
    checked = 0
    for k, stamp in enumerate(stamps):
        rate = rng.normal(0.0, 0.3, 3)
        msg = _imu(stamp, rate, 4e-6)
        inputs.on_imu(msg)
        t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if ref_t and t <= ref_t[-1]:
            ref_t.clear()
            ref_w.clear()
        ref_t.append(t)
        ref_w.append(rot @ rate)
        while ref_t[0] < t - 2.0:
            ref_t.popleft()
            ref_w.popleft()
        if k % 97 == 0 or k == len(stamps) - 1:
            times, rates = inputs._gyro.samples()
            np.testing.assert_array_equal(times, np.fromiter(ref_t, np.float64))
            np.testing.assert_array_equal(rates, np.array(ref_w))
            timing = VelocityTiming(start=t - 0.15, end=t + 0.003, lag=0.07, samples=5)
            got = inputs.gyro(timing, gyro_std=0.002)
            want = gyro_rates(np.fromiter(ref_t, np.float64), np.array(ref_w), timing,
                              max_age=0.2, covariance=rot @ (np.eye(3) * 4e-6) @ rot.T)
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)
            checked += 1
    assert checked > 90
    assert counts["imu_received"] == len(stamps) and counts["imu_invalid"] == 0


def test_received_readings_are_counted_valid_or_not():
    counts = Counts()
    inputs = VelocityInputs(None, counts, VelocityInputConfig())
    inputs.on_imu(_imu(1.0, np.zeros(3), 0.0))
    inputs.on_imu(_imu(1.1, np.array([np.nan, 0.0, 0.0]), 0.0))
    assert counts["imu_received"] == 2 and counts["imu_invalid"] == 1
