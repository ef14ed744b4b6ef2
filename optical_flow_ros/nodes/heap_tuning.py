"""Moved to :mod:`optical_flow_ros.ros.heap_tuning`; kept so existing imports work."""

from optical_flow_ros.ros.heap_tuning import MMAP_THRESHOLD_MAX, keep_freed_memory

__all__ = ["MMAP_THRESHOLD_MAX", "keep_freed_memory"]
