"""Per-track velocities at the image stamp (the motion_field estimator) against exact truth.

Exact fields: tracks moved by a planar motion field whose parameters follow known curves in
time, over uneven and dropped frames. Real tracking: :class:`SimCamera` flights with image
noise of 2 grey levels tracked by :class:`LKTracker`, each track's velocity compared with
the exact image velocity at its position at the image's stamp
(:meth:`SimCamera.pixel_velocity`).
"""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import pytest

from optical_flow_ros.core.field_gyro_fusion import field_covariance, stamp_field_variance
from optical_flow_ros.core.field_velocity import MotionFieldVelocity, _correlation
from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig
from optical_flow_ros.core.planar_field import MIN_FIELD_TRACKS, field_basis
from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig
from optical_flow_ros.core.velocity_estimator import estimate_velocity

SHAPE = (480, 640)
CENTRE = np.array([319.5, 239.5])
SCALE = 320.0
# numpy >= 2.0 names it trapezoid; 1.26 (Ubuntu 24.04's) only trapz
_trapezoid = getattr(np, "trapezoid", None) or np.trapz


def _run_field(times: np.ndarray, theta_of_t, *, n: int = 200, noise_px: float = 0.0,
               seed: int = 0, tau: float = 0.25, shrink: bool = True, own=None,
               positions: list | None = None, position_noise_px: float = 0.0,
               correlation: bool = True, start: np.ndarray | None = None):
    """Step a MotionFieldVelocity over ``times`` with tracks moved by a spatially uniform
    field (theta_of_t(t) gives the 8 parameters; only the constant terms move points, so
    each interval's displacement is exactly the integral of theta[0], theta[3]).

    ``noise_px``: an independent error of each displacement (it stays in the track's
    position); ``position_noise_px``: an independent error of each frame's tracked position
    about the true one (it enters two consecutive displacements). ``own(points)``: each
    track's own velocity besides the field at its position, px/s (N, 2); ``positions`` gets
    each step's new (true) positions. ``correlation``: give the step the tracks' residual
    state (as TrackStore does), so that it measures the intervals' correlation. ``start``:
    the tracks' first positions (n, 2) px instead of uniform random ones (the noise drawn
    stays the same).
    """
    rng = np.random.default_rng(seed)
    field = MotionFieldVelocity(0.3, 3, tau, shrink)
    points = rng.uniform((20, 20), (620, 460), (n, 2))
    if start is not None:
        points = np.array(start, np.float64)
    seen = points + rng.normal(0.0, position_noise_px, points.shape)
    deviation, count, factor = np.zeros((n, 2)), np.zeros(n, np.int32), np.full(n, np.nan)
    residuals = np.full((n, 2, 2), np.nan) if correlation else None
    steps = []
    for start, end in zip(times[:-1], times[1:], strict=True):
        grid = np.linspace(start, end, 201)
        thetas = np.array([theta_of_t(t) for t in grid])
        shift = np.array([_trapezoid(thetas[:, 0], grid), _trapezoid(thetas[:, 3], grid)])
        if own is not None:
            shift = shift + own(points) * (end - start)
        moved = points + shift + rng.normal(0.0, noise_px, points.shape)
        seen_now = moved + rng.normal(0.0, position_noise_px, points.shape)
        step = field.step(seen, seen_now.astype(np.float32), start, end, SHAPE, deviation,
                          count, factor, residuals)
        deviation, count, factor = step.deviation, step.count, step.variance_factor
        residuals = step.residuals
        steps.append((end, step))
        points = moved.astype(np.float32).astype(np.float64)
        seen = seen_now.astype(np.float32).astype(np.float64)
        if positions is not None:
            positions.append(points)
    return steps


def _cubic(t: float) -> np.ndarray:
    theta = np.zeros(8)
    theta[0] = 120.0 + 300.0 * t - 400.0 * t**2 + 150.0 * t**3      # px/s
    theta[3] = -40.0 + 80.0 * math.sin(3.0 * t)
    return theta


def test_velocity_at_the_stamp_over_uneven_and_dropped_frames():
    """A cubic course of the velocity is followed exactly at the stamp; a sine closely."""
    rng = np.random.default_rng(3)
    intervals = rng.uniform(0.02, 0.05, 40)
    intervals[[10, 17, 25]] *= 2.0                                  # dropped frames
    times = np.concatenate(([0.0], np.cumsum(intervals)))
    steps = _run_field(times, _cubic)
    for end, step in steps[12:]:
        truth = _cubic(end)
        np.testing.assert_allclose(step.velocities[:, 0], truth[0], atol=0.02)
        np.testing.assert_allclose(step.velocities[:, 1], truth[3], atol=0.3)
        assert step.field is not None and step.field.stamp == end
    # The field evaluated inside its span: the same curves there.
    end, step = steps[-1]
    t = end - 0.1
    theta, variance = step.field.theta_at(t)
    assert theta[0] == pytest.approx(_cubic(t)[0], abs=0.02)
    assert np.all(variance >= 0.0)
    theta_end, _ = step.field.theta_at(end)
    np.testing.assert_array_equal(theta_end, step.field.theta)


