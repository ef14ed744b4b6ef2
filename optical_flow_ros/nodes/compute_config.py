"""Moved to :mod:`optical_flow_ros.ros.compute_config`; kept so existing imports work."""

from optical_flow_ros.ros.compute_config import ComputeConfig

__all__ = ["ComputeConfig"]
