"""The ``main()`` every node shares: init, spin, clean shutdown, clear start-up errors."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from optical_flow_ros.core.errors import OpticalFlowError

__all__ = ["NodeExit", "run_node"]


class NodeExit(Exception):  # noqa: N818  (a request, not an error)
    """Raised from a callback to end the node's process with ``code``.

    For a node whose work is finite (a video file at its end): :func:`run_node` stops
    spinning, shuts down and returns ``code``.

    Args:
        code: the process exit code.
    """

    def __init__(self, code: int = 0) -> None:
        super().__init__(f"node exit with code {code}")
        self.code = code


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Create the node, spin it until Ctrl-C/SIGTERM, shut down without a traceback.

    An invalid parameter (e.g. from the YAML) ends the process at start-up with exit code 2
    and one line naming the parameter and the reason. A callback ends it with
    :class:`NodeExit`.

    Returns:
        The process exit code.
    """
    rclpy.init(args=args)
    try:
        node = make_node()
    except (ParameterException, OpticalFlowError) as err:
        print(f"[ERROR] invalid parameter: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    code = 0
    try:
        rclpy.spin(node)
    except NodeExit as done:
        code = done.code
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A signal that shuts the context down while a callback runs makes its next publish
        # fail ("publisher's context is invalid"): that is the shutdown, not a fault.
        if rclpy.ok():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return code
