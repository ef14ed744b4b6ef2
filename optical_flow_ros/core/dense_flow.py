"""Dense optical flow between two grayscale frames: DIS (Dense Inverse Search) or Farneback.

The flow returned by :meth:`DenseFlow.compute` is an ``(H, W, 2)`` float32 array of
displacements in px between the two given images (px/frame for consecutive frames):
``flow[y, x] = (u, v)`` means the point at ``(x, y)`` in ``prev`` is at ``(x + u, y + v)`` in
``next``; x right, y down. Pixels judged unreliable by the optional validity checks are NaN.

``DenseFlowConfig.method`` names a complete setting (:mod:`optical_flow_ros.core.dense_methods`
lists them with their measured accuracy and time): ``dis_balanced`` (default, chosen from the
speed-accuracy sweep ``bench/sweep_dense.py``), OpenCV's DIS presets ``dis_ultrafast``,
``dis_fast`` and ``dis_medium``, and ``farneback`` with the OpenCV tutorial's parameters
(weak on flat areas and beyond ~20 px of motion; kept as the samples' reference). The DIS
fields of the config (``finest_scale`` ... ``use_spatial_propagation``), when set, override
the named DIS method's values.

Temporal initialisation (``temporal_init=True``) feeds the previous frame's flow back as the
initial estimate. Farneback starts its iterations from it (``OPTFLOW_USE_INITIAL_FLOW``). DIS in
OpenCV 5 has no flag: ``DISOpticalFlow.calc`` treats a ``flow`` argument of the input size and
type ``CV_32FC2`` as an initial field and, at every pyramid level, tries its vector as one more
candidate per patch next to the coarser level's estimate and the spatial neighbours, keeping the
one with the lowest patch SSD; a wrong initial field therefore costs little. OpenCV keeps that
field inside the DIS object and keeps using it in later calls made without one (reading it out
of bounds, and crashing, once the image grows), and ``collectGarbage()`` makes the next
``calc`` crash. This module therefore gives each direction its own DIS object and creates a new
one whenever temporal state is dropped (``reset``, ``configure``, a change of image size).
It also refuses image sizes for which OpenCV's DIS would silently replace its settings (and
can crash); see :class:`DenseFlow`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

import cv2
import numpy as np

from optical_flow_ros.core.config_fields import config_from_mapping, setting, validate_fields
from optical_flow_ros.core.dense_methods import DEFAULT_METHOD, DENSE_METHODS, method_help
from optical_flow_ros.core.errors import ConfigError, ImageConversionError
from optical_flow_ros.core.flow_resize import resize_flow, scaled_shape

__all__ = [
    "METHODS",
    "VALIDITY_MODES",
    "DenseFlow",
    "DenseFlowConfig",
    "FlowStats",
    "dis_settings",
    "flow_stats",
]

METHODS = tuple(DENSE_METHODS)
_MIN_VALIDITY_SIZE = 8  # px per side for the validity checks
VALIDITY_MODES = ("none", "texture", "fb", "both")

_DIS_PRESET_IDS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

# Config field -> suffix of the DISOpticalFlow getter/setter pair (OpenCV 5 names).
_DIS_ACCESSORS = {
    "finest_scale": "FinestScale",
    "patch_size": "PatchSize",
    "patch_stride": "PatchStride",
    "gradient_descent_iterations": "GradientDescentIterations",
    "variational_refinement_iterations": "VariationalRefinementIterations",
    "variational_refinement_alpha": "VariationalRefinementAlpha",
    "variational_refinement_delta": "VariationalRefinementDelta",
    "variational_refinement_gamma": "VariationalRefinementGamma",
    "variational_refinement_epsilon": "VariationalRefinementEpsilon",
    "use_mean_normalization": "UseMeanNormalization",
    "use_spatial_propagation": "UseSpatialPropagation",
}


def _new_dis(method: str) -> cv2.DISOpticalFlow:
    """A DIS object with the named method's settings (its OpenCV preset plus overrides)."""
    spec = DENSE_METHODS[method]
    if spec.dis_preset is None:
        raise ValueError(f"method {method!r} is not a DIS method")
    dis = cv2.DISOpticalFlow.create(_DIS_PRESET_IDS[spec.dis_preset])
    for name, value in spec.dis_overrides.items():
        getattr(dis, "set" + _DIS_ACCESSORS[name])(value)
    return dis


@cache
def _method_settings(method: str) -> tuple[tuple[str, Any], ...]:
    dis = _new_dis(method)
    return tuple((name, getattr(dis, "get" + acc)()) for name, acc in _DIS_ACCESSORS.items())


