"""The demo's graph: a camera source -> tracker_node (with camera velocity) + dense_flow_node.

    ros2 launch optical_flow_ros demo.launch.py                       # simulated camera
    ros2 launch optical_flow_ros demo.launch.py source:=video video:=/path/clip.mp4 \
        [calibration:=/path/camera.yaml]
    ros2 launch optical_flow_ros demo.launch.py source:=topic image:=/camera/image_raw \
        camera_info:=/camera/camera_info
    ... [namespace:=demo] [view:=true]

The same nodes and settings as ``scripts/demo.sh``: each node's own YAML, then
config/demo.yaml over it. ``source``: ``sim`` (sim_camera_node, a camera flying over a photo
texture, with ground truth on sim/twist and sim/pose), ``video`` (video_source_node playing
``video`` in a loop; camera_info from ``calibration``, a camera_info YAML, when given) or
``topic`` (an existing camera: remap ``image`` and ``camera_info``). ``view:=true`` also
opens the viewer window on flow/image and the dense views.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "optical_flow_ros"


def _config(name):
    return PathJoinSubstitution([FindPackageShare(PACKAGE), "config", name])


def _source_is(name):
    return IfCondition(EqualsSubstitution(LaunchConfiguration("source"), name))


def _node(executable, own_yaml, *, condition=None, overrides=None):
    """``executable`` in the demo's namespace, on the demo's camera topics."""
    image = LaunchConfiguration("image")
    return Node(
        package=PACKAGE, executable=executable, name=executable,
        namespace=LaunchConfiguration("namespace"),
        parameters=[_config(own_yaml), _config("demo.yaml"), *([overrides] if overrides else [])],
        remappings=[("image", image), ("image/compressed", [image, "/compressed"]),
                    ("camera_info", LaunchConfiguration("camera_info"))],
        condition=condition, output="screen", emulate_tty=True)


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("source", default_value="sim", choices=["sim", "video", "topic"],
                              description="camera: simulated, a video file, or a topic"),
        DeclareLaunchArgument("video", default_value="",
                              description="video file (source:=video)"),
        DeclareLaunchArgument("calibration", default_value="",
                              description="camera_info YAML of the video (source:=video)"),
        DeclareLaunchArgument("image", default_value="image",
                              description="camera image topic (source:=topic)"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="camera_info topic (source:=topic)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the nodes and their topics"),
        DeclareLaunchArgument("view", default_value="false",
                              description="open the viewer window (needs a display)"),
        _node("sim_camera_node", "sim_camera.yaml",
              condition=_source_is("sim")),
        _node("video_source_node", "video_source.yaml",
              condition=_source_is("video"),
              overrides={"source": LaunchConfiguration("video"),
                         "camera_info_url": LaunchConfiguration("calibration")}),
        _node("tracker_node", "tracker.yaml"),
        _node("dense_flow_node", "flow.yaml"),
        Node(package=PACKAGE, executable="view", name="viewer",
             namespace=LaunchConfiguration("namespace"),
             condition=IfCondition(LaunchConfiguration("view")), output="screen"),
    ])
