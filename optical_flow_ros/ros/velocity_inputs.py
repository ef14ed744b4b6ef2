"""The velocity stage's ROS edge: distance and gyro inputs in, TwistWithCovarianceStamped out.

Subscribes (best effort):
    range (sensor_msgs/Range, keep last 5): distance to the scene along the optical axis.
        Readings that are NaN, +-inf (REP-117: below min_range / beyond max_range), <= 0 or
        outside the message's own [min_range, max_range] are ignored and counted
        (``range_invalid``). Its ``variance`` (m^2; Kilted and later: Jazzy's Range has no
        such field) is the distance's variance when > 0, else ``distance_rel_std`` applies.
    imu (sensor_msgs/Imu, keep last ``imu_depth``): angular velocity only, rotated into the
        camera optical frame by the ``imu_roll``/``imu_pitch``/``imu_yaw`` parameters.
        Non-finite rates and messages marking angular velocity as not provided
        (covariance[0] = -1, REP-145) are ignored and counted (``imu_invalid``); an all-zero
        covariance means unknown (``gyro_std``). The queue holds the samples that arrive
        while the node works on a frame or waits for the CPU: with 5 (the sensor-data
        default) a 1 kHz IMU lost 27-37 % of its samples, with 100 up to 8 % (60 Hz images),
        with 1000 none (bench/bench_input_mix.py, a loaded 2-core machine).
Every message is counted (``range_received``, ``imu_received``).

The executor does not wake for these messages: both subscriptions are polled
(:mod:`optical_flow_ros.ros.polled_input`), i.e. the node takes everything queued with
:meth:`VelocityInputs.poll` before each frame and from a 50 ms timer, and the imu messages are
read from their CDR bytes (:mod:`optical_flow_ros.ros.imu_cdr`) rather than deserialised.
Both queues hold what arrives between two polls (imu: ``imu_depth``; range: 10, 100 ms at
100 Hz, every valid reading of which goes to the velocity stage's distance filter,
:class:`~optical_flow_ros.core.distance_filter.DistanceFilter`).

The range readings since the last frame and a short history of gyro samples are cached with
their header stamps; each frame filters the readings (or, with ``distance_filter`` off, takes
the newest) and takes the gyro samples of the tracks' velocity
window (:func:`~optical_flow_ros.core.gyro_rates.gyro_rates`), both only within
``sensor_max_age`` of the image stamp. No message synchronisation is needed.

The IMU rotation parameters are the rotation of the IMU frame relative to the camera optical
frame, ``R_optical_imu = Rz(yaw) Ry(pitch) Rx(roll)`` (what tf2's static_transform_publisher
takes with ``--frame-id <optical frame> --child-frame-id <imu frame>``); a rate ``w`` measured
by the IMU is ``R_optical_imu @ w`` in the optical frame. Examples: an IMU publishing in the
optical frame (sim_camera_node): 0, 0, 0. A downward camera whose image top points forward,
on a body whose IMU is x forward, y left, z up: roll = pi, pitch = 0, yaw = -pi/2.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import TwistWithCovarianceStamped
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Imu, Range
from std_msgs.msg import Header

from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.fit_window import VelocityTiming
from optical_flow_ros.core.flow_sensor import (
    MAV_DISTANCE_SENSOR_INFRARED,
    MAV_DISTANCE_SENSOR_ULTRASOUND,
    MAV_DISTANCE_SENSOR_UNKNOWN,
    RangeSample,
    integrate_rates,
)
from optical_flow_ros.core.gyro_rates import GyroRates, gyro_rates
from optical_flow_ros.core.velocity_estimator import VelocityEstimate
from optical_flow_ros.ros.diagnostics import CountSink
from optical_flow_ros.ros.image_input import stamp_to_seconds
from optical_flow_ros.ros.imu_cdr import gyro_fields
from optical_flow_ros.ros.polled_input import PolledGroup, PolledSubscription
from optical_flow_ros.ros.qos import keep_last_qos

__all__ = ["SensorQueueConfig", "VelocityInputConfig", "VelocityInputs", "covariance_sources",
           "imu_rotation", "velocity_msg"]

_GYRO_HISTORY = 2000      # samples kept at most (2 s at 1 kHz)
_GYRO_HISTORY_S = 2.0     # and only this far back from the newest, s
_RANGE_DEPTH = 10         # 100 ms at 100 Hz between polls
_NEW_RANGES_MAX = 200     # readings kept for the next frame at most (2 s at 100 Hz)
_RANGE_KINDS = {Range.ULTRASOUND: MAV_DISTANCE_SENSOR_ULTRASOUND,
                Range.INFRARED: MAV_DISTANCE_SENSOR_INFRARED}


@dataclass(frozen=True)
class SensorQueueConfig:
    """How many range/imu messages the subscriptions keep while the node is busy (start-up)."""

    imu_depth: int = setting(
        1000, "imu QoS keep-last depth: gyro samples kept while the node is busy (1000 = 1 s "
        "at 1 kHz), so none of the velocity window is lost", range=(1, 10000))

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass(frozen=True)
class VelocityInputConfig:
    """Where the velocity stage of tracker_node gets its distance and gyro rates."""

    estimate_velocity: bool = setting(
        True, "Estimate the camera velocity and publish flow/velocity (only once camera_info "
        "and a distance are available)")
    distance: float = setting(
        0.0, "Fixed distance to the scene along the optical axis, m; 0 = use the range topic",
        range=(0.0, 1e6))
    imu_roll: float = setting(
        0.0, "Rotation of the IMU frame relative to the camera optical frame, roll about x "
        "(R = Rz(yaw) Ry(pitch) Rx(roll)), rad", range=(-10.0, 10.0))
    imu_pitch: float = setting(
        0.0, "Rotation of the IMU frame relative to the camera optical frame, pitch about y, "
        "rad", range=(-10.0, 10.0))
    imu_yaw: float = setting(
        0.0, "Rotation of the IMU frame relative to the camera optical frame, yaw about z, rad",
        range=(-10.0, 10.0))
    sensor_max_age: float = setting(
        0.2, "range and imu readings further than this from the image stamp are not used, s",
        range=(0.0, 3600.0), exclusive_min=True)

    def __post_init__(self) -> None:
        validate_fields(self)


def imu_rotation(config: VelocityInputConfig) -> np.ndarray:
    """``R_optical_imu = Rz(yaw) Ry(pitch) Rx(roll)`` of the configured angles (3x3)."""
    cr, sr = math.cos(config.imu_roll), math.sin(config.imu_roll)
    cp, sp = math.cos(config.imu_pitch), math.sin(config.imu_pitch)
    cy, sy = math.cos(config.imu_yaw), math.sin(config.imu_yaw)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz @ ry @ rx


class _GyroHistory:
    """Recent gyro samples (stamps s, optical-frame rates rad/s) in preallocated arrays.

    The newest ``capacity`` samples within ``_GYRO_HISTORY_S`` of the newest one, oldest
    first, as two contiguous views: nothing is converted per frame, and a sample costs two
    array writes (a 1 kHz IMU keeps 2000 samples).
    """

    def __init__(self, capacity: int = _GYRO_HISTORY) -> None:
        self._capacity = capacity
        self._t = np.empty(2 * capacity, np.float64)
        self._w = np.empty((2 * capacity, 3), np.float64)
        self._start = self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def clear(self) -> None:
        """Forget every sample."""
        self._start = self._end = 0

    def newest_stamp(self) -> float:
        """Stamp of the newest sample (the history must not be empty), s."""
        return float(self._t[self._end - 1])

    def append(self, stamp: float, rate: np.ndarray) -> None:
        """Add a sample newer than all kept; drop the ones now too many or too old."""
        if self._end == self._t.shape[0]:          # full: move the kept samples to the front
            n = self._end - self._start
            self._t[:n] = self._t[self._start:self._end]
            self._w[:n] = self._w[self._start:self._end]
            self._start, self._end = 0, n
        self._t[self._end] = stamp
        self._w[self._end] = rate
        self._end += 1
        self._start = max(self._start, self._end - self._capacity)
        oldest = stamp - _GYRO_HISTORY_S
        while self._t[self._start] < oldest:
            self._start += 1

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(M,) stamps and (M, 3) rates, oldest first (views: valid until the next append)."""
        return self._t[self._start:self._end], self._w[self._start:self._end]


