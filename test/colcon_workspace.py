"""The package built by colcon into a workspace of its own, as a ROS 2 user builds it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ros_harness import REPO

__all__ = ["COLCON", "build", "executable", "site_packages", "workspace_env"]

COLCON = Path(sys.executable).with_name("colcon")
PACKAGE = "optical_flow_ros"


def build(ws: Path, *, symlink_install: bool = False) -> Path:
    """``colcon build`` this repository into ``ws``; returns the install base."""
    result = subprocess.run(
        [str(COLCON), "--log-base", str(ws / "log"), "build", "--paths", str(REPO),
         "--build-base", str(ws / "build"), "--install-base", str(ws / "install"),
         *(["--symlink-install"] if symlink_install else [])],
        cwd=ws, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PATH=f"{COLCON.parent}{os.pathsep}{os.environ['PATH']}"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return ws / "install"


def site_packages(install_base: Path) -> Path:
    """The workspace's site-packages folder of the package."""
    return next((install_base / PACKAGE / "lib").glob("python3*/site-packages"))


def executable(install_base: Path, name: str) -> Path:
    """Where ``ros2 run optical_flow_ros NAME`` finds executable ``name``."""
    return install_base / PACKAGE / "lib" / PACKAGE / name


def workspace_env(install_base: Path, **extra: str) -> dict[str, str]:
    """This process's environment with the package on PYTHONPATH as ``install/setup.bash``
    puts it (and not the source tree)."""
    return dict(os.environ, PYTHONPATH=str(site_packages(install_base)), **extra)
