"""The opt_flow.py visualisations, checked pixel by pixel."""

from __future__ import annotations

import cv2
import ground_truth as gt  # test/ground_truth.py; test/ is on sys.path via test/conftest.py
import numpy as np
import pytest

from optical_flow_ros.core.flow_drawing import draw_flow, draw_hsv, hsv_legend, warp_flow

GREEN = (0, 255, 0)


def _constant(shape: tuple[int, int], u: float, v: float) -> np.ndarray:
    flow = np.empty(shape + (2,), np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return flow


def _hue(bgr_pixel: np.ndarray) -> int:
    return int(cv2.cvtColor(bgr_pixel.reshape(1, 1, 3), cv2.COLOR_BGR2HSV)[0, 0, 0])


# --- draw_hsv -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("u", "v", "bgr", "hue"), [
    (50.0, 0.0, (0, 0, 200), 0),  # +x: red (OpenCV hue 0)
    (0.0, 50.0, (0, 200, 100), 45),  # +y (down): 90 deg, chartreuse
    (-50.0, 0.0, (200, 200, 0), 90),  # -x: cyan
    (0.0, -50.0, (200, 0, 100), 135),  # -y (up): 270 deg, violet
])
def test_draw_hsv_hue_follows_direction(u, v, bgr, hue):
    out = draw_hsv(_constant((4, 5), u, v))  # |f| = 50 px -> value 200 at scale 4
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    assert (out == out[0, 0]).all()
    np.testing.assert_allclose(out[0, 0], bgr, atol=1)
    assert abs(_hue(out[0, 0]) - hue) <= 1


def test_draw_hsv_diagonal_hue_and_wraparound():
    out = draw_hsv(np.float32([[[10, 10], [10, -1e-4]]]))
    assert abs(_hue(out[0, 0]) - 22) <= 1  # 45 deg -> hue 22.5
    assert _hue(out[0, 1]) in (0, 179)  # just below 360 deg wraps to red, not hue 180


def test_draw_hsv_value_grows_with_magnitude_and_saturates():
    mags = np.linspace(0.0, 100.0, 201, dtype=np.float32)
    flow = np.zeros((1, mags.size, 2), np.float32)
    flow[0, :, 0] = mags
    value = draw_hsv(flow, scale=4.0)[0].max(axis=1).astype(float)
    np.testing.assert_allclose(value, np.minimum(4.0 * mags, 255.0), atol=1.0)
    assert (np.diff(value) >= 0).all()
    assert (value[mags >= 64.0] == 255).all() and value[0] == 0
    doubled = draw_hsv(flow, scale=8.0)[0].max(axis=1).astype(float)
    np.testing.assert_allclose(doubled, np.minimum(8.0 * mags, 255.0), atol=1.0)


def test_draw_hsv_nan_is_black_and_input_kept():
    flow = _constant((3, 3), 20.0, -5.0)
    flow[1, 1, 0] = np.nan
    flow[0, 2] = np.nan
    before = flow.copy()
    out = draw_hsv(flow)
    assert (out[1, 1] == 0).all() and (out[0, 2] == 0).all()
    assert (out[0, 0] > 0).any()
    np.testing.assert_array_equal(flow, before)


