"""Frames from a video file, an image sequence or a camera device, as the seed's ``create_capture``.

The source is given as text, parsed like OpenCV's ``samples/python/video.py``: all digits
(``"0"``, ``"2"``) is a camera device index; anything else is a path (``~`` expanded): a video
file OpenCV's FFmpeg backend decodes (mp4, avi, mkv, ...), a single image (a one-frame video),
or a printf pattern of numbered images such as ``frames/%06d.png`` (an image sequence). To open
a file whose name is all digits, write it as ``./0``. Unlike ``create_capture``, a source that
cannot be opened raises :class:`~optical_flow_ros.core.errors.VideoSourceError` with the reason
instead of falling back to a synthetic scene.

Checks at open, each with its own message: the file exists, is not a folder, is readable and
not empty; OpenCV opens it; its first frame decodes (a truncated file without its index, a
text file or an unsupported codec fails here, not on the first published frame).

Frame indices count from 0 at the file's first frame. Looping seeks back to frame 0; where
seeking does not take (a still image, some image sequences), the file is opened again.

Frames are uint8, C-contiguous: ``(H, W, 3)`` BGR for ``bgr8``, ``(H, W)`` for ``mono8``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.errors import ConfigError, VideoSourceError

__all__ = [
    "DEFAULT_DEVICE_RATE",
    "ENCODINGS",
    "VideoInfo",
    "VideoSource",
    "VideoSourceConfig",
    "parse_source",
    "playback_rate",
    "start_frame",
]

ENCODINGS = ("mono8", "bgr8")

DEFAULT_DEVICE_RATE = 30.0
"""Frame rate (Hz) used for a camera that does not report one and ``rate`` 0."""

_MAX_RATE = 1000.0
_MAX_FRAME_COUNT = 2**31 - 1


@dataclass(frozen=True)
class VideoSourceConfig:
    """What to play and how (the source parameters of video_source_node)."""

    source: str = setting("", "Video file, image (printf pattern for a numbered sequence, e.g. "
                              "frames/%06d.png) or camera device index (all digits, e.g. 0)",
                          int_as_text=True)
    rate: float = setting(0.0, "Publishing rate; 0 = the file's own frame rate (a camera's "
                               "reported rate, else 30), Hz", range=(0.0, _MAX_RATE))
    loop: bool = setting(False, "Start again at the file's first frame after its last; "
                                "false = exit (code 0) after the last frame")
    start_offset: float = setting(0.0, "Start this far into the file (at the file's own frame "
                                       "rate; files only), s", range=(0.0, 1e6))
    encoding: str = setting("mono8", "Image encoding (mono8 also fits Fast DDS's default "
                                     "shared-memory segment at 640x480)", choices=ENCODINGS)

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass(frozen=True)
class VideoInfo:
    """What an opened source reports.

    Attributes:
        source: the source as given.
        is_device: True for a camera device index.
        width: decoded frame width, px.
        height: decoded frame height, px.
        fps: native frame rate the container or driver reports, Hz; None when it reports
            none (0, NaN or above 1000). FFmpeg reports 25 for images and image sequences.
        frame_count: frames the container declares; None when unknown (cameras, still
            images). A truncated file may end before it.
    """

    source: str
    is_device: bool
    width: int
    height: int
    fps: float | None
    frame_count: int | None


def parse_source(source: str) -> int | Path:
    """Camera device index for an all-digit source, else the (``~``-expanded) path.

    Raises:
        VideoSourceError: the source is empty.
    """
    text = source.strip()
    if not text:
        raise VideoSourceError("no source given: set a video file path or a camera device "
                               "index such as 0")
    if re.fullmatch(r"\d+", text):
        return int(text)
    return Path(text).expanduser()


def _check_file(path: Path) -> None:
    """Raise VideoSourceError unless ``path`` is a readable, non-empty file.

    A printf pattern (image sequence) that is no file itself is left to OpenCV.
    """
    if "%" in path.name and not path.exists():
        if not path.parent.is_dir():
            raise VideoSourceError(f"image sequence folder not found: '{path.parent}'")
        return
    if not path.exists():
        raise VideoSourceError(f"video file not found: '{path}'")
    if path.is_dir():
        raise VideoSourceError(f"'{path}' is a folder, not a video file")
    if not os.access(path, os.R_OK):
        raise VideoSourceError(f"video file '{path}' is not readable (permission denied)")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoSourceError(f"video file '{path}' is empty (0 bytes)")


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's log lines while opening (each backend tried warns).

    The caller raises one clear error instead.
    """
    get_level, set_level, silent = _log_level_api()
    level = get_level()
    set_level(silent)
    try:
        yield
    finally:
        set_level(level)


