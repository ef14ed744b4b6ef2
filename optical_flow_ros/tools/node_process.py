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
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from optical_flow_ros.tools import launcher
from optical_flow_ros.tools.executables import EXECUTABLES

__all__ = ["MAX_DOMAIN_ID", "NodeProcess", "confine_dds", "stop_all"]

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_EXECUTABLE_OF = {module: name for name, module in EXECUTABLES.items()}


#: Highest ROS domain id (ROS 2's DDS port mapping allows 0-232).
MAX_DOMAIN_ID = 232


def confine_dds(domain_id: int | None = None) -> int:
    """Keep DDS on this machine, on ``domain_id``.

    With ``domain_id=None`` the domain is the ``ROS_DOMAIN_ID`` the user exported, or, when
    none is set, a random one in 120-219 (so a run does not meet other runs' nodes). Must run
    before rclpy is initialised; node processes started afterwards inherit both settings.

    Returns:
        The domain id now in ``ROS_DOMAIN_ID``.

    Raises:
        ValueError: the exported ``ROS_DOMAIN_ID`` (or ``domain_id``) is not an integer in
            0-232.
    """
    if domain_id is None:
        exported = os.environ.get("ROS_DOMAIN_ID", "").strip()
        if exported:
            try:
                domain_id = int(exported)
            except ValueError:
                raise ValueError(f"ROS_DOMAIN_ID={exported!r} is not a ROS domain id "
                                 f"(an integer 0-{MAX_DOMAIN_ID})") from None
    domain = domain_id if domain_id is not None else random.SystemRandom().randint(120, 219)
    if not 0 <= domain <= MAX_DOMAIN_ID:
        raise ValueError(f"ROS domain id {domain} is out of range 0-{MAX_DOMAIN_ID}")
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

    Runs ``python -m <module> --ros-args ...`` (or a script path). The module of one of the
    package's executables runs as its installed launcher runs it, the way ``ros2 run`` and
    ``ros2 launch`` start it (:func:`optical_flow_ros.tools.launcher.command`), and with
    SIGINT and SIGTERM blocked from the child's creation (:func:`launcher.spawn`), so a stop
    is honoured however early it comes.

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
        executable = _EXECUTABLE_OF.get(module)
        entry = (launcher.command(executable) if executable else
                 [sys.executable, module] if module.endswith(".py") else
                 [sys.executable, "-m", module])
        cmd = [*entry, *(args or []), "--ros-args"]
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
        # Removed once this object is gone or the interpreter exits, however the process
        # ended: a demo or a test suite would otherwise leave a file per node in /tmp.
        weakref.finalize(self, _remove, self._log.name)
        pythonpath = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH"))
                                     if p)
        env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONUNBUFFERED="1")
        start = launcher.spawn if executable else subprocess.Popen
        self.proc = start(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

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


def _remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def stop_all(processes: Sequence[NodeProcess], sig: int = signal.SIGINT,
             timeout: float = 10.0) -> list[int]:
    """Send ``sig`` to every process at once; kill those still running ``timeout`` s later.

    Returns:
        Their exit codes.
    """
    for process in processes:
        if process.proc.poll() is None:
            process.proc.send_signal(sig)
    end = time.monotonic() + timeout
    for process in processes:
        try:
            process.proc.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait()
    return [process.proc.returncode for process in processes]
