"""Fuzzing of the flow algorithms with any valid configuration, any frame size, any stamps.

``DenseFlow.compute`` returns an ``(H, W, 2)`` float32 flow or raises
``ImageConversionError`` (images too small for the configured DIS); ``LKTracker.update``
returns consistent tracks inside the image or raises ``ValueError`` (a non-finite stamp).
Nothing else may escape (an OpenCV ``cv2.error``, or a segfault: the config ranges must keep
OpenCV inside what it handles). The nodes count these two as failed frames.

Configurations are drawn from the config classes' own field declarations (every choice, both
ends of every range, values in between), so a new setting is fuzzed without touching this
file. Profiles as in ``test_fuzz_image_codec.py``.
"""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from test_fuzz_image_codec import FUZZ

from optical_flow_ros.core.config_fields import FieldSpec, field_specs
from optical_flow_ros.core.dense_flow import DenseFlow, DenseFlowConfig
from optical_flow_ros.core.errors import ConfigError, ImageConversionError
from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig

# Work per frame grows with these; capped so that one example stays well under a second.
_CAPS = {"levels": 6, "winsize": 41, "iterations": 10, "gradient_descent_iterations": 50,
         "variational_refinement_iterations": 10, "criteria_max_iter": 50, "max_level": 5,
         "max_corners": 2000, "lmeds_hypotheses": 64}

_rng = np.random.default_rng(11)
BASE = cv2.GaussianBlur(_rng.integers(0, 256, (200, 260), np.uint8), (5, 5), 1.0)


