"""Run nodes in separate processes and talk to them over real DDS (loopback only).

``conftest.py`` sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the run's ROS_DOMAIN_ID
before this module is imported; child processes inherit them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

REPO = Path(__file__).resolve().parents[1]


def _ros_arg_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)


class NodeProcess:
    """A node started as ``python -m <module> --ros-args ...`` (or a script path) in its own
    process, with its output captured to a file."""

    def __init__(self, module: str, *, name: str | None = None, namespace: str | None = None,
                 params: Mapping[str, object] | None = None,
                 remaps: Mapping[str, str] | None = None,
                 params_file: str | os.PathLike[str] | None = None,
                 args: list[str] | None = None) -> None:
        entry = [module] if module.endswith(".py") else ["-m", module]
        cmd = [sys.executable, *entry, *(args or []), "--ros-args"]
        if name:
            cmd += ["-r", f"__node:={name}"]
        if namespace:
            cmd += ["-r", f"__ns:={namespace}"]
        for src, dst in (remaps or {}).items():
            cmd += ["-r", f"{src}:={dst}"]
        if params_file:
            cmd += ["--params-file", str(params_file)]
        for key, value in (params or {}).items():
            cmd += ["-p", f"{key}:={_ros_arg_value(value)}"]
        self.cmd = cmd
        self._log = tempfile.NamedTemporaryFile(prefix="node_", suffix=".log", delete=False)
        env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                   PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=REPO)

    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr)."""
        return Path(self._log.name).read_text(errors="replace")

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Send ``sig`` and wait; kill after ``timeout`` s. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
        """Spin until ``publisher`` has at least one matched subscription."""
        return self.spin_until(lambda: publisher.get_subscription_count() > 0, timeout)

    def wait_for_publisher(self, subscription: object, timeout: float = 20.0) -> bool:
        """Spin until ``subscription`` is matched with a publisher, then a little more.

        DDS matches both ends independently; the extra spin lets the publisher's side catch
        up, which matters to nodes that only publish while someone subscribes.
        """
        ok = self.spin_until(lambda: subscription.get_publisher_count() > 0, timeout)
        self.spin_for(0.3)
        return ok

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
