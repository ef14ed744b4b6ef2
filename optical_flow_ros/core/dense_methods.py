"""The named dense-flow methods (``DenseFlowConfig.method``) and what each was measured to do.

Each name stands for a complete setting: Farneback with the OpenCV tutorial's parameters, one
of OpenCV's three DIS presets, or a DIS setting chosen from the speed-accuracy sweep
(``bench/sweep_dense.py``, table in BENCHMARKS.md, plot in ``docs/dense_frontier.png``).
A DIS method is an OpenCV preset plus overrides of its parameters; the config's own DIS
fields, when set, override both.

Figures in the summaries: EPE = mean end-point error on skimage's Middlebury
``stereo_motorcycle`` pair (px) / its geometric mean over the sweep's 40 training scenes
(smooth random fields and simulated camera motions over real photos, 0.3-40 px); ms per
640x480 frame with 2 OpenCV threads (``bench/bench_dense.py`` on the shared 2-core machine,
where DIS medium took 12-20 ms across runs: compare the ratios). Single pairs, no temporal
initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["DEFAULT_METHOD", "DENSE_METHODS", "DIS_PRESET_NAMES", "DenseMethod",
           "method_help"]

DIS_PRESET_NAMES = ("ultrafast", "fast", "medium")  # OpenCV's DISOpticalFlow presets


@dataclass(frozen=True)
class DenseMethod:
    """One named method.

    Attributes:
        name: the value of ``DenseFlowConfig.method``.
        summary: what it is, with its measured EPE and time (one line).
        dis_preset: the OpenCV DIS preset the settings start from (one of
            :data:`DIS_PRESET_NAMES`); None for Farneback.
        dis_overrides: DIS parameters set on top of the preset (``DenseFlowConfig`` field
            names: ``finest_scale``, ``patch_stride``, ...).
    """

    name: str
    summary: str
    dis_preset: str | None = None
    dis_overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_dis(self) -> bool:
        """True for a DIS method, False for Farneback."""
        return self.dis_preset is not None


def _methods(*methods: DenseMethod) -> Mapping[str, DenseMethod]:
    return MappingProxyType({m.name: m for m in methods})


DENSE_METHODS: Mapping[str, DenseMethod] = _methods(
    DenseMethod(
        "dis_balanced",
        "default, from the sweep: DIS medium with patch_stride 5, 8 gradient-descent and 2 "
        "refinement iterations, refinement alpha 40; EPE 2.78 / 0.156 px, 8.8 ms "
        "(0.44x DIS medium's time)",
        "medium",
        MappingProxyType({"patch_stride": 5, "gradient_descent_iterations": 8,
                          "variational_refinement_iterations": 2,
                          "variational_refinement_alpha": 40.0})),
    DenseMethod("dis_ultrafast", "OpenCV's ULTRAFAST preset: EPE 3.77 / 0.365 px, 2.4 ms",
                "ultrafast"),
    DenseMethod("dis_fast", "OpenCV's FAST preset (the default before dis_balanced): EPE 3.23 / "
                "0.284 px, 4.6 ms", "fast"),
    DenseMethod("dis_medium", "OpenCV's MEDIUM preset: EPE 2.63 / 0.145 px, 20.0 ms",
                "medium"),
    DenseMethod("farneback", "the OpenCV tutorial's Farneback (pyr_scale .. gaussian_window): "
                "EPE 25.5 / 0.746 px, 72 ms (no gain from threads); fails beyond ~20 px "
                "of motion and on flat areas"),
)
DEFAULT_METHOD = "dis_balanced"


def method_help() -> str:
    """One line per method for the ``method`` parameter's description."""
    return "; ".join(f"{m.name}: {m.summary}" for m in DENSE_METHODS.values())
