"""The track-count label reads as the intended string: glyphs of a clean render, a tight outline.

The defect this guards against: a shadow drawn with another thickness than the text (OpenCV
5 renders thickness >= 2 bold, with a wider advance), so "track count: 466" read "4666".
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from ground_truth import texture  # test/ on sys.path

from optical_flow_ros.core.lk_tracker import Tracks
from optical_flow_ros.core.text_label import LabelStyle, label_style, put_label
from optical_flow_ros.core.track_drawing import draw_tracks

SIZES = [(240, 320), (480, 640), (720, 1280), (1080, 1920)]
FONT = cv2.FONT_HERSHEY_PLAIN


def _tracks(n: int) -> Tracks:
    """``n`` tracks far outside the image: only the count label is drawn."""
    return Tracks(ids=np.arange(n, dtype=np.int64), points=np.full((n, 2), -1e4, np.float32),
                  velocities=np.full((n, 2), np.nan, np.float32), ages=np.ones(n, np.int32),
                  fb_errors=np.zeros(n, np.float32), stamp=0.0)


def _clean_render(shape: tuple[int, int], text: str, style: LabelStyle) -> np.ndarray:
    """The string alone, white on black at the label's place: what the label must read as."""
    margin = round(8 * style.scale)
    _, height, _ = style.text_size("0")
    clean = np.zeros(shape, np.uint8)
    cv2.putText(clean, text, (margin, margin + height), FONT, style.scale, 255,
                style.thickness, cv2.LINE_AA)
    return clean


def _columns(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask.any(axis=0))


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.mark.parametrize("background", [20, 235], ids=["dark", "light"])
@pytest.mark.parametrize("shape", SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
def test_count_label_is_the_clean_string_with_a_tight_outline(shape, background):
    text = "track count: 466"
    vis = draw_tracks(np.full(shape, background, np.uint8), _tracks(466), None)
    style = label_style(shape)
    clean = _clean_render(shape, text, style)
    glyphs = clean > 0

    # Outline: nothing changed further than the outline width from a glyph pixel, so the
    # drawn label spans the text's extent plus at most that (1-2 px), not a wider copy.
    assert 1 <= style.outline <= 2
    side = 2 * style.outline + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    near = cv2.dilate(glyphs.astype(np.uint8), kernel) > 0
    changed = (vis != background).any(axis=2)
    assert not (changed & ~near).any()
    gx0, gy0, gx1, gy1 = _bbox(glyphs)
    cx0, cy0, cx1, cy1 = _bbox(changed)
    assert gx0 - cx0 <= style.outline and cx1 - gx1 <= style.outline
    assert gy0 - cy0 <= style.outline and cy1 - gy1 <= style.outline

    # Glyphs: inside the solid outline the label is the clean render itself (white text on
    # black, the same anti-aliasing), so its glyph columns are the clean string's columns.
    solid = cv2.dilate(clean, kernel) >= 128
    assert (np.abs(vis[solid].astype(int) - clean[solid][:, None]) <= 1).all()
    np.testing.assert_array_equal(_columns((vis >= 128).all(axis=2) & solid),
                                  _columns(clean >= 128))

    # Legible on both backgrounds: the outline ring around the glyphs is dark.
    ring = changed & (clean == 0)
    assert vis[ring].mean() < 0.5 * background + 10


@pytest.mark.parametrize("shape", SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
def test_label_grows_with_the_image_and_fits_its_width(shape):
    style = label_style(shape)
    width, height, _ = style.text_size("track count: 100000")
    assert height >= 0.03 * shape[0] and height <= 0.06 * shape[0] + 15
    assert width + 2 * round(8 * style.scale) < shape[1]


def test_label_on_a_real_texture_reads_like_on_a_plain_one():
    shape = (480, 640)
    base = texture("gravel", shape)
    vis = draw_tracks(base, _tracks(466), None)
    clean = _clean_render(shape, "track count: 466", label_style(shape))
    solid = cv2.dilate(clean, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))) >= 128
    assert (np.abs(vis[solid].astype(int) - clean[solid][:, None]) <= 1).all()
    np.testing.assert_array_equal(_columns((vis[:60] >= 128).all(axis=2) & solid[:60]),
                                  _columns(clean[:60] >= 128))


def test_put_label_clips_at_the_border_and_checks_the_image():
    image = np.zeros((20, 30, 3), np.uint8)
    put_label(image, "466", (-5, 5), label_style(image.shape))   # partly outside: clipped
    assert image.any()
    untouched = np.zeros((20, 30, 3), np.uint8)
    put_label(untouched, "466", (100, 100), label_style(image.shape))   # all outside
    assert not untouched.any()
    with pytest.raises(ValueError, match="image must be"):
        put_label(np.zeros((20, 30), np.uint8), "x", (0, 10), label_style((20, 30)))
    with pytest.raises(ValueError, match="label style"):
        LabelStyle(0.0, 1, 1)
