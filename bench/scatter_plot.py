"""A small scatter-plot renderer on OpenCV (no matplotlib): panels, log/linear axes, labels.

Used by ``dense_frontier.py`` for ``docs/dense_frontier.png``. A :class:`Panel` maps data to
pixels; series are drawn as dots, lines or labelled markers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Axis", "Panel", "canvas"]

FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK, GREY, LIGHT = (0, 0, 0), (120, 120, 120), (225, 225, 225)


def canvas(width: int, height: int) -> np.ndarray:
    """A white BGR image."""
    return np.full((height, width, 3), 255, np.uint8)


@dataclass(frozen=True)
class Axis:
    """One axis: its data range, scale and tick values."""

    lo: float
    hi: float
    log: bool
    ticks: Sequence[float]
    label: str

    def fraction(self, value: float | np.ndarray) -> float | np.ndarray:
        """0 at ``lo``, 1 at ``hi``."""
        if self.log:
            return (np.log10(value) - math.log10(self.lo)) / (math.log10(self.hi)
                                                             - math.log10(self.lo))
        return (np.asarray(value) - self.lo) / (self.hi - self.lo)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.42,
          color: tuple[int, int, int] = BLACK, anchor: str = "left") -> None:
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 1)
    x, y = org
    if anchor == "center":
        x -= w // 2
    elif anchor == "right":
        x -= w
    cv2.putText(img, text, (int(x), int(y + h // 2)), FONT, scale, color, 1, cv2.LINE_AA)


class Panel:
    """A plot area inside ``img``: axes, grid, title; data -> pixel mapping."""

    def __init__(self, img: np.ndarray, box: tuple[int, int, int, int], x: Axis, y: Axis,
                 title: str) -> None:
        self.img, self.x, self.y = img, x, y
        self.left, self.top, self.right, self.bottom = box
        cv2.rectangle(img, (self.left, self.top), (self.right, self.bottom), BLACK, 1)
        for tick in x.ticks:
            px = self._px(tick, None)[0]
            cv2.line(img, (px, self.top), (px, self.bottom), LIGHT, 1)
            _text(img, f"{tick:g}", (px, self.bottom + 12), anchor="center")
        for tick in y.ticks:
            py = self._px(None, tick)[1]
            cv2.line(img, (self.left, py), (self.right, py), LIGHT, 1)
            _text(img, f"{tick:g}", (self.left - 5, py), anchor="right")
        cv2.rectangle(img, (self.left, self.top), (self.right, self.bottom), BLACK, 1)
        _text(img, x.label, ((self.left + self.right) // 2, self.bottom + 32), anchor="center")
        _text(img, y.label, (self.left, self.top - 12), anchor="left")
        _text(img, title, ((self.left + self.right) // 2, self.top - 30), 0.5, anchor="center")

    def _px(self, xv: float | None, yv: float | None) -> tuple[int, int]:
        px = py = 0
        if xv is not None:
            px = round(self.left + float(self.x.fraction(xv)) * (self.right - self.left))
        if yv is not None:
            py = round(self.bottom - float(self.y.fraction(yv)) * (self.bottom - self.top))
        return px, py

    def inside(self, xv: float, yv: float) -> bool:
        """True when the point lies within the axes' ranges."""
        return self.x.lo <= xv <= self.x.hi and self.y.lo <= yv <= self.y.hi

    def _clamped(self, xv: float, yv: float) -> tuple[int, int]:
        return self._px(min(max(xv, self.x.lo), self.x.hi), min(max(yv, self.y.lo), self.y.hi))

    def dots(self, xs: Sequence[float], ys: Sequence[float], color: tuple[int, int, int],
             radius: int = 2) -> None:
        """Small filled dots (points outside the ranges are drawn at the edge)."""
        for xv, yv in zip(xs, ys, strict=True):
            cv2.circle(self.img, self._clamped(xv, yv), radius, color, -1, cv2.LINE_AA)

    def line(self, xs: Sequence[float], ys: Sequence[float], color: tuple[int, int, int],
             thickness: int = 2, dashed: bool = False) -> None:
        """A polyline through the points, in order."""
        pts = [self._clamped(xv, yv) for xv, yv in zip(xs, ys, strict=True)]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            if not dashed:
                cv2.line(self.img, (x0, y0), (x1, y1), color, thickness, cv2.LINE_AA)
                continue
            n = max(1, int(math.hypot(x1 - x0, y1 - y0) // 8))
            for i in range(0, n, 2):
                a, b = i / n, min(1.0, (i + 1) / n)
                cv2.line(self.img, (round(x0 + a * (x1 - x0)), round(y0 + a * (y1 - y0))),
                         (round(x0 + b * (x1 - x0)), round(y0 + b * (y1 - y0))), color,
                         thickness, cv2.LINE_AA)

    def vline(self, xv: float, color: tuple[int, int, int], label: str = "") -> None:
        """A dashed vertical line across the panel, labelled at its top."""
        self.line([xv, xv], [self.y.lo, self.y.hi], color, 1, dashed=True)
        if label:
            _text(self.img, label, (self._px(xv, None)[0] + 4, self.top + 10), 0.38, color)

    def hline(self, yv: float, color: tuple[int, int, int], label: str = "") -> None:
        """A dashed horizontal line across the panel, labelled at its right end."""
        self.line([self.x.lo, self.x.hi], [yv, yv], color, 1, dashed=True)
        if label:
            _text(self.img, label, (self.right - 4, self._px(None, yv)[1] - 9), 0.38, color,
                  anchor="right")

    def marker(self, xv: float, yv: float, color: tuple[int, int, int], label: str,
               offset: tuple[int, int] = (7, -8)) -> None:
        """A ringed marker with a text label beside it."""
        px, py = self._clamped(xv, yv)
        cv2.circle(self.img, (px, py), 5, color, -1, cv2.LINE_AA)
        cv2.circle(self.img, (px, py), 6, BLACK, 1, cv2.LINE_AA)
        _text(self.img, label, (px + offset[0], py + offset[1]), 0.42, color)

    def legend(self, entries: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
        """Coloured entries stacked in the panel's upper right corner."""
        for i, (text, color) in enumerate(entries):
            y = self.top + 30 + 16 * i
            cv2.circle(self.img, (self.right - 150, y), 4, color, -1, cv2.LINE_AA)
            _text(self.img, text, (self.right - 140, y), 0.4)
