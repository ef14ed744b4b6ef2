"""dense_flow_node's work for one frame, without the node: decoded frame in, messages out.

The same rules as the node: the first frame, a change of image size and a stamp that does
not move forward (bag loop, duplicate) produce nothing and restart the temporal state
(counted as ``resets`` except on the very first frame); a frame nobody wants anything of is
only remembered (``frames_idle``). Offline bag processing runs this class, and the node can
run it too, so both give the same messages. The node's configuration table stays in
``optical_flow_ros.nodes.dense_flow_node`` (``DENSE_FLOW_PARAMS``, ``build_dense_node_config``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from sensor_msgs.msg import Image

from optical_flow_ros.core.dense_flow import DenseFlow, FlowStats, flow_stats
from optical_flow_ros.core.errors import OpticalFlowError
from optical_flow_ros.core.flow_drawing import draw_flow, draw_hsv, warp_flow
from optical_flow_ros.ros.diagnostics import DiagnosticsSink
from optical_flow_ros.ros.image_input import Frame
from optical_flow_ros.ros.image_messages import array_to_image_msg

if TYPE_CHECKING:  # the node module will import this one: no import cycle at run time
    from optical_flow_ros.nodes.dense_flow_node import DenseNodeConfig

__all__ = ["DensePipeline", "DenseResult", "DenseWants"]


class DenseWants(NamedTuple):
    """Which outputs to build for a frame: flow/dense, its hsv, arrows and warp views."""

    flow: bool = True
    hsv: bool = False
    arrows: bool = False
    warp: bool = False

    def any(self) -> bool:
        """True when at least one output is wanted."""
        return self.flow or self.hsv or self.arrows or self.warp


class DenseResult(NamedTuple):
    """The outputs of one frame; all None when there was nothing to do.

    ``error`` is set when the flow computation failed.
    """

    flow: np.ndarray | None = None
    flow_msg: Image | None = None
    hsv_msg: Image | None = None
    arrows_msg: Image | None = None
    warp_msg: Image | None = None
    stats: FlowStats | None = None
    error: str | None = None


class DensePipeline:
    """Dense flow between consecutive frames of one camera, with the node's visualisations.

    Args:
        config: the node configuration (flow method and drawing settings are used).
        diagnostics: counters ``resets``, ``frames_idle``, ``frames_failed``,
            ``frames_processed`` and flow-magnitude gauges go here.
    """

    def __init__(self, config: DenseNodeConfig, diagnostics: DiagnosticsSink) -> None:
        self._config = config
        self._diag = diagnostics
        self.flow = DenseFlow(config.flow)
        self.previous: Frame | None = None
        self.previous_flow: np.ndarray | None = None  # flow into ``previous``, when computed

    @property
    def config(self) -> DenseNodeConfig:
        """The configuration in use."""
        return self._config

    def configure(self, config: DenseNodeConfig) -> bool:
        """Apply a new configuration; True if the flow method itself was reconfigured."""
        self._config = config
        if config.flow == self.flow.config:
            return False
        self.flow.configure(config.flow)
        return True

    def reset(self) -> None:
        """Forget the previous frame and the temporal state."""
        self.previous = None
        self.flow.reset()
        self._diag.count("resets")

    def wanted(self, *, flow: bool, hsv: bool, arrows: bool, warp: bool) -> DenseWants:
        """The outputs to build, given who listens: views only where their flag is on."""
        out = self._config.output
        return DenseWants(flow, out.publish_hsv and hsv, out.publish_arrows and arrows,
                          out.publish_warp and warp)

    def process(self, frame: Frame, wants: DenseWants) -> DenseResult:
        """Flow from the previous frame to ``frame`` and the wanted messages (header: frame's)."""
        prev, self.previous, self.previous_flow = self.previous, frame, None
        if prev is None or prev.gray.shape != frame.gray.shape or frame.stamp <= prev.stamp:
            if prev is not None:
                self.flow.reset()
                self._diag.count("resets")
            return DenseResult()
        if not wants.any():
            self._diag.count("frames_idle")  # nobody listens: no work (image_pipeline rule)
            return DenseResult()
        try:
            flow = self.flow.compute(prev.gray, frame.gray)
        except OpticalFlowError as err:
            self._diag.count("frames_failed")
            return DenseResult(error=f"dense flow failed: {err}")
        self.previous_flow = flow
        out = self._config.output
        header = frame.header
        flow_msg = array_to_image_msg(flow, "32FC2", header) if wants.flow else None
        hsv_msg = (array_to_image_msg(draw_hsv(flow, scale=out.hsv_scale), "bgr8", header)
                   if wants.hsv else None)
        arrows_msg = (array_to_image_msg(draw_flow(frame.bgr, flow, step=out.arrow_step),
                                         "bgr8", header) if wants.arrows else None)
        warp_msg = (array_to_image_msg(warp_flow(prev.bgr, flow), "bgr8", header)
                    if wants.warp else None)
        stats = flow_stats(flow)
        self._diag.count("frames_processed")
        self._diag.set(flow_mean_px=stats.mean, flow_median_px=stats.median,
                       flow_max_px=stats.max, valid_fraction=stats.valid_fraction,
                       method=self.flow.config.method)
        return DenseResult(flow, flow_msg, hsv_msg, arrows_msg, warp_msg, stats)
