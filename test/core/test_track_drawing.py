"""Pixel checks of the track drawing: colours per id, trails in place, count text, purity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from ground_truth import render, texture, translation  # test/ on sys.path

from optical_flow_ros.core.lk_tracker import LKTracker, Tracks
from optical_flow_ros.core.text_label import label_style
from optical_flow_ros.core.track_drawing import PALETTE, draw_tracks, track_color, track_colors

SHAPE = (200, 300)


def make_tracks(ids: list[int], points: list[tuple[float, float]]) -> Tracks:
    n = len(ids)
    return Tracks(ids=np.array(ids, np.int64), points=np.array(points, np.float32),
                  velocities=np.full((n, 2), np.nan, np.float32),
                  ages=np.full(n, 5, np.int32), fb_errors=np.zeros(n, np.float32), stamp=1.0)


def two_trails() -> tuple[Tracks, np.ndarray]:
    """id 3: horizontal trail (50..150, 120); id 18: vertical (220, 40..160), NaN head."""
    trails = np.full((2, 6, 2), np.nan, np.float32)
    trails[0, :, 0] = np.linspace(50, 150, 6)
    trails[0, :, 1] = 120
    trails[1, 2:, 0] = 220
    trails[1, 2:, 1] = np.linspace(40, 160, 4)
    return make_tracks([3, 18], [(150, 120), (220, 160)]), trails


def test_colours_are_stable_per_id_and_distinct() -> None:
    assert track_color(3) == track_color(3 + PALETTE.shape[0])
    assert track_color(3) != track_color(18)
    np.testing.assert_array_equal(track_colors(np.array([3, 18])),
                                  np.array([track_color(3), track_color(18)], np.uint8))
    assert np.unique(PALETTE, axis=0).shape[0] == PALETTE.shape[0]
    assert all(isinstance(c, int) for c in track_color(7))


def test_trail_of_each_id_is_drawn_in_its_colour_at_its_place() -> None:
    tracks, trails = two_trails()
    gray = np.zeros(SHAPE, np.uint8)
    vis = draw_tracks(gray, tracks, trails, text=False)
    assert vis.shape == SHAPE + (3,) and vis.dtype == np.uint8
    np.testing.assert_array_equal(vis[120, 70], track_color(3))      # on the trail
    np.testing.assert_array_equal(vis[120, 150], track_color(3))     # the current point
    np.testing.assert_array_equal(vis[100, 220], track_color(18))
    np.testing.assert_array_equal(vis[160, 220], track_color(18))
    # NaN head skipped: nothing drawn above the vertical trail's first point, and nothing
    # at all away from the two trails.
    drawn = vis.any(axis=2)
    assert not drawn[:35].any()
    expected = np.zeros(SHAPE, bool)
    expected[115:126, 45:156] = True
    expected[35:166, 215:226] = True
    assert not (drawn & ~expected).any()


def text_match(vis: np.ndarray, text: str, *, from_x: int = 0) -> float:
    """How exactly the light pixels of ``vis``'s count label are the glyphs of ``text``.

    ``text`` is drawn plainly (1 px strokes, no anti-aliasing) where draw_tracks puts the
    label; light pixels are >= 128 in every channel (white glyphs, not the dark outline or
    the grey background). Returns min(recall, precision) over columns from ``from_x`` on,
    each with 1 px of tolerance for anti-aliasing and the font engine's placement (OpenCV 4
    and 5 differ): 1.0 when every glyph pixel is lit and nothing else is.
    """
    style = label_style(vis.shape)
    margin = round(8 * style.scale)
    _, height, depth = style.text_size("0")
    bottom = margin + height + depth + 3
    glyphs = np.zeros(vis.shape[:2], np.uint8)
    cv2.putText(glyphs, text, (margin, margin + height), cv2.FONT_HERSHEY_PLAIN, style.scale,
                255, 1, cv2.LINE_8)
    glyphs = glyphs[:bottom, from_x:] > 0
    light = (vis[:bottom, from_x:] >= 128).all(axis=2)
    near = np.ones((3, 3), np.uint8)
    recall = (glyphs & (cv2.dilate(light.astype(np.uint8), near) > 0)).sum() / glyphs.sum()
    precision = (light & (cv2.dilate(glyphs.astype(np.uint8), near) > 0)).sum() / light.sum()
    return float(min(recall, precision))


def test_count_text_drawn_and_input_not_modified() -> None:
    tracks, trails = two_trails()
    bgr = np.full(SHAPE + (3,), 60, np.uint8)
    before = bgr.copy()
    vis = draw_tracks(bgr, tracks, trails)
    np.testing.assert_array_equal(bgr, before)
    # The label reads "track count: 2": it is that string's glyphs, white, and its count
    # matches better than any other count would.
    assert text_match(vis, "track count: 2") >= 0.97
    style = label_style(SHAPE)
    digits_x = round(8 * style.scale) + style.text_size("track count: ")[0] - 2
    scores = {n: text_match(vis, f"track count: {n}", from_x=digits_x) for n in range(100)}
    assert max(scores, key=scores.get) == 2 and sorted(scores.values())[-2] < 0.97, scores
    plain = draw_tracks(bgr, tracks, trails, text=False)
    np.testing.assert_array_equal(plain[5:28, 15:180], before[5:28, 15:180])


def test_points_only_and_empty_tracks() -> None:
    tracks, _ = two_trails()
    vis = draw_tracks(np.zeros(SHAPE, np.uint8), tracks, None, text=False, point_radius=3)
    np.testing.assert_array_equal(vis[120, 150], track_color(3))
    np.testing.assert_array_equal(vis[120, 152], track_color(3))
    assert not vis[120, 70].any()
    empty = draw_tracks(np.zeros(SHAPE, np.uint8), Tracks.empty(), None)
    assert empty[5:28, 15:180].any() and not empty[40:].any()


@pytest.mark.parametrize("image", [np.zeros(SHAPE, np.float32),
                                   np.zeros(SHAPE + (4,), np.uint8)])
def test_bad_images_raise(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image must be"):
        draw_tracks(image, Tracks.empty())


def test_draws_live_tracker_output() -> None:
    base = texture("gravel", (SHAPE[0] + 100, SHAPE[1] + 100))
    tracker = LKTracker()
    for k in range(4):
        frame = render(base, translation(2.0 * k - 50, k - 50.0), SHAPE)
        tracks = tracker.update(frame, k / 30)
    vis = draw_tracks(frame, tracks, tracker.trails())
    xy = np.rint(tracks.points).astype(int)
    below_text = xy[:, 1] > 30
    colours = vis[xy[below_text, 1], xy[below_text, 0]]
    np.testing.assert_array_equal(colours, track_colors(tracks.ids[below_text]))
