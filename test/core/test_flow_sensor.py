"""The MAVLink flow-sensor fields: hand-derived cases and the simulator's exact image motion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optical_flow_ros.core.flow_sensor import (
    FULL_QUALITY_INLIERS,
    FlowMeasurement,
    RangeSample,
    flow_quality,
    integrate_rates,
    sensor_fields,
    yaw_rotation,
)
from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig

F = 250.0   # px


def _measurement(flow_rate, angular=(0.0, 0.0, 0.0), *, interval=0.1, gyro=None,
                 velocity=(math.nan,) * 3, n=100, rng=None) -> FlowMeasurement:
    return FlowMeasurement(
        time_usec=1_700_000_000_123_456, interval=interval,
        flow_rate=np.asarray(flow_rate, float), angular=np.asarray(angular, float),
        gyro_integral=None if gyro is None else np.asarray(gyro, float),
        velocity=np.asarray(velocity, float), n_inliers=n, n_tracks=n, range=rng)


def test_translation_along_x_is_a_positive_y_flow_and_a_negative_x_pixel_flow():
    # vx = 1 m/s at d = 2 m: raw flow (wx - vy/d, wy + vx/d) = (0, 0.5) rad/s.
    fields = sensor_fields(_measurement([0.0, 0.5], velocity=(1.0, 0.0, 0.0)), focal_px=F)
    rad, flow = fields.flow_rad, fields.flow
    assert rad.time_usec == 1_700_000_000_123_456 and rad.integration_time_us == 100_000
    assert (rad.integrated_x, rad.integrated_y) == pytest.approx((0.0, 0.05))
    assert rad.quality == 255
    assert (flow.flow_rate_x, flow.flow_rate_y) == pytest.approx((0.0, 0.5))
    # The ground moves left in the image: -f vx/d * dt = -12.5 px = -125 dpix.
    assert (flow.flow_x, flow.flow_y) == (-125, 0)
    assert (flow.flow_comp_m_x, flow.flow_comp_m_y) == pytest.approx((1.0, 0.0))


def test_rotation_about_x_is_a_positive_x_flow_and_the_gyro_integral_is_sent():
    # Right-handed rotation about +x at 0.3 rad/s, hovering: raw flow (0.3, 0).
    fields = sensor_fields(_measurement([0.3, 0.0], [0.3, 0.0, 0.0], gyro=[0.03, 0.0, 0.01]),
                           focal_px=F)
    rad = fields.flow_rad
    assert (rad.integrated_x, rad.integrated_y) == pytest.approx((0.03, 0.0))
    assert (rad.integrated_xgyro, rad.integrated_ygyro, rad.integrated_zgyro) == \
        pytest.approx((0.03, 0.0, 0.01))
    assert fields.flow.flow_y == 75          # image moves down: +f * 0.03 rad = 7.5 px


def test_the_rotation_part_of_the_integral_is_the_gyro_integral():
    # Flow (rate at the image stamp) = translation (-0.2, 0.4) + rotation (0.1, -0.05); the
    # gyro integral over the interval (0.012, -0.004) replaces rotation * dt.
    fields = sensor_fields(_measurement([-0.1, 0.35], [0.1, -0.05, 0.0],
                                        gyro=[0.012, -0.004, 0.0]))
    rad = fields.flow_rad
    assert (rad.integrated_x, rad.integrated_y) == pytest.approx((-0.02 + 0.012, 0.04 - 0.004))
    without_imu = sensor_fields(_measurement([-0.1, 0.35], [0.1, -0.05, 0.0])).flow_rad
    assert (without_imu.integrated_x, without_imu.integrated_y) == pytest.approx((-0.01, 0.035))
    assert all(math.isnan(v) for v in (without_imu.integrated_xgyro,
                                       without_imu.integrated_ygyro,
                                       without_imu.integrated_zgyro))


@pytest.mark.parametrize(("yaw", "expected"), [
    (0.0, (0.2, 0.5)), (90.0, (-0.5, 0.2)), (180.0, (-0.2, -0.5)), (270.0, (0.5, -0.2)),
    (-90.0, (0.5, -0.2)), (45.0, ((0.2 - 0.5) / math.sqrt(2), (0.2 + 0.5) / math.sqrt(2))),
])
def test_the_mounting_yaw_rotates_flow_gyro_and_velocity_by_rz(yaw, expected):
    # A pure rotation (0.2, 0.5, 0.7) rad/s: the flow is the gyro's.
    fields = sensor_fields(_measurement([0.2, 0.5], [0.2, 0.5, 0.7], gyro=[0.02, 0.05, 0.07],
                                        velocity=(0.2, 0.5, 0.0)), yaw_deg=yaw)
    rad, flow = fields.flow_rad, fields.flow
    assert (rad.integrated_x / 0.1, rad.integrated_y / 0.1) == pytest.approx(expected)
    assert (rad.integrated_xgyro * 10, rad.integrated_ygyro * 10) == pytest.approx(expected)
    assert rad.integrated_zgyro == pytest.approx(0.07)
    assert (flow.flow_comp_m_x, flow.flow_comp_m_y) == pytest.approx(expected)
    np.testing.assert_allclose(yaw_rotation(yaw) @ [0.2, 0.5, 0.0], [*expected, 0.0],
                               atol=1e-12)


def test_no_valid_flow_sends_quality_zero_with_zero_flow_and_the_rest_filled():
    rng = RangeSample(distance=1.8, age=0.02, min_range=0.05, max_range=8.0, kind=2)
    fields = sensor_fields(_measurement([math.nan, math.nan], gyro=[0.01, 0.0, 0.0], rng=rng),
                           sensor_id=7, time_boot_ms=1234)
    rad, flow, dist = fields
    assert rad.quality == 0 and (rad.integrated_x, rad.integrated_y) == (0.0, 0.0)
    assert rad.integration_time_us == 100_000 and rad.integrated_xgyro == pytest.approx(0.01)
    assert rad.distance == pytest.approx(1.8) and rad.time_delta_distance_us == 20_000
    assert flow.quality == 0 and (flow.flow_rate_x, flow.flow_rate_y, flow.flow_x) == (0, 0, 0)
    assert flow.ground_distance == pytest.approx(1.8) and flow.sensor_id == 7
    assert (dist.current_distance, dist.min_distance, dist.max_distance) == (180, 5, 800)
    assert (dist.orientation, dist.type, dist.id, dist.time_boot_ms) == (25, 2, 7, 1234)
    first = sensor_fields(_measurement([0.1, 0.1], interval=0.0)).flow_rad
    assert first.quality == 0 and first.integration_time_us == 0      # no interval yet


def test_unknown_distance_is_minus_one_and_no_distance_sensor():
    rad, flow, dist = sensor_fields(_measurement([0.1, 0.2]))
    assert rad.distance == -1.0 and flow.ground_distance == -1.0 and dist is None
    assert rad.time_delta_distance_us == 0


def test_quality_is_the_inlier_share_scaled_below_full_quality_inliers():
    assert flow_quality(0, 50) == 0
    assert flow_quality(FULL_QUALITY_INLIERS, FULL_QUALITY_INLIERS) == 255
    assert flow_quality(400, 500) == round(255 * 0.8)
    assert flow_quality(FULL_QUALITY_INLIERS // 2, FULL_QUALITY_INLIERS // 2) == 128
    assert flow_quality(1, 10_000) == 1                  # valid flow never reads as "none"


def test_integrate_rates_is_exact_for_piecewise_linear_rates_and_extrapolates_a_little():
    t = np.array([0.0, 0.1, 0.2, 0.3])
    w = np.column_stack((1.0 + 2.0 * t, -t, np.full(4, 0.5)))
    # Integral of 1 + 2t over [0.05, 0.25] = 0.2 + (0.25^2 - 0.05^2) = 0.26.
    np.testing.assert_allclose(integrate_rates(t, w, 0.05, 0.25, max_extrapolation=0.0),
                               [0.26, -0.03, 0.1], atol=1e-12)
    # Past the newest sample along the last segment's line, within the allowance only.
    np.testing.assert_allclose(integrate_rates(t, w, 0.3, 0.35, max_extrapolation=0.1),
                               [0.05 + (0.35**2 - 0.09), -(0.35**2 - 0.09) / 2, 0.025],
                               atol=1e-12)
    assert integrate_rates(t, w, 0.3, 0.5, max_extrapolation=0.1) is None
    assert integrate_rates(t, w, 0.2, 0.2, max_extrapolation=0.1) is None
    assert integrate_rates(t[:0], w[:0], 0.0, 0.1, max_extrapolation=1.0) is None
    np.testing.assert_allclose(integrate_rates(t[:1], w[:1], 0.0, 0.1, max_extrapolation=0.2),
                               [0.1, 0.0, 0.05])


def test_the_raw_flow_convention_is_the_simulators_image_motion_at_the_principal_point():
    """(wx - vy/d, wy + vx/d) is what the image does at its centre, in PX4Flow's pixel terms:
    integrated_x = pixel_flow_y / f, integrated_y = -pixel_flow_x / f (tilted, turning)."""
    sim = SimCamera(SimCameraConfig(image_width=320, image_height=240, focal_length=F,
                                    altitude=2.0, velocity_x=0.8, velocity_y=0.3,
                                    velocity_amplitude=0.4, yaw_rate=0.3,
                                    roll_amplitude=math.radians(8), pitch_amplitude=math.radians(6),
                                    attitude_period=2.0))
    centre = np.array([[(320 - 1) / 2, (240 - 1) / 2]])
    for t in np.linspace(0.0, 3.0, 13):
        s = sim.state(t)
        raw = np.array([s.angular_velocity[0] - s.velocity[1] / s.range,
                        s.angular_velocity[1] + s.velocity[0] / s.range])
        du, dv = sim.pixel_velocity(centre, t)[0]
        np.testing.assert_allclose(raw, [dv / F, -du / F], atol=1e-9)
        fields = sensor_fields(_measurement(raw, s.angular_velocity, interval=0.01),
                               focal_px=F)
        # OPTICAL_FLOW's pixel flow over the interval is the centre's image motion (dpix).
        np.testing.assert_allclose([fields.flow.flow_x, fields.flow.flow_y],
                                   [10 * du * 0.01, 10 * dv * 0.01], atol=0.5)


@pytest.mark.parametrize(("velocity_x", "velocity_y", "axis", "sign"), [
    (1.0, 0.0, 1, +1),     # forwards: +Y
    (-1.0, 0.0, 1, -1),    # backwards: -Y
    (0.0, -1.0, 0, -1),    # right (FLU y is left): -X
    (0.0, 1.0, 0, +1),     # left: +X
])
def test_px4_table_for_the_simulators_camera_mounted_image_top_forward(velocity_x, velocity_y,
                                                                       axis, sign):
    """PX4's optical-flow page: vehicle forwards +Y, backwards -Y, right -X, left +X. The
    simulator's camera has the image top towards the nose: mavlink_sensor_yaw 90."""
    sim = SimCamera(SimCameraConfig(altitude=2.0, velocity_x=velocity_x, velocity_y=velocity_y))
    s = sim.state(0.5)
    raw = np.array([s.angular_velocity[0] - s.velocity[1] / s.range,
                    s.angular_velocity[1] + s.velocity[0] / s.range])
    rad = sensor_fields(_measurement(raw, s.angular_velocity), yaw_deg=90.0).flow_rad
    integrated = np.array([rad.integrated_x, rad.integrated_y])
    assert sign * integrated[axis] == pytest.approx(0.5 * 0.1)     # |v| / d * dt
    assert integrated[1 - axis] == pytest.approx(0.0, abs=1e-12)
