"""The camera as an optical-flow sensor: one frame's flow as MAVLink flow sensors report it.

PX4 reads ``OPTICAL_FLOW_RAD`` (id 106), ArduPilot's MAVLink flow backend ``OPTICAL_FLOW``
(id 100, or OPTICAL_FLOW_RAD in newer releases), both optionally with a ``DISTANCE_SENSOR``
(id 132) rangefinder. This module turns one frame's flow (:class:`FlowMeasurement`) into the
fields of those messages, with the MAVLink spec's units and signs, as plain dataclasses (no
MAVLink library here; ``optical_flow_ros.ros.mavlink_output`` encodes and sends them).

Sensor frame. A flow sensor reports rates about its own x and y axes; for a camera they are
the optical frame's (x = image right, y = image down, z = along the optical axis, towards the
ground). "Raw" flow includes the camera's rotation: a right-handed rotation about +x gives a
positive x flow, a motion along +y a negative one, a motion along +x a positive y flow, so the
raw flow rate is ``(wx - vy / d, wy + vx / d)`` (rad/s; ``w`` the angular velocity, ``v`` the
linear velocity, ``d`` the distance along the optical axis). This is PX4Flow's convention
(``integrated_x = pixel_flow_y / f``, ``integrated_y = -pixel_flow_x / f``). The fields are
then rotated about the optical axis by the mounting yaw (:func:`yaw_rotation`, ``Rz(yaw)``,
the rotation PX4 applies for ``SENS_FLOW_ROT`` and ArduPilot for ``FLOW_ORIENT_YAW``), so with
the yaw set here the autopilot's own rotation parameter stays 0.

Integration. A sensor reports the flow integrated over the interval since its previous
report. The translational part, ``(-vy / d, vx / d)``, changes slowly and is taken at the image
stamp times the interval; the rotational part comes from the gyro integral over the interval
when an IMU is present (the same integral sent in ``integrated_*gyro``, so the autopilot's
``flow - gyro`` leaves exactly the translational flow), else from the rate in the flow
estimate times the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

__all__ = [
    "FULL_QUALITY_INLIERS",
    "MAV_DISTANCE_SENSOR_INFRARED",
    "MAV_DISTANCE_SENSOR_ULTRASOUND",
    "MAV_DISTANCE_SENSOR_UNKNOWN",
    "MAV_SENSOR_ROTATION_PITCH_270",
    "DistanceSensorFields",
    "FlowMeasurement",
    "OpticalFlowFields",
    "OpticalFlowRadFields",
    "RangeSample",
    "SensorFields",
    "flow_quality",
    "integrate_rates",
    "sensor_fields",
    "yaw_rotation",
]

#: Inlier tracks at which the reported quality saturates (fewer scale it down linearly).
FULL_QUALITY_INLIERS = 100
#: MAV_DISTANCE_SENSOR values (MAVLink common.xml).
MAV_DISTANCE_SENSOR_ULTRASOUND = 1
MAV_DISTANCE_SENSOR_INFRARED = 2
MAV_DISTANCE_SENSOR_UNKNOWN = 4
#: MAV_SENSOR_ORIENTATION of a rangefinder looking down (what both autopilots expect for a
#: downward rangefinder: PX4 uses only this orientation for terrain, ArduPilot RNGFND1_ORIENT 25).
MAV_SENSOR_ROTATION_PITCH_270 = 25
_INT16_MAX = 32767
_UINT16_MAX = 65535
_UINT32_MAX = 2**32 - 1
_COVARIANCE_UNKNOWN = 255      # DISTANCE_SENSOR.covariance: UINT8_MAX = unknown


class RangeSample(NamedTuple):
    """A rangefinder reading along the optical axis.

    Attributes:
        distance: m.
        age: image stamp minus the reading's stamp, s (>= 0 when the reading is older).
        min_range: the rangefinder's minimum, m.
        max_range: its maximum, m.
        kind: one of the ``MAV_DISTANCE_SENSOR_*`` values.
    """

    distance: float
    age: float
    min_range: float
    max_range: float
    kind: int = MAV_DISTANCE_SENSOR_UNKNOWN


@dataclass(frozen=True)
class FlowMeasurement:
    """One frame's flow, in the camera optical frame.

    Attributes:
        time_usec: the image's stamp, µs.
        interval: time the flow covers, from the previous processed frame to this one, s;
            0 when there is none (first frame, or after a gap or a stamp going back).
        flow_rate: (2,) raw flow rate about x and y at the image stamp, rad/s (rotation
            included, see the module docstring); NaN when the frame has no valid flow.
        angular: (3,) the angular velocity included in ``flow_rate``, rad/s (NaN if unknown).
        gyro_integral: (3,) integral of the IMU's rate over the interval, rad; None without
            an IMU reading covering it.
        velocity: (3,) metric camera velocity, m/s; NaN unless it was estimated.
        n_inliers: tracks agreeing with the flow fit.
        n_tracks: tracks used by the fit.
        range: the rangefinder reading, or None.
    """

    time_usec: int
    interval: float
    flow_rate: np.ndarray
    angular: np.ndarray
    gyro_integral: np.ndarray | None = None
    velocity: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    n_inliers: int = 0
    n_tracks: int = 0
    range: RangeSample | None = None

    @property
    def valid(self) -> bool:
        """True when the frame has a flow over a known interval."""
        return bool(np.isfinite(self.flow_rate).all()) and self.interval > 0.0


@dataclass(frozen=True)
class OpticalFlowRadFields:
    """OPTICAL_FLOW_RAD (id 106) fields, MAVLink units (sensor frame = rotated optical frame).

    Attributes:
        time_usec: image stamp, µs.
        sensor_id: sensor id.
        integration_time_us: interval the integrals cover, µs.
        integrated_x: flow about x over the interval, rad (0 when quality is 0).
        integrated_y: flow about y over the interval, rad (0 when quality is 0).
        integrated_xgyro: gyro rotation about x over the interval, rad; NaN without an IMU.
        integrated_ygyro: likewise about y, rad.
        integrated_zgyro: likewise about z, rad.
        temperature: centi-degrees Celsius (0: a camera reports none).
        quality: 0 (no valid flow) to 255.
        time_delta_distance_us: age of ``distance`` at the image stamp, µs.
        distance: distance along the optical axis, m; -1 when unknown.
    """

    time_usec: int
    sensor_id: int
    integration_time_us: int
    integrated_x: float
    integrated_y: float
    integrated_xgyro: float
    integrated_ygyro: float
    integrated_zgyro: float
    temperature: int
    quality: int
    time_delta_distance_us: int
    distance: float


@dataclass(frozen=True)
class OpticalFlowFields:
    """OPTICAL_FLOW (id 100) fields, MAVLink units (sensor frame = rotated optical frame).

    Attributes:
        time_usec: image stamp, µs.
        sensor_id: sensor id.
        flow_x: pixel flow along the sensor's x over the interval, deci-pixels (PX4Flow's
            ``pixel_flow_x * 10``: ``-10 f integrated_y``), clipped to int16.
        flow_y: likewise along y (``10 f integrated_x``), deci-pixels.
        flow_comp_m_x: rotation-compensated velocity along the sensor's x, m/s (PX4Flow's
            meaning); 0 when the metric velocity is unknown.
        flow_comp_m_y: likewise along y, m/s.
        quality: 0 (no valid flow) to 255.
        ground_distance: distance along the optical axis, m; -1 when unknown.
        flow_rate_x: raw flow rate about x, rad/s (``integrated_x / interval``).
        flow_rate_y: raw flow rate about y, rad/s.
    """

    time_usec: int
    sensor_id: int
    flow_x: int
    flow_y: int
    flow_comp_m_x: float
    flow_comp_m_y: float
    quality: int
    ground_distance: float
    flow_rate_x: float
    flow_rate_y: float


@dataclass(frozen=True)
class DistanceSensorFields:
    """DISTANCE_SENSOR (id 132) fields of the rangefinder, MAVLink units.

    Attributes:
        time_boot_ms: ms (the caller's time base, since its start).
        min_distance: cm.
        max_distance: cm.
        current_distance: cm.
        type: MAV_DISTANCE_SENSOR.
        id: sensor id.
        orientation: MAV_SENSOR_ORIENTATION (25, pitch 270: downward).
        covariance: cm^2; 255 = unknown.
    """

    time_boot_ms: int
    min_distance: int
    max_distance: int
    current_distance: int
    type: int
    id: int
    orientation: int
    covariance: int


class SensorFields(NamedTuple):
    """Everything one frame sends; ``distance_sensor`` None without a range reading."""

    flow_rad: OpticalFlowRadFields
    flow: OpticalFlowFields
    distance_sensor: DistanceSensorFields | None


def flow_quality(n_inliers: int, n_tracks: int) -> int:
    """Quality 1-255 of a valid flow fit (0 without inliers).

    The inlier share of the tracks, scaled down linearly below :data:`FULL_QUALITY_INLIERS`
    inliers.
    """
    if n_inliers <= 0 or n_tracks <= 0:
        return 0
    share = min(n_inliers / n_tracks, 1.0) * min(n_inliers / FULL_QUALITY_INLIERS, 1.0)
    return int(np.clip(round(255.0 * share), 1, 255))


def yaw_rotation(yaw_deg: float) -> np.ndarray:
    """``Rz(yaw)`` (3x3): sensor-frame vectors of a sensor mounted at ``yaw_deg`` (deg)."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def integrate_rates(times: np.ndarray, rates: np.ndarray, t0: float, t1: float, *,
                    max_extrapolation: float) -> np.ndarray | None:
    """Integral (rad) of sampled angular rates over ``[t0, t1]`` (s).

    The rate is linear between samples (the trapezoid rule, exact for a piecewise-linear
    rate) and extended past the first/last sample along the line through the two nearest
    ones, by at most ``max_extrapolation`` s (an IMU sample often arrives just after the image
    it belongs to).

    Args:
        times: (M,) increasing sample stamps, s.
        rates: (M, 3) rates, rad/s.
        t0: start of the interval, s.
        t1: end, s (> t0).
        max_extrapolation: longest extension beyond the samples, s.

    Returns:
        (3,) rad, or None when the samples do not cover the interval (within the extension)
        or fewer than two are given while the interval is not covered.
    """
    t = np.asarray(times, np.float64).reshape(-1)
    w = np.asarray(rates, np.float64).reshape(-1, 3)
    if t.size == 0 or not t1 > t0:
        return None
    if t0 < t[0] - max_extrapolation or t1 > t[-1] + max_extrapolation:
        return None
    inside = (t > t0) & (t < t1)
    knots = np.concatenate(([t0], t[inside], [t1]))
    values = np.vstack((_rate_at(t, w, t0), w[inside], _rate_at(t, w, t1)))
    if not np.isfinite(values).all():
        return None
    steps = np.diff(knots)[:, None]
    return (0.5 * (values[1:] + values[:-1]) * steps).sum(axis=0)


