"""The third-party modules the package imports, and how a ROS user gets each one.

Every entry names the rosdep key that ``package.xml`` declares for it (a test keeps the two,
and the imports of the source, in step) and, where PyPI has it, the pip package. When an
executable finds one missing, :func:`missing_message` is the one line it ends with.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEPENDENCIES", "Dependency", "missing_message"]

ROSDEP_COMMAND = "rosdep install --from-paths src --ignore-src -y"


@dataclass(frozen=True)
class Dependency:
    """How a third-party module is installed.

    Attributes:
        rosdep_key: the key in package.xml (rosdistro's rosdep/*.yaml, or a ROS package).
        pip: the PyPI package, or "" for ROS packages (installed with ROS itself).
    """

    rosdep_key: str
    pip: str = ""

    @property
    def pip_only(self) -> bool:
        """True when rosdep itself installs it with pip (a ``-pip`` key: no system package)."""
        return self.rosdep_key.endswith("-pip")


DEPENDENCIES: dict[str, Dependency] = {
    # Python packages (rosdistro rosdep/python.yaml)
    "cv2": Dependency("python3-opencv", "opencv-python"),
    "numpy": Dependency("python3-numpy", "numpy"),
    "yaml": Dependency("python3-yaml", "PyYAML"),
    "skimage": Dependency("python3-skimage", "scikit-image"),
    "pygame": Dependency("python3-pygame", "pygame"),
    "av": Dependency("python3-av", "av"),
    "rosbags": Dependency("python3-rosbags-pip", "rosbags"),
    # ROS packages
    "rclpy": Dependency("rclpy"),
    "ament_index_python": Dependency("ament_index_python"),
    "builtin_interfaces": Dependency("builtin_interfaces"),
    "std_msgs": Dependency("std_msgs"),
    "std_srvs": Dependency("std_srvs"),
    "sensor_msgs": Dependency("sensor_msgs"),
    "geometry_msgs": Dependency("geometry_msgs"),
    "diagnostic_msgs": Dependency("diagnostic_msgs"),
    "rosgraph_msgs": Dependency("rosgraph_msgs"),
    "rcl_interfaces": Dependency("rcl_interfaces"),
    "launch": Dependency("launch"),
    "launch_ros": Dependency("launch_ros"),
}
"""Top-level import name -> how to get it."""


def missing_message(program: str, module: str) -> str | None:
    """The one line for ``program`` when ``module`` (a top-level name) cannot be imported.

    Returns:
        None when ``module`` is not a dependency of the package (a different fault).
    """
    dep = DEPENDENCIES.get(module)
    if dep is None:
        return None
    what = f"the Python package '{dep.pip or module}' is not installed"
    if dep.pip_only:
        how = f"python3 -m pip install {dep.pip} (rosdep key {dep.rosdep_key})"
    elif dep.pip:
        how = f"{ROSDEP_COMMAND} (rosdep key {dep.rosdep_key}), or python3 -m pip install {dep.pip}"
    else:
        how = f"{ROSDEP_COMMAND} (ROS package {dep.rosdep_key}), then source the workspace"
    return f"{program}: {what}; install it with: {how}"
