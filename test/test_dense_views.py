"""The dense views' scale in dense_flow_node's pipeline, against known image motions.

A real texture translated by a known amount per frame: in auto mode (the default) a 2 px/frame
flow is near-full brightness and its arrows most of a grid step long; fixed mode is the
seed's formula; smoothing bounds the frame-to-frame change; a restart forgets the history.
"""

from __future__ import annotations

import math

import cv2
import ground_truth as gt
import numpy as np
import pytest

from optical_flow_ros.core.flow_drawing import draw_flow, draw_hsv
from optical_flow_ros.core.view_scale import robust_magnitude
from optical_flow_ros.ros.dense_pipeline import (
    ARROW_AUTO_FILL,
    DENSE_FLOW_PARAMS,
    DensePipeline,
    build_dense_node_config,
)
from optical_flow_ros.ros.diagnostics import OfflineDiagnostics
from optical_flow_ros.ros.image_input import frame_from_msg
from optical_flow_ros.ros.image_messages import array_to_image_msg, image_msg_to_array
from optical_flow_ros.ros.parameter_table import config_values, defaults

SHAPE = (240, 320)
BASE = gt.texture("gravel", (SHAPE[0] + 200, SHAPE[1] + 200))
GREEN = (0, 255, 0)


def _pipeline(**params: object) -> DensePipeline:
    values = defaults(DENSE_FLOW_PARAMS)
    values.update(params)
    return DensePipeline(build_dense_node_config(config_values(DENSE_FLOW_PARAMS, values)),
                         OfflineDiagnostics())


def _run(pipeline: DensePipeline, shifts: list[float], shape: tuple[int, int] = SHAPE,
         start: float = 0.0):
    """Frames moving right by ``shifts[k]`` px before frame k + 1; the results of k >= 1."""
    wants = pipeline.wanted(flow=True, hsv=True, arrows=True, warp=False)
    x, results = -100.0, []
    for k, shift in enumerate([0.0, *shifts]):
        x += shift
        msg = array_to_image_msg(gt.render(BASE, gt.translation(x, -100.0), shape), "mono8")
        t = start + 1.0 + k / 30.0
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(round(t % 1 * 1e9))
        result = pipeline.process(frame_from_msg(msg), wants)
        if k:
            results.append(result)
    return results


def _value(result) -> np.ndarray:
    """The HSV view's brightness (V) inside the image, away from the borders."""
    hsv = cv2.cvtColor(image_msg_to_array(result.hsv_msg), cv2.COLOR_BGR2HSV)
    return hsv[16:-16, 16:-16, 2]


def test_auto_mode_shows_a_two_pixel_flow_near_full_brightness():
    result = _run(_pipeline(), [2.0, 2.0])[-1]
    assert np.median(_value(result)) >= 230          # the seed's fixed scale: 8 of 255
    fixed = _run(_pipeline(hsv_scale_mode="fixed"), [2.0, 2.0])[-1]
    assert np.median(_value(fixed)) == pytest.approx(8, abs=1)


def test_fixed_mode_is_the_seeds_formula_exactly():
    for scale in (4.0, 25.0):
        result = _run(_pipeline(hsv_scale_mode="fixed", hsv_scale=scale,
                                arrow_scale_mode="fixed"), [2.0, 3.0])[-1]
        np.testing.assert_array_equal(image_msg_to_array(result.hsv_msg),
                                      draw_hsv(result.flow, scale=scale))
        np.testing.assert_array_equal(image_msg_to_array(result.arrows_msg),
                                      draw_flow(_frame_bgr(-95.0), result.flow, step=16))


def _frame_bgr(x: float) -> np.ndarray:
    return cv2.cvtColor(gt.render(BASE, gt.translation(x, -100.0), SHAPE), cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize(("mode", "length"), [("auto", ARROW_AUTO_FILL * 16), ("fixed", 2.0)])
def test_arrows_of_a_two_pixel_flow(mode, length):
    result = _run(_pipeline(arrow_scale_mode=mode), [2.0])[-1]   # first flow: no history
    arrows = image_msg_to_array(result.arrows_msg)
    scale = 1.0 if mode == "fixed" else length / max(robust_magnitude(result.flow, 99.0), 1.0)
    np.testing.assert_array_equal(arrows, draw_flow(_frame_bgr(-98.0), result.flow, step=16,
                                                    scale=scale))
    # Drawn: lines to the right, ending `length` px from their grid point (within a pixel).
    green = (arrows == GREEN).all(axis=2)
    ys, xs = np.mgrid[8 + 16:SHAPE[0] - 16:16, 8 + 16:SHAPE[1] - 32:16].reshape(2, -1)
    tip = xs + int(round(length))
    assert (green[ys, tip - 1] | green[ys, tip] | green[ys, tip + 1]).mean() > 0.95
    beyond = tip + 2
    if length < 12:                 # (the auto tip is 2 px before the next point's dot)
        assert not green[ys, beyond].any()
    else:
        assert (~green[ys, beyond - 1]).mean() > 0.9


def test_smoothing_bounds_the_change_between_frames():
    """Flow alternating between 2 and 3 px/frame: each frame's brightness scale moves a tenth
    of the way (log scale) to its robust maximum, at most (3/2) ** 0.1 = 4 % per frame, and the
    view is that scale's draw_hsv exactly; per-frame scaling (view_smoothing 1) jumps 1.5x."""
    shifts = [2.0, 3.0] * 6
    peak, scales = None, []
    for result in _run(_pipeline(), shifts):
        target = math.log(max(robust_magnitude(result.flow, 99.0), 1.0))
        peak = target if peak is None else peak + 0.1 * (target - peak)
        scales.append(255.0 / math.exp(peak))
        np.testing.assert_array_equal(image_msg_to_array(result.hsv_msg),
                                      draw_hsv(result.flow, scale=scales[-1]))
    change = np.abs(np.diff(np.log(scales)))
    assert change.max() <= 0.1 * np.log(3.2 / 1.9)
    raw = [255.0 / max(robust_magnitude(r.flow, 99.0), 1.0)
           for r in _run(_pipeline(view_smoothing=1.0), shifts)]
    assert np.abs(np.diff(np.log(raw))).min() > np.log(1.3)


def test_restart_and_size_change_forget_the_scale():
    pipeline = _pipeline()
    _run(pipeline, [4.0] * 6)
    # Another image size: the first flow after it sets the scale directly (1.5 px = full).
    first = _run(pipeline, [1.5], shape=(200, 280), start=10.0)[-1]
    assert np.median(_value(first)) >= 230
    _run(pipeline, [4.0] * 6, start=20.0)
    pipeline.reset()
    first = _run(pipeline, [1.5], start=30.0)[-1]
    assert np.median(_value(first)) >= 230
    # Without a restart the 4 px history holds the 1.5 px flow well below full brightness.
    _run(pipeline, [4.0] * 6, start=40.0)
    assert np.median(_value(_run(pipeline, [1.5], start=40.0 + 7 / 30)[-1])) < 200
