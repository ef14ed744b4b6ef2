"""Run nodes in separate processes and talk to them over real DDS (loopback only).

``conftest.py`` sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the run's ROS_DOMAIN_ID
before this module is imported; child processes inherit them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from optical_flow_ros.tools.node_process import NodeProcess

__all__ = ["REPO", "NodeProcess", "RosPeer", "stamp_msg"]

REPO = Path(__file__).resolve().parents[1]


class RosPeer:
    """An rclpy node in the test process with its own context and executor."""

    def __init__(self, name: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``done()`` is true or ``timeout`` s pass; returns ``done()``."""
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)
        return done()

    def spin_for(self, seconds: float) -> None:
        """Spin for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for_subscriber(self, publisher: object, timeout: float = 20.0) -> bool:
        """Spin until ``publisher`` has at least one matched subscription, then a little more.

        The subscription's side may match this publisher later than this side sees it; until
        then a best-effort subscription drops what is published (seen once under load: the
        first frame of a test lost).
        """
        ok = self.spin_until(lambda: publisher.get_subscription_count() > 0, timeout)
        self.spin_for(0.3)
        return ok

    def wait_for_publisher(self, subscription: object, timeout: float = 20.0) -> bool:
        """Spin until ``subscription`` is matched with a publisher, then a little more.

        DDS matches both ends independently; the extra spin lets the publisher's side catch
        up, which matters to nodes that only publish while someone subscribes.
        """
        ok = self.spin_until(lambda: subscription.get_publisher_count() > 0, timeout)
        self.spin_for(0.3)
        return ok

    def call(self, client: object, request: object, timeout: float = 20.0) -> object:
        """Call a service and return its response, re-sending every 3 s until ``timeout``.

        A service is reported available once discovered, but its response writer may not
        have matched our reader yet: the first answer can be lost. Every service these tests
        call tolerates a repeated request.
        """
        assert client.wait_for_service(timeout_sec=timeout), "service not available"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            future = client.call_async(request)
            if self.spin_until(future.done, min(3.0, max(end - time.monotonic(), 0.1))):
                return future.result()
            client.remove_pending_request(future)
        raise AssertionError(f"no service answer within {timeout} s")

    def close(self) -> None:
        """Destroy the node and shut the context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def stamp_msg(seconds: float):
    """builtin_interfaces/Time for ``seconds``."""
    from builtin_interfaces.msg import Time

    sec = int(seconds // 1)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))
