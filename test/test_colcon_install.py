"""colcon builds the package into a workspace laid out as ROS 2 expects, and it runs from there."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ros_harness import REPO


def _declared_executables() -> list[str]:
    """The NODES table of setup.py (read, not executed: running setup.py would build)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NODES":
            return list(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no NODES table")


pytestmark = pytest.mark.colcon

COLCON = Path(sys.executable).with_name("colcon")


@pytest.fixture(scope="module")
def install_base(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    result = subprocess.run(
        [str(COLCON), "--log-base", str(ws / "log"), "build", "--paths", str(REPO),
         "--build-base", str(ws / "build"), "--install-base", str(ws / "install")],
        cwd=ws, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PATH=f"{COLCON.parent}{os.pathsep}{os.environ['PATH']}"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return ws / "install"


def test_executables_installed_where_ros2_run_looks(install_base):
    lib = install_base / "optical_flow_ros" / "lib" / "optical_flow_ros"
    names = _declared_executables()
    assert names
    for name in names:
        exe = lib / name
        assert exe.is_file() and os.access(exe, os.X_OK), exe


def test_share_has_package_xml_launch_and_config(install_base):
    share = install_base / "optical_flow_ros" / "share" / "optical_flow_ros"
    assert (share / "package.xml").read_text() == (REPO / "package.xml").read_text()
    for folder in ("launch", "config"):
        installed = sorted(p.name for p in (share / folder).iterdir())
        in_repo = sorted(p.name for p in (REPO / folder).iterdir())
        assert installed == in_repo and installed, folder


def test_ament_index_marker(install_base):
    marker = (install_base / "optical_flow_ros" / "share" / "ament_index" / "resource_index"
              / "packages" / "optical_flow_ros")
    assert marker.is_file()


def test_installed_package_is_importable_from_the_workspace(install_base):
    # What `source install/setup.bash` puts on the path, without the source tree.
    site = next((install_base / "optical_flow_ros" / "lib").glob("python3*/site-packages"))
    result = subprocess.run(
        [sys.executable, "-c", "import optical_flow_ros.core, optical_flow_ros.nodes.tracker_node;"
         "print(optical_flow_ros.core.__file__)"],
        cwd=install_base, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(site)),
    )
    assert result.returncode == 0, result.stderr
    assert str(site) in result.stdout


def _site(install_base: Path) -> Path:
    return next((install_base / "optical_flow_ros" / "lib").glob("python3*/site-packages"))


def _catches_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("SigCgt:"))
    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("name", ["tracker_node", "process_bag"])
def test_installed_executables_honour_a_stop_from_their_first_line(install_base, name):
    # As ros2 run starts it: the console script goes through tools/executables.py, which takes
    # SIGINT/SIGTERM over before the node's imports; a stop then ends it at once, exit 0.
    exe = install_base / "optical_flow_ros" / "lib" / "optical_flow_ros" / name
    proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONPATH=str(_site(install_base))))
    try:
        end = time.monotonic() + 30.0
        while not _catches_sigterm(proc.pid):
            assert proc.poll() is None and time.monotonic() < end, proc.stdout.read()
            time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.001)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and b"Traceback" not in out, out


def test_installed_bag_tool_names_a_missing_rosbags(install_base, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'rosbags':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n")
    exe = install_base / "optical_flow_ros" / "lib" / "optical_flow_ros" / "play_bag"
    result = subprocess.run([str(exe), str(tmp_path / "bag")], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                (str(tmp_path), str(_site(install_base))))))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "play_bag: the Python package 'rosbags' is not installed; install it with: "
        "python3 -m pip install rosbags (rosdep key python3-rosbags-pip)"]
