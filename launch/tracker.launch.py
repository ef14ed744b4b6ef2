"""Sparse Lucas-Kanade tracker on one camera.

    ros2 launch optical_flow_ros tracker.launch.py image:=/camera/image_raw \
        camera_info:=/camera/camera_info namespace:=front \
        [params_file:=my.yaml] [use_sim_time:=true]

Publishes <namespace>/flow/tracks (PointCloud2), <namespace>/flow/image and /diagnostics.
"""

from optical_flow_ros.launch_description import camera_node_launch


def generate_launch_description():
    return camera_node_launch("tracker_node", "tracker.yaml")