def _log_level_api() -> tuple[Callable[[], int], Callable[[int], Any], int]:
    """OpenCV's (getLogLevel, setLogLevel, silent level) in whichever form this version has.

    OpenCV 5 has ``cv2.utils.logging``; OpenCV 4.x (4.6 has no ``cv2.utils.logging``) has
    ``cv2.getLogLevel``/``cv2.setLogLevel`` with the same levels (0 = silent).
    """
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None:
        return logging.getLogLevel, logging.setLogLevel, logging.LOG_LEVEL_SILENT
    return cv2.getLogLevel, cv2.setLogLevel, 0


def _reported_fps(cap: cv2.VideoCapture) -> float | None:
    fps = cap.get(cv2.CAP_PROP_FPS)
    return float(fps) if math.isfinite(fps) and 0.0 < fps <= _MAX_RATE else None


def _reported_count(cap: cv2.VideoCapture) -> int | None:
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    return int(count) if math.isfinite(count) and 0 < count <= _MAX_FRAME_COUNT else None


class VideoSource:
    """An opened video file, image sequence or camera, read frame by frame.

    Args:
        source: see :func:`parse_source`.
        encoding: ``"bgr8"`` or ``"mono8"``: the frames :meth:`retrieve` returns.
        loop: at the end of a file, go on at its frame 0 (no effect on a camera).

    Raises:
        VideoSourceError: the source cannot be opened or its first frame not decoded; the
            message names the source and the reason.
        ConfigError: unknown ``encoding``.
    """

    def __init__(self, source: str, *, encoding: str = "bgr8", loop: bool = False) -> None:
        if encoding not in ENCODINGS:
            raise ConfigError(f"encoding: must be one of {list(ENCODINGS)}, got {encoding!r}")
        self._target = parse_source(source)
        self._encoding = encoding
        self._loop = loop
        self._index = -1
        self.loops = 0  # times the file was started again from frame 0
        if isinstance(self._target, Path):
            _check_file(self._target)
        self._cap = self._open()
        ok, frame = self._cap.read()
        if not ok or frame is None or frame.size == 0:
            self._cap.release()
            hint = "" if isinstance(self._target, int) else " (truncated or damaged file?)"
            raise VideoSourceError(f"{self._describe()} opened, but its first frame could not "
                                   f"be decoded{hint}")
        is_device = isinstance(self._target, int)
        self.info = VideoInfo(source=source, is_device=is_device, width=frame.shape[1],
                              height=frame.shape[0], fps=_reported_fps(self._cap),
                              frame_count=None if is_device else _reported_count(self._cap))
        if not is_device:  # the check read frame 0: start from it again
            self._cap.release()
            self._cap = self._open()

    def _describe(self) -> str:
        if isinstance(self._target, int):
            return f"camera device {self._target}"
        return f"video file '{self._target}'"

    def _open(self) -> cv2.VideoCapture:
        target = self._target
        with _quiet_opencv():
            cap = cv2.VideoCapture(target if isinstance(target, int) else str(target))
        if not cap.isOpened():
            if isinstance(target, int):
                raise VideoSourceError(f"camera device {target} could not be opened (no such "
                                       "device, busy, or no permission)")
            if "%" in target.name and not target.exists():
                raise VideoSourceError(f"image sequence '{target}' could not be opened (no "
                                       "image matches the pattern from index 0-4 on)")
            raise VideoSourceError(f"video file '{target}' could not be opened by OpenCV "
                                   "(not a video, truncated, or a codec this OpenCV build "
                                   "lacks)")
        return cap

    @property
    def index(self) -> int:
        """File index of the frame last grabbed (-1 before the first; a camera counts on)."""
        return self._index

    @property
    def encoding(self) -> str:
        """Encoding of the frames :meth:`retrieve` returns."""
        return self._encoding

    def seek(self, frame: int) -> None:
        """Make ``frame`` (0-based) the next one :meth:`grab` takes. Files only.

        Raises:
            VideoSourceError: a camera, or ``frame`` is beyond the end of the file.
        """
        if self.info.is_device:
            raise VideoSourceError("a camera device cannot seek")
        count = self.info.frame_count
        if frame < 0 or (count is not None and frame >= count):
            raise VideoSourceError(f"frame {frame} is outside {self._describe()} "
                                   f"({count} frames)")
        if not (self._cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
                and self._cap.get(cv2.CAP_PROP_POS_FRAMES) == frame):
            self._cap.release()  # no seeking here: read forward from a fresh start
            self._cap = self._open()
            for skipped in range(frame):
                if not self._cap.grab():
                    raise VideoSourceError(f"{self._describe()} ended at frame {skipped}, "
                                           f"before frame {frame}")
        self._index = frame - 1

    def grab(self) -> bool:
        """Advance to the next frame without decoding its pixels.

        At the end of a file with ``loop``, the next frame is frame 0 again (``loops`` counts
        the restarts).

        Returns:
            False at the end of the stream (a file without ``loop``, or a camera that stopped
            delivering frames).

        Raises:
            VideoSourceError: looping, but frame 0 can no longer be read.
        """
        if self._cap.grab():
            self._index += 1
            return True
        if not self._loop or self.info.is_device:
            return False
        self.seek(0)
        if not self._cap.grab():  # seeking reported success but did not take (still image)
            self._cap.release()
            self._cap = self._open()
            if not self._cap.grab():
                raise VideoSourceError(f"{self._describe()}: frame 0 cannot be read again "
                                       "after its end")
        self._index = 0
        self.loops += 1
        return True

    def retrieve(self) -> np.ndarray:
        """Decode the grabbed frame in :attr:`encoding` (uint8, C-contiguous).

        Raises:
            VideoSourceError: nothing grabbed, or the frame does not decode.
        """
        ok, frame = self._cap.retrieve()
        if not ok or frame is None or frame.size == 0:
            raise VideoSourceError(f"{self._describe()}: frame {self._index} could not be "
                                   "decoded")
        return _convert(frame, self._encoding)

    def read(self) -> np.ndarray | None:
        """The next frame (:meth:`grab`, :meth:`retrieve`); None at the end of the stream."""
        return self.retrieve() if self.grab() else None

    def close(self) -> None:
        """Release the file or device."""
        self._cap.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _convert(frame: np.ndarray, encoding: str) -> np.ndarray:
    """A decoded OpenCV frame (gray, BGR or BGRA) as ``encoding``."""
    if frame.dtype != np.uint8:
        raise VideoSourceError(f"decoded frame has dtype {frame.dtype}, expected uint8")
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    codes = {("mono8", 3): cv2.COLOR_BGR2GRAY, ("mono8", 4): cv2.COLOR_BGRA2GRAY,
             ("bgr8", 1): cv2.COLOR_GRAY2BGR, ("bgr8", 4): cv2.COLOR_BGRA2BGR}
    if (encoding, channels) in codes:
        frame = cv2.cvtColor(frame, codes[(encoding, channels)])
    elif channels == 1 and frame.ndim == 3:
        frame = frame[:, :, 0]
    return np.ascontiguousarray(frame)