def test_noise_is_measured_and_averaged():
    """Tracking noise of 0.03 px on each frame's displacement at 30 fps: 0.03 * 30 = 0.9 px/s
    per interval and component, reported as deviation_std; each track's averaged deviation
    brings it down (variance_factor), and over this plane (no true deviation) the shrinkage
    publishes little of it (measured: 0.10 px/s std where the whole deviation's is 0.22; the
    rest is the field's own noise at the stamp, its higher terms when a degree above 0 is
    chosen: 0.08 with interval_polynomial's BIAS_KAPPA at 4, 0.07-0.10 over seeds 0-2 there,
    0.09-0.105 at 2); the velocities stay unbiased either way."""
    times = np.arange(61) / 30.0
    constant = np.zeros(8)
    constant[0], constant[3] = 90.0, -30.0
    steps = _run_field(times, lambda t: constant, noise_px=0.03, n=400)
    _, last = steps[-1]
    assert last.field.deviation_std == pytest.approx(0.03 * 30.0, rel=0.15)
    assert np.all(last.variance_factor < 0.5)
    predicted = math.sqrt(np.median(last.variance_factor)) * last.field.deviation_std
    whole = np.concatenate([s.velocities + s.field.withheld - [90.0, -30.0]
                            for _, s in _with_withheld(steps[20:])])
    assert np.abs(whole.mean(axis=0)).max() < 0.1
    assert np.std(whole[:, 0]) == pytest.approx(predicted, rel=0.35)
    published = np.concatenate([s.velocities - [90.0, -30.0] for _, s in steps[20:]])
    assert np.abs(published.mean(axis=0)).max() < 0.05
    assert np.std(published[:, 0]) < 0.5 * predicted


def test_averaged_deviation_noise_under_position_noise():
    """A position error of 0.03 px on each frame (it enters two consecutive displacements
    with opposite signs): one interval's deviation has sqrt(2) * 0.03 * 30 = 1.27 px/s per
    component, but a track's averaged deviation far less than independent intervals would
    give (their sum telescopes). With the measured correlation its predicted std matches
    the scatter (measured: 0.12 against 0.13-0.14 px/s); counted as independent it was 2.7x
    too large."""
    times = np.arange(61) / 30.0
    constant = np.zeros(8)
    constant[0], constant[3] = 90.0, -30.0
    predicted, scatter = {}, {}
    for correlation in (True, False):
        steps = _run_field(times, lambda t: constant, position_noise_px=0.03, n=400,
                           correlation=correlation)
        _, last = steps[-1]
        assert last.field.deviation_std == pytest.approx(math.sqrt(2.0) * 0.03 * 30.0, rel=0.15)
        predicted[correlation] = (math.sqrt(np.median(last.variance_factor))
                                  * last.field.deviation_std)
        whole = np.concatenate([s.velocities + s.field.withheld - [90.0, -30.0]
                                for _, s in _with_withheld(steps[20:])])
        scatter[correlation] = float(np.std(whole))
    assert predicted[True] == pytest.approx(scatter[True], rel=0.3)
    assert predicted[False] > 2.0 * scatter[False]


def _with_withheld(steps):
    """The steps with their field's ``withheld`` set as TrackStore sets it."""
    out = []
    for end, step in steps:
        withheld = (1.0 - step.kept)[:, None] * step.deviation
        out.append((end, step._replace(field=dataclasses.replace(step.field,
                                                                 withheld=withheld))))
    return out


def test_shrinkage_keeps_a_moving_objects_and_the_reliefs_own_motion():
    """Tracks with their own motion besides the plane's field keep it.

    400 tracks at 30 fps with 0.03 px of noise per frame (0.9 px/s per interval): 15 % of
    them in a block moving 6 px/s more (a moving object), and every track with a smooth
    deviation of up to 1.5 px/s (relief: ~5x the averaged deviation's noise). The object's
    tracks keep their motion (measured mean error -0.01 px/s of 6; 0.04 with the whole
    deviation), and the relief's is not shrunk away (that would leave ~1 px/s rms): the
    rms error over all tracks is that of the whole deviation or below (measured 0.284 vs
    0.289 px/s)."""
    times = np.arange(61) / 30.0
    constant = np.zeros(8)
    constant[0], constant[3] = 90.0, -30.0

    def in_block(points: np.ndarray) -> np.ndarray:   # the object's tracks: the first 60
        return np.arange(points.shape[0]) < 60

    def own(points: np.ndarray) -> np.ndarray:
        relief = 1.5 * np.column_stack((np.sin(points[:, 0] / 90.0),
                                        np.cos(points[:, 1] / 70.0)))
        return relief + np.where(in_block(points)[:, None], [6.0, 0.0], 0.0)

    rms = {}
    for shrink in (True, False):
        positions: list[np.ndarray] = []
        steps = _run_field(times, lambda t: constant, noise_px=0.03, n=400, shrink=shrink,
                           own=own, seed=4, positions=positions)
        errors, object_errors = [], []
        for (_, step), points in list(zip(steps, positions, strict=True))[20:]:
            error = step.velocities - (constant[[0, 3]] + own(points))
            errors.append(error)
            object_errors.append(error[in_block(points)])
        rms[shrink] = float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))
        object_error = np.concatenate(object_errors)
        if shrink:
            assert abs(object_error[:, 0].mean()) < 0.3
    assert rms[True] <= 1.05 * rms[False], rms


