"""Exception types of the core library.

Every error the core raises on bad input derives from :class:`OpticalFlowError`, so a
node can catch one type, count the failure and keep running.
"""

from __future__ import annotations


class OpticalFlowError(Exception):
    """Base class of all errors raised by optical_flow_ros on bad input."""


class ImageConversionError(OpticalFlowError, ValueError):
    """An image message or buffer cannot be converted (encoding, size, data)."""


class ConfigError(OpticalFlowError, ValueError):
    """A configuration value is invalid; the message names the parameter and why."""


class CameraModelError(OpticalFlowError, ValueError):
    """Camera intrinsics are unusable (zero/NaN K, unknown distortion model, bad size)."""


class VideoSourceError(OpticalFlowError):
    """A video source cannot be opened or read (missing file, undecodable data, no camera)."""


class CalibrationError(OpticalFlowError, ValueError):
    """A camera calibration file is unreadable or malformed; the message names the key."""
