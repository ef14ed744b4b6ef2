"""A private ``ROS_LOG_DIR`` for one benchmark run, removed when the run ends.

The benchmarks start many node processes; their ROS log files would otherwise pile up in
``~/.ros/log`` (or, with a plain ``mkdtemp``, one forgotten directory in /tmp per run). A
``ROS_LOG_DIR`` already set (by the caller, or by a parent benchmark whose run this is part
of) is used as it is and left alone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

__all__ = ["private_ros_log_dir"]


def private_ros_log_dir(prefix: str) -> str:
    """Set ``ROS_LOG_DIR`` to a new temporary directory unless set; returns the directory.

    Call before rclpy is imported and before any node process starts (they inherit it).
    A directory made here is removed at interpreter exit.
    """
    if os.environ.get("ROS_LOG_DIR"):
        return os.environ["ROS_LOG_DIR"]
    path = tempfile.mkdtemp(prefix=prefix)
    os.environ["ROS_LOG_DIR"] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
