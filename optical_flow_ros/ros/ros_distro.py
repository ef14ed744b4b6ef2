"""Which ROS 2 distribution the running rclpy belongs to (for reports: benchmarks, demo, tests).

The package's code does not branch on the distro: where Jazzy and Kilted differ it tests for
the feature itself (see :mod:`optical_flow_ros.ros.frame_drops`). This names the distro that
figures were measured on.
"""

from __future__ import annotations

import importlib.metadata
import os

__all__ = ["DISTRO_OF_RCLPY_MAJOR", "ros_distro"]

#: rclpy's major version in each supported distro (ros-rclpy 7.1.x: Jazzy, 9.1.x: Kilted).
DISTRO_OF_RCLPY_MAJOR = {7: "jazzy", 9: "kilted"}


def ros_distro() -> str:
    """The distro of the installed rclpy: ``jazzy`` or ``kilted``.

    Known from rclpy's version; an rclpy of another distro gives ``ROS_DISTRO`` (set by a
    sourced ROS workspace) or ``unknown (rclpy <version>)``.
    """
    try:
        version = importlib.metadata.version("rclpy")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    major = version.split(".", 1)[0]
    if major.isdigit() and int(major) in DISTRO_OF_RCLPY_MAJOR:
        return DISTRO_OF_RCLPY_MAJOR[int(major)]
    return os.environ.get("ROS_DISTRO") or f"unknown (rclpy {version or 'not found'})"
