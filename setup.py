"""ament_python build of optical_flow_ros (colcon build, or a ROS 2 workspace)."""

import sys
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.develop import develop
from setuptools.command.install_scripts import install_scripts

# The launchers' text comes from the package itself (a standard-library-only module).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from optical_flow_ros.tools import launcher  # noqa: E402

PACKAGE = "optical_flow_ros"

# One launcher per executable, installed to lib/optical_flow_ros/<name> so `ros2 run` finds it
# (setup.cfg's script dirs). Not setuptools' console scripts: a launcher blocks SIGINT/SIGTERM
# before the interpreter's start-up, so a stop is honoured however early it comes
# (optical_flow_ros/tools/launcher.py), and runs the executable through tools/executables.py.
NODES = (
    "tracker_node",
    "dense_flow_node",
    "sim_camera_node",
    "video_source_node",
    "view",
    "process_bag",
    "play_bag",
    "sample_bag",
)


def _launchers() -> list[tuple[str, str]]:
    """(file name, text) of every launcher, for the interpreter running this build."""
    return [(name, launcher.script(name, sys.executable)) for name in NODES]


class InstallLaunchers(install_scripts):
    """``setup.py install`` (colcon build): the launchers too, recorded for uninstall."""

    def run(self):
        super().run()
        for name, text in _launchers():
            self.write_script(name, text)


class DevelopLaunchers(develop):
    """``setup.py develop`` (colcon build --symlink-install): the launchers too."""

    def install_wrapper_scripts(self, dist):
        super().install_wrapper_scripts(dist)
        if dist is self.dist:
            for name, text in _launchers():
                self.write_script(name, text)


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="optical_flow_ros maintainers",
    maintainer_email="maintainers@optical-flow-ros.invalid",
    description="OpenCV optical flow (Lucas-Kanade tracking, DIS/Farneback) for ROS 2",
    license="Apache-2.0",
    cmdclass={"install_scripts": InstallLaunchers, "develop": DevelopLaunchers},
)