def test_draw_hsv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="flow"):
        draw_hsv(np.zeros((3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="scale"):
        draw_hsv(np.zeros((3, 3, 2), np.float32), scale=0.0)


def test_hsv_legend_is_the_key_of_draw_hsv():
    legend = hsv_legend(65, scale=4.0)
    assert legend.shape == (65, 65, 3) and legend.dtype == np.uint8
    assert (legend[32, 32] == 0).all()  # centre: zero flow
    assert (legend[0, 0] == 0).all()  # outside the disc
    np.testing.assert_array_equal(legend[32, 64], draw_hsv(_constant((1, 1), 63.75, 0.0))[0, 0])
    np.testing.assert_array_equal(legend[64, 32], draw_hsv(_constant((1, 1), 0.0, 63.75))[0, 0])
    np.testing.assert_allclose(legend[32, 48], draw_hsv(_constant((1, 1), 31.9, 0.0))[0, 0],
                               atol=1)


# --- draw_flow ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("u", "v", "end"), [
    (5.0, -3.0, (5, -3)),
    (4.6, 2.4, (5, 2)),  # rounded to the nearest pixel
    (-7.2, 0.0, (-7, 0)),
])
def test_draw_flow_lines_end_where_the_flow_says(u, v, end):
    shape, step = (64, 96), 16
    blank = np.zeros(shape, np.uint8)
    out = draw_flow(blank, _constant(shape, u, v), step=step)
    assert out.shape == shape + (3,) and out.dtype == np.uint8
    drawn = (out == GREEN).all(axis=2)
    assert drawn.sum() == (out > 0).any(axis=2).sum()  # only the colour, nothing else
    ys, xs = np.mgrid[step // 2 : shape[0] : step, step // 2 : shape[1] : step].reshape(2, -1)
    assert drawn[ys, xs].all()  # starts (dots)
    assert drawn[ys + end[1], xs + end[0]].all()  # ends
    length = max(abs(end[0]), abs(end[1]))
    for t in range(length + 1):  # each step along x: a pixel within 1 px of the ideal y
        px = np.rint(xs + end[0] * t / length).astype(int)
        py = np.rint(ys + end[1] * t / length).astype(int)
        assert (drawn[py - 1, px] | drawn[py, px] | drawn[py + 1, px]).all(), t
    beyond = (ys + end[1] + np.sign(end[1]), xs + end[0] + np.sign(end[0]))
    assert not drawn[beyond].any()  # lines stop at the end
    assert drawn.sum() <= xs.size * (length + 1 + 4)  # a line plus a 5-pixel dot per point


def test_draw_flow_skips_nan_and_keeps_inputs():
    shape = (32, 32)
    gray = np.full(shape, 50, np.uint8)
    flow = _constant(shape, 6.0, 0.0)
    flow[:16] = np.nan  # top row of grid points invalid
    gray_before, flow_before = gray.copy(), flow.copy()
    out = draw_flow(gray, flow, step=16)
    drawn = (out == GREEN).all(axis=2)
    assert not drawn[:16].any()
    assert drawn[24, 8 : 8 + 7].all() and drawn[24, 24 : 24 + 7].all()
    assert (out[~drawn] == 50).all()  # the gray image underneath, as BGR
    np.testing.assert_array_equal(gray, gray_before)
    np.testing.assert_array_equal(flow, flow_before)


def test_draw_flow_on_bgr_with_colour_and_all_nan():
    bgr = np.zeros((20, 30, 3), np.uint8)
    bgr[..., 0] = 90
    out = draw_flow(bgr, _constant((20, 30), 0.0, 3.0), step=10, color=(1, 2, 3))
    assert (out[5, 5] == (1, 2, 3)).all() and (out[8, 5] == (1, 2, 3)).all()
    assert (bgr[..., 1:] == 0).all()
    empty = draw_flow(bgr, np.full((20, 30, 2), np.nan, np.float32))
    np.testing.assert_array_equal(empty, bgr)


def test_draw_flow_rejects_mismatched_flow():
    with pytest.raises(ValueError, match="does not match"):
        draw_flow(np.zeros((20, 30), np.uint8), np.zeros((20, 31, 2), np.float32))


# --- warp_flow ----------------------------------------------------------------------------------


def _shifted_pair(dx: float, dy: float):
    base = gt.texture("gravel", (240 + 64, 320 + 64))
    prev = gt.render(base, gt.translation(-32, -32), (240, 320))
    nxt = gt.render(base, gt.translation(dx - 32, dy - 32), (240, 320))
    return prev, nxt


def test_warp_flow_integer_shift_is_exact_inside():
    prev, nxt = _shifted_pair(7.0, -4.0)
    flow = _constant(prev.shape, 7.0, -4.0)
    out = warp_flow(prev, flow)
    assert out.shape == prev.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[8:-8, 8:-8], nxt[8:-8, 8:-8])
    # Sources outside the image are black: first 7 columns and last 4 rows.
    assert (out[:, :7] == 0).all() and (out[-4:] == 0).all()


def test_warp_flow_subpixel_shift_matches_within_interpolation_error():
    prev, nxt = _shifted_pair(2.5, 1.5)
    out = warp_flow(prev, _constant(prev.shape, 2.5, 1.5))
    inner = (slice(8, -8), slice(8, -8))
    err = np.abs(out[inner].astype(float) - nxt[inner]).mean()
    unwarped = np.abs(prev[inner].astype(float) - nxt[inner]).mean()
    assert err < 5.0  # bilinear vs the renderer's bicubic; measured 3.4 grey levels
    assert err < 0.25 * unwarped  # unwarped: 28.0


def test_warp_flow_nan_is_black_keeps_inputs_and_types():
    prev, _ = _shifted_pair(0.0, 0.0)
    flow = _constant(prev.shape, 1.0, 1.0)
    flow[100:110, 100:110, 1] = np.nan
    prev_before, flow_before = prev.copy(), flow.copy()
    out = warp_flow(prev, flow)
    assert (out[100:110, 100:110] == 0).all()
    np.testing.assert_array_equal(out[50:90, 50:90], prev[49:89, 49:89])
    np.testing.assert_array_equal(prev, prev_before)
    np.testing.assert_array_equal(flow, flow_before)
    bgr = cv2.cvtColor(prev, cv2.COLOR_GRAY2BGR)
    assert warp_flow(bgr, flow).shape == bgr.shape
    as_float = warp_flow(prev.astype(np.float32), flow)
    assert as_float.dtype == np.float32
    np.testing.assert_allclose(as_float[50:90, 50:90], prev[49:89, 49:89])
