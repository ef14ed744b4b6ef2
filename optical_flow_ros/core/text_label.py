"""Text labels that read cleanly on any background: glyphs with an outline of the same glyphs.

The OpenCV samples' ``draw_str`` draws the text twice: a black copy with ``thickness=2``
shifted by one pixel, then the white text with ``thickness=1``. OpenCV 5 renders
``thickness >= 2`` as a bold face with a wider advance per glyph (``getTextSize`` of
"track count: 466" at FONT_HERSHEY_PLAIN, scale 1: 117 px at thickness 1, 132 px at 2), so
the shadow runs 15 px past the text and "466" reads "4666". Here the outline is the text's
own rendering grown by a few pixels (a dilation of its anti-aliased mask), so it follows
every glyph exactly whatever the font engine does with thickness, in OpenCV 4 and 5.

Coordinates are (x, y) px of the image drawn on, colours BGR.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["LabelStyle", "label_style", "put_label"]

_FONT = cv2.FONT_HERSHEY_PLAIN
_REFERENCE_ROWS = 480.0  # scale 1 (15 px tall glyphs) at this image height


@dataclass(frozen=True)
class LabelStyle:
    """Font scale, stroke thickness and outline width of a label.

    Attributes:
        scale: OpenCV font scale (FONT_HERSHEY_PLAIN: ~15 px tall glyphs per unit).
        thickness: glyph stroke thickness, px (OpenCV 5: 1 regular, >= 2 bold).
        outline: outline width around the glyphs, px.
    """

    scale: float
    thickness: int
    outline: int

    def __post_init__(self) -> None:
        if not self.scale > 0 or self.thickness < 1 or self.outline < 0:
            raise ValueError(f"label style: needs scale > 0, thickness >= 1, outline >= 0; "
                             f"got {self}")

    def text_size(self, text: str) -> tuple[int, int, int]:
        """(width, height above the baseline, depth below it) of ``text``, px."""
        (width, height), baseline = cv2.getTextSize(text, _FONT, self.scale, self.thickness)
        return width, height, baseline


def label_style(shape: tuple[int, ...], *, scale: float | None = None) -> LabelStyle:
    """The label style for an image of ``shape`` (rows first).

    Args:
        shape: the image's shape; its height sets the size: scale 1 (15 px glyphs) up to
            480 rows, growing with the height above (2.25 at 1080 rows).
        scale: a font scale to use instead of the automatic one.

    Returns:
        The style: regular weight below scale 1.5, bold above; a 1 px outline below scale
        2, 2 px above.
    """
    if scale is None:
        scale = max(1.0, shape[0] / _REFERENCE_ROWS)
    return LabelStyle(float(scale), 1 if scale < 1.5 else 2, 1 if scale < 2.0 else 2)


def put_label(image: np.ndarray, text: str, org: tuple[int, int], style: LabelStyle, *,
              color: tuple[int, int, int] = (255, 255, 255),
              outline_color: tuple[int, int, int] = (0, 0, 0)) -> None:
    """Draw ``text`` with an outline into ``image`` (in place, like ``cv2.putText``).

    The glyphs are rendered once, anti-aliased, into a mask; the outline is that mask
    dilated by ``style.outline`` px, so it extends exactly that far beyond every glyph, and
    within it the label is the clean rendering of ``text`` (glyph colour over outline
    colour) whatever the background. Parts outside the image are clipped.

    Args:
        image: (H, W, 3) uint8 BGR image, modified in place.
        text: the label.
        org: (x, y) of the left end of the text's baseline, px.
        style: size, weight and outline width (:func:`label_style`).
        color: BGR colour of the glyphs.
        outline_color: BGR colour of the outline.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.dtype} {image.shape}")
    width, height, depth = style.text_size(text)
    pad = style.outline + style.thickness + 2
    x, y = int(org[0]), int(org[1])
    box_x, box_y = x - pad, y - height - pad
    box = np.zeros((height + depth + 2 * pad, width + 2 * pad), np.uint8)
    cv2.putText(box, text, (pad, pad + height), _FONT, style.scale, 255, style.thickness,
                cv2.LINE_AA)
    rows, cols = image.shape[:2]
    x0, y0 = max(box_x, 0), max(box_y, 0)
    x1, y1 = min(box_x + box.shape[1], cols), min(box_y + box.shape[0], rows)
    if x0 >= x1 or y0 >= y1:
        return
    glyphs = box[y0 - box_y:y1 - box_y, x0 - box_x:x1 - box_x]
    if style.outline:
        side = 2 * style.outline + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
        # Opaque wherever a glyph pixel of half coverage or more is within reach; the
        # outer edge keeps the glyphs' anti-aliasing.
        ring = cv2.multiply(cv2.dilate(box, kernel), 2)  # uint8: saturates at 255
        ring = ring[y0 - box_y:y1 - box_y, x0 - box_x:x1 - box_x]
    else:
        ring = np.zeros_like(glyphs)
    roi = image[y0:y1, x0:x1]
    alpha_ring = ring[..., None].astype(np.float32) / 255.0
    alpha_text = glyphs[..., None].astype(np.float32) / 255.0
    out = roi * (1.0 - alpha_ring) + np.float32(outline_color) * alpha_ring
    out = out * (1.0 - alpha_text) + np.float32(color) * alpha_text
    roi[...] = np.rint(out).astype(np.uint8)