def _rate_at(t: np.ndarray, w: np.ndarray, at: float) -> np.ndarray:
    """The piecewise-linear rate at ``at``, extended linearly beyond the samples."""
    if t.size == 1:
        return w[0].copy()
    if at <= t[0]:
        i = 0
    elif at >= t[-1]:
        i = t.size - 2
    else:
        i = int(np.searchsorted(t, at, side="right")) - 1
        i = min(i, t.size - 2)
    span = t[i + 1] - t[i]
    if span <= 0.0:
        return w[i + 1].copy()
    return w[i] + (w[i + 1] - w[i]) * ((at - t[i]) / span)


def sensor_fields(measurement: FlowMeasurement, *, yaw_deg: float = 0.0, sensor_id: int = 0,
                  focal_px: float = math.nan, time_boot_ms: int = 0) -> SensorFields:
    """The MAVLink fields of one frame (see the module docstring for frames and signs).

    Args:
        measurement: the frame's flow.
        yaw_deg: mounting yaw of the optical frame on the vehicle, deg (``Rz(yaw)``).
        sensor_id: the messages' sensor id.
        focal_px: focal length, px, for OPTICAL_FLOW's pixel flow (0 there when NaN).
        time_boot_ms: DISTANCE_SENSOR's time stamp, ms.

    Returns:
        The fields; a frame without a valid flow has quality 0 and zero flow, the gyro and
        distance fields still filled.
    """
    m = measurement
    rot = yaw_rotation(yaw_deg)
    dt = m.interval
    quality = flow_quality(m.n_inliers, m.n_tracks) if m.valid else 0
    integrated = np.zeros(3)
    if quality > 0:
        rate = np.asarray(m.flow_rate, np.float64)
        rotation_part = np.asarray(m.angular, np.float64)[:2]
        if m.gyro_integral is not None and np.isfinite(rotation_part).all():
            integrated[:2] = (rate - rotation_part) * dt + np.asarray(m.gyro_integral)[:2]
        else:
            integrated[:2] = rate * dt
        integrated = rot @ integrated
    gyro = (rot @ np.asarray(m.gyro_integral, np.float64) if m.gyro_integral is not None
            else np.full(3, np.nan))
    distance, age_us = -1.0, 0
    if m.range is not None and math.isfinite(m.range.distance):
        distance = float(m.range.distance)
        age_us = int(np.clip(round(m.range.age * 1e6), 0, _UINT32_MAX))
    interval_us = int(np.clip(round(dt * 1e6), 0, _UINT32_MAX)) if dt > 0.0 else 0
    flow_rad = OpticalFlowRadFields(
        time_usec=int(m.time_usec), sensor_id=int(sensor_id), integration_time_us=interval_us,
        integrated_x=float(integrated[0]), integrated_y=float(integrated[1]),
        integrated_xgyro=float(gyro[0]), integrated_ygyro=float(gyro[1]),
        integrated_zgyro=float(gyro[2]), temperature=0, quality=quality,
        time_delta_distance_us=age_us, distance=distance)
    return SensorFields(flow_rad, _optical_flow(flow_rad, m, rot, focal_px),
                        _distance_sensor(m.range, sensor_id, time_boot_ms))


