"""DistanceFilter: range readings carried by a known rate, against the exact distance.

The distance follows ``d(t) = d0 exp(integral of rate)``; the readings carry white relative
noise of exactly the variance they state, and the rate the filter is given carries an error
of exactly the variance it is told (persistent over RATE_CORRELATION_S, as the tracker's
field errors are), so the filter's published variance can be checked for calibration.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from optical_flow_ros.core.distance_filter import (
    RATE_CORRELATION_S,
    RESET_SIGMA,
    DistanceFilter,
)

RATE_HZ = 30.0
NOISE = 0.01   # relative std of the readings


def _climb(t: np.ndarray) -> np.ndarray:
    """d ln(d)/dt of a camera climbing and sinking 0.3 m/s at 2-3 m, 1/s."""
    return 0.12 * np.sin(2.0 * np.pi * t / 4.0)


def _run(seed: int, *, rate_std: float, rate_bias: float = 0.0, told_std: float | None = None,
         seconds: float = 6.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, DistanceFilter]:
    """(log errors of the filter, their stated stds, log errors of the raw readings, filter).

    ``rate_std``: std of the rate's error (AR(1) with RATE_CORRELATION_S); ``told_std``: the
    std the filter is told (default the true one); ``rate_bias``: a relative error of the
    rate that the filter is not told about.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    rate = _climb(t)
    log_d = math.log(2.5) + np.concatenate(([0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1])
                                                             / RATE_HZ)))
    keep = math.exp(-1.0 / (RATE_HZ * RATE_CORRELATION_S))
    err = np.zeros(t.size)
    for k in range(1, t.size):
        err[k] = keep * err[k - 1] + math.sqrt(1 - keep * keep) * rate_std * rng.normal()
    told = rate_std if told_std is None else told_std
    f = DistanceFilter()
    errors, stds, raw = [], [], []
    for k in range(t.size):
        reading = math.exp(log_d[k]) * (1.0 + NOISE * rng.normal())
        f.add(float(t[k]), reading, (NOISE * reading) ** 2)
        out = f.at(float(t[k]))
        assert out is not None
        errors.append(math.log(out.distance) - log_d[k])
        stds.append(math.sqrt(out.variance) / out.distance)
        raw.append(math.log(reading) - log_d[k])
        f.set_rate(float(rate[k] * (1.0 + rate_bias) + err[k]), told**2)
    skip = int(RATE_HZ)   # the first second: the filter is filling
    return (np.array(errors[skip:]), np.array(stds[skip:]), np.array(raw[skip:]), f)


def test_a_known_rate_averages_the_readings_and_states_its_variance():
    """Rate error 0.005 1/s (what the fit states on the simulated flights): over 20 flights
    the distance's error drops from the readings' 1 % to ~0.3 %; the stated variance is
    calibrated (1 sigma 68 % +/- 13, 3 sigma >= 97 %, NEES about 1)."""
    errors, stds, raws = [], [], []
    for seed in range(20):
        e, s, r, _ = _run(seed, rate_std=0.005)
        errors.append(e)
        stds.append(s)
        raws.append(r)
    e, s, r = np.concatenate(errors), np.concatenate(stds), np.concatenate(raws)
    z = np.abs(e / s)
    rms, rms_raw = math.sqrt(np.mean(e**2)), math.sqrt(np.mean(r**2))
    assert rms < 0.45 * rms_raw, (rms, rms_raw)
    assert 0.55 <= np.mean(z <= 1.0) <= 0.85
    assert np.mean(z <= 3.0) >= 0.97
    assert 0.6 <= np.median(z**2) / 0.455 <= 1.6   # chi-square 1 dof median 0.455


