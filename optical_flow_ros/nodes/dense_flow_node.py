"""dense_flow_node: dense optical flow between consecutive camera frames.

Subscribes:
    image (sensor_msgs/Image), or image/compressed (sensor_msgs/CompressedImage) when
    ``image_transport`` is ``compressed``.
Publishes (each computed only while someone subscribes):
    flow/dense (sensor_msgs/Image 32FC2): flow in px from the previous frame to this one,
        header = this frame's.
    flow/dense/hsv (bgr8): direction as hue, magnitude as brightness (opt_flow.py draw_hsv).
    flow/dense/arrows (bgr8): flow vectors on a grid over the image (draw_flow).
    flow/dense/warp (bgr8): the previous frame warped by the flow, i.e. this frame as the flow
        predicts it; only while ``publish_warp`` is true.
    /diagnostics: processing time, mean/median/max flow magnitude, valid fraction, frame counts.
Services:
    ~/reset (std_srvs/Trigger): forget the previous frame and temporal state.
    ~/save_snapshot (std_srvs/Trigger): write the newest input frame and its HSV view as PNG
        files to ``snapshot_dir``; answers with their paths (``ros/snapshot_service.py``).
Parameters: ``config/flow.yaml`` (generated from the table below); all but the start-up-only
ones can be changed at runtime, including ``method``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import cv2
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.dense_flow import DenseFlow, DenseFlowConfig, flow_stats
from optical_flow_ros.core.errors import OpticalFlowError
from optical_flow_ros.core.flow_drawing import draw_flow, draw_hsv, warp_flow
from optical_flow_ros.nodes.compute_config import ComputeConfig
from optical_flow_ros.nodes.node_main import run_node
from optical_flow_ros.nodes.parameter_table import build_node_config, params_from
from optical_flow_ros.ros.diagnostics import DiagnosticsReporter
from optical_flow_ros.ros.image_input import Frame, ImageInput, InputConfig
from optical_flow_ros.ros.image_messages import array_to_image_msg
from optical_flow_ros.ros.parameters import ParameterBinding
from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.ros.snapshot_service import SnapshotConfig, SnapshotService

__all__ = ["DENSE_FLOW_PARAMS", "DenseFlowNode", "main"]


@dataclass(frozen=True)
class DenseOutputConfig:
    """What dense_flow_node draws and publishes besides the flow itself."""

    publish_hsv: bool = setting(True, "Publish flow/dense/hsv (while subscribed)")
    publish_arrows: bool = setting(True, "Publish flow/dense/arrows (while subscribed)")
    publish_warp: bool = setting(False, "Publish flow/dense/warp (while subscribed)")
    hsv_scale: float = setting(
        4.0, "flow/dense/hsv brightness per px of flow (255 saturates)", range=(0.01, 1000.0))
    arrow_step: int = setting(16, "Grid spacing of flow/dense/arrows, px", range=(2, 512))

    def __post_init__(self) -> None:
        validate_fields(self)


DENSE_FLOW_PARAMS = (params_from(InputConfig, read_only=True)
                     + params_from(ComputeConfig, read_only=True)
                     + params_from(DenseFlowConfig) + params_from(DenseOutputConfig)
                     + params_from(SnapshotConfig))


class DenseNodeConfig(NamedTuple):
    """Everything dense_flow_node is configured with."""

    input: InputConfig
    compute: ComputeConfig
    flow: DenseFlowConfig
    output: DenseOutputConfig
    snapshot: SnapshotConfig


def build_dense_node_config(values: dict[str, Any]) -> DenseNodeConfig:
    """Validated node config from parameter values (raises ConfigError)."""
    return build_node_config(DenseNodeConfig, values)


class DenseFlowNode(Node):
    """Wires camera frames to :class:`~optical_flow_ros.core.dense_flow.DenseFlow`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("dense_flow_node", **kwargs)
        self._params = ParameterBinding(self, DENSE_FLOW_PARAMS, build_dense_node_config,
                                        self._on_config_change)
        config = self._params.config
        config.compute.apply()
        self._flow = DenseFlow(config.flow)
        self._prev: Frame | None = None
        self._prev_flow: np.ndarray | None = None  # flow into self._prev, when computed
        self._diag = DiagnosticsReporter(self, "dense_flow")
        qos = keep_last_qos("reliable", 1)
        self._pub_flow = self.create_publisher(Image, "flow/dense", qos)
        self._pub_hsv = self.create_publisher(Image, "flow/dense/hsv", qos)
        self._pub_arrows = self.create_publisher(Image, "flow/dense/arrows", qos)
        self._pub_warp = self.create_publisher(Image, "flow/dense/warp", qos)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._snapshots = SnapshotService(self, lambda: self._params.config.snapshot.snapshot_dir)
        self._input = ImageInput(self, self._on_frame, self._diag, config.input)

    def _on_config_change(self, config: DenseNodeConfig, changed: set[str]) -> None:
        if config.flow != self._flow.config:
            self._flow.configure(config.flow)
            self.get_logger().info(f"dense flow reconfigured ({', '.join(sorted(changed))})")

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._prev = None
        self._flow.reset()
        self._diag.count("resets")
        response.success, response.message = True, "dense flow reset"
        return response

    def _snapshot_view(self, prev: Frame | None, frame: Frame) -> np.ndarray:
        """HSV view of ``frame`` for ~/save_snapshot: from the flow computed for it, if any.

        When nobody subscribed (so no flow was computed), the flow is computed now by a fresh
        DenseFlow, leaving the node's temporal state alone.
        """
        flow = self._prev_flow if frame is self._prev else None
        if flow is None:
            if prev is None or prev.gray.shape != frame.gray.shape:
                raise OpticalFlowError("no flow yet: it needs two frames of the same size")
            flow = DenseFlow(self._flow.config).compute(prev.gray, frame.gray)
        return draw_hsv(flow, scale=self._params.config.output.hsv_scale)

    def _wanted(self) -> tuple[bool, bool, bool, bool]:
        out = self._params.config.output
        return (self._pub_flow.get_subscription_count() > 0,
                out.publish_hsv and self._pub_hsv.get_subscription_count() > 0,
                out.publish_arrows and self._pub_arrows.get_subscription_count() > 0,
                out.publish_warp and self._pub_warp.get_subscription_count() > 0)

    def _on_frame(self, frame: Frame) -> None:
        prev, self._prev, self._prev_flow = self._prev, frame, None
        self._snapshots.update(frame, partial(self._snapshot_view, prev, frame))
        if prev is None or prev.gray.shape != frame.gray.shape or frame.stamp <= prev.stamp:
            if prev is not None:
                self._flow.reset()
                self._diag.count("resets")
            return
        want_flow, want_hsv, want_arrows, want_warp = self._wanted()
        if not (want_flow or want_hsv or want_arrows or want_warp):
            self._diag.count("frames_idle")  # nobody listens: no work (image_pipeline rule)
            return
        try:
            flow = self._flow.compute(prev.gray, frame.gray)
        except (OpticalFlowError, ValueError, cv2.error) as err:
            self._diag.count("frames_failed")
            self.get_logger().warning(f"dense flow failed: {err}", throttle_duration_sec=5.0)
            return
        self._prev_flow = flow
        out = self._params.config.output
        header = frame.header
        if want_flow:
            self._pub_flow.publish(array_to_image_msg(flow, "32FC2", header))
        if want_hsv:
            self._pub_hsv.publish(array_to_image_msg(draw_hsv(flow, scale=out.hsv_scale),
                                                     "bgr8", header))
        if want_arrows:
            self._pub_arrows.publish(array_to_image_msg(
                draw_flow(frame.bgr, flow, step=out.arrow_step), "bgr8", header))
        if want_warp:
            self._pub_warp.publish(array_to_image_msg(warp_flow(prev.bgr, flow), "bgr8", header))
        stats = flow_stats(flow)
        self._diag.count("frames_processed")
        self._diag.set(flow_mean_px=stats.mean, flow_median_px=stats.median,
                       flow_max_px=stats.max, valid_fraction=stats.valid_fraction,
                       method=self._flow.config.method)
        self._diag.add_processing_time((time.perf_counter() - frame.received_at) * 1e3)


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``dense_flow_node`` executable."""
    return run_node(DenseFlowNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
