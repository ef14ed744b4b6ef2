"""ROS message adapters."""