def test_a_rate_worse_than_stated_is_measured_from_the_readings():
    """The rate is 10 % off (a fit lagging a climb) and told 10x too small an error: the
    innovations show it, the rate's variance is scaled up online, and the distance stays
    covered and no worse than the readings themselves. Measured over 10 flights: 3 sigma
    93 % (24 % without the online scale), rms 0.42 % (0.67 % without) against the
    readings' 1.0 %. The scale is a moment estimate from about 30 readings: noisy (1 to 3000
    at the flights' ends), but where it overshoots the filter only falls back towards the
    readings as they are."""
    errors, stds, raws, scales = [], [], [], []
    for seed in range(10):
        e, s, r, f = _run(seed, rate_std=0.005, rate_bias=0.1, told_std=0.0005)
        errors.append(e)
        stds.append(s)
        raws.append(r)
        scales.append(f.rate_scale)
    e, s, r = np.concatenate(errors), np.concatenate(stds), np.concatenate(raws)
    assert max(scales) > 5.0
    assert np.mean(np.abs(e) <= 3.0 * s) >= 0.9
    assert math.sqrt(np.mean(e**2)) < math.sqrt(np.mean(r**2))


def test_a_step_in_the_scene_restarts_the_filter_at_the_reading():
    """A box under the camera: the distance drops 20 % between two readings. The first
    reading after it is beyond RESET_SIGMA: the filter restarts there instead of creeping
    towards it, and goes on filtering from it."""
    f = DistanceFilter()
    for k in range(30):
        f.add(k / RATE_HZ, 3.0, (NOISE * 3.0) ** 2)
        f.set_rate(0.0, 1e-6)
    settled = f.at(29 / RATE_HZ)
    assert settled is not None and settled.readings == 30
    assert settled.variance < 0.3 * (NOISE * 3.0) ** 2
    f.add(30 / RATE_HZ, 2.4, (NOISE * 2.4) ** 2)
    after = f.at(30 / RATE_HZ)
    assert f.restarts == 1 and after is not None
    assert after.distance == pytest.approx(2.4) and after.readings == 1
    assert after.variance == pytest.approx((NOISE * 2.4) ** 2)
    # a reading 4 sigma off is noise, not a step: filtered, no restart
    spread = math.sqrt(after.variance + (NOISE * 2.4) ** 2) / 2.4
    f.add(31 / RATE_HZ, 2.4 * math.exp(0.95 * RESET_SIGMA * spread), (NOISE * 2.4) ** 2)
    assert f.restarts == 1 and f.at(31 / RATE_HZ).readings == 2


def test_without_a_rate_the_reading_is_used_as_it_is():
    """No valid estimate since the last reading (a stall, too few tracks): the filter cannot
    carry the distance, so the next reading restarts it; so does time going back."""
    f = DistanceFilter()
    assert f.at(0.0) is None
    f.add(0.0, 2.0, 0.0004)
    f.set_rate(None)
    f.add(0.1, 2.2, 0.0004)
    out = f.at(0.1)
    assert out.distance == pytest.approx(2.2) and out.readings == 1
    assert f.at(0.3).distance == pytest.approx(2.2)   # no rate: not moved
    f.set_rate(0.5, 0.0)
    f.add(0.2, 2.2 * math.exp(0.05), 0.0004)
    assert f.at(0.2).readings == 2
    assert f.at(0.3).distance == pytest.approx(f.at(0.2).distance * math.exp(0.05))
    f.add(0.05, 1.9, 0.0004)   # time went back: restart at it
    assert f.at(0.05).distance == pytest.approx(1.9) and f.at(0.05).readings == 1


@pytest.mark.parametrize("distance, variance", [(0.0, 0.01), (-1.0, 0.01), (math.nan, 0.01),
                                                (math.inf, 0.01), (2.0, -1.0),
                                                (2.0, math.nan)])
def test_invalid_readings_are_refused(distance, variance):
    f = DistanceFilter()
    with pytest.raises(ValueError, match="range reading"):
        f.add(0.0, distance, variance)
    assert f.at(0.0) is None


def test_exact_readings_are_taken_as_they_are():
    """Variance 0 (distance_rel_std 0): every reading is exact, the filter follows them."""
    f = DistanceFilter()
    for k, d in enumerate((2.0, 2.1, 1.9)):
        f.add(k * 0.1, d, 0.0)
        f.set_rate(0.0, 1e-4)
        assert f.at(k * 0.1).distance == pytest.approx(d)
