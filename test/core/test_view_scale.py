"""The automatic scale of the dense views: robust maximum of known fields, smoothing bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optical_flow_ros.core.view_scale import AutoScale, robust_magnitude


def _field(shape: tuple[int, int], u: float, v: float) -> np.ndarray:
    flow = np.empty(shape + (2,), np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return flow


def test_robust_magnitude_ignores_a_few_wild_pixels_and_nan():
    flow = _field((480, 640), 1.2, -1.6)                   # |f| = 2 px
    rng = np.random.default_rng(0)
    wild = rng.choice(flow.shape[0] * flow.shape[1], size=1500, replace=False)  # 0.5 %
    flow.reshape(-1, 2)[wild] = 100.0
    flow[:40] = np.nan
    assert robust_magnitude(flow, 99.0) == pytest.approx(2.0, rel=1e-5)
    assert robust_magnitude(flow, 100.0) == pytest.approx(math.hypot(100, 100), rel=1e-5)
    # a field of magnitudes 0..10 px: its 90th percentile, also when subsampled
    ramp = np.zeros((480, 640, 2), np.float32)
    ramp[..., 0] = np.linspace(0, 10, 640, dtype=np.float32)
    assert robust_magnitude(ramp, 90.0) == pytest.approx(9.0, abs=0.1)
    assert robust_magnitude(np.full((8, 8, 2), np.nan, np.float32)) == 0.0
    assert robust_magnitude(_field((3, 5), 3.0, 4.0)) == pytest.approx(5.0)


def test_auto_scale_starts_at_the_first_field_and_converges_on_a_log_scale():
    auto = AutoScale(percentile=99.0, smoothing=0.1, floor=1.0)
    assert auto.value is None
    assert auto.update(_field((48, 64), 3.0, 0.0)) == pytest.approx(3.0)
    values = [auto.update(_field((48, 64), 0.0, 12.0)) for _ in range(60)]
    # each frame a tenth of the remaining way on a log scale: 3 * 4 ** (1 - 0.9 ** k)
    k = np.arange(1, 61)
    np.testing.assert_allclose(values, 3.0 * 4.0 ** (1 - 0.9 ** k), rtol=1e-5)
    auto.reset()
    assert auto.value is None
    assert auto.update(_field((48, 64), 5.0, 0.0)) == pytest.approx(5.0)


def test_auto_scale_bounds_the_frame_to_frame_change():
    """A robust maximum jumping between 1.5 and 3 px every frame (flicker) moves the scale
    by at most 2 ** 0.1 (7 %) per frame; without smoothing it would jump 2x."""
    auto = AutoScale(smoothing=0.1)
    values = [auto.update(_field((48, 64), 1.5 if i % 2 else 3.0, 0.0)) for i in range(100)]
    ratios = np.exp(np.abs(np.diff(np.log(values))))
    assert ratios.max() <= 2.0 ** 0.1 + 1e-6
    assert 1.5 < min(values[50:]) and max(values[50:]) < 3.0


def test_floor_keeps_sub_pixel_noise_dark():
    auto = AutoScale(floor=1.0)
    noise = np.random.default_rng(1).normal(0, 0.05, (48, 64, 2)).astype(np.float32)
    assert auto.update(noise) == 1.0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"percentile": 0.0}, "percentile"), ({"smoothing": 0.0}, "smoothing"),
    ({"smoothing": 1.5}, "smoothing"), ({"floor": 0.0}, "floor")])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoScale(**kwargs)


def test_bad_flow_is_refused():
    with pytest.raises(ValueError, match="flow"):
        robust_magnitude(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="percentile"):
        robust_magnitude(np.zeros((4, 4, 2), np.float32), 101.0)