def test_each_tracks_lasting_error_is_counted_in_the_fields_variance():
    """Every track off by its own constant 0.5 px/s per component (as Lucas-Kanade's window
    biases a track while the image turns) besides 0.3 px/s of white noise per interval: the
    field's parameters err by that bias projected through the fit, which no averaging over
    the intervals removes. Over 30 seeded runs of 300 tracks at 30 fps the published
    variance covers it (measured mean z^2 0.98 over the 8 parameters, 20 without the
    persistent part); without such biases the persistent part stays ~0 (measured: 0 in the
    median, mean z^2 1.13 as before)."""
    times = np.arange(41) / 30.0
    constant = np.zeros(8)
    constant[0], constant[3] = 90.0, -30.0
    for std in (0.5, 0.0):
        z2, without, share = [], [], []
        for seed in range(30):
            biases = np.random.default_rng([seed, 7]).normal(0.0, std, (300, 2))
            steps = _run_field(times, lambda t: constant, noise_px=0.01, n=300, seed=seed,
                               own=lambda points, b=biases: b)
            field = steps[-1][1].field
            assert field.persistent_variance.shape == (8,)
            error2 = (field.theta - constant) ** 2
            z2.append(error2 / field.theta_variance)
            without.append(error2 / (field.theta_variance - field.persistent_variance))
            share.append(field.persistent_variance / field.theta_variance)
        if std:
            assert 0.6 <= np.mean(z2) <= 1.6, np.mean(z2)
            assert np.mean(without) > 5.0, np.mean(without)
        else:
            assert np.median(share) < 0.05, np.median(share)
            assert 0.6 <= np.mean(z2) <= 1.6, np.mean(z2)


def _wavy(t: float) -> np.ndarray:
    theta = np.zeros(8)
    theta[0] = 60.0 + 40.0 * math.sin(2.5 * t)          # px/s
    theta[3] = -40.0 + 150.0 * math.sin(3.0 * t)
    return theta


def _swaying(t: float) -> np.ndarray:
    theta = np.zeros(8)
    theta[0] = 120.0 + 60.0 * math.sin(2.0 * math.pi * 0.6 * t)     # px/s
    theta[3] = -40.0 + 50.0 * math.cos(2.0 * math.pi * 0.5 * t)
    return theta


@pytest.mark.parametrize("rate", [8.0, 12.0])
def test_at_a_low_frame_rate_the_stamps_variance_holds_its_error(rate):
    """8 and 12 Hz (a 30 Hz camera losing most frames), the field swaying at 0.5-0.6 Hz,
    0.05 px of position noise: the published variance of the field at the stamp holds its
    error (mean squared z within 0.4-2.5 over 6 draws, measured 1.27 / 0.76 at 8 Hz, 1.24 /
    1.27 at 12 Hz). The self-check's first check after the start, of a constant through two
    intervals (its bias unknown), counted ~3000x its modelled variance and held the factors
    high for seconds where few checks follow: mean squared z 0.13 / 0.34 at 8 Hz, 10x too
    wide on the first. (Below ~7 Hz no check fits the default 0.3 s span at all; the
    factors stay at their prior: see the README.)"""
    z = []
    for seed in range(6):
        for end, step in _run_field(np.arange(0.0, 5.0, 1.0 / rate), _swaying,
                                    position_noise_px=0.05, seed=seed):
            if end >= 2.0 and step.field is not None:
                error = (step.field.theta - _swaying(end))[[0, 3]]
                z.append(error * error / step.field.theta_variance[[0, 3]])
    mean_square = np.mean(z, axis=0)
    assert np.all((mean_square > 0.4) & (mean_square < 2.5)), mean_square


@pytest.mark.parametrize("rate", [15.0, 30.0])
def test_the_field_before_the_stamp_has_its_own_degree_and_a_covering_variance(rate):
    """What the ego-velocity takes through the gyro's line: the field one to three frames
    before the stamp, against the exact curves (tracking noise 0.1 px). Each time gets the
    degree with the least estimated error there: the stamp's choice (made for the
    extrapolation) gave single frames 65-84 sigma off at 30 Hz (a low degree that matched
    the stamp is a constant through the changing rate before it)."""
    times = np.arange(0.0, 4.0, 1.0 / rate)
    z2 = []
    for end, step in _run_field(times, _wavy, noise_px=0.1, seed=0):
        if step.field is None or end < 0.5:
            continue
        for back in (1, 2, 3):
            t = end - back / rate
            theta, variance = step.field.theta_at(t)
            z2.append(((theta - _wavy(t)) ** 2 / variance)[[0, 3]])
    z2 = np.array(z2)
    assert np.sqrt(z2.max()) < 8.0, np.sqrt(z2.max(axis=0))
    assert np.all((z2.mean(axis=0) > 0.3) & (z2.mean(axis=0) < 3.0)), z2.mean(axis=0)


LOW_RATE_TILTS = {
    # 15 Hz, 7.6 m over gravel at 2.5 m/s, +/-3.8 deg of roll and pitch at 0.66 Hz
    "gravel_15Hz": dict(texture="gravel", rate=15.0, altitude=7.6, velocity_x=2.0,
                        velocity_y=-1.5, yaw_rate=-0.28, roll_amplitude=math.radians(3.8),
                        pitch_amplitude=math.radians(3.8), attitude_period=1.0 / 0.66),
    # 20 Hz, 2.5 m over the coffee photo at 1.3 m/s, +/-5 deg at 0.55 Hz
    "coffee_20Hz": dict(texture="coffee", rate=20.0, altitude=2.5, velocity_x=1.2,
                        velocity_y=-0.5, yaw_rate=0.35, roll_amplitude=math.radians(5.0),
                        pitch_amplitude=math.radians(5.0), attitude_period=1.82),
}


