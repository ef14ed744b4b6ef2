"""Process-wide compute settings every node exposes as start-up parameters."""

from __future__ import annotations

from dataclasses import dataclass

import cv2

from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.ros.heap_tuning import keep_freed_memory

__all__ = ["ComputeConfig"]


@dataclass(frozen=True)
class ComputeConfig:
    """How much of the machine a node's OpenCV calls may use, and how it keeps memory."""

    # 1 by default: at camera rate a second thread did not lower the tracker's latency
    # (median +0.1 ms, within noise) but cost 1-8 CPU points more in every comparison, and on
    # a many-core robot OpenCV's default starts a worker per core in every node
    # (bench/run_all.py section 2). Offline work on back-to-back frames gains from more.
    opencv_threads: int = setting(
        1, "Threads OpenCV may use in this process (cv2.setNumThreads); 0 = OpenCV's default "
        "(one per core)", range=(0, 64))
    # Without it every frame's large temporaries are fresh pages that fault and are zeroed
    # again (bench/bench_heap_tuning.py: the tracker's update 4.21 -> 3.62 ms at 640x480).
    heap_retain_mb: int = setting(
        64, "Freed memory the process keeps for reuse instead of returning it to the OS, "
        "MiB (glibc mallopt; avoids page faults on every frame's temporaries); 0 = the C "
        "library's defaults", range=(0, 2047))

    def __post_init__(self) -> None:
        validate_fields(self)

    def apply(self) -> None:
        """Set OpenCV's thread count and the heap's retention for this process."""
        if self.opencv_threads > 0:
            cv2.setNumThreads(self.opencv_threads)
        if self.heap_retain_mb > 0:
            keep_freed_memory(self.heap_retain_mb * 1024 * 1024)
