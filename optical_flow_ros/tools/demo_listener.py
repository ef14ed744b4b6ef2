"""The demo's own node: listens to the pipeline's outputs and the simulator's truth."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from geometry_msgs.msg import TwistStamped
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, Range

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.motion_field import motion_field
from optical_flow_ros.ros.image_messages import image_msg_to_array
from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.ros.track_cloud import cloud_to_array
from optical_flow_ros.tools.demo import Recorder

__all__ = ["DemoListener"]

_ARROW_SECONDS = 0.5  # the motion arrow shows where the image moves in this time


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
        self._ranges: dict[float, float] = {}
        self._tracks: list[tuple[float, np.ndarray]] = []
        self._camera: PinholeCamera | None = None
        self._video: cv2.VideoWriter | None = None
        self._motion = np.zeros(2)
        reliable = keep_last_qos("reliable", 10)
        sub = self._node.create_subscription
        self._tracks_sub = sub(PointCloud2, "flow/tracks", self._on_tracks, reliable)
        sub(Image, "flow/image", self._on_tracks_image, keep_last_qos("reliable", 2))
        sub(Image, "flow/dense/hsv", self._on_hsv, keep_last_qos("best_effort", 1))
        sub(CameraInfo, "camera_info", self._on_camera_info, keep_last_qos("best_effort", 1))
        if truth:
            sub(TwistStamped, "sim/twist", self._on_twist, reliable)
            sub(Range, "range", self._on_range, reliable)

    def wait_for_graph(self, timeout: float) -> None:
        """Spin until flow/tracks has a publisher (the tracker is up)."""
        end = time.monotonic() + timeout
        while self._tracks_sub.get_publisher_count() == 0 and time.monotonic() < end:
            self.spin_once(0.1)

    def spin_once(self, timeout: float) -> None:
        """Process callbacks for at most ``timeout`` s."""
        self._executor.spin_once(timeout_sec=timeout)

    def _on_tracks(self, msg: PointCloud2) -> None:
        rec = self.recorder
        rec.latencies_ms.append((time.time() - _stamp(msg)) * 1e3)
        cloud = cloud_to_array(msg)
        rec.track_counts.append(len(cloud))
        old = cloud[cloud["age"] >= 5]
        if len(old):
            self._motion = np.array([np.median(old["vu"]), np.median(old["vv"])])
        self._tracks.append((_stamp(msg), cloud[["u", "v", "vu", "vv", "age"]].copy()))

    def _on_tracks_image(self, msg: Image) -> None:
        vis = np.ascontiguousarray(image_msg_to_array(msg))
        h, w = vis.shape[:2]
        centre = (w // 2, h // 2)
        tip = (int(round(centre[0] + self._motion[0] * _ARROW_SECONDS)),
               int(round(centre[1] + self._motion[1] * _ARROW_SECONDS)))
        cv2.arrowedLine(vis, centre, tip, (0, 0, 255), 3, tipLength=0.2)
        cv2.putText(vis, f"image motion {np.hypot(*self._motion):.0f} px/s", (10, h - 12),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2, cv2.LINE_AA)
        if self._video is None:
            self._video = cv2.VideoWriter(str(self._out / "tracks.mp4"),
                                          cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
        self._video.write(vis)
        self.recorder.last_tracks_image = vis

    def _on_hsv(self, msg: Image) -> None:
        self.recorder.last_hsv = np.array(image_msg_to_array(msg))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        if self._camera is None:
            self._camera = PinholeCamera.from_camera_info(msg)

    def _on_twist(self, msg: TwistStamped) -> None:
        self._twists[_stamp(msg)] = msg

    def _on_range(self, msg: Range) -> None:
        self._ranges[_stamp(msg)] = msg.range

    def _score(self) -> None:
        """Per frame: track velocities (age >= 5) against the exact motion field."""
        camera = self._camera
        if camera is None:
            return
        focal = np.array(camera.focal_px)
        for stamp, tracks in self._tracks:
            twist, depth = self._twists.get(stamp), self._ranges.get(stamp)
            old = tracks[tracks["age"] >= 5]
            if twist is None or depth is None or not len(old):
                continue
            lin, ang = twist.twist.linear, twist.twist.angular
            rays = camera.normalize(np.column_stack((old["u"], old["v"])))
            truth = motion_field(rays, np.array([lin.x, lin.y, lin.z]),
                                 np.array([ang.x, ang.y, ang.z]), depth) * focal
            est = np.column_stack((old["vu"], old["vv"]))
            rel = np.linalg.norm(est - truth, axis=1) / np.linalg.norm(truth, axis=1)
            self.recorder.speed_errors.append(rel)
            self.recorder.velocity_rows.append((stamp, *np.median(est, axis=0),
                                                *np.median(truth, axis=0),
                                                float(np.median(rel))))

    def write_outputs(self) -> None:
        """Snapshots, the velocity plot and the finished video."""
        if self._video is not None:
            self._video.release()
        rec = self.recorder
        if rec.last_tracks_image is not None:
            cv2.imwrite(str(self._out / "tracks.png"), rec.last_tracks_image)
        if rec.last_hsv is not None:
            cv2.imwrite(str(self._out / "dense_hsv.png"), rec.last_hsv)
        if rec.velocity_rows:
            cv2.imwrite(str(self._out / "velocity.png"), _plot(np.array(rec.velocity_rows)))

    def close(self) -> None:
        """Score against the truth and shut the listener down."""
        self._score()
        self._executor.shutdown()
        self._node.destroy_node()
        rclpy.shutdown(context=self._context)


def _plot(rows: np.ndarray, size: tuple[int, int] = (900, 420)) -> np.ndarray:
    """Median track velocity (est. solid, truth thin) per axis over time, drawn with OpenCV."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    t = rows[:, 0] - rows[0, 0]
    values = rows[:, 1:5]
    lo, hi = float(values.min()), float(values.max())
    pad = 0.1 * (hi - lo + 1e-6)
    lo, hi = lo - pad, hi + pad
    left, right, top, bottom = 70, w - 20, 30, h - 40

    def pts(y: np.ndarray) -> np.ndarray:
        x = left + (t / max(t[-1], 1e-6)) * (right - left)
        yy = bottom - (y - lo) / (hi - lo) * (bottom - top)
        return np.column_stack((x, yy)).round().astype(np.int32)

    cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)
    zero = pts(np.zeros_like(t))[0, 1]
    if top < zero < bottom:
        cv2.line(img, (left, zero), (right, zero), (200, 200, 200), 1)
    for col, colour, name in ((0, (200, 80, 0), "vu"), (1, (0, 120, 0), "vv")):
        cv2.polylines(img, [pts(values[:, 2 + col])], False, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.polylines(img, [pts(values[:, col])], False, colour, 2, cv2.LINE_AA)
        cv2.putText(img, f"{name} tracked (median)", (left + 10 + 220 * col, 20),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    cv2.putText(img, "truth: thin black", (left + 460, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 0, 0), 1, cv2.LINE_AA)
    for value in (lo, hi):
        cv2.putText(img, f"{value:.0f}", (5, pts(np.full_like(t, value))[0, 1] + 5),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"px/s over {t[-1]:.1f} s", (left, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 0, 0), 1, cv2.LINE_AA)
    return img