def _optical_flow(rad: OpticalFlowRadFields, m: FlowMeasurement, rot: np.ndarray,
                  focal_px: float) -> OpticalFlowFields:
    """OPTICAL_FLOW from the OPTICAL_FLOW_RAD fields (same frame, rates instead of integrals)."""
    rate = np.zeros(2)
    pixels = np.zeros(2)
    if rad.quality > 0:
        dt = m.interval
        rate = np.array([rad.integrated_x, rad.integrated_y]) / dt
        if math.isfinite(focal_px):
            # PX4Flow: integrated_x = pixel_flow_y / f, integrated_y = -pixel_flow_x / f.
            pixels = 10.0 * focal_px * np.array([-rad.integrated_y, rad.integrated_x])
    velocity = np.asarray(m.velocity, np.float64)
    compensated = rot @ velocity if np.isfinite(velocity).all() else np.zeros(3)
    dpix = np.clip(np.round(pixels), -_INT16_MAX, _INT16_MAX).astype(int)
    return OpticalFlowFields(
        time_usec=rad.time_usec, sensor_id=rad.sensor_id, flow_x=int(dpix[0]),
        flow_y=int(dpix[1]), flow_comp_m_x=float(compensated[0]),
        flow_comp_m_y=float(compensated[1]), quality=rad.quality,
        ground_distance=rad.distance, flow_rate_x=float(rate[0]), flow_rate_y=float(rate[1]))


def _distance_sensor(reading: RangeSample | None, sensor_id: int,
                     time_boot_ms: int) -> DistanceSensorFields | None:
    if reading is None or not math.isfinite(reading.distance):
        return None

    def cm(value: float) -> int:
        return int(np.clip(round(value * 100.0), 0, _UINT16_MAX))

    return DistanceSensorFields(
        time_boot_ms=int(time_boot_ms) & _UINT32_MAX, min_distance=cm(reading.min_range),
        max_distance=cm(reading.max_range), current_distance=cm(reading.distance),
        type=int(reading.kind), id=int(sensor_id), orientation=MAV_SENSOR_ROTATION_PITCH_270,
        covariance=_COVARIANCE_UNKNOWN)