@pytest.mark.parametrize("name", sorted(LOW_RATE_TILTS))
def test_at_a_low_rate_the_field_at_the_previous_stamp_is_as_wide_as_its_error(name):
    """What the ego-velocity takes through the gyro's line: the field at the previous stamp,
    tracked by LKTracker (image noise 2 grey levels) on tilting flights at 15 and 20 Hz,
    against the simulator's exact field, in the constant terms th0 and th3 (the
    translation and the rotation at the image centre). The self-check's factor there
    (``past_calibration``) once divided the check's squared difference by the difference's
    modelled variance, a quarter of the value's own: factors of 25-59 on such flights, and
    mean z^2 0.07 / 0.08 here at 15 Hz, 0.18 / 0.12 at 20 Hz (5-14x too wide). Now one plus
    the excess over the two values' own variances: measured 0.26 / 0.32 and 0.75 / 0.55, the
    largest |z| 1.4 and 2.1."""
    cam = SimCamera(SimCameraConfig(image_noise_std=2.0, **LOW_RATE_TILTS[name]))
    tracker = LKTracker(TrackerConfig())
    z2 = []
    for k in range(int(5.0 * cam.config.rate)):
        t = cam.frame_time(k)
        field = tracker.update(cam.image(k), t, cam.camera).motion_field
        if field is None or t < 1.5:
            continue
        previous = float(field.intervals[-1, 0])
        theta, variance = field.theta_at(previous)
        exact = cam.field_parameters(previous, field.centre, field.scale)
        z2.append(((theta - exact) ** 2 / variance)[[0, 3]])
    z2 = np.array(z2)
    assert np.all((z2.mean(axis=0) > 0.2) & (z2.mean(axis=0) < 2.0)), z2.mean(axis=0)
    assert np.sqrt(z2.max()) < 4.0, np.sqrt(z2.max(axis=0))


def test_too_few_tracks_give_the_last_interval_and_no_field():
    field = MotionFieldVelocity(0.3, 3, 0.25)
    n = MIN_FIELD_TRACKS - 1
    before = np.random.default_rng(0).uniform(0, 400, (n, 2))
    after = (before + [3.0, -1.0]).astype(np.float32)
    step = field.step(before, after, 0.0, 0.1, SHAPE, np.zeros((n, 2)), np.zeros(n, np.int32),
                      np.ones(n))
    np.testing.assert_allclose(step.velocities, np.tile([30.0, -10.0], (n, 1)), atol=1e-4)
    assert step.field is None


@pytest.mark.parametrize("offset", [0.0, -0.05, math.nan])
def test_an_interval_that_does_not_move_forward_is_refused_and_loses_nothing(monkeypatch,
                                                                             offset):
    # Used directly (the tracker resets on a repeated or earlier stamp): a clear error
    # instead of a division by zero or velocities of the wrong sign, and every step after a
    # refused one is the same as without it.
    times = np.arange(10) / 30.0
    expected = _run_field(times, _cubic, noise_px=0.05)
    refused = []

    class Checked(MotionFieldVelocity):
        def step(self, previous, current, start, end, *rest, **kw):
            with pytest.raises(ValueError, match="must end after it starts"):
                super().step(previous, current, start, start + offset, *rest, **kw)
            refused.append(end)
            return super().step(previous, current, start, end, *rest, **kw)

    monkeypatch.setattr(sys.modules[__name__], "MotionFieldVelocity", Checked)
    got = _run_field(times, _cubic, noise_px=0.05)
    assert len(refused) == len(times) - 1
    for (_, a), (_, b) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a.velocities, b.velocities)
        assert (a.field is None) == (b.field is None)
        if a.field is not None:
            np.testing.assert_array_equal(a.field.theta_variance, b.field.theta_variance)


def test_a_stall_restarts_the_field_and_the_intervals_after_it_are_exact_again():
    # 30 Hz, a 0.2 s gap (6 periods: a stall), then 30 Hz again; a gap of 3 periods is none.
    period = 1.0 / 30.0
    times = np.concatenate((np.arange(12) * period, 11 * period + 0.2 + np.arange(12) * period))
    steps = _run_field(times, _cubic)
    gap = int(np.argmax(np.diff(times)))            # steps[k]: times[k] -> times[k + 1]
    assert steps[gap][1].field is None              # the gap's frame: its interval's mean
    mean = np.mean([_cubic(t)[0] for t in np.linspace(times[gap], times[gap + 1], 2001)])
    np.testing.assert_allclose(steps[gap][1].velocities[:, 0], mean, rtol=1e-3)
    after = [step.field for _, step in steps[gap + 1:]]
    assert all(f is not None and f.intervals[0, 0] >= times[gap + 1] - 1e-9 for f in after)
    end, last = steps[-1]
    np.testing.assert_allclose(last.field.theta[[0, 3]], _cubic(end)[[0, 3]], atol=0.05)
    uneven = np.concatenate((np.arange(12) * period, 11 * period + 3 * period
                             + np.arange(6) * period))
    assert all(step.field is not None for _, step in _run_field(uneven, _cubic)[1:])


