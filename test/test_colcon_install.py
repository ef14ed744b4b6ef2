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
from colcon_workspace import build, executable, site_packages, workspace_env
from ros_harness import REPO

from optical_flow_ros.tools import launcher


def _declared_executables() -> list[str]:
    """The NODES table of setup.py (read, not executed: running setup.py would build)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NODES":
            return list(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no NODES table")


pytestmark = pytest.mark.colcon


@pytest.fixture(scope="module")
def install_base(colcon_install) -> Path:
    return colcon_install


def assert_launcher(exe: Path, name: str) -> None:
    """``exe`` is the package's launcher of ``name``, run by this test's own interpreter.

    The interpreter is named by the path colcon saw (scripts/setup_env.sh builds with the
    selected environment's real directory, ``.venv-<distro>-<stack>``, where this test may run
    through the ``.venv`` link to it).
    """
    text = exe.read_text()
    python = next(w for w in text.splitlines()[0].split() if w.endswith(("python", "python3",
                                                                          "python3.11")))
    assert os.path.samefile(python.removeprefix("#!"), sys.executable), (exe, python)
    assert text == launcher.script(name, python.removeprefix("#!")), exe


def test_executables_installed_where_ros2_run_looks(install_base):
    names = _declared_executables()
    assert names
    for name in names:
        exe = executable(install_base, name)
        assert exe.is_file() and os.access(exe, os.X_OK), exe
        # The package's launcher (signals blocked from the first instruction), run by the
        # interpreter that built it, not a setuptools console script.
        assert_launcher(exe, name)


@pytest.mark.parametrize("symlink_install", [False, True], ids=["install", "symlink-install"])
def test_installed_executables_run_as_ros2_run_starts_them(install_base, tmp_path,
                                                           symlink_install):
    # colcon build --symlink-install goes through setup.py develop instead of install.
    base = build(tmp_path, symlink_install=True) if symlink_install else install_base
    if symlink_install:
        for name in _declared_executables():
            assert_launcher(executable(base, name), name)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [*([str(tmp_path / "build" / "optical_flow_ros")] if symlink_install else []),
         str(site_packages(base))]))
    result = subprocess.run([str(executable(base, "process_bag")), "--help"],
                            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: process_bag "), result.stdout


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
    site = site_packages(install_base)
    result = subprocess.run(
        [sys.executable, "-c", "import optical_flow_ros.core, optical_flow_ros.nodes.tracker_node;"
         "print(optical_flow_ros.core.__file__)"],
        cwd=install_base, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(site)),
    )
    assert result.returncode == 0, result.stderr
    assert str(site) in result.stdout


def _catches_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("SigCgt:"))
    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("name", ["tracker_node", "process_bag"])
def test_installed_executables_honour_a_stop_from_their_first_line(install_base, name):
    # As ros2 run starts it: the launcher goes through tools/executables.py, which takes
    # SIGINT/SIGTERM over before the node's imports; a stop then ends it at once, exit 0.
    # (Stops before that point: test_robustness_shutdown.py and test_launcher.py.)
    proc = subprocess.Popen([str(executable(install_base, name))], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=workspace_env(install_base))
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
    exe = executable(install_base, "play_bag")
    result = subprocess.run([str(exe), str(tmp_path / "bag")], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                (str(tmp_path), str(site_packages(install_base))))))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "play_bag: the Python package 'rosbags' is not installed; install it with: "
        "python3 -m pip install rosbags (rosdep key python3-rosbags-pip)"]
