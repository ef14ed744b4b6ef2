"""The algorithms of optical_flow_ros: pure numpy + OpenCV, no ROS imports.

Usable as a plain Python library::

    from optical_flow_ros.core import DenseFlow, LKTracker

Units: pixel coordinates are (x, y) px of the full-resolution image (x right, y down);
stamps are seconds; pixel velocities px/s; flow fields px between the two given frames.
"""

from optical_flow_ros.core.camera_calibration import (
    CameraCalibration,
    calibration_to_yaml,
    parse_calibration,
    read_calibration,
)
from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.dense_flow import DenseFlow, DenseFlowConfig, FlowStats, flow_stats
from optical_flow_ros.core.dense_methods import DENSE_METHODS, DenseMethod
from optical_flow_ros.core.ego_velocity import EgoVelocityEstimator
from optical_flow_ros.core.errors import (
    CalibrationError,
    CameraModelError,
    ConfigError,
    ImageConversionError,
    OpticalFlowError,
    VideoSourceError,
)
from optical_flow_ros.core.flow_drawing import draw_flow, draw_hsv, warp_flow
from optical_flow_ros.core.flow_resize import resize_flow
from optical_flow_ros.core.frame_schedule import DueFrame, FrameSchedule
from optical_flow_ros.core.image_codec import decode_compressed, decode_image, to_bgr, to_gray
from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig, TrackerStats, Tracks
from optical_flow_ros.core.motion_field import motion_field
from optical_flow_ros.core.sim_camera import CameraState, SimCamera, SimCameraConfig, SimFrame
from optical_flow_ros.core.textures import TEXTURE_NAMES, load_texture
from optical_flow_ros.core.track_drawing import draw_tracks
from optical_flow_ros.core.velocity_estimator import (
    VelocityConfig,
    VelocityEstimate,
    estimate_velocity,
)
from optical_flow_ros.core.video_capture import VideoInfo, VideoSource, VideoSourceConfig

__all__ = [
    "CalibrationError",
    "CameraCalibration",
    "CameraModelError",
    "CameraState",
    "ConfigError",
    "DENSE_METHODS",
    "DenseFlow",
    "DenseFlowConfig",
    "DenseMethod",
    "DueFrame",
    "EgoVelocityEstimator",
    "FlowStats",
    "FrameSchedule",
    "ImageConversionError",
    "LKTracker",
    "OpticalFlowError",
    "PinholeCamera",
    "SimCamera",
    "SimCameraConfig",
    "SimFrame",
    "TEXTURE_NAMES",
    "TrackerConfig",
    "TrackerStats",
    "Tracks",
    "VelocityConfig",
    "VelocityEstimate",
    "VideoInfo",
    "VideoSource",
    "VideoSourceConfig",
    "VideoSourceError",
    "calibration_to_yaml",
    "decode_compressed",
    "decode_image",
    "draw_flow",
    "draw_hsv",
    "draw_tracks",
    "estimate_velocity",
    "flow_stats",
    "load_texture",
    "motion_field",
    "parse_calibration",
    "read_calibration",
    "resize_flow",
    "to_bgr",
    "to_gray",
    "warp_flow",
]
