"""Launch descriptions shared by ``launch/*.launch.py`` (imports ``launch``/``launch_ros``).

Every node of this package takes the same launch arguments: the camera topics to remap
(``image``, ``camera_info``), a ``params_file`` (default: the package's YAML), a
``namespace`` (one per camera; run several side by side) and ``use_sim_time``.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

__all__ = ["camera_node_launch"]

PACKAGE = "optical_flow_ros"


def camera_arguments(default_params: str) -> list[DeclareLaunchArgument]:
    """The launch arguments every camera-processing node of this package takes."""
    return [
        DeclareLaunchArgument("image", default_value="image",
                              description="camera image topic (image/compressed follows it)"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="camera_info topic of that camera"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config",
                                                default_params]),
            description="YAML file with the node's parameters"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and its outputs"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (bag replay, simulation)"),
    ]


def camera_node(executable: str) -> Node:
    """``executable`` wired to the launch arguments of :func:`camera_arguments`."""
    image = LaunchConfiguration("image")
    return Node(
        package=PACKAGE,
        executable=executable,
        name=executable,
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)},
        ],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
        output="screen",
        emulate_tty=True,
    )


def camera_node_launch(executable: str, default_params: str) -> LaunchDescription:
    """Launch one node of this package on one camera."""
    return LaunchDescription([*camera_arguments(default_params), camera_node(executable)])
