"""MP4 files that people can mail around and play anywhere: H.264 through PyAV.

opencv-python-headless's FFmpeg has no H.264 encoder (``avc1`` finds only the V4L2
hardware encoder, absent on most machines), and its ``mp4v`` (MPEG-4 Part 2) at OpenCV's
bitrate wrote the demo's 15 s of 640x480 as 34 MB. PyAV's wheel brings FFmpeg with libx264:
H.264 High profile, yuv420p, ``+faststart``, which plays in browsers, QuickTime, VLC, phones
and chat apps: constant quality (CRF 26) capped at 2.2 Mbit/s, so 15 s of 640x480 stay under
5 MB (``bench/bench_video_encoding.py`` measures size and fidelity on the demo's drawings).
4:2:0 colour (what every player decodes) halves the colour resolution, so 1 px trails keep
their place and brightness and lose some saturation; H.264 itself adds little to that.

Without PyAV (a ROS workspace that did not install it) the file is written with OpenCV's
``mp4v`` instead, and :attr:`VideoWriter.note` says so and how to get H.264.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["DEFAULT_CRF", "DEFAULT_MAX_KBPS", "VideoWriter"]

#: x264 constant rate factor: 0 lossless, 23 its default, 51 worst.
DEFAULT_CRF = 26

#: Bitrate cap, kbit/s, over a 1 s buffer: hard scenes get CRF 26's quality only up to this,
#: so 15 s stay under 5 MB whatever the scene (2200 kbit/s x 16 s = 4.4 MB).
DEFAULT_MAX_KBPS = 2200


class VideoWriter:
    """Writes uint8 BGR frames of one size to an MP4 file.

    Args:
        path: the .mp4 file (overwritten).
        fps: frame rate, Hz.
        size: (width, height), px; odd sizes are padded by one black column/row (H.264
            4:2:0 needs even sizes).
        crf: x264 constant rate factor (quality; lower is better and larger).
        max_kbps: bitrate cap, kbit/s (x264's VBV, 1 s buffer); None = CRF alone.
        preset: x264 speed preset (``veryfast``: ~11 ms of one core per 640x480 frame).
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], *,
                 crf: int = DEFAULT_CRF, max_kbps: int | None = DEFAULT_MAX_KBPS,
                 preset: str = "veryfast") -> None:
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self._even = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
        self.note = ""
        try:
            import av
        except ImportError:
            av = None
        if av is not None:
            self.codec = "h264"
            self._container = av.open(str(self.path), mode="w",
                                      options={"movflags": "+faststart"})
            stream = self._container.add_stream("libx264", rate=round(fps))
            stream.width, stream.height = self._even
            stream.pix_fmt = "yuv420p"
            # One thread: the demo's nodes need the other cores more than the encoder.
            options = {"crf": str(crf), "preset": preset, "profile": "high", "threads": "1"}
            if max_kbps is not None:
                options.update(maxrate=f"{max_kbps}k", bufsize=f"{max_kbps}k")
            stream.options = options
            self._stream = stream
            self._av = av
            self._cv: cv2.VideoWriter | None = None
        else:
            self.codec = "mp4v"
            self._cv = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"),
                                       float(fps), self.size)
            self.note = ("PyAV is not installed: tracks.mp4 written as MPEG-4 Part 2 (mp4v), "
                         "~10x larger than H.264; `pip install av` for H.264")

    def write(self, frame: np.ndarray) -> None:
        """Append one (height, width, 3) uint8 BGR frame."""
        if frame.shape[:2] != (self.size[1], self.size[0]):
            raise ValueError(f"frame of {frame.shape[1]}x{frame.shape[0]} px in a "
                             f"{self.size[0]}x{self.size[1]} video")
        if self._cv is not None:
            self._cv.write(frame)
            return
        if self._even != self.size:
            frame = cv2.copyMakeBorder(frame, 0, self._even[1] - self.size[1], 0,
                                       self._even[0] - self.size[0], cv2.BORDER_CONSTANT)
        image = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
        for packet in self._stream.encode(image):
            self._container.mux(packet)

    def close(self) -> None:
        """Finish the file (flush the encoder, write the index)."""
        if self._cv is not None:
            self._cv.release()
            return
        if self._container is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._container = None