def field_values(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Valid values of one config field: choices, both ends of its range, values between."""
    if spec.choices is not None:
        values: st.SearchStrategy[Any] = st.sampled_from(spec.choices)
    elif spec.value_type is bool:
        values = st.booleans()
    elif spec.range is not None:
        lo, hi = spec.range
        hi = min(hi, _CAPS.get(spec.name, hi))
        if spec.value_type is int:
            lo, hi = int(lo) + spec.exclusive_min, int(hi) - spec.exclusive_max
            values = st.one_of(st.sampled_from([lo, hi]), st.integers(lo, hi))
            if spec.odd:
                values = values.map(lambda v: v if v % 2 else (v - 1 if v > lo else v + 1))
        else:
            ends = [v for v, excluded in ((lo, spec.exclusive_min), (hi, spec.exclusive_max))
                    if not excluded]
            between = st.floats(lo, hi, exclude_min=spec.exclusive_min,
                                exclude_max=spec.exclusive_max)
            values = st.one_of(st.sampled_from(ends), between) if ends else between
    else:
        values = st.just(spec.default)
    if spec.optional:
        values = st.one_of(st.none(), values)
    return st.one_of(st.just(spec.default), values)  # the default often: fewer odd mixes


def configs(config_type: type) -> st.SearchStrategy[Any]:
    """Valid instances of a config dataclass (combinations it refuses are filtered out)."""
    fields = {spec.name: field_values(spec) for spec in field_specs(config_type)}

    def build(values: dict[str, Any]) -> Any:
        try:
            return config_type(**values)
        except ConfigError:
            return None

    return st.fixed_dictionaries(fields).map(build).filter(lambda c: c is not None)


sizes = st.one_of(st.sampled_from([(1, 1), (1, 2), (2, 1), (3, 3), (8, 8), (17, 33),
                                   (32, 91), (48, 64)]),
                  st.sampled_from([(96, 128), (120, 160), (170, 90), (32, 230)]),
                  st.tuples(st.integers(1, 170), st.integers(1, 230)))
"""Frame sizes (rows, cols): tiny, degenerate, below and above DIS's minimum, and any."""


def frame(index: int, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    dy, dx = index % 30, (2 * index) % 30
    return np.ascontiguousarray(BASE[dy:dy + height, dx:dx + width])


@st.composite
def frame_sequences(draw: st.DrawFn) -> list[tuple[np.ndarray, float]]:
    """2-6 frames moving a little; size changes sometimes; stamps with repeats and jumps."""
    size, t, out = draw(sizes), draw(st.floats(0.0, 1e5)), []
    for i in range(draw(st.integers(2, 6))):
        if draw(st.integers(0, 4)) == 0:
            size = draw(sizes)
        t += draw(st.sampled_from([1 / 30, 1 / 30, 0.0, -1.0, 5.0, 1e-6]))
        out.append((frame(i, size), t))
    return out


@FUZZ
@given(config=configs(DenseFlowConfig), frames=frame_sequences(), new_config=st.booleans())
def test_dense_flow_returns_flow_or_refuses(config, frames, new_config):
    flow_engine = DenseFlow(config)
    outcomes = []
    for (prev, _), (nxt, _) in zip(frames, frames[1:], strict=False):
        if new_config:
            flow_engine.configure(config)
        if prev.shape != nxt.shape:
            with pytest.raises(ImageConversionError):
                flow_engine.compute(prev, nxt)
            continue
        try:
            flow = flow_engine.compute(prev, nxt)
        except ImageConversionError:
            outcomes.append("refused")
            continue
        outcomes.append("flow")
        assert flow.shape == (*prev.shape, 2) and flow.dtype == np.float32
        assert not np.isinf(flow).any()
    event(f"{config.method}: {'/'.join(sorted(set(outcomes))) or 'none'}")


# Regression: the validity masks' cv2.compare(array, float) raised cv2.error on 1x1 images
# (OpenCV cannot tell a 1x1 array from a scalar).
@pytest.mark.parametrize("validity", ["texture", "fb", "both"])
def test_dense_flow_1x1_with_validity(validity):
    one = np.full((1, 1), 100, np.uint8)
    engine = DenseFlow(DenseFlowConfig(method="farneback", validity=validity))
    try:
        assert engine.compute(one, one).shape == (1, 1, 2)
    except ImageConversionError:
        pass  # refusing a 1-pixel image is fine too


@FUZZ
@given(config=configs(TrackerConfig), frames=frame_sequences(),
       bad_stamp=st.sampled_from([None, math.nan, math.inf]))
def test_lk_tracker_tracks_or_refuses(config, frames, bad_stamp):
    tracker = LKTracker(config)
    for i, (image, stamp) in enumerate(frames):
        if bad_stamp is not None and i == len(frames) - 1:
            with pytest.raises(ValueError):
                tracker.update(image, bad_stamp)
            continue
        tracks = tracker.update(image, stamp)
        n = len(tracks.ids)
        assert tracks.points.shape == (n, 2) and tracks.velocities.shape == (n, 2)
        assert len(np.unique(tracks.ids)) == n and n <= config.max_corners
        height, width = image.shape
        if n:
            assert np.isfinite(tracks.points).all()
            assert (tracks.points >= -0.5).all()
            assert (tracks.points[:, 0] <= width - 0.5).all()
            assert (tracks.points[:, 1] <= height - 0.5).all()
        assert tracker.trails().shape[0] == n
        event(f"tracks: {'some' if n else 'none'}")


TINY_EPSILON = """
import numpy as np
from optical_flow_ros.core.dense_flow import DenseFlow, DenseFlowConfig
from optical_flow_ros.core.errors import ConfigError
try:
    config = DenseFlowConfig(variational_refinement_epsilon=1e-30)
except ConfigError:
    raise SystemExit(0)  # refusing it is a fix too
rng = np.random.default_rng(0)
prev = rng.integers(0, 256, (152, 215), np.uint8)
DenseFlow(config).compute(prev, np.roll(prev, 2, axis=1))
"""


# Regression: variational_refinement_epsilon used to accept (0, 1000]; below ~1e-19 its square
# underflows in OpenCV's float32 DIS refinement and calc() segfaults (1e-25 and 1e-30 did on
# 152x215, 1e-20 did not). Every value the config accepts is fuzzed above.
def test_dis_tiny_variational_epsilon_does_not_crash():
    # in a subprocess: the segfault would end pytest itself
    result = subprocess.run([sys.executable, "-c", TINY_EPSILON], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
