"""dense_flow_node's work for one frame, without the node: decoded frame in, messages out.

The live node (``optical_flow_ros.nodes.dense_flow_node``) and offline bag processing
(``optical_flow_ros.tools.camera_job``) both run this class, so a bag processed offline gives
exactly the messages the node publishes. The rules: the first frame, a change of image size
and a stamp that does not move forward (bag loop, duplicate) produce nothing and restart the
temporal state (counted as ``resets`` except on the very first frame); a frame nobody wants
anything of is only remembered (``frames_idle``); a failing flow computation is counted
(``frames_failed``) and reported in the result, never raised.

Also here: the node's configuration (parameter table and the config it builds), so both
read the same YAML the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np
from sensor_msgs.msg import Image

from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.dense_flow import DenseFlow, DenseFlowConfig, FlowStats, flow_stats
from optical_flow_ros.core.errors import OpticalFlowError
from optical_flow_ros.core.flow_drawing import draw_flow, draw_hsv, warp_flow
from optical_flow_ros.core.flow_resize import resize_flow, scaled_shape
from optical_flow_ros.core.view_scale import AutoScale, robust_magnitude
from optical_flow_ros.ros.compute_config import ComputeConfig
from optical_flow_ros.ros.diagnostics import DiagnosticsSink
from optical_flow_ros.ros.image_input import Frame, InputConfig
from optical_flow_ros.ros.image_messages import array_to_image_msg
from optical_flow_ros.ros.parameter_table import build_node_config, params_from
from optical_flow_ros.ros.snapshot_service import SnapshotConfig

__all__ = ["ARROW_AUTO_FILL", "DENSE_FLOW_PARAMS", "SCALE_MODES", "DenseFlowTopicConfig",
           "DenseNodeConfig", "DenseOutputConfig", "DensePipeline", "DenseResult", "DenseWants",
           "build_dense_node_config"]


#: Brightness / arrow length modes of the dense views.
SCALE_MODES = ("auto", "fixed")

#: Auto mode: the robust maximum of the flow is drawn this fraction of arrow_step long.
ARROW_AUTO_FILL = 0.8


@dataclass(frozen=True)
class DenseOutputConfig:
    """What dense_flow_node draws and publishes besides the flow itself."""

    publish_hsv: bool = setting(True, "Publish flow/dense/hsv (while subscribed)")
    publish_arrows: bool = setting(True, "Publish flow/dense/arrows (while subscribed)")
    publish_warp: bool = setting(False, "Publish flow/dense/warp (while subscribed)")
    hsv_scale_mode: str = setting(
        "auto", "flow/dense/hsv brightness: auto (the flow's robust maximum, view_percentile, "
        "is full brightness; smoothed over frames) or fixed (hsv_scale per px, the seed's)",
        choices=SCALE_MODES)
    hsv_scale: float = setting(
        4.0, "Fixed mode: flow/dense/hsv brightness per px of flow (255 saturates; the seed's 4)",
        range=(0.01, 1000.0))
    arrow_step: int = setting(16, "Grid spacing of flow/dense/arrows, px", range=(2, 512))
    arrow_scale_mode: str = setting(
        "auto", "flow/dense/arrows length: auto (the flow's robust maximum is drawn 0.8 "
        "arrow_step long; smoothed over frames) or fixed (arrow_scale per px of flow)",
        choices=SCALE_MODES)
    arrow_scale: float = setting(
        1.0, "Fixed mode: flow/dense/arrows length per px of flow (1 = to where the point "
        "moves, the seed's)", range=(0.01, 1000.0))
    view_percentile: float = setting(
        99.0, "Auto modes: percentile of the flow magnitude taken as its maximum",
        range=(50.0, 100.0))
    view_smoothing: float = setting(
        0.1, "Auto modes: fraction of the way to each frame's maximum the scale moves (log "
        "scale); 1 = no smoothing", range=(0.0, 1.0), exclusive_min=True)
    view_min_flow: float = setting(
        1.0, "Auto modes: least maximum, px: flows below it never reach full scale (a still "
        "camera's sub-pixel noise stays dark)", range=(0.01, 1000.0))

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass(frozen=True)
class DenseFlowTopicConfig:
    """How flow/dense itself is published."""

    flow_publish_scale: float = setting(
        1.0, "flow/dense size as a fraction of the input image's (each side rounded), its "
        "vectors in px of the published image (the flow times the same factor per axis; "
        "each published pixel averages the pixels it covers, NaN if any is); 1 = full "
        "resolution, 0.5 = a quarter of the bytes", range=(0.0, 1.0), exclusive_min=True)

    def __post_init__(self) -> None:
        validate_fields(self)


DENSE_FLOW_PARAMS = (params_from(InputConfig, read_only=True)
                     + params_from(ComputeConfig, read_only=True)
                     + params_from(DenseFlowConfig) + params_from(DenseOutputConfig)
                     + params_from(DenseFlowTopicConfig)
                     + params_from(SnapshotConfig))


class DenseNodeConfig(NamedTuple):
    """Everything dense_flow_node is configured with."""

    input: InputConfig
    compute: ComputeConfig
    flow: DenseFlowConfig
    output: DenseOutputConfig
    snapshot: SnapshotConfig
    flow_topic: DenseFlowTopicConfig


def build_dense_node_config(values: dict[str, Any]) -> DenseNodeConfig:
    """Validated node config from parameter values (raises ConfigError)."""
    return build_node_config(DenseNodeConfig, values)


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
    """The outputs of one frame.

    The flow, message and stats fields are None when there was nothing to do (first frame,
    reset, nobody listening) and when the flow computation failed; ``error`` then says why.
    ``flow`` is at the input size; ``flow_msg`` carries it at ``flow_publish_scale``.
    ``previous`` is the frame received before this one (None for the first frame and after
    :meth:`DensePipeline.reset`), whatever happened to the pair.
    """

    flow: np.ndarray | None = None
    flow_msg: Image | None = None
    hsv_msg: Image | None = None
    arrows_msg: Image | None = None
    warp_msg: Image | None = None
    stats: FlowStats | None = None
    error: str | None = None
    previous: Frame | None = None


class DensePipeline:
    """Dense flow between consecutive frames of one camera, with the node's visualisations.

    Args:
        config: the node configuration (flow method and drawing settings are used).
        diagnostics: counters ``resets``, ``frames_idle``, ``frames_failed``,
            ``frames_processed`` and the gauges ``flow_mean_px``, ``flow_median_px``,
            ``flow_max_px`` (px), ``valid_fraction`` and ``method`` go here.
    """

    def __init__(self, config: DenseNodeConfig, diagnostics: DiagnosticsSink) -> None:
        self._config = config
        self._diag = diagnostics
        self.flow = DenseFlow(config.flow)
        self.previous: Frame | None = None
        self.previous_flow: np.ndarray | None = None  # flow into ``previous``, when computed
        # Auto-mode view scales: smoothed over the frames each view is drawn for.
        self._hsv_auto = self._auto_scale()
        self._arrow_auto = self._auto_scale()

    @property
    def config(self) -> DenseNodeConfig:
        """The configuration in use."""
        return self._config

    def configure(self, config: DenseNodeConfig) -> bool:
        """Apply a new configuration; True if the flow method itself was reconfigured."""
        old = self._config.output
        self._config = config
        out = config.output
        if (old.view_percentile, old.view_smoothing, old.view_min_flow) != (
                out.view_percentile, out.view_smoothing, out.view_min_flow):
            self._hsv_auto, self._arrow_auto = self._auto_scale(), self._auto_scale()
        if config.flow == self.flow.config:
            return False
        self.flow.configure(config.flow)
        return True

    def reset(self) -> None:
        """Forget the previous frame and the temporal state."""
        self.previous = None
        self.flow.reset()
        self._reset_views()
        self._diag.count("resets")

    def wanted(self, *, flow: bool, hsv: bool, arrows: bool, warp: bool) -> DenseWants:
        """The outputs to build, given who listens: views only where their flag is on."""
        out = self._config.output
        return DenseWants(flow, out.publish_hsv and hsv, out.publish_arrows and arrows,
                          out.publish_warp and warp)

    def process(self, frame: Frame, wants: DenseWants, *,
                emit: Callable[[str, Image], None] | None = None) -> DenseResult:
        """Flow from the previous frame to ``frame`` and the wanted messages (header: frame's).

        Args:
            frame: the newest decoded frame; it becomes the previous one of the next call.
            wants: which outputs to build (:meth:`wanted`); none at all means no flow.
            emit: called with (output name as in :class:`DenseWants`, message) as soon as
                each message is built, so a node publishes flow/dense before the views are
                drawn.

        Returns:
            The flow (px, previous -> this frame), the wanted messages and the flow's
            statistics, or empty fields with ``error`` set when the computation failed.
        """
        prev, self.previous, self.previous_flow = self.previous, frame, None
        if prev is None or prev.gray.shape != frame.gray.shape or frame.stamp <= prev.stamp:
            if prev is not None:
                self.flow.reset()
                self._reset_views()
                self._diag.count("resets")
            return DenseResult(previous=prev)
        if not wants.any():
            self._diag.count("frames_idle")  # nobody listens: no work (image_pipeline rule)
            return DenseResult(previous=prev)
        try:
            flow = self.flow.compute(prev.gray, frame.gray)
        except (OpticalFlowError, ValueError, cv2.error) as err:
            self._diag.count("frames_failed")
            return DenseResult(error=f"dense flow failed: {err}", previous=prev)
        self.previous_flow = flow
        out = self._config.output
        header = frame.header
        msgs: dict[str, Image | None] = dict.fromkeys(DenseWants._fields)

        def build(name: str, image: np.ndarray, encoding: str) -> None:
            msgs[name] = array_to_image_msg(image, encoding, header)
            if emit is not None:
                emit(name, msgs[name])

        if wants.flow:     # first: its consumers wait for no drawing
            build("flow", self._published_flow(flow), "32FC2")
        if wants.hsv:
            build("hsv", draw_hsv(flow, scale=self._hsv_scale(flow, self._hsv_auto)), "bgr8")
        else:
            self._hsv_auto.reset()    # a later subscriber starts from its first frame
        if wants.arrows:
            build("arrows", draw_flow(frame.bgr, flow, step=out.arrow_step,
                                      scale=self._arrow_scale(flow)), "bgr8")
        else:
            self._arrow_auto.reset()
        if wants.warp:
            build("warp", warp_flow(prev.bgr, flow), "bgr8")
        stats = flow_stats(flow)
        self._diag.count("frames_processed")
        self._diag.set(flow_mean_px=stats.mean, flow_median_px=stats.median,
                       flow_max_px=stats.max, valid_fraction=stats.valid_fraction,
                       method=self.flow.config.method)
        return DenseResult(flow, msgs["flow"], msgs["hsv"], msgs["arrows"], msgs["warp"], stats,
                           previous=prev)

    def _published_flow(self, flow: np.ndarray) -> np.ndarray:
        """The flow as flow/dense carries it: at ``flow_publish_scale`` of the input size."""
        scale = self._config.flow_topic.flow_publish_scale
        if scale == 1.0:
            return flow
        return resize_flow(flow, scaled_shape(flow.shape[:2], scale))

    def hsv_view(self, previous: Frame | None, frame: Frame) -> np.ndarray:
        """The HSV view (bgr8) of the flow from ``previous`` to ``frame``.

        The flow computed for ``frame`` when it is still the newest frame and one was
        computed; otherwise (nobody subscribed, or a reset since) it is computed now by a
        fresh DenseFlow, leaving the pipeline's temporal state alone. In auto mode the
        brightness is the one flow/dense/hsv had for that frame, else that flow's own robust
        maximum. For ~/save_snapshot.

        Raises:
            OpticalFlowError: No predecessor, or one of another size.
        """
        flow = self.previous_flow if frame is self.previous else None
        if flow is None:
            if previous is None or previous.gray.shape != frame.gray.shape:
                raise OpticalFlowError("no flow yet: it needs two frames of the same size")
            flow = DenseFlow(self.flow.config).compute(previous.gray, frame.gray)
        peak = self._hsv_auto.value if flow is self.previous_flow else None
        return draw_hsv(flow, scale=self._hsv_scale(flow, None, peak=peak))

    # -- view scales ---------------------------------------------------------------------------

    def _auto_scale(self) -> AutoScale:
        out = self._config.output
        return AutoScale(percentile=out.view_percentile, smoothing=out.view_smoothing,
                         floor=out.view_min_flow)

    def _reset_views(self) -> None:
        self._hsv_auto.reset()
        self._arrow_auto.reset()

    def _peak(self, flow: np.ndarray, auto: AutoScale | None) -> float:
        """The flow magnitude drawn at full scale, px: smoothed by ``auto``, else this flow's."""
        out = self._config.output
        if auto is not None:
            return auto.update(flow)
        return max(robust_magnitude(flow, out.view_percentile), out.view_min_flow)

    def _hsv_scale(self, flow: np.ndarray, auto: AutoScale | None, *,
                   peak: float | None = None) -> float:
        """flow/dense/hsv brightness per px of ``flow`` (draw_hsv's scale)."""
        out = self._config.output
        if out.hsv_scale_mode == "fixed":
            return out.hsv_scale
        return 255.0 / (peak if peak is not None else self._peak(flow, auto))

    def _arrow_scale(self, flow: np.ndarray) -> float:
        """flow/dense/arrows length per px of ``flow`` (draw_flow's scale)."""
        out = self._config.output
        if out.arrow_scale_mode == "fixed":
            return out.arrow_scale
        return ARROW_AUTO_FILL * out.arrow_step / self._peak(flow, self._arrow_auto)
