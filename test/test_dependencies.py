"""Dependencies a ROS user's rosdep sees, and one clear line when one is missing anyway.

Every third-party module the source imports (read with ``ast``, also imports inside
functions) has an entry in ``tools/dependencies.py``, and its rosdep key is an exec_depend of
``package.xml``; nothing is declared that nothing imports. A missing module is simulated by a
``sitecustomize`` that makes its import fail, in a subprocess: the executable then ends with
exit code 1 and one line naming the package and the command that installs it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ros_harness import REPO

from optical_flow_ros.tools.dependencies import DEPENDENCIES, missing_message
from optical_flow_ros.tools.executables import EXECUTABLES

PACKAGE_DIR = REPO / "optical_flow_ros"

#: exec_depends that no module imports: the ``ros2 launch`` command for the launch files.
NOT_IMPORTED = {"ros2launch"}

HIDE_MODULES = """
import os, sys

_HIDDEN = set(os.environ["HIDE_MODULES"].split(","))


class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party module -> the package's modules that import it."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top and top not in sys.stdlib_module_names and top not in (
                        "optical_flow_ros", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def _exec_depends() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for e in root.iter("exec_depend") if e.text}


def test_every_import_has_a_rosdep_key_in_package_xml():
    imports = _third_party_imports()
    assert {"rclpy", "cv2", "rosbags", "pygame"} <= set(imports)   # the scan sees them
    unknown = {m: sorted(where) for m, where in imports.items() if m not in DEPENDENCIES}
    assert not unknown, f"imported but not in tools/dependencies.py: {unknown}"
    declared = _exec_depends()
    missing = {m: DEPENDENCIES[m].rosdep_key for m in imports
               if DEPENDENCIES[m].rosdep_key not in declared}
    assert not missing, f"not an exec_depend of package.xml: {missing}"


def test_nothing_is_declared_that_nothing_imports():
    keys = {DEPENDENCIES[m].rosdep_key for m in _third_party_imports()}
    assert _exec_depends() - keys == NOT_IMPORTED
    assert set(DEPENDENCIES) == set(_third_party_imports())


def test_rosbags_has_only_a_pip_key_and_the_message_says_the_pip_command():
    # rosdistro's rosdep/python.yaml has python3-rosbags-pip (pip) and python3-pygame (apt).
    assert DEPENDENCIES["rosbags"].pip_only and not DEPENDENCIES["pygame"].pip_only
    line = missing_message("process_bag", "rosbags")
    assert line is not None and "\n" not in line
    assert "python3 -m pip install rosbags" in line and "python3-rosbags-pip" in line
    assert missing_message("process_bag", "not_a_dependency") is None


@pytest.fixture(scope="module")
def hider(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hide")
    (folder / "sitecustomize.py").write_text(HIDE_MODULES)
    return folder


def _run_hidden(hider: Path, hidden: str, name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HIDE_MODULES=hidden,
               PYTHONPATH=os.pathsep.join((str(hider), str(REPO))))
    return subprocess.run([sys.executable, "-m", "optical_flow_ros", name, *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(("name", "hidden", "pip"), [
    ("process_bag", "rosbags", "rosbags"),
    ("play_bag", "rosbags", "rosbags"),
    ("sample_bag", "rosbags", "rosbags"),
    ("view", "pygame", "pygame"),
])
def test_a_missing_package_ends_the_tool_with_one_line(hider, tmp_path, name, hidden, pip):
    result = _run_hidden(hider, hidden, name, str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{name}: ") and f"'{pip}'" in lines[0], lines[0]
    assert f"python3 -m pip install {pip}" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_a_missing_core_dependency_is_named_too(hider):
    result = _run_hidden(hider, "numpy", "tracker_node")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [missing_message("tracker_node", "numpy")]
    env = dict(os.environ, HIDE_MODULES="rosbags", PYTHONPATH=os.pathsep.join(
        (str(hider), str(REPO))))
    probe = subprocess.run([sys.executable, "-c", "import rosbags"], capture_output=True,
                           text=True, env=env, timeout=60)   # the hiding itself works
    assert probe.returncode == 1 and "No module named 'rosbags'" in probe.stderr


def test_every_executable_names_an_importable_module():
    for name, module in EXECUTABLES.items():
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), name
