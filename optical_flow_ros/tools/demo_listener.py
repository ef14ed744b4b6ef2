"""The demo's own node: listens to the pipeline's outputs and the simulator's truth."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped, TwistWithCovarianceStamped
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.motion_field import motion_field
from optical_flow_ros.ros.image_messages import image_msg_to_array
from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.ros.track_cloud import cloud_to_array
from optical_flow_ros.tools.demo_overlay import (
    VELOCITY_MAX_AGE_S,
    draw_velocity,
    no_velocity_reason,
    velocity_caption,
)
from optical_flow_ros.tools.demo_recording import Recorder, normalised_errors
from optical_flow_ros.tools.video_writer import VideoWriter

__all__ = ["DemoListener", "track_velocity_errors"]

_TRACKER_STATUS = ": lk_tracker"  # ending of tracker_node's diagnostics status name


def _stamp(msg: object) -> float:
    stamp = msg.header.stamp  # type: ignore[attr-defined]
    return round(stamp.sec + stamp.nanosec * 1e-9, 6)


class DemoListener:
    """Subscribes to flow/tracks, flow/image, flow/dense/hsv and (with truth) the sim topics."""

    def __init__(self, out: Path, *, truth: bool) -> None:
        self.recorder = Recorder()
        self._out = out
        self._truth = truth
        self._context = Context()
        rclpy.init(context=self._context)
        self._node = Node("demo_listener", context=self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._twists: dict[float, TwistStamped] = {}
        self._poses: dict[float, PoseStamped] = {}
        self._tracks: list[tuple[float, np.ndarray]] = []
        self._velocities: dict[float, TwistWithCovarianceStamped] = {}
        self._latest_velocity: tuple[float, np.ndarray] | None = None  # (stamp s, m/s)
        self._velocity_condition: str | None = None  # tracker diagnostics' "velocity"
        self._camera_info = False
        self._camera: PinholeCamera | None = None
        self._video: VideoWriter | None = None
        reliable = keep_last_qos("reliable", 10)
        sub = self._node.create_subscription
        self._tracks_sub = sub(PointCloud2, "flow/tracks", self._on_tracks, reliable)
        sub(Image, "flow/image", self._on_tracks_image, keep_last_qos("reliable", 2))
        sub(Image, "flow/dense/hsv", self._on_hsv, keep_last_qos("best_effort", 1))
        sub(CameraInfo, "camera_info", self._on_camera_info, keep_last_qos("best_effort", 1))
        # Estimates and their truth are small and scored in pairs: keep 3 s of each, so a
        # spell of video encoding in this thread loses neither (with 10, half the pairs went).
        scored = keep_last_qos("reliable", 90)
        # What the run is scored on: the summary starts once each has a publisher.
        self._needed = [self._tracks_sub, sub(TwistWithCovarianceStamped, "flow/velocity",
                                              self._on_velocity, scored)]
        sub(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        if truth:
            self._needed.append(sub(TwistStamped, "sim/twist", self._on_twist, scored))
            sub(PoseStamped, "sim/pose", self._on_pose, scored)

    def wait_for_graph(self, timeout: float,
                       should_stop: Callable[[], bool] = lambda: False) -> None:
        """Spin until flow/tracks, flow/velocity and (with truth) sim/twist have a publisher.

        Each is matched on its own, and DDS discovery can take an announcement period
        (~3 s): truth matched that much after flow/tracks leaves the first seconds of the
        estimates unscored (the likely cause of a CI run that scored 36 of 120 frames).
        """
        end = time.monotonic() + timeout
        while (any(s.get_publisher_count() == 0 for s in self._needed)
               and time.monotonic() < end and not should_stop()):
            self.spin_once(0.1)

    def spin_once(self, timeout: float) -> None:
        """Process callbacks for at most ``timeout`` s."""
        self._executor.spin_once(timeout_sec=timeout)

    def _on_tracks(self, msg: PointCloud2) -> None:
        rec = self.recorder
        rec.latencies_ms.append((time.time() - _stamp(msg)) * 1e3)
        cloud = cloud_to_array(msg)
        rec.track_counts.append(len(cloud))
        self._tracks.append((_stamp(msg), cloud[["u", "v", "vu", "vv", "age"]].copy()))

    def _on_tracks_image(self, msg: Image) -> None:
        vis = np.array(image_msg_to_array(msg))
        h, w = vis.shape[:2]
        # Camera velocity in the optical frame (x right, y down, as drawn on the image), only
        # when one was received for about this frame; otherwise why not.
        velocity, reason = None, ""
        latest = self._latest_velocity
        if latest is not None and abs(latest[0] - _stamp(msg)) <= VELOCITY_MAX_AGE_S:
            velocity = latest[1]
        else:
            reason = no_velocity_reason(camera_info=self._camera_info,
                                        diagnostic=self._velocity_condition)
        draw_velocity(vis, velocity, velocity_caption(velocity, reason))
        self.recorder.count_frame(reason or None)
        if self._video is None:
            self._video = VideoWriter(self._out / "tracks.mp4", 30.0, (w, h))
            if self._video.note:
                print(f"[demo] {self._video.note}", flush=True)
        if (w, h) == self._video.size:
            self._video.write(vis)
        self.recorder.last_tracks_image = vis

    def _on_velocity(self, msg: TwistWithCovarianceStamped) -> None:
        self._velocities[_stamp(msg)] = msg
        self._latest_velocity = (_stamp(msg), np.array([msg.twist.twist.linear.x,
                                                        msg.twist.twist.linear.y]))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(_TRACKER_STATUS):
                values = {kv.key: kv.value for kv in status.values}
                self._velocity_condition = values.get("velocity")
                sources = values.get("velocity_covariance_sources")
                if sources:
                    self.recorder.covariance_sources = sources

    def _on_hsv(self, msg: Image) -> None:
        self.recorder.last_hsv = np.array(image_msg_to_array(msg))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = True
        if self._camera is None:
            self._camera = PinholeCamera.from_camera_info(msg)

    def _on_twist(self, msg: TwistStamped) -> None:
        self._twists[_stamp(msg)] = msg

    def _on_pose(self, msg: PoseStamped) -> None:
        self._poses[_stamp(msg)] = msg

    def _score(self) -> None:
        """Per frame: track velocities (age >= 5) against the exact motion field."""
        camera = self._camera
        if camera is None:
            return
        for stamp, tracks in self._tracks:
            twist, pose = self._twists.get(stamp), self._poses.get(stamp)
            if twist is not None and pose is not None:
                self.recorder.speed_errors.append(
                    track_velocity_errors(tracks, camera, twist, pose))

    def _score_velocity(self) -> None:
        """Camera velocity (flow/velocity) against sim/twist at the same stamps."""
        rows = []
        for stamp, msg in sorted(self._velocities.items()):
            truth = self._twists.get(stamp)
            if truth is None:
                continue
            est = msg.twist.twist.linear
            cov = np.reshape(msg.twist.covariance, (6, 6))
            sigma = np.sqrt(np.diag(cov)[:2])
            rows.append((stamp, est.x, est.y, truth.twist.linear.x, truth.twist.linear.y,
                         sigma[0], sigma[1], cov[0, 1]))
        self.recorder.camera_velocity_rows = rows

    def write_outputs(self) -> None:
        """Snapshots, the velocity plot and the finished video."""
        if self._video is not None:
            self._video.close()
        rec = self.recorder
        if rec.last_tracks_image is not None:
            cv2.imwrite(str(self._out / "tracks.png"), rec.last_tracks_image)
        if rec.last_hsv is not None:
            cv2.imwrite(str(self._out / "dense_hsv.png"), rec.last_hsv)
        if rec.camera_velocity_rows:
            cv2.imwrite(str(self._out / "velocity.png"),
                        _plot(np.array(rec.camera_velocity_rows)))

    def close(self) -> None:
        """Score against the truth and shut the listener down."""
        self._score()
        self._score_velocity()
        self._executor.shutdown()
        self._node.destroy_node()
        rclpy.shutdown(context=self._context)


def _plot(rows: np.ndarray, size: tuple[int, int] = (900, 460)) -> np.ndarray:
    """The velocity plot: vx, vy (m/s) and, below, their normalised errors.

    Top: the estimate with its 3-sigma band and the truth; bottom: error / published sigma
    with the 1- and 3-sigma lines.
    """
    return np.vstack((_plot_velocity(rows, size), _plot_normalised(rows, (size[0], 220))))


def _plot_velocity(rows: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Camera velocity vx, vy (m/s): estimate with its 3-sigma band, and the truth."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    t = rows[:, 0] - rows[0, 0]
    est, truth, sigma = rows[:, 1:3], rows[:, 3:5], rows[:, 5:7]
    lo = float(min((est - 3 * sigma).min(), truth.min()))
    hi = float(max((est + 3 * sigma).max(), truth.max()))
    pad = 0.05 * (hi - lo + 1e-6)
    lo, hi = lo - pad, hi + pad
    left, right, top, bottom = 70, w - 20, 36, h - 40

    def pts(y: np.ndarray) -> np.ndarray:
        x = left + (t / max(t[-1], 1e-6)) * (right - left)
        yy = bottom - (y - lo) / (hi - lo) * (bottom - top)
        return np.column_stack((x, yy)).round().astype(np.int32)

    band = img.copy()
    for col, colour in ((0, (200, 80, 0)), (1, (0, 130, 0))):
        upper, lower = pts(est[:, col] + 3 * sigma[:, col]), pts(est[:, col] - 3 * sigma[:, col])
        cv2.fillPoly(band, [np.vstack((upper, lower[::-1]))], colour)
    img = cv2.addWeighted(band, 0.2, img, 0.8, 0)
    cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)
    for col, colour, name in ((0, (200, 80, 0), "vx"), (1, (0, 130, 0), "vy")):
        cv2.polylines(img, [pts(truth[:, col])], False, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.polylines(img, [pts(est[:, col])], False, colour, 2, cv2.LINE_AA)
        cv2.putText(img, f"{name} estimated (band: 3 sigma)", (left + 300 * col, 22),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    cv2.putText(img, "truth: thin black", (left + 610, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 0, 0), 1, cv2.LINE_AA)
    for value in (lo, 0.0, hi):
        y = int(pts(np.full_like(t, value))[0, 1])
        if top <= y <= bottom:
            cv2.putText(img, f"{value:+.2f}", (5, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"camera velocity, optical frame, m/s, over {t[-1]:.1f} s", (left, h - 12),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def _plot_normalised(rows: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Errors of vx and vy over their published sigma against time, clipped to +/-5."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    t = rows[:, 0] - rows[0, 0]
    z = np.clip(normalised_errors(rows)[:, :2], -5.0, 5.0)
    left, right, top, bottom = 70, w - 20, 30, h - 36

    def pts(y: np.ndarray) -> np.ndarray:
        x = left + (t / max(t[-1], 1e-6)) * (right - left)
        yy = bottom - (y + 5.0) / 10.0 * (bottom - top)
        return np.column_stack((x, yy)).round().astype(np.int32)

    cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)
    for value in (-3.0, -1.0, 0.0, 1.0, 3.0):
        y = int(pts(np.full_like(t, value))[0, 1])
        grey = (120, 120, 120) if value else (0, 0, 0)
        cv2.line(img, (left, y), (right, y), grey, 1, cv2.LINE_AA)
        cv2.putText(img, f"{value:+.0f}", (30, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    for col, colour, name in ((0, (200, 80, 0), "vx"), (1, (0, 130, 0), "vy")):
        for x, y in pts(z[:, col]):
            cv2.circle(img, (int(x), int(y)), 2, colour, -1, cv2.LINE_AA)
        inside = float(np.mean(np.abs(z[:, col]) <= 1.0)) * 100
        cv2.putText(img, f"{name} error / sigma ({inside:.0f} % within 1 sigma)",
                    (left + 330 * col, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                    cv2.LINE_AA)
    cv2.putText(img, "normalised errors: 68 % inside +/-1 and 99.7 % inside +/-3 when the "
                "covariance is right", (left, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    return img


def track_velocity_errors(tracks: np.ndarray, camera: PinholeCamera, twist: TwistStamped,
                          pose: PoseStamped) -> np.ndarray:
    """Relative errors |v - v_true| / |v_true| of one frame's track velocities (vu, vv px/s).

    ``tracks`` is the frame's flow/tracks as :func:`cloud_to_array` reads it; ``twist`` and
    ``pose`` are the simulator's truth at its stamp. Tracks of age >= 5 whose velocity is
    known are scored: a velocity is NaN (unknown) on a track's first frame and for every
    track on the frame after a time gap (max_dt), which a loaded machine produces. Each
    track's depth is that of the ground plane along its ray, from the true pose: the
    rangefinder's reading is noisy (1 % in config/demo.yaml), and one depth for every track
    left that much error in the truth itself.
    """
    scored = tracks[(tracks["age"] >= 5) & np.isfinite(tracks["vu"]) & np.isfinite(tracks["vv"])]
    if not len(scored):
        return np.zeros(0)
    lin, ang = twist.twist.linear, twist.twist.angular
    rays = camera.normalize(np.column_stack((scored["u"], scored["v"])))
    truth = motion_field(rays, np.array([lin.x, lin.y, lin.z]), np.array([ang.x, ang.y, ang.z]),
                         _ground_depth(rays, pose)) * np.array(camera.focal_px)
    est = np.column_stack((scored["vu"], scored["vv"]))
    speed = np.linalg.norm(truth, axis=1)
    moving = speed > 0.0     # a still point has no relative error
    return np.linalg.norm(est - truth, axis=1)[moving] / speed[moving]


def _ground_depth(rays: np.ndarray, pose: PoseStamped) -> np.ndarray:
    """(N,) depth (m, along the optical axis) of the ground plane z = 0 along rays (x, y, 1).

    ``pose``: the optical frame's pose in the world (z up), as sim_camera_node publishes it.
    """
    q = pose.pose.orientation
    x, y, z, w = q.x, q.y, q.z, q.w
    third_row = np.array([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)])
    down = np.column_stack((rays, np.ones(len(rays)))) @ third_row   # world z of each ray
    return -pose.pose.position.z / down