def test_field_basis_is_the_planar_motion_field():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 640, (50, 2))
    theta = rng.normal(size=8)
    bu, bv = field_basis(points, CENTRE, SCALE)
    x, y = ((points - CENTRE) / SCALE).T
    u = theta[0] + theta[1] * x + theta[2] * y + theta[6] * x * x + theta[7] * x * y
    v = theta[3] + theta[4] * x + theta[5] * y + theta[6] * x * y + theta[7] * y * y
    np.testing.assert_allclose(bu @ theta, u)
    np.testing.assert_allclose(bv @ theta, v)


# ----- real tracking ----------------------------------------------------------------------

FLIGHTS = {
    # +/-3 deg roll at 0.7 Hz and yaw, 2 m over a real photo: fast changes of the flow.
    "tilt_0.7Hz": dict(texture="camera", altitude=2.0, velocity_x=1.0, velocity_y=0.4,
                       yaw_rate=0.3, roll_amplitude=math.radians(3.0),
                       pitch_amplitude=math.radians(3.0), attitude_period=1.43),
    # A few px/s: the tracking noise dominates.
    "creep": dict(texture="grass", altitude=5.0, velocity_x=0.05, velocity_y=0.02,
                  yaw_rate=0.01),
}


def _track(values: dict, estimator: str, *, frames: int = 60, drop: tuple[int, ...] = (),
           shrink: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """(velocity errors px/s, true velocities px/s) of the tracks with a velocity, after the
    first 15 frames."""
    cam = SimCamera(SimCameraConfig(image_noise_std=2.0, **values))
    tracker = LKTracker(TrackerConfig(velocity_estimator=estimator,
                                      velocity_deviation_shrink=shrink))
    out = []
    for k in range(frames):
        if k in drop:
            continue
        t = cam.frame_time(k)
        tracks = tracker.update(cam.image(k), t, cam.camera)
        ok = np.isfinite(tracks.velocities[:, 0])
        if k >= 15 and ok.any():
            truth = cam.pixel_velocity(tracks.points[ok], t)
            out.append((tracks.velocities[ok] - truth, truth))
    return out


def _median_relative(results: list[tuple[np.ndarray, np.ndarray]]) -> float:
    err = np.concatenate([np.linalg.norm(e, axis=1) for e, _ in results])
    speed = np.concatenate([np.linalg.norm(v, axis=1) for _, v in results])
    return float(np.median(err / speed))


def test_tracker_velocities_at_the_stamp_within_1_percent_where_the_slope_lags():
    """Measured: motion_field 0.20 % (0.44 % with the whole deviation), the 5-frame slope
    12 % (it lags ~2 frames)."""
    field = _median_relative(_track(FLIGHTS["tilt_0.7Hz"], "motion_field"))
    slope = _median_relative(_track(FLIGHTS["tilt_0.7Hz"], "slope"))
    assert field <= 0.01, field
    assert slope > 0.03, slope


def test_tracker_velocities_with_dropped_frames():
    """Frames missing (the stamps say so): still within 1 % (measured 0.20 %)."""
    results = _track(FLIGHTS["tilt_0.7Hz"], "motion_field", drop=(20, 21, 30, 41))
    assert _median_relative(results) <= 0.01


def test_slow_motion_error_in_px_per_s():
    """At ~6 px/s relative errors mean little: the median error is <= 0.2 px/s (measured
    0.009 px/s, 0.16 %; 0.057 px/s with the whole deviation)."""
    results = _track(FLIGHTS["creep"], "motion_field")
    err = np.concatenate([np.linalg.norm(e, axis=1) for e, _ in results])
    assert np.median(err) <= 0.2


def test_a_distorting_lens_keeps_the_velocities_at_the_stamp():
    """With a wide-angle lens (k1 = -0.25, k2 = 0.05) the field is fitted in the undistorted
    image and the velocities mapped back to the raw one: measured 0.21 % (0.20 % without
    the lens; 0.74 % when the field was fitted in the raw image, its deviations then real and
    changing as the tracks cross the image)."""
    values = dict(FLIGHTS["tilt_0.7Hz"], k1=-0.25, k2=0.05)
    assert _median_relative(_track(values, "motion_field")) <= 0.005


def test_the_field_carries_each_tracks_undistorted_position_for_the_ego_velocity():
    """Through the k1 = -0.25 lens, frames dropped (tracks lost and new ones detected): the
    field carries every followed track's position in the undistorted image and the
    undistortion's Jacobian (what estimate_velocity would otherwise undistort again, 0.25 ms
    of its 1.65 ms at 440 tracks), equal to the lens's own; tracks detected in this frame
    have none yet. The ego-velocity is the same either way."""
    cam = SimCamera(SimCameraConfig(image_noise_std=2.0, k1=-0.25, k2=0.05,
                                    **FLIGHTS["tilt_0.7Hz"]))
    camera = cam.camera
    tracker = LKTracker(TrackerConfig(velocity_estimator="motion_field"))
    checked = 0
    for k in range(40):
        if k in (20, 21, 30):
            continue
        tracks = tracker.update(cam.image(k), cam.frame_time(k), camera)
        field = tracks.motion_field
        if field is None:
            continue
        assert field.undistorted is not None and field.undistortion_jacobian is not None
        followed = tracks.ages > 1
        points, jacobian = camera.undistort_with_jacobian(tracks.points[followed])
        np.testing.assert_allclose(field.undistorted[followed], points, atol=1e-9)
        np.testing.assert_allclose(field.undistortion_jacobian[followed], jacobian, atol=1e-12)
        assert np.isnan(field.undistorted[~followed]).all()
        bare = dataclasses.replace(tracks, motion_field=dataclasses.replace(
            field, undistorted=None, undistortion_jacobian=None))
        carried = estimate_velocity(tracks, camera, distance=cam.config.altitude)
        computed = estimate_velocity(bare, camera, distance=cam.config.altitude)
        if carried.valid:
            np.testing.assert_array_equal(carried.linear, computed.linear)
            np.testing.assert_array_equal(carried.covariance, computed.covariance)
            checked += 1
    assert checked >= 20, checked


def test_through_a_strong_lens_the_exact_positions_give_the_exact_roll_pitch_rates():
    """Ground points projected exactly through a k1 = -0.25, k2 = 0.05 lens (the sim's own
    projection), undistorted as TrackStore does and fitted: no roll or pitch (a level camera
    turning at 0.25 rad/s), so the field's second-order terms must be 0 to rounding. With
    OpenCV's default 5-step undistortion (up to 0.33 px off at the corners) they made rates
    of up to 0.55 mrad/s here (-0.6 / -0.9 mrad/s on average over the recorded flight with
    this lens), which the gyro fusion took for real."""
    sim = SimCamera(SimCameraConfig(altitude=2.5, velocity_x=1.2, velocity_y=-0.4,
                                    yaw_rate=0.25, k1=-0.25, k2=0.05, image_noise_std=0.0))
    camera = sim.camera
    grid = np.stack(np.meshgrid(np.linspace(5, 634, 24), np.linspace(5, 474, 18)), -1)
    ground = sim.ground_points(grid.reshape(-1, 2), 0.0)
    times = np.arange(12) / 30.0
    field = MotionFieldVelocity(0.3, 3, 0.25)
    n = ground.shape[0]
    state = (np.zeros((n, 2)), np.zeros(n, np.int32), np.ones(n))
    for start, end in zip(times[:-1], times[1:], strict=True):
        before = camera.undistort_px(sim.project(ground, float(start)))
        after = camera.undistort_px(sim.project(ground, float(end)))
        step = field.step(before, after, float(start), float(end), SHAPE, *state)
        state = (step.deviation, step.count, step.variance_factor)
    unit = 0.5 * (camera.k[0, 0] + camera.k[1, 1]) / step.field.scale**2   # rad/s per px/s
    np.testing.assert_allclose(step.field.theta[6:] * unit, 0.0, atol=1e-5)
    assert np.all(np.abs(sim.state(times[-1]).angular_velocity[:2]) < 1e-12)


@pytest.mark.parametrize("flight", ["tilt_0.7Hz", "creep"])
def test_over_a_plane_the_shrinkage_takes_most_of_the_tracking_noise_out(flight):
    """Over a plane every track's deviation from the field is tracking error: shrunk, the
    median error is at most 0.6x that of the whole deviation (measured 0.45x on the tilting
    flight, 0.16x creeping)."""
    def median_error(shrink: bool) -> float:
        results = _track(FLIGHTS[flight], "motion_field", shrink=shrink)
        return float(np.median(np.concatenate([np.linalg.norm(e, axis=1)
                                                for e, _ in results])))

    shrunk, whole = median_error(True), median_error(False)
    assert shrunk <= 0.6 * whole, (shrunk, whole)


def test_the_stamp_variance_the_rates_take_covers_low_degree_choices():
    """Without gyro the roll/pitch rates are the field at the stamp with the variance of
    field_gyro_fusion's ``stamp_field_variance``: a factor per chosen degree and the low
    degrees' bias counted without the choice's threshold. On the wavy course with 0.1 px
    noise at 15 and 30 Hz, frames whose parameter chose degree 0-1 had 84-90 % of their
    errors inside 3 sigma of the field's one-factor variance; with the stamp variance 94.5 %
    (seeds 0-1; 95.5 % for 2-3), every frame 98-99 %, mean z^2 1.27 / 1.03 (1.02 / 0.93).
    Slightly narrow: since interval_polynomial's BIAS_KAPPA is 2 (it was 4: 98 %, mean z^2
    0.90 / 0.78) a low degree is chosen only where its estimated bias is small, and that
    estimate is then too small (the low frames' mean z^2 2.5, 1.6 before). Counting the whole
    squared difference from the highest degree as the bias instead made this course
    calibrated (mean z^2 0.87 / 0.82) but the 28 default flights of bench/velocity_flights.py
    without gyro too wide (median NEES in 1-2 on 10 of them, 24 with this variance)."""
    z2, low = [], []
    for rate in (15.0, 30.0):
        for seed in (0, 1):
            for end, step in _run_field(np.arange(0.0, 4.0, 1.0 / rate), _wavy, noise_px=0.1,
                                        seed=seed):
                if step.field is None or end < 0.5:
                    continue
                error2 = ((step.field.theta - _wavy(end)) ** 2)[[0, 3]]
                z2.append(error2 / stamp_field_variance(step.field)[[0, 3]])
                low.append(step.field.degrees[[0, 3]] <= 1)
    z2, low = np.array(z2), np.array(low)
    assert np.mean(z2[low] <= 9.0) >= 0.93, np.sqrt(z2[low].max())
    assert np.all(np.mean(z2 <= 9.0, axis=0) >= 0.98)
    assert np.all((z2.mean(axis=0) > 0.2) & (z2.mean(axis=0) < 1.4)), z2.mean(axis=0)


def test_a_turning_images_lasting_tracking_errors_are_in_the_fields_variance():
    """A camera turning at 0.2 rad/s 3 m over gravel (the demo's flight, image noise 2 grey
    levels): Lucas-Kanade, which fits each window as if it only shifted, leaves each track
    an error of its own that lasts while the track lives (0.36 px/s per component measured
    against the exact motion, noise-free; 0.02 px/s without yaw). The field's parameters at
    the stamp against the exact field there (least squares through the exact velocities at
    the tracks), mean z^2 over the frames: <= 2 for the parameters whose published variance
    is mostly the lasting errors' (6 of 8: measured 0.44-1.50, mean 0.99; with the errors
    counted independent between tracks 0.19-0.80, mean 0.49: neighbours' errors are
    negatively correlated over gravel), and without that part up to 5.8 on the second-order
    terms, which give the roll/pitch rates. The two constant terms, whose error is mostly the
    extrapolation's (their self-check factors 2-13): <= 2.5 (measured 1.11, 2.28; 0.90, 1.78
    counted independent)."""
    cam = SimCamera(SimCameraConfig(image_noise_std=2.0, texture="gravel", altitude=3.0,
                                    velocity_x=1.0, velocity_y=0.3, yaw_rate=0.2))
    tracker = LKTracker(TrackerConfig())
    z2, without, share = [], [], []
    for k in range(150):
        t = cam.frame_time(k)
        tracks = tracker.update(cam.image(k), t, cam.camera)
        field = tracks.motion_field
        if k < 15 or field is None:
            continue
        bu, bv = field_basis(tracks.points.astype(np.float64), field.centre, field.scale)
        truth = cam.pixel_velocity(tracks.points, t)
        exact = np.linalg.lstsq(np.vstack((bu, bv)), truth.T.ravel(), rcond=None)[0]
        error2 = (field.theta - exact) ** 2
        z2.append(error2 / field.theta_variance)
        without.append(error2 / (field.theta_variance - field.persistent_variance))
        share.append(field.persistent_variance / field.theta_variance)
    z2, without, share = (np.mean(a, axis=0) for a in (z2, without, share))
    lasting = share > 0.5
    assert np.count_nonzero(lasting) >= 6, share
    assert np.all(z2[lasting] <= 2.0), z2
    assert 0.5 <= np.mean(z2[lasting]) <= 1.5, z2
    assert np.all(z2 <= 2.5), z2
    assert np.max(without[6:]) > 2.0, without


@pytest.mark.parametrize(("position_px", "displacement_px", "expected"), [
    (0.05, 0.0, -0.5), (0.0, 0.05, 0.0), (0.05, 0.05 * math.sqrt(2.0), -0.25)])
def test_consecutive_intervals_correlation_is_measured(position_px, displacement_px, expected):
    """Each frame's position error enters two consecutive displacements with opposite signs
    (correlation -0.5), an error of each displacement only one (0); with both, the
    correlation is -var_pos / (var_disp + 2 var_pos). Each track's own steady motion (a
    true deviation) does not enter the measure. No error here is shared by all tracks, so
    the field's parameters carry the tracks' correlation whole."""
    times = np.arange(61) / 30.0
    constant = np.zeros(8)
    constant[0], constant[3] = 90.0, -30.0
    own = np.random.default_rng(5).normal(0.0, 3.0, (300, 2))
    steps = _run_field(times, lambda t: constant, n=300, position_noise_px=position_px,
                       noise_px=displacement_px, own=lambda p: own)
    measured = np.array([step.field.noise_correlation for _, step in steps[30:]])
    np.testing.assert_allclose(np.median(measured, axis=0), expected, atol=0.05)
    assert all(np.all(step.field.noise_correlation == 0.0) for _, step in
               _run_field(times[:10], lambda t: constant, position_noise_px=position_px,
                          noise_px=displacement_px, correlation=False))


def test_field_inside_its_span_is_calibrated_under_position_noise():
    """Tracked positions with a noise of their own (what image noise gives Lucas-Kanade):
    the field at a past time, an average over consecutive intervals, errs much less than
    independent intervals would; with the measured correlation its published variance
    matches the error (mean z^2 over 24 seeds and the frames after the first second:
    measured 1.14 / 1.06 for the two constant terms); treated as independent it was 2-3x too
    wide (0.43 / 0.35)."""
    times = np.arange(91) / 30.0
    constant = np.zeros(8)
    constant[0], constant[3] = 90.0, -30.0
    z2 = {True: [], False: []}
    for seed in range(24):
        for correlation in (True, False):
            steps = _run_field(times, lambda t: constant, n=150, position_noise_px=0.05,
                               seed=seed, correlation=correlation)
            for end, step in steps[30::10]:
                theta, variance = step.field.theta_at(end - 2.0 / 30.0)
                z2[correlation].append((theta[[0, 3]] - constant[[0, 3]]) ** 2
                                       / variance[[0, 3]])
    with_correlation = float(np.mean(z2[True]))
    independent = float(np.mean(z2[False]))
    assert 0.6 < with_correlation < 1.6, (with_correlation, independent)
    assert independent < 0.5 * with_correlation, (with_correlation, independent)


def _fit_correlation(points: np.ndarray) -> np.ndarray:
    """(8, 8) the correlation of one interval's least-squares field at ``points`` (N, 2) px,
    the tracks' errors independent and alike."""
    bu, bv = field_basis(points, CENTRE, SCALE)
    return _correlation(np.linalg.inv(bu.T @ bu + bv.T @ bv))


def test_the_parameters_errors_correlation_is_the_self_checks_not_the_fits():
    """Every interval's tracks share one error e (1 + x^2, x y) px/s (e drawn per interval,
    0.5 px/s std): it moves the constant term of u' and the quadratic one by the same e, so
    their errors' correlation is +1, where one interval's fit (independent track errors)
    gives them 0.24. The published correlation is the self-check's measured one (median
    over the last second of 10 seeds: 0.96); through it the variance of u' at the image's
    corners, where the two errors add up, holds its error (mean z^2 0.79; 0.34-1.6 per seed,
    each a few draws of e), and with the fit's correlation it did not (1.26)."""
    times = np.arange(121) / 30.0
    constant = np.zeros(8)
    constant[0], constant[3] = 60.0, -20.0
    corners = np.array([[0.0, 0.0], [639.0, 0.0], [0.0, 479.0], [639.0, 479.0]])
    bu, _ = field_basis(corners, CENTRE, SCALE)                      # (4, 8) rows of u'
    z2 = {"published": [], "fit": []}
    correlations = []
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)

        def shared(points, rng=rng):
            x, y = ((points - CENTRE) / SCALE).T
            return rng.normal(0.0, 0.5) * np.stack((1.0 + x * x, x * y), axis=1)

        positions: list = []
        steps = _run_field(times, lambda t: constant, n=200, noise_px=0.002, seed=seed,
                           own=shared, positions=positions)
        for k in range(90, len(steps)):
            field = steps[k][1].field
            correlations.append(field.correlation[0, 6])
            error = bu @ (field.theta - constant)
            std = np.sqrt(field.theta_variance - field.persistent_variance)
            fit = (_fit_correlation(positions[k]) * np.outer(std, std)
                   + field.persistent_covariance)
            for name, cov in (("published", field_covariance(field, field.theta_variance)),
                              ("fit", fit)):
                z2[name].append(error**2 / np.einsum("ij,jk,ik->i", bu, cov, bu))
    published, fitted = float(np.mean(z2["published"])), float(np.mean(z2["fit"]))
    assert float(np.median(correlations)) > 0.8
    assert 0.5 < published < 1.3, (published, fitted)
    assert fitted > 1.3 * published, (published, fitted)