def playback_rate(rate: float, info: VideoInfo) -> float:
    """Frames per second to publish at: ``rate``, or for 0 the source's own.

    Args:
        rate: the requested rate, Hz; 0 = the source's (a camera without one: 30 Hz).
        info: the opened source.

    Raises:
        ConfigError: ``rate`` is 0 and a file reports no frame rate (naming ``rate``).
    """
    if rate > 0:
        return rate
    if info.fps is not None:
        return info.fps
    if info.is_device:
        return DEFAULT_DEVICE_RATE
    raise ConfigError(f"rate: '{info.source}' reports no frame rate; set rate > 0")


def start_frame(start_offset: float, info: VideoInfo) -> int:
    """The file frame at ``start_offset`` s (at its own frame rate), rounded to the nearest.

    Raises:
        ConfigError: an offset on a camera or a file without a frame rate, or one at or past
            the file's end (naming ``start_offset``).
    """
    if start_offset == 0:
        return 0
    if info.is_device:
        raise ConfigError("start_offset: a camera device cannot start at an offset; use 0")
    if info.fps is None:
        raise ConfigError(f"start_offset: '{info.source}' reports no frame rate to convert "
                          "seconds into frames")
    frame = round(start_offset * info.fps)
    if info.frame_count is not None and frame >= info.frame_count:
        raise ConfigError(f"start_offset: {start_offset} s is frame {frame}, past the last "
                          f"frame of '{info.source}' ({info.frame_count} frames at "
                          f"{info.fps:g} Hz)")
    return frame
