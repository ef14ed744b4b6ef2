"""colcon builds the package into a workspace laid out as ROS 2 expects, and it runs from there."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
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
