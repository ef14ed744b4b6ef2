"""Process-wide compute settings every node exposes as start-up parameters."""

from __future__ import annotations

from dataclasses import dataclass

import cv2

from optical_flow_ros.core.config_fields import setting, validate_fields

__all__ = ["ComputeConfig"]


@dataclass(frozen=True)
class ComputeConfig:
    """How much of the machine a node's OpenCV calls may use."""

    # 1 by default: at camera rate a second thread did not lower the tracker's latency
    # (median +0.1 ms, within noise) but cost 1-8 CPU points more in every comparison, and on
    # a many-core robot OpenCV's default starts a worker per core in every node
    # (bench/run_all.py section 2). Offline work on back-to-back frames gains from more.
    opencv_threads: int = setting(
        1, "Threads OpenCV may use in this process (cv2.setNumThreads); 0 = OpenCV's default "
        "(one per core)", range=(0, 64))

    def __post_init__(self) -> None:
        validate_fields(self)

    def apply(self) -> None:
        """Set OpenCV's thread count for this process."""
        if self.opencv_threads > 0:
            cv2.setNumThreads(self.opencv_threads)
