"""The window of the ``view`` command: panels side by side, status lines, the seeds' keys.

No ROS here. :func:`compose` lays the panels out on one BGR canvas (pure numpy/OpenCV,
testable without a display): each image at its own size, all scaled by one factor only when
the row would not fit ``max_size``, a status line under each and a footer line across the
window. :class:`ViewerWindow` shows a canvas in an SDL window (pygame; opencv-python-headless
has no highgui) and turns key presses into :class:`Command` values.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEO_CENTERED", "1")  # a window that grows stays on the screen
import pygame  # noqa: E402  (after hiding its banner)

__all__ = ["PLACEHOLDER_SHAPE", "STATUS_HEIGHT", "Command", "PanelView", "ViewerWindow",
           "WindowError", "compose"]

STATUS_HEIGHT = 22
"""Height in px of each status line and of the footer."""

PLACEHOLDER_SHAPE = (240, 320)
"""(rows, cols) of a panel that has no frame yet."""

_MIN_WIDTH = 560  # px: room for the footer
_DECORATION_PX = 64  # px of the desktop's height left to title bar and panels
_TEXT_COLOUR = (230, 230, 230)
_PLACEHOLDER_COLOUR = (48, 48, 48)


class Command(enum.Enum):
    """What a key asks for."""

    QUIT = "quit"
    SNAPSHOT = "snapshot"
    TOGGLE_HSV = "toggle_hsv"
    TOGGLE_WARP = "toggle_warp"


_KEYS = {
    pygame.K_ESCAPE: Command.QUIT, pygame.K_q: Command.QUIT, pygame.K_s: Command.SNAPSHOT,
    pygame.K_1: Command.TOGGLE_HSV, pygame.K_KP1: Command.TOGGLE_HSV,
    pygame.K_2: Command.TOGGLE_WARP, pygame.K_KP2: Command.TOGGLE_WARP,
}


@dataclass(frozen=True)
class PanelView:
    """One panel: its newest image (uint8 BGR, or None while waiting) and status line."""

    image: np.ndarray | None
    status: str
    waiting: str = "waiting for frames"


def _text_strip(text: str, width: int) -> np.ndarray:
    """A ``STATUS_HEIGHT`` x ``width`` black strip with ``text`` on it (clipped)."""
    strip = np.zeros((STATUS_HEIGHT, max(width, 1), 3), np.uint8)
    cv2.putText(strip, text, (4, STATUS_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                _TEXT_COLOUR, 1, cv2.LINE_AA)
    return strip


def _placeholder(shape: tuple[int, int], text: str) -> np.ndarray:
    image = np.full(shape + (3,), _PLACEHOLDER_COLOUR, np.uint8)
    cv2.putText(image, text, (8, shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                _TEXT_COLOUR, 1, cv2.LINE_AA)
    return image


def compose(panels: Sequence[PanelView], footer: str, *,
            max_size: tuple[int, int] = (1000, 1800)) -> np.ndarray:
    """Lay the panels out left to right on one canvas.

    Args:
        panels: The panels, in order; images are drawn at their top-left corner, the first
            at the canvas's (0, 0).
        footer: The line across the bottom.
        max_size: (rows, cols) the canvas may take; images shrink (one factor for all, area
            interpolation) only when they would not fit.

    Returns:
        The uint8 BGR canvas.

    """
    shapes = [p.image.shape[:2] if p.image is not None else PLACEHOLDER_SHAPE for p in panels]
    total_w = sum(w for _, w in shapes) or PLACEHOLDER_SHAPE[1]
    max_h = max((h for h, _ in shapes), default=PLACEHOLDER_SHAPE[0])
    scale = min(1.0, max_size[1] / total_w, (max_size[0] - 2 * STATUS_HEIGHT) / max_h)
    sized = [(max(1, round(h * scale)), max(1, round(w * scale))) for h, w in shapes]
    image_h = max((h for h, _ in sized), default=round(max_h * scale))
    width = max(sum(w for _, w in sized), _MIN_WIDTH)
    canvas = np.zeros((image_h + 2 * STATUS_HEIGHT, width, 3), np.uint8)
    x = 0
    for panel, (h, w) in zip(panels, sized, strict=True):
        if panel.image is None:
            image = _placeholder((h, w), panel.waiting)
        elif (h, w) != panel.image.shape[:2]:
            image = cv2.resize(panel.image, (w, h), interpolation=cv2.INTER_AREA)
        else:
            image = panel.image
        canvas[:h, x:x + w] = image
        canvas[image_h:image_h + STATUS_HEIGHT, x:x + w] = _text_strip(panel.status, w)
        x += w
    canvas[image_h + STATUS_HEIGHT:] = _text_strip(footer, width)
    return canvas


class WindowError(RuntimeError):
    """No window can be opened (no display server, no video driver)."""


class ViewerWindow:
    """An SDL window that shows canvases and reports the seeds' keys.

    Args:
        title: The window title.

    Raises:
        WindowError: SDL cannot open a display.

    """

    def __init__(self, title: str) -> None:
        if sys.platform.startswith("linux") and "SDL_VIDEODRIVER" not in os.environ:
            # Only the display server the environment names: SDL would otherwise fall back to
            # its invisible "offscreen" driver, and libwayland prints its own errors.
            os.environ["SDL_VIDEODRIVER"] = "x11" if os.environ.get("DISPLAY") else "wayland"
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "?"
        try:
            pygame.display.init()
        except pygame.error as err:
            raise WindowError(f"{err} (display {where})") from err
        pygame.display.set_caption(title)
        self._screen: pygame.Surface | None = None

    @property
    def max_size(self) -> tuple[int, int]:
        """(rows, cols) a canvas may take: the desktop, less room for window decorations."""
        cols, rows = pygame.display.get_desktop_sizes()[0]
        return max(rows - _DECORATION_PX, 4 * STATUS_HEIGHT), max(cols, _MIN_WIDTH)

    def show(self, canvas: np.ndarray) -> None:
        """Draw a uint8 BGR canvas; the window takes its size."""
        height, width = canvas.shape[:2]
        if self._screen is None or self._screen.get_size() != (width, height):
            self._screen = pygame.display.set_mode((width, height))
        surface = pygame.image.frombuffer(np.ascontiguousarray(canvas).data, (width, height),
                                          "BGR")
        self._screen.blit(surface, (0, 0))
        pygame.display.flip()

    def poll(self) -> list[Command]:
        """Commands from the keys pressed (and the window's close button) since last call."""
        commands = []
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                commands.append(Command.QUIT)
            elif event.type == pygame.KEYDOWN and event.key in _KEYS:
                commands.append(_KEYS[event.key])
        return commands

    def close(self) -> None:
        """Close the window."""
        pygame.display.quit()