@dataclass(frozen=True, kw_only=True)
class DenseFlowConfig:
    """Settings of :class:`DenseFlow`; invalid values raise :class:`ConfigError`.

    Build it with keywords or from a plain mapping (:meth:`from_dict`), change it with
    :func:`dataclasses.replace`; both validate. Numeric fields accept numpy scalars and are
    stored as Python ``int``/``float``. Each field's range and meaning is declared once, in
    its :func:`setting`; the ROS node's parameters are generated from them.

    ``min_texture`` uses OpenCV's normalisation of ``cv2.cornerMinEigenVal``: about
    ``4 * g**2 / 255**2`` for an RMS gradient of ``g`` grey levels/px in the weakest
    direction, so 1e-5 ~ 0.4 grey levels/px. DIS fields left ``None`` keep the preset's value
    (:func:`dis_settings` resolves them).
    """

    method: str = setting(
        DEFAULT_METHOD, "Dense flow method (EPE: motorcycle pair / geometric mean of the "
        "sweep's training scenes; ms: 640x480, 2 threads): " + method_help(),
        choices=METHODS)
    # Farneback: the OpenCV tutorial's values.
    pyr_scale: float = setting(
        0.5, "Farneback pyramid scale between levels", range=(0.0, 1.0),
        exclusive_min=True, exclusive_max=True)
    levels: int = setting(3, "Farneback pyramid levels (1 = the original images only)",
                          range=(1, 20))
    winsize: int = setting(15, "Farneback averaging window, px", range=(1, 255))
    iterations: int = setting(3, "Farneback iterations per pyramid level", range=(1, 100))
    poly_n: int = setting(5, "Farneback polynomial-expansion neighbourhood, px (5 or 7)",
                          range=(1, 15))
    poly_sigma: float = setting(
        1.2, "Farneback polynomial-expansion Gaussian sigma, px (1.1 for poly_n 5, 1.5 for 7)",
        range=(0.0, 10.0), exclusive_min=True)
    gaussian_window: bool = setting(
        False, "Farneback Gaussian instead of box window (OPTFLOW_FARNEBACK_GAUSSIAN)")
    # DIS: optional overrides of the DIS method's values (None = the method's value).
    finest_scale: int | None = setting(
        None, "DIS finest pyramid level used (0 = full resolution)", kind=int, range=(0, 10))
    patch_size: int | None = setting(None, "DIS patch side, px (8 is vectorised)", kind=int,
                                     range=(1, 64))
    patch_stride: int | None = setting(None, "DIS patch stride, px (<= patch size)", kind=int,
                                       range=(1, 64))
    gradient_descent_iterations: int | None = setting(
        None, "DIS gradient-descent iterations per patch", kind=int, range=(1, 1000))
    variational_refinement_iterations: int | None = setting(
        None, "DIS variational-refinement iterations", kind=int, range=(0, 1000))
    variational_refinement_alpha: float | None = setting(
        None, "DIS smoothness weight", kind=float, range=(0.0, 1000.0))
    variational_refinement_delta: float | None = setting(
        None, "DIS colour-constancy weight", kind=float, range=(0.0, 1000.0))
    variational_refinement_gamma: float | None = setting(
        None, "DIS gradient-constancy weight", kind=float, range=(0.0, 1000.0))
    variational_refinement_epsilon: float | None = setting(
        None, "DIS robust-penaliser epsilon (below ~1e-19 OpenCV's float32 refinement "
        "underflows and crashes)", kind=float, range=(1e-6, 1000.0))
    use_mean_normalization: bool | None = setting(
        None, "DIS patch mean normalisation (robust to brightness change)", kind=bool)
    use_spatial_propagation: bool | None = setting(
        None, "DIS spatial propagation of good patch vectors", kind=bool)
    # Common.
    downscale: float = setting(
        1.0, "Compute at this fraction of the input size; output stays in full-resolution px",
        range=(0.0, 1.0), exclusive_min=True)
    temporal_init: bool = setting(
        False, "Use the previous flow as the initial estimate (large or steady motion)")
    validity: str = setting(
        "none", "Mark untrustworthy pixels NaN: none, texture (flat areas), fb "
        "(forward-backward disagreement, doubles the cost) or both", choices=VALIDITY_MODES)
    min_texture: float = setting(
        1e-5, "Smallest accepted cv2.cornerMinEigenVal of the previous image (validity texture)",
        range=(0.0, 1.0))
    texture_window: int = setting(5, "Block size of that eigenvalue, px", range=(2, 31))
    fb_threshold: float = setting(
        1.0, "Largest accepted forward-backward distance, px (validity fb)",
        range=(0.0, 1000.0), exclusive_min=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DenseFlowConfig:
        """Build a config from a plain mapping of field names to values.

        Raises:
            ConfigError: A key is not a field, or a value is invalid.
        """
        return config_from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (``from_dict`` inverts it)."""
        return dataclasses.asdict(self)

    def __post_init__(self) -> None:
        """Validate every field, normalise numeric types, check patch stride vs size."""
        validate_fields(self)
        if not DENSE_METHODS[self.method].is_dis:
            return
        dis = dis_settings(self)
        if dis["patch_stride"] > dis["patch_size"]:
            raise ConfigError(
                f"patch_stride: must not exceed patch_size ({dis['patch_size']}) or patches "
                f"leave gaps, got {dis['patch_stride']}"
            )


def dis_settings(config: DenseFlowConfig) -> dict[str, Any]:
    """The DIS settings ``config`` results in: its method's values with its overrides applied.

    Keys are the config's DIS field names (``finest_scale``, ``patch_size``, ...).

    Raises:
        ValueError: ``config.method`` is not a DIS method (``farneback``).
    """
    settings = dict(_method_settings(config.method))
    for name in _DIS_ACCESSORS:
        value = getattr(config, name)
        if value is not None:
            settings[name] = value
    return settings


def _create_dis(config: DenseFlowConfig) -> cv2.DISOpticalFlow:
    dis = _new_dis(config.method)
    for name, acc in _DIS_ACCESSORS.items():
        value = getattr(config, name)
        if value is not None:
            getattr(dis, "set" + acc)(value)
    return dis


def _check_dis_size(config: DenseFlowConfig, shape: tuple[int, int]) -> None:
    """Refuse sizes where OpenCV's DIS would silently change its settings or read out of bounds.

    OpenCV picks its coarsest pyramid level from the image size; when that is finer than
    ``finest_scale`` it overwrites patch size and scales from the width alone, which crashes
    on wide, short images (OpenCV 5.0). Mirrors ``DISOpticalFlowImpl::calc``'s formula; a
    scan of sizes from 4 to 400 px found no size it accepts that OpenCV refuses, alters or
    crashes on.
    """
    settings = dis_settings(config)
    patch, finest = settings["patch_size"], settings["finest_scale"]
    rows, cols = shape
    coarsest = min(int(math.log(max(rows, cols) / (4.0 * patch)) / math.log(2.0) + 0.5),
                   int(math.log(min(rows, cols) / patch) / math.log(2.0)))
    if coarsest < finest or min(rows, cols) < patch << finest:
        raise ImageConversionError(
            f"image of {cols}x{rows} px (after downscale={config.downscale:g}) is too small for "
            f"DIS with patch_size={patch}, finest_scale={finest}: the shorter side needs "
            f">= {patch << finest} px and the longer "
            f">= {math.ceil(4 * patch * 2 ** (finest - 0.5))} px"
        )


def _check_pair(prev_gray: np.ndarray, next_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for name, img in (("prev_gray", prev_gray), ("next_gray", next_gray)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 2:
            desc = (f"{img.dtype} array of shape {img.shape}" if isinstance(img, np.ndarray)
                    else type(img).__name__)
            raise ImageConversionError(f"{name}: expected a 2-D uint8 array, got {desc}")
        if img.size == 0:
            raise ImageConversionError(f"{name}: empty image")
    if prev_gray.shape != next_gray.shape:
        raise ImageConversionError(
            f"prev_gray and next_gray differ in shape: {prev_gray.shape} vs {next_gray.shape}")
    return np.ascontiguousarray(prev_gray), np.ascontiguousarray(next_gray)


def _working_shape(shape: tuple[int, int], downscale: float) -> tuple[int, int]:
    return scaled_shape(shape, downscale)


class _Direction:
    """Flow in one direction with its own OpenCV state (DIS object, previous flow)."""

    def __init__(self, config: DenseFlowConfig) -> None:
        self._config = config
        self._dis: cv2.DISOpticalFlow | None = None
        self._last: np.ndarray | None = None  # previous flow at working resolution

    def reset(self) -> None:
        # A new DIS object: OpenCV keeps the last initial flow inside the old one.
        self._dis = None
        self._last = None

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow prev -> next at full resolution in full-resolution px; a new array."""
        cfg = self._config
        rows, cols = prev.shape
        work_shape = _working_shape(prev.shape, cfg.downscale)
        if work_shape != prev.shape:
            size = (work_shape[1], work_shape[0])
            prev = cv2.resize(prev, size, interpolation=cv2.INTER_AREA)
            nxt = cv2.resize(nxt, size, interpolation=cv2.INTER_AREA)
        init = self._last if cfg.temporal_init else None  # updated in place by OpenCV
        if DENSE_METHODS[cfg.method].is_dis:
            if self._dis is None:
                self._dis = _create_dis(cfg)
            flow = self._dis.calc(prev, nxt, init)
        else:
            flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if cfg.gaussian_window else 0
            if init is not None:
                flags |= cv2.OPTFLOW_USE_INITIAL_FLOW
            flow = cv2.calcOpticalFlowFarneback(
                prev, nxt, init, pyr_scale=cfg.pyr_scale, levels=cfg.levels,
                winsize=cfg.winsize, iterations=cfg.iterations, poly_n=cfg.poly_n,
                poly_sigma=cfg.poly_sigma, flags=flags,
            )
        if cfg.temporal_init:
            self._last = flow
        if work_shape == (rows, cols):
            return flow.copy() if cfg.temporal_init else flow
        return resize_flow(flow, (rows, cols))


def _check_config_type(config: object) -> None:
    if not isinstance(config, DenseFlowConfig):
        raise TypeError(f"config must be a DenseFlowConfig, got {type(config).__name__}")


class DenseFlow:
    """Dense optical flow between consecutive grayscale frames, configured by a config.

    Holds state between calls only when ``config.temporal_init`` is set (the previous flow);
    a change of image size, :meth:`reset` and :meth:`configure` drop it. Not thread-safe.

    DIS needs, after ``downscale``, a shorter side of at least ``patch_size * 2**finest_scale``
    px and a longer side of about ``4 * patch_size * 2**(finest_scale - 0.5)`` px (dis_fast and
    dis_ultrafast: 32 and 91 px; dis_balanced and dis_medium: 16 and 46 px); smaller images
    are refused.
    """

    def __init__(self, config: DenseFlowConfig | None = None) -> None:
        config = DenseFlowConfig() if config is None else config
        _check_config_type(config)
        self._config = config
        self._forward = _Direction(config)  # prev -> next
        self._backward = _Direction(config)  # next -> prev, for the forward-backward check
        self._shape: tuple[int, int] | None = None  # image shape of the last compute
        self._scratch: _Scratch | None = None  # buffers of the validity checks for that shape

    @property
    def config(self) -> DenseFlowConfig:
        """The current configuration."""
        return self._config

    def configure(self, config: DenseFlowConfig) -> None:
        """Switch to ``config`` (already validated by its construction); drops temporal state.

        Raises:
            TypeError: ``config`` is not a :class:`DenseFlowConfig`.
        """
        _check_config_type(config)
        self._config = config
        self._forward = _Direction(config)
        self._backward = _Direction(config)
        self._shape = None

    def reset(self) -> None:
        """Drop temporal state: the next :meth:`compute` starts from no prior flow."""
        self._forward.reset()
        self._backward.reset()

    def compute(self, prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
        """Flow from ``prev_gray`` to ``next_gray``.

        Args:
            prev_gray: Earlier frame, 2-D uint8.
            next_gray: Later frame, 2-D uint8 of the same shape.

        Returns:
            ``(H, W, 2)`` float32: (u, v) displacement in px between the two images (x right,
            y down) for each pixel of ``prev_gray``; NaN where a validity check failed. A new
            array owned by the caller.

        Raises:
            ImageConversionError: (a ``ValueError``) inputs are not 2-D uint8 of equal shape,
                too small for DIS at the configured downscale, or smaller than 8x8 px with a
                validity check on.
        """
        prev, nxt = _check_pair(prev_gray, next_gray)
        cfg = self._config
        if prev.shape != self._shape:
            if DENSE_METHODS[cfg.method].is_dis:
                _check_dis_size(cfg, _working_shape(prev.shape, cfg.downscale))
            if cfg.validity != "none" and min(prev.shape) < _MIN_VALIDITY_SIZE:
                # OpenCV cannot tell a 1x1 array from a scalar in the mask comparisons, and
                # a texture/consistency check over a handful of pixels means nothing anyway.
                raise ImageConversionError(
                    f"validity {cfg.validity!r} needs images of at least {_MIN_VALIDITY_SIZE}x"
                    f"{_MIN_VALIDITY_SIZE} px, got {prev.shape[1]}x{prev.shape[0]}")
            self.reset()
            self._shape = prev.shape
            self._scratch = None
        flow = self._forward.calc(prev, nxt)
        if cfg.validity == "none":
            return flow
        if self._scratch is None:
            self._scratch = _Scratch(prev.shape)
        scratch = self._scratch
        invalid = None  # uint8 mask, 255 = invalid
        if cfg.validity in ("texture", "both"):
            # Into a preallocated dst: OpenCV 5's binding takes ~5x longer allocating it itself.
            cv2.cornerMinEigenVal(prev, blockSize=cfg.texture_window, ksize=3, dst=scratch.eig)
            invalid = cv2.compare(scratch.eig, cfg.min_texture, cv2.CMP_LT)
        if cfg.validity in ("fb", "both"):
            backward = self._backward.calc(nxt, prev)
            distance_sq = scratch.fb_distance_sq(flow, backward)
            consistent = cv2.compare(distance_sq, cfg.fb_threshold**2, cv2.CMP_LE)  # NaN: 0
            inconsistent = cv2.bitwise_not(consistent)
            invalid = inconsistent if invalid is None else cv2.bitwise_or(invalid, inconsistent)
        cv2.copyTo(scratch.nan, invalid, flow)  # NaN where invalid, in place
        return flow


class _Scratch:
    """Per-image-size buffers of the validity checks.

    Preallocated because fresh multi-megabyte arrays each frame cost page faults that, on
    this kind of machine, take longer than the arithmetic.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        rows, cols = shape
        self.xs = np.broadcast_to(np.arange(cols, dtype=np.float32), (rows, cols))
        self.ys = np.broadcast_to(np.arange(rows, dtype=np.float32)[:, None], (rows, cols))
        self.eig = np.empty((rows, cols), np.float32)
        self.nan = np.full((rows, cols, 2), np.nan, np.float32)
        self.map_x = np.empty((rows, cols), np.float32)
        self.map_y = np.empty((rows, cols), np.float32)
        self.loop = np.empty((rows, cols, 2), np.float32)
        self.distance_sq = np.empty((rows, cols), np.float32)

    def fb_distance_sq(self, forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
        """|forward(x) + backward(x + forward(x))|^2 in px^2; NaN where x + forward(x) is outside.

        The returned array is a buffer reused by the next call.
        """
        np.add(self.xs, forward[..., 0], out=self.map_x)
        np.add(self.ys, forward[..., 1], out=self.map_y)
        cv2.remap(backward, map1=self.map_x, map2=self.map_y, dst=self.loop,
                  interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                  borderValue=(math.nan, math.nan, math.nan, math.nan))
        np.add(self.loop, forward, out=self.loop)
        np.square(self.loop, out=self.loop)
        np.add(self.loop[..., 0], self.loop[..., 1], out=self.distance_sq)
        return self.distance_sq


class FlowStats(NamedTuple):
    """Magnitude statistics of a flow field over its valid (finite) pixels.

    ``mean``, ``median`` and ``max`` are in px (px/frame between the two images the flow was
    computed from); NaN when no pixel is valid. ``valid_fraction`` is in [0, 1].
    """

    mean: float
    median: float
    max: float
    valid_fraction: float


def flow_stats(flow: np.ndarray) -> FlowStats:
    """Mean, median and max flow magnitude (px) ignoring NaN pixels, and the valid fraction.

    Args:
        flow: ``(H, W, 2)`` flow in px; pixels with a non-finite component count as invalid.

    Raises:
        ValueError: ``flow`` is not ``(H, W, 2)``.
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow: expected shape (H, W, 2), got {flow.shape}")
    u = np.ascontiguousarray(flow[..., 0], dtype=np.float32)
    v = np.ascontiguousarray(flow[..., 1], dtype=np.float32)
    mag = cv2.magnitude(u, v).ravel()
    mag = mag[np.isfinite(mag)]
    fraction = mag.size / max(1, flow.shape[0] * flow.shape[1])
    if mag.size == 0:
        return FlowStats(math.nan, math.nan, math.nan, 0.0)
    # The median from one partition (np.median partitions twice: ~10x slower here).
    half = mag.size // 2
    mag.partition(half)
    median = mag[half] if mag.size % 2 else 0.5 * (mag[half] + mag[:half].max())
    return FlowStats(float(mag.mean(dtype=np.float64)), float(median), float(mag.max()),
                     fraction)
