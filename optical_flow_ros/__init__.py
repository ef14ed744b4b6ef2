"""optical_flow_ros: OpenCV optical flow for ROS 2 camera streams.

``optical_flow_ros.core`` holds the algorithms (pure numpy + OpenCV, no rclpy);
``optical_flow_ros.ros`` converts between ROS messages and core types;
``optical_flow_ros.nodes`` wires topics and parameters to the core.
"""