class VelocityInputs:
    """Caches range and gyro readings for the velocity stage.

    Args:
        node: the owning node, which subscribes to ``range`` and ``imu``; None to feed
            :meth:`on_range` and :meth:`on_imu` directly (bag processing).
        diagnostics: ``range_received``, ``range_invalid``, ``imu_received`` and
            ``imu_invalid`` are counted here.
        config: read on every message (replace it to reconfigure at runtime).
        queues: the subscriptions' queue depths (with ``node``).
    """

    def __init__(self, node: Node | None, diagnostics: CountSink,
                 config: VelocityInputConfig, queues: SensorQueueConfig | None = None) -> None:
        self._diag = diagnostics
        self.config = config
        self._range: tuple[float, float, float] | None = None   # (stamp s, m, variance m^2)
        # since take_ranges(); the oldest go first if no frame takes them
        self._new_ranges: deque[tuple[float, float, float]] = deque(maxlen=_NEW_RANGES_MAX)
        self._range_limits = (0.0, 0.0, MAV_DISTANCE_SENSOR_UNKNOWN)   # min m, max m, MAV kind
        self._gyro = _GyroHistory()
        # the newest valid sample's covariance (IMU frame) and the rotation of that moment;
        # rotated into the optical frame when a frame asks (once per frame, not per sample)
        self._gyro_cov_imu: tuple[np.ndarray, np.ndarray] | None = None
        self._gyro_cov_rotated: tuple[tuple[np.ndarray, np.ndarray] | None,
                                      np.ndarray | None] = (None, None)
        self._polled: list[PolledSubscription] = []
        if node is not None:
            queues = queues or SensorQueueConfig()
            group = PolledGroup()
            self._polled = [
                PolledSubscription(node, Range, "range", self.on_range,
                                   keep_last_qos("best_effort", _RANGE_DEPTH), group),
                PolledSubscription(node, Imu, "imu", self.on_imu_cdr,
                                   keep_last_qos("best_effort", queues.imu_depth), group,
                                   raw=True),
            ]
            self.subscriptions = [polled.subscription for polled in self._polled]

    def poll(self) -> int:
        """Take every range and imu message queued now (with a node); how many there were."""
        return sum(polled.poll() for polled in self._polled)

    @property
    def config(self) -> VelocityInputConfig:
        """The settings in use."""
        return self._config

    @config.setter
    def config(self, config: VelocityInputConfig) -> None:
        self._config = config
        self._rotation = imu_rotation(config)

    def on_range(self, msg: Range) -> None:
        """Cache a range reading (invalid ones are counted and dropped)."""
        self._diag.count("range_received")
        value = float(msg.range)
        if not (math.isfinite(value) and value > 0.0 and msg.min_range <= value <= msg.max_range):
            self._diag.count("range_invalid")
            return
        variance = float(getattr(msg, "variance", 0.0))   # no such field before Kilted
        self._range = (stamp_to_seconds(msg.header), value,
                       variance if math.isfinite(variance) and variance > 0.0 else 0.0)
        self._new_ranges.append(self._range)
        self._range_limits = (float(msg.min_range), float(msg.max_range),
                              _RANGE_KINDS.get(msg.radiation_type, MAV_DISTANCE_SENSOR_UNKNOWN))

    def on_imu(self, msg: Imu) -> None:
        """Cache a gyro sample, rotated into the optical frame (invalid ones are counted)."""
        w = msg.angular_velocity
        self._on_gyro(stamp_to_seconds(msg.header), np.array([w.x, w.y, w.z], np.float64),
                      np.array(msg.angular_velocity_covariance, np.float64).reshape(3, 3))

    def on_imu_cdr(self, data: bytes) -> None:
        """:meth:`on_imu` of a serialised Imu (its CDR bytes), with the same result."""
        try:
            fields = gyro_fields(data)
        except ValueError:
            fields = None   # truncated: rclpy's deserialisation has the last word
        if fields is None:
            try:
                msg = deserialize_message(data, Imu)
            except RuntimeError:   # rclpy's RMWError: not an Imu at all
                self._diag.count("imu_received")
                self._diag.count("imu_invalid")
                return
            self.on_imu(msg)
            return
        self._on_gyro(*fields)

    def _on_gyro(self, stamp: float, rate: np.ndarray, cov: np.ndarray) -> None:
        """Cache one sample: stamp s, rate rad/s (IMU frame), covariance (3, 3)."""
        self._diag.count("imu_received")
        if not np.isfinite(rate).all() or cov[0, 0] == -1.0:
            self._diag.count("imu_invalid")
            return
        rot = self._rotation
        self._gyro_cov_imu = (cov, rot)
        history = self._gyro
        if len(history) and stamp <= history.newest_stamp():   # time went back (bag loop)
            history.clear()
        history.append(stamp, rot @ rate)

    def distance(self, stamp: float) -> tuple[float | None, str]:
        """(distance m, "") for the image at ``stamp`` (s), or (None, why not).

        The fixed ``distance`` parameter when > 0, else the latest valid range reading if it
        is within ``sensor_max_age`` of ``stamp``.
        """
        if self._config.distance > 0.0:
            return self._config.distance, ""
        if self._range is None:
            return None, "no valid range reading received and the distance parameter is 0"
        when, value, _ = self._range
        if abs(stamp - when) > self._config.sensor_max_age:
            return None, (f"the latest valid range reading is {stamp - when:.3f} s from the "
                          f"image (sensor_max_age {self._config.sensor_max_age} s)")
        return value, ""

    def take_ranges(self) -> list[tuple[float, float, float]]:
        """The valid range readings received since the last call: (stamp s, m, variance m^2).

        Variance 0: not stated (``distance_rel_std`` applies). Empty while the fixed
        ``distance`` parameter is in use (the readings are not needed then).
        """
        taken = list(self._new_ranges)
        self._new_ranges.clear()
        return [] if self._config.distance > 0.0 else taken

    def range_sample(self, stamp: float) -> RangeSample | None:
        """The latest valid range reading if within ``sensor_max_age`` of ``stamp`` (s).

        Only a measured range: the fixed ``distance`` parameter is not a reading.
        """
        if self._range is None:
            return None
        when, value, _ = self._range
        if abs(stamp - when) > self._config.sensor_max_age:
            return None
        low, high, kind = self._range_limits
        return RangeSample(value, stamp - when, low, high, kind)

    def gyro_integral(self, start: float, end: float) -> np.ndarray | None:
        """Integral of the gyro rate (optical frame) over ``[start, end]`` (s), rad.

        Linear between samples, extended past the newest one by at most one interval (and
        ``sensor_max_age``); None when the samples do not cover the interval.
        """
        if not len(self._gyro) or not end > start:
            return None
        times, rates = self._gyro.samples()
        return integrate_rates(times, rates, start, end,
                               max_extrapolation=min(self._config.sensor_max_age, end - start))

    def gyro(self, timing: VelocityTiming, gyro_std: float) -> GyroRates | None:
        """Gyro rates (optical frame) for the tracks' velocity window.

        None without any sample within ``sensor_max_age`` of the image.
        """
        if not len(self._gyro):
            return None
        times, rates = self._gyro.samples()
        return gyro_rates(times, rates, timing, max_age=self._config.sensor_max_age,
                          covariance=self._gyro_covariance(), gyro_std=gyro_std)

    def _gyro_covariance(self) -> np.ndarray | None:
        """The newest sample's gyro covariance in the optical frame, (rad/s)^2; None: unknown.

        Rotated here rather than per sample (a third of a sample's cost at 1 kHz); the same
        rotation as the sample's, so the same values as rotating on receipt.
        """
        key = self._gyro_cov_imu
        cached_key, cached = self._gyro_cov_rotated
        if key is cached_key:
            return None if cached is None else cached.copy()
        rotated = None
        if key is not None:
            cov, rot = key
            rotated = rot @ cov @ rot.T if np.any(cov) and np.isfinite(cov).all() else None
        self._gyro_cov_rotated = (key, rotated)
        return None if rotated is None else rotated.copy()


def velocity_msg(estimate: VelocityEstimate, header: Header) -> TwistWithCovarianceStamped:
    """flow/velocity message: header = the image's (stamp, optical frame id).

    Covariance row-major 6x6 over (vx, vy, vz, wx, wy, wz), m/s and rad/s.
    """
    msg = TwistWithCovarianceStamped(header=header)
    twist = msg.twist.twist
    twist.linear.x, twist.linear.y, twist.linear.z = (float(v) for v in estimate.linear)
    twist.angular.x, twist.angular.y, twist.angular.z = (float(v) for v in estimate.angular)
    msg.twist.covariance = np.ascontiguousarray(estimate.covariance, np.float64).ravel()
    return msg


def covariance_sources(estimate: VelocityEstimate) -> str:
    """/diagnostics' ``velocity_covariance_sources``: where (vx, vy)'s variance comes from.

    The terms of :attr:`VelocityEstimate.covariance_terms` with at least 1 % of it, largest
    first, e.g. ``"distance 88 %, motion_field 9 %, rotation 2 %"``; empty without terms.
    """
    shares = estimate.horizontal_shares()
    if shares is None:
        return ""
    return ", ".join(f"{name} {100.0 * share:.0f} %" for name, share in shares.items()
                     if share >= 0.01)
