"""ament_python build of optical_flow_ros (colcon build, or a ROS 2 workspace)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "optical_flow_ros"

# One line per executable: installed to lib/optical_flow_ros/<name> so `ros2 run` finds it. Each
# goes through tools/executables.py, which takes over SIGINT/SIGTERM before the node's imports.
NODES = {
    "tracker_node": "optical_flow_ros.tools.executables:tracker_node",
    "dense_flow_node": "optical_flow_ros.tools.executables:dense_flow_node",
    "sim_camera_node": "optical_flow_ros.tools.executables:sim_camera_node",
    "video_source_node": "optical_flow_ros.tools.executables:video_source_node",
    "view": "optical_flow_ros.tools.executables:view",
    "process_bag": "optical_flow_ros.tools.executables:process_bag",
    "play_bag": "optical_flow_ros.tools.executables:play_bag",
    "sample_bag": "optical_flow_ros.tools.executables:sample_bag",
}

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
    entry_points={"console_scripts": [f"{k} = {v}" for k, v in NODES.items()]},
)
