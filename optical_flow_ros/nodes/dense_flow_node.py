"""dense_flow_node: dense optical flow between consecutive camera frames.

Subscribes:
    image (sensor_msgs/Image), or image/compressed (sensor_msgs/CompressedImage) when
    ``image_transport`` is ``compressed``.
Publishes (each computed only while someone subscribes):
    flow/dense (sensor_msgs/Image 32FC2): flow in px from the previous frame to this one,
        header = this frame's; at ``flow_publish_scale`` of the input size (default 1), its
        vectors then in px of the published image.
    flow/dense/hsv (bgr8): direction as hue, magnitude as brightness (opt_flow.py draw_hsv).
    flow/dense/arrows (bgr8): flow vectors on a grid over the image (draw_flow).
    flow/dense/warp (bgr8): the previous frame warped by the flow, i.e. this frame as the flow
        predicts it; only while ``publish_warp`` is true.
    /diagnostics: processing time, mean/median/max flow magnitude, valid fraction, frame counts.
Services:
    ~/reset (std_srvs/Trigger): forget the previous frame and temporal state.
    ~/save_snapshot (std_srvs/Trigger): write the newest input frame and its HSV view as PNG
        files to ``snapshot_dir``; answers with their paths (``ros/snapshot_service.py``).
Parameters: ``config/flow.yaml`` (generated from the table in
``optical_flow_ros.ros.dense_pipeline``); all but the start-up-only ones can be changed at
runtime, including ``method``.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from optical_flow_ros.nodes.node_main import run_node
from optical_flow_ros.ros.dense_pipeline import (
    DENSE_FLOW_PARAMS,
    DenseNodeConfig,
    DenseOutputConfig,
    DensePipeline,
    DenseWants,
    build_dense_node_config,
)
from optical_flow_ros.ros.diagnostics import DiagnosticsReporter
from optical_flow_ros.ros.image_input import Frame, ImageInput
from optical_flow_ros.ros.parameters import ParameterBinding
from optical_flow_ros.ros.qos import VIEW_IMAGE_DEPTH, keep_last_qos, output_publisher
from optical_flow_ros.ros.snapshot_service import SnapshotService
from optical_flow_ros.ros.stop_signals import run_program

__all__ = ["DENSE_FLOW_PARAMS", "OUTPUT_TOPICS", "DenseFlowNode", "DenseNodeConfig",
           "DenseOutputConfig", "build_dense_node_config", "main"]

#: Each output of :class:`~optical_flow_ros.ros.dense_pipeline.DensePipeline` -> its topic.
OUTPUT_TOPICS = {"flow": "flow/dense", "hsv": "flow/dense/hsv", "arrows": "flow/dense/arrows",
                 "warp": "flow/dense/warp"}


class DenseFlowNode(Node):
    """Wires camera frames to :class:`~optical_flow_ros.ros.dense_pipeline.DensePipeline`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("dense_flow_node", **kwargs)
        self._params = ParameterBinding(self, DENSE_FLOW_PARAMS, build_dense_node_config,
                                        self._on_config_change)
        config = self._params.config
        config.compute.apply()
        self._diag = DiagnosticsReporter(self, "dense_flow")
        self._pipeline = DensePipeline(config, self._diag)
        qos = keep_last_qos("reliable", VIEW_IMAGE_DEPTH)
        self._outputs = {output: output_publisher(self, Image, topic, qos)
                            for output, topic in OUTPUT_TOPICS.items()}
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._snapshots = SnapshotService(self, lambda: self._params.config.snapshot.snapshot_dir)
        self._input = ImageInput(self, self._on_frame, self._diag, config.input)

    def _on_config_change(self, config: DenseNodeConfig, changed: set[str]) -> None:
        if self._pipeline.configure(config):
            self.get_logger().info(f"dense flow reconfigured ({', '.join(sorted(changed))})")

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._pipeline.reset()
        response.success, response.message = True, "dense flow reset"
        return response

    def _wanted(self) -> DenseWants:
        """The outputs someone subscribes to (views only where their publish_* flag is on)."""
        return self._pipeline.wanted(**{output: pub.get_subscription_count() > 0
                                        for output, pub in self._outputs.items()})

    def _on_frame(self, frame: Frame) -> None:
        result = self._pipeline.process(frame, self._wanted(), emit=self._publish)
        # A snapshot draws on request only, from the flow computed here if there was one.
        self._snapshots.update(frame, partial(self._pipeline.hsv_view, result.previous, frame))
        if result.error is not None:
            self.get_logger().warning(result.error, throttle_duration_sec=5.0)
            return
        if result.stats is not None:   # else first frame, reset or nobody listening
            self._diag.add_processing_time((time.perf_counter() - frame.received_at) * 1e3)

    def _publish(self, output: str, msg: Image) -> None:
        self._outputs[output].publish(msg)


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``dense_flow_node`` executable."""
    return run_node(DenseFlowNode, args)


if __name__ == "__main__":
    raise SystemExit(run_program(main))
