"""The launch files load, declare the documented arguments, and stop cleanly (needs ``launch``).

``launch``/``launch_ros`` have no PyPI wheels, so in the project's venv this test skips; in a
ROS 2 install (or a venv with them) it runs. Stopping: ``ros2 launch`` of each file, stopped
as CI scripts stop it (``timeout -s INT``) and as a terminal's Ctrl-C does (SIGINT to the whole
process group, so every node gets it twice: from the group and from launch), must report every
node as "process has finished cleanly", never "process has died", print no traceback and
leave no process behind. It runs the package installed in ``install/`` (scripts/setup_env.sh
builds it) and needs ``ros2`` (ros2cli with ros2launch) on the PATH.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ros_harness import REPO

launch = pytest.importorskip("launch", reason="ROS 2 'launch' is not installed (no PyPI wheel)")
launch_ros = pytest.importorskip("launch_ros", reason="ROS 2 'launch_ros' is not installed")

ARGUMENTS = {"image", "camera_info", "params_file", "namespace", "use_sim_time"}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


@pytest.mark.parametrize(("file", "executable"), [("tracker.launch.py", "tracker_node"),
                                                  ("flow.launch.py", "dense_flow_node")])
def test_launch_file_declares_arguments_and_node(file, executable):
    description = _load(file)
    declared = {a.name for a in description.entities
                if isinstance(a, launch.actions.DeclareLaunchArgument)}
    assert declared == ARGUMENTS
    nodes = [e for e in description.entities if isinstance(e, launch_ros.actions.Node)]
    assert len(nodes) == 1
    assert nodes[0].node_package == "optical_flow_ros"
    assert nodes[0].node_executable == executable


def test_demo_launch_starts_the_demo_graph_per_source():
    description = _load("demo.launch.py")
    declared = {a.name: a for a in description.entities
                if isinstance(a, launch.actions.DeclareLaunchArgument)}
    assert set(declared) == {"source", "video", "calibration", "image", "camera_info",
                             "namespace", "view"}
    assert declared["source"].choices == ["sim", "video", "topic"]
    nodes = {n.node_executable: n for n in description.entities
             if isinstance(n, launch_ros.actions.Node)}
    assert set(nodes) == {"sim_camera_node", "video_source_node", "tracker_node",
                          "dense_flow_node", "view"}

    def started(source: str, view: str = "false") -> set[str]:
        context = launch.LaunchContext()
        context.launch_configurations.update(source=source, view=view)
        return {name for name, node in nodes.items()
                if node.condition is None or node.condition.evaluate(context)}

    pipeline = {"tracker_node", "dense_flow_node"}
    assert started("sim") == pipeline | {"sim_camera_node"}
    assert started("video") == pipeline | {"video_source_node"}
    assert started("topic") == pipeline
    assert started("topic", view="true") == pipeline | {"view"}


# ----- stopping a launch ------------------------------------------------------------------------

ROS2 = shutil.which("ros2")
INSTALL = REPO / "install" / "optical_flow_ros"
STOP_REPEATS = int(os.environ.get("OPTICAL_FLOW_ROS_STOP_REPEATS", "1"))
NODES_OF = {"tracker.launch.py": 1, "flow.launch.py": 1, "demo.launch.py": 3}
RUN_S = 8.0   # nodes up and working before the stop


def _launch_env() -> dict[str, str]:
    site = next(INSTALL.glob("lib/python3*/site-packages"), None)
    if ROS2 is None or site is None:
        pytest.skip("needs ros2 (ros2cli, ros2launch) on the PATH and install/ (setup_env.sh)")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    prefixes = os.pathsep.join(p for p in (str(INSTALL), os.environ.get("AMENT_PREFIX_PATH"))
                               if p)
    return dict(os.environ, PYTHONPATH=path, AMENT_PREFIX_PATH=prefixes, PYTHONUNBUFFERED="1")


def _package_processes(pgid: int) -> list[str]:
    """Command lines of the package's executables still running in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = (Path("/proc") / entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (Path("/proc") / entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            continue
        if int(stat[2]) == pgid and b"lib/optical_flow_ros/" in cmdline:
            found.append(cmdline.decode(errors="replace"))
    return found


@pytest.mark.parametrize("how", ["timeout -s INT", "SIGINT to the process group"])
@pytest.mark.parametrize("file", sorted(NODES_OF))
def test_stopping_a_launch_never_reports_a_node_as_died(file, how):
    env = _launch_env()
    for _ in range(STOP_REPEATS):
        cmd = [ROS2, "launch", "optical_flow_ros", file]
        if how.startswith("timeout"):
            cmd = ["timeout", "-s", "INT", str(RUN_S), *cmd]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env, text=True, start_new_session=True)
        left: list[str] = []
        try:
            if not how.startswith("timeout"):
                time.sleep(RUN_S)
                os.killpg(proc.pid, signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=RUN_S + 30.0)
            except subprocess.TimeoutExpired:
                # launch itself (not this package) now and then waits in its event loop
                # after every node has ended: judge the nodes by what launch reported.
                left = _package_processes(proc.pid)
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate(timeout=10.0)
            end = time.monotonic() + 2.0
            while (still := _package_processes(proc.pid)) and time.monotonic() < end:
                time.sleep(0.02)
            left = left or still
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        assert "process has died" not in out, out
        assert "Traceback" not in out, out
        assert out.count("process has finished cleanly") == NODES_OF[file], out
        assert not left, f"outlived the launch: {left}\n{out}"
