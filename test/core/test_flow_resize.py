"""resize_flow: a flow field at another size keeps its meaning in px of that size."""

from __future__ import annotations

import cv2
import ground_truth as gt  # test/ground_truth.py
import numpy as np
import pytest

from optical_flow_ros.core.flow_resize import resize_flow, scaled_shape


def _sample(field: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``field`` bilinearly sampled at full-resolution positions (xs, ys)."""
    return cv2.remap(field, xs.astype(np.float32), ys.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize(("shape", "scale"), [((480, 640), 0.5), ((480, 640), 0.25),
                                               ((241, 321), 0.3), ((240, 320), 1.7)])
def test_smooth_field_matches_the_truth_at_the_new_pixels(shape, scale):
    # The flow of a point at full-resolution x is w(x) px; the pixel X of the new image sits
    # at x = (X + 0.5) / k - 0.5 (k per axis) and its true flow is k * w(x) in new px.
    w = gt.smooth_random_field(shape, 6.0, seed=3)
    new = scaled_shape(shape, scale)
    out = resize_flow(w, new)
    assert out.shape == new + (2,) and out.dtype == np.float32
    kx, ky = new[1] / shape[1], new[0] / shape[0]
    ys, xs = np.mgrid[0:new[0], 0:new[1]].astype(np.float64)
    truth = _sample(w, (xs + 0.5) / kx - 0.5, (ys + 0.5) / ky - 0.5) * np.float32([kx, ky])
    inner = (slice(3, -3), slice(3, -3))
    error = np.linalg.norm(out[inner] - truth[inner], axis=2)
    assert error.max() < 0.01  # measured <= 0.004 (0 at 0.5: a 2x2 mean is the bilinear value)
    # Forgetting the vector scaling would be off by |w| (1 - k) ~ up to 3 px.
    assert np.abs(w).max() * abs(1 - kx) >= 1.0


def test_each_axis_scales_by_its_own_factor():
    flow = np.empty((241, 321, 2), np.float32)
    flow[...] = (10.0, -6.0)
    out = resize_flow(flow, scaled_shape(flow.shape[:2], 0.3))
    assert out.shape[:2] == (72, 96)
    np.testing.assert_allclose(out[..., 0], 10.0 * 96 / 321, rtol=1e-5)
    np.testing.assert_allclose(out[..., 1], -6.0 * 72 / 241, rtol=1e-5)


def test_a_nan_pixel_invalidates_only_the_pixels_that_cover_it():
    flow = np.ones((8, 8, 2), np.float32)
    flow[5, 2] = np.nan
    out = resize_flow(flow, (4, 4))
    invalid = np.isnan(out).any(axis=2)
    assert invalid[2, 1] and invalid.sum() == 1
    np.testing.assert_array_equal(out[~invalid], 0.5)


def test_same_size_is_a_copy_and_bad_input_is_refused():
    flow = np.zeros((4, 6, 2), np.float32)
    out = resize_flow(flow, (4, 6))
    assert out is not flow and np.array_equal(out, flow)
    with pytest.raises(ValueError, match="float32"):
        resize_flow(np.zeros((4, 6, 2)), (2, 3))
    with pytest.raises(ValueError, match="shape"):
        resize_flow(flow, (0, 3))


def test_scaled_shape_rounds_and_keeps_a_pixel():
    assert scaled_shape((480, 640), 0.5) == (240, 320)
    assert scaled_shape((241, 321), 0.3) == (72, 96)
    assert scaled_shape((10, 10), 0.01) == (1, 1)
