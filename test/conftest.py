"""Test-wide set-up: DDS confined to this machine, on a ROS domain of this run's own.

Set at import time, before any test imports rclpy or starts a node process, so nothing the
suite starts can reach the network or another run's nodes.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = os.environ.get(
    "OPTICAL_FLOW_ROS_TEST_DOMAIN", str(random.SystemRandom().randint(20, 120))
)
os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
if not os.environ.get("ROS_LOG_DIR"):  # the nodes' ROS log files, removed when the suite ends
    os.environ["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="optical_flow_ros_test_logs_")
    atexit.register(shutil.rmtree, os.environ["ROS_LOG_DIR"], ignore_errors=True)

# A suite started in the background by a non-interactive shell (`cmd &`, as CI runners may do)
# inherits SIGINT and SIGQUIT ignored, and so does every process it starts (SIG_IGN survives
# exec): a SIGINT sent to a node before its own handlers are in place is then discarded by
# the kernel and the node runs on. The stop tests signal as a terminal or launch does, so the
# processes start with the default disposition, as under a terminal.
for _sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
    if signal.getsignal(_sig) is signal.SIG_IGN:
        signal.signal(_sig, signal.default_int_handler if _sig == signal.SIGINT
                      else signal.SIG_DFL)

import colcon_workspace  # noqa: E402
from ros_harness import RosPeer  # noqa: E402  (needs the environment above)


@pytest.fixture
def ros_peer():
    """An rclpy node in the test process, in its own context, shut down afterwards."""
    peer = RosPeer("test_peer")
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture(scope="session")
def colcon_install(tmp_path_factory) -> Path:
    """The package built by ``colcon build`` into a temporary workspace, once per session:
    its install base (install/optical_flow_ros/lib/optical_flow_ros/NAME are the
    executables ``ros2 run`` and ``ros2 launch`` start)."""
    return colcon_workspace.build(tmp_path_factory.mktemp("ws"))