@pytest.mark.parametrize(("mixing", "expected_ratio"), [(-0.8, 0.12), (0.3, 1.64)])
def test_neighbouring_tracks_correlated_lasting_errors_are_measured(mixing, expected_ratio):
    """Each track off by its own constant px/s, as in the test above, but neighbours' biases
    correlated: ``b = 0.5 (z + mixing G z)`` px/s, ``z`` independent and ``G`` the Gaussian
    average (12 px) of the other tracks' ``z``: negative (neighbours biased oppositely, as
    overlapping Lucas-Kanade windows over gravel while the image turns) or positive (as over
    the rocket photo's smooth areas). The field's error from the biases is ``W C W^T``
    (``C``: the biases' exact covariance); counted as independent it would be far off: the
    exact variance over the independent one is 0.12 and 1.64 here (mean over the 8
    parameters and 24 seeds). Measured from the tracks' averaged deviations
    (:func:`~.track_deviation.local_persistent`), the published variance covers the field's
    error: mean z^2 over the 8 parameters and 24 seeded runs of 400 tracks at 30 fps 0.6-1.6
    (measured 1.09 and 1.53: the positive case is counted only partly, though better than
    independent).
    """
    times = np.arange(41) / 30.0
    constant = np.zeros(8)
    constant[0], constant[3] = 90.0, -30.0
    n = 400
    z2, ratio = [], []
    for seed in range(24):
        start = np.random.default_rng(seed).uniform((20, 20), (620, 460), (n, 2))
        gap = np.linalg.norm(start[:, None] - start[None], axis=2)
        near = np.exp(-0.5 * (gap / 12.0) ** 2)
        np.fill_diagonal(near, 0.0)
        near /= np.maximum(near.sum(axis=1, keepdims=True), 1e-12)
        mix = np.eye(n) + mixing * near
        biases = 0.5 * mix @ np.random.default_rng([seed, 11]).normal(0.0, 1.0, (n, 2))
        steps = _run_field(times, lambda t: constant, noise_px=0.01, n=n, seed=seed,
                           own=lambda points, b=biases: b, start=start)
        end, step = steps[-1]
        field = step.field
        z2.append((field.theta - constant) ** 2 / field.theta_variance)
        # The biases' exact share of the field's error, through the last fit.
        bu, bv = field_basis(start + end * constant[[0, 3]], field.centre, field.scale)
        inverse = np.linalg.inv(bu.T @ bu + bv.T @ bv)
        covariance = 0.25 * mix @ mix.T
        exact = np.array([u @ covariance @ u + v @ covariance @ v
                          for u, v in zip(inverse @ bu.T, inverse @ bv.T, strict=True)])
        ratio.append(exact / (np.mean(np.diagonal(covariance)) * np.diagonal(inverse)))
    assert abs(np.mean(ratio) / expected_ratio - 1.0) < 0.1, np.mean(ratio)
    assert 0.6 <= np.mean(z2) <= 1.6, np.mean(z2)
