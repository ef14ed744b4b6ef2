"""Dense optical flow (DIS by default, or Farneback) on one camera.

    ros2 launch optical_flow_ros flow.launch.py image:=/camera/image_raw namespace:=front \
        [params_file:=my.yaml] [use_sim_time:=true]

Publishes <namespace>/flow/dense (32FC2), flow/dense/hsv, flow/dense/arrows, flow/dense/warp.
"""

from optical_flow_ros.launch_description import camera_node_launch


def generate_launch_description():
    return camera_node_launch("dense_flow_node", "flow.yaml")
