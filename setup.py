"""ament_python build of optical_flow_ros (colcon build, or a ROS 2 workspace)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "optical_flow_ros"

# One line per executable: installed to lib/optical_flow_ros/<name> so `ros2 run` finds it.
NODES = {
    "tracker_node": "optical_flow_ros.nodes.tracker_node:main",
    "dense_flow_node": "optical_flow_ros.nodes.dense_flow_node:main",
    "sim_camera_node": "optical_flow_ros.nodes.sim_camera_node:main",
    "video_source_node": "optical_flow_ros.nodes.video_source_node:main",
    "view": "optical_flow_ros.tools.viewer:main",
    "process_bag": "optical_flow_ros.tools.process_bag:main",
    "play_bag": "optical_flow_ros.tools.play_bag:main",
    "sample_bag": "optical_flow_ros.tools.sample_bag:main",
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
