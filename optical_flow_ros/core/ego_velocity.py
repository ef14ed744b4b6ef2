"""The camera's velocity frame after frame: what one stream keeps between its estimates.

Frames and units as :func:`~optical_flow_ros.core.velocity_estimator.estimate_velocity`
(camera optical frame, m/s, rad/s; stamps s).

:func:`~optical_flow_ros.core.velocity_estimator.estimate_velocity` is one frame's estimate
from that frame's tracks and sensors. A stream also keeps, from frame to frame:

* the timing of the tracks' velocities (:class:`~.velocity_estimator.FitWindow`: which stamps
  they rest on, and the stalls), which the gyro's rates are matched to;
* the camera's acceleration from its recent estimates
  (:class:`~optical_flow_ros.core.world_acceleration.AccelerationEstimator`): what the
  velocity changes between the instant it is measured and the image stamp. It is fed every
  valid estimate and dropped at a stall (fitted before the gap, stale after it: the first
  estimates after a 0.43 s stall were 10-40x overconfident with it).

:class:`EgoVelocityEstimator` holds both, so that every user (tracker_node, the benchmarks, a
library user replaying tracks) runs the stage the same way::

    ego = EgoVelocityEstimator(window, max_dt, at_stamp=True)
    for tracks in stream:
        timing = ego.timing(tracks.stamp)
        gyro = gyro_rates(times, rates, timing, max_age=0.1, covariance=imu_covariance)
        estimate = ego.estimate(tracks, camera, timing, distance=range_m, gyro=gyro)
"""

from __future__ import annotations

import numpy as np

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.track_types import Tracks
from optical_flow_ros.core.velocity_estimator import (
    FitWindow,
    GyroRates,
    VelocityConfig,
    VelocityEstimate,
    VelocityTiming,
    estimate_velocity,
)
from optical_flow_ros.core.world_acceleration import AccelerationEstimator

__all__ = ["EgoVelocityEstimator"]


class EgoVelocityEstimator:
    """One camera stream's ego-velocity stage (see the module docstring).

    Args:
        window: frames the tracker's velocities rest on (``min(velocity_window,
            track_len)``; the gyro's samples are fitted over the same frames).
        max_dt: the tracker's ``max_dt``, s: a longer gap restarts the window.
        at_stamp: the tracks' velocities are at the image stamp (the ``motion_field``
            per-track estimator) rather than slopes lagging it.
    """

    def __init__(self, window: int, max_dt: float, *, at_stamp: bool = False) -> None:
        self._window = FitWindow(window, max_dt, at_stamp=at_stamp)
        self._acceleration = AccelerationEstimator()

    def configure(self, window: int, max_dt: float, *, at_stamp: bool = False) -> None:
        """New tracker settings; the window's stamps and the acceleration are kept."""
        self._window.configure(window, max_dt, at_stamp=at_stamp)

    def reset(self) -> None:
        """Forget the acceleration (the tracker was reset: its tracks start anew)."""
        self._acceleration.reset()

    def timing(self, stamp: float) -> VelocityTiming:
        """The timing of the tracks stamped ``stamp`` (s); call it for every frame.

        Every frame, estimated or not, so that the window follows the tracker. At a stall the
        acceleration is dropped.
        """
        timing = self._window.update(stamp)
        if timing.stalled:
            self._acceleration.reset()
        return timing

    def estimate(self, tracks: Tracks, camera: PinholeCamera | None,
                 timing: VelocityTiming | None, *, distance: float | None = None,
                 distance_variance: float | None = None,
                 gyro: GyroRates | np.ndarray | None = None,
                 config: VelocityConfig | None = None) -> VelocityEstimate:
        """The velocity at ``tracks.stamp``; a valid one also feeds the acceleration.

        ``timing``: from :meth:`timing` (or the caller's own
        :class:`~.velocity_estimator.FitWindow`: a stall drops the acceleration here too;
        None: the velocities are taken as instantaneous at the stamp). The rest as
        :func:`~.velocity_estimator.estimate_velocity`.
        """
        if timing is not None and timing.stalled:
            self._acceleration.reset()
        estimate = estimate_velocity(tracks, camera, distance=distance,
                                     distance_variance=distance_variance, gyro=gyro,
                                     timing=timing, acceleration=self._acceleration.estimate(),
                                     config=config)
        if estimate.valid:
            self._acceleration.update(tracks.stamp, estimate.measured_linear, estimate.angular,
                                      estimate.covariance[:3, :3])
        return estimate
