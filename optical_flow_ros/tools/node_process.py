"""Start this package's nodes as separate processes (demo, benchmarks, tests).

DDS settings (``ROS_AUTOMATIC_DISCOVERY_RANGE``, ``ROS_DOMAIN_ID``) are inherited from the
calling process's environment; :func:`confine_dds` sets them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["NodeProcess", "confine_dds"]

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def confine_dds(domain_id: int | None = None) -> int:
    """Keep DDS on this machine, on ``domain_id`` (random in 120-219 when None).

    Must run before rclpy is initialised. Returns the domain id.
    """
    domain = domain_id if domain_id is not None else random.SystemRandom().randint(120, 219)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    return domain


def _ros_arg_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)


class NodeProcess:
    """A node in its own process, its output captured to a file.

    Runs ``python -m <module> --ros-args ...`` (or a script path).

    Args:
        module: module with a ``main`` (e.g. ``optical_flow_ros.nodes.tracker_node``) or a
            path to a ``.py`` script.
        name: node name (``__node`` remap).
        namespace: node namespace (``__ns`` remap).
        params: parameter values (``-p name:=value``).
        remaps: topic remappings.
        params_file: a ROS parameters YAML file.
        args: arguments before ``--ros-args``.
    """

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
        pythonpath = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH"))
                                     if p)
        env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

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
