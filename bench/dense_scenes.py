"""Image pairs with exactly known dense flow, for the dense-flow sweep (``sweep_dense.py``).

Every scene is built here from data in the repository's dependencies (scikit-image's real
photos, its Middlebury ``stereo_motorcycle`` pair), seeded, so the sweep is reproducible
offline. Three kinds:

* ``field``: a real photo warped by a smooth random displacement field ``w`` (Gaussian-blurred
  noise, largest component = the amplitude): ``prev(x) = photo(x + w(x))`` and
  ``next = photo``, so the flow prev -> next is exactly ``w``.
* ``camera``: two frames of :class:`~optical_flow_ros.core.sim_camera.SimCamera` (a pinhole
  camera flying over a textured plane: translation, yaw, climb, roll/pitch) one frame period
  apart; the flow is the simulator's exact pixel motion.
* ``motorcycle``: the real Middlebury stereo pair, flow u = -disparity, v = 0, pixels of
  unknown disparity (inf) skipped.

Scenes come in two splits. ``train`` (textures gravel, brick, camera, astronaut and the real
motorcycle pair) is what a setting is chosen with; ``heldout`` (textures grass, coffee,
chelsea, rocket, moon, and smooth fields warping the Middlebury motorcycle frames
themselves, other seeds) only reports how the chosen setting generalises. Motions range from
0.3 px to ~40 px per frame. Sizes are given as (rows, cols); motions are stated for 640 px
wide frames and scale with the width, so a scene at 1280x720 is the same motion seen by a
finer camera.

EPE (mean end-point error, px) is taken over pixels more than ``border`` px from the image
edge (the largest true displacement + 4 px): nearer the edge, points leave or enter the view
and have no correspondence in the other frame.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "test"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import ground_truth as gt  # noqa: E402  (test/ground_truth.py)

from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig  # noqa: E402

__all__ = ["SPLITS", "Scene", "build_scenes", "middlebury_fields", "motorcycle", "scene_epe"]

SPLITS = ("train", "heldout")
TRAIN_TEXTURES = ("gravel", "brick", "camera", "astronaut")
HELDOUT_TEXTURES = ("grass", "coffee", "chelsea", "rocket", "moon")
REFERENCE_WIDTH = 640.0  # motions below are px at this width


@dataclass(frozen=True)
class Scene:
    """One image pair with its exact flow.

    Attributes:
        name: unique, e.g. ``field-gravel-a2``.
        split: ``train`` or ``heldout``.
        kind: ``field``, ``camera`` or ``motorcycle``.
        prev, next: uint8 grayscale frames of equal shape.
        truth: ``(H, W, 2)`` float32 flow prev -> next, px; NaN where unknown.
        border: px skipped at each edge when scoring.
    """

    name: str
    split: str
    kind: str
    prev: np.ndarray
    next: np.ndarray
    truth: np.ndarray
    border: int

    @property
    def max_motion(self) -> float:
        """Largest true displacement, px."""
        mag = np.linalg.norm(self.truth.reshape(-1, 2), axis=1)
        return float(np.nanmax(mag))


def scene_epe(flow: np.ndarray, scene: Scene) -> float:
    """Mean end-point error (px) of ``flow`` against the scene's truth, border skipped."""
    b = scene.border
    if b:
        return gt.endpoint_error(flow[b:-b, b:-b], scene.truth[b:-b, b:-b])
    return gt.endpoint_error(flow, scene.truth)


def _border(truth: np.ndarray) -> int:
    return int(math.ceil(np.nanmax(np.abs(truth)))) + 4


def _photo(texture: str, shape: tuple[int, int]) -> np.ndarray:
    """A real photo (mirror-tiled when smaller) resized to fill ``shape`` at 640-wide scale."""
    rows, cols = shape
    k = cols / REFERENCE_WIDTH
    base = gt.texture(texture, (math.ceil(rows / k), math.ceil(cols / k)))
    if k == 1.0:
        return base
    return cv2.resize(base, (cols, rows), interpolation=cv2.INTER_AREA if k < 1
                      else cv2.INTER_CUBIC)


def _motorcycle_frame(which: int, shape: tuple[int, int]) -> np.ndarray:
    left, right, _ = gt.stereo_motorcycle()
    img = (left, right)[which]
    return cv2.resize(img, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _field_scene(name: str, split: str, img: np.ndarray, amplitude: float, sigma: float,
                 seed: int) -> Scene:
    k = img.shape[1] / REFERENCE_WIDTH
    w = gt.smooth_random_field(img.shape, amplitude * k, seed, sigma_px=sigma * k)
    return Scene(name, split, "field", gt.remap_by_field(img, w), img, w, _border(w))


# (label, speed px/frame along image y, yaw rate rad/s, climb m/s, roll/pitch amplitude rad)
_CAMERA_MOTIONS = {
    "slow": (0.4, 0.05, 0.0, 0.0),
    "pan": (4.0, 0.3, 0.0, 0.0),
    "fast": (14.0, 0.6, 0.0, 0.0),
    "large": (38.0, 0.0, 0.0, 0.0),
    "climb": (1.5, 0.0, 6.0, 0.0),
    "wobble": (3.0, 0.2, 0.0, 0.12),
}


def _camera_scene(name: str, split: str, texture: str, motion: str,
                  shape: tuple[int, int]) -> Scene:
    rows, cols = shape
    speed, yaw_rate, climb, tilt = _CAMERA_MOTIONS[motion]
    rate, altitude = 30.0, 5.0
    focal = 500.0 * cols / REFERENCE_WIDTH
    # Ground px -> image px is focal * resolution / altitude = 1 at 640 px wide.
    velocity = speed * altitude / 500.0 * rate  # m/s giving `speed` px/frame at 640 wide
    config = SimCameraConfig(
        rate=rate, image_width=cols, image_height=rows, focal_length=focal, texture=texture,
        ground_resolution=0.01, velocity_x=velocity, velocity_y=0.3 * velocity,
        altitude=altitude, altitude_amplitude=climb * 2.0 / (2 * math.pi),
        altitude_period=2.0, yaw=0.4, yaw_rate=yaw_rate, roll_amplitude=tilt,
        pitch_amplitude=tilt, attitude_period=1.5)
    cam = SimCamera(config)
    t0, t1 = 0.1, 0.1 + 1.0 / rate
    ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float64)
    points = np.stack([xs, ys], axis=-1).reshape(-1, 2)
    truth = (cam.pixel_motion(points, t0, t1) - points).reshape(rows, cols, 2)
    truth = truth.astype(np.float32)
    return Scene(name, split, "camera", cam.render(t0), cam.render(t1), truth, _border(truth))


def _motorcycle_scene(shape: tuple[int, int] | None) -> Scene:
    left, right, truth = gt.stereo_motorcycle()
    if shape is not None:
        size = (shape[1], shape[0])
        k = shape[1] / left.shape[1]
        left = cv2.resize(left, size, interpolation=cv2.INTER_AREA)
        right = cv2.resize(right, size, interpolation=cv2.INTER_AREA)
        truth = cv2.resize(truth, size, interpolation=cv2.INTER_NEAREST) * np.float32(k)
    # Scored over the whole image, as the and BENCHMARKS.md's figures are.
    return Scene("motorcycle", "train", "motorcycle", left, right, truth, 0)


def _brightness(scene: Scene, gain: float, offset: float) -> Scene:
    nxt = np.clip(scene.next.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
    return Scene(scene.name + "-exposure", scene.split, scene.kind, scene.prev, nxt,
                 scene.truth, scene.border)


def _train(shape: tuple[int, int], motorcycle_shape: tuple[int, int] | None) -> list[Scene]:
    scenes = []
    # Smooth fields: (amplitude px, sigma px) at 640 wide; each texture a different seed.
    fields = ((0.3, 30.0), (1.0, 40.0), (2.5, 40.0), (6.0, 50.0), (15.0, 90.0), (35.0, 160.0))
    for t, tex in enumerate(TRAIN_TEXTURES):
        img = _photo(tex, shape)
        for a, (amp, sigma) in enumerate(fields):
            scenes.append(_field_scene(f"field-{tex}-a{amp:g}", "train", img, amp, sigma,
                                       seed=100 + 10 * t + a))
    for tex, motions in (("gravel", ("slow", "fast", "large", "climb")),
                         ("brick", ("pan", "wobble", "large")),
                         ("camera", ("slow", "pan", "fast", "climb", "wobble")),
                         ("astronaut", ("pan", "large"))):
        for motion in motions:
            scenes.append(_camera_scene(f"camera-{tex}-{motion}", "train", tex, motion, shape))
    scenes.append(_brightness(_camera_scene("camera-brick-pan", "train", "brick", "pan",
                                            shape), 1.12, -10.0))
    scenes.append(_motorcycle_scene(motorcycle_shape))
    return scenes


def middlebury_fields(shape: tuple[int, int] = (480, 640)) -> list[Scene]:
    """Held-out smooth fields warping the real Middlebury motorcycle frames (10 scenes)."""
    scenes = []
    for which, label in ((0, "mleft"), (1, "mright")):
        img = _motorcycle_frame(which, shape)
        for a, (amp, sigma) in enumerate(((0.7, 35.0), (2.0, 40.0), (4.0, 60.0),
                                          (10.0, 70.0), (25.0, 120.0))):
            scenes.append(_field_scene(f"field-{label}-a{amp:g}", "heldout", img, amp, sigma,
                                       seed=900 + 10 * which + a))
    return scenes


def motorcycle(shape: tuple[int, int] | None = None) -> Scene:
    """The real Middlebury pair (its own 741x500 unless ``shape`` is given)."""
    return _motorcycle_scene(shape)


def _heldout(shape: tuple[int, int]) -> list[Scene]:
    # Smooth fields over the real Middlebury frames (the lead's hidden scenes are of this
    # kind) and over photos never used for choosing; seeds disjoint from the training ones.
    scenes = middlebury_fields(shape)
    for t, tex in enumerate(HELDOUT_TEXTURES):
        img = _photo(tex, shape)
        for a, (amp, sigma) in enumerate(((0.5, 30.0), (3.0, 45.0), (8.0, 60.0),
                                          (20.0, 110.0))):
            scenes.append(_field_scene(f"field-{tex}-a{amp:g}", "heldout", img, amp, sigma,
                                       seed=700 + 10 * t + a))
    for tex, motions in (("grass", ("slow", "fast", "wobble")),
                         ("coffee", ("pan", "climb", "large")),
                         ("chelsea", ("slow", "fast")),
                         ("rocket", ("pan", "large")),
                         ("moon", ("pan", "wobble"))):
        for motion in motions:
            scenes.append(_camera_scene(f"camera-{tex}-{motion}", "heldout", tex, motion,
                                        shape))
    return scenes


def build_scenes(split: str, shape: tuple[int, int] = (480, 640), *,
                 motorcycle_native: bool = True) -> list[Scene]:
    """The scenes of ``split`` at ``shape`` (rows, cols).

    Args:
        split: ``train`` or ``heldout``.
        shape: frame size of the synthetic scenes.
        motorcycle_native: keep the motorcycle pair at its own 741x500 (the reference
            figure); False resizes it to ``shape`` (GT disparity scaled alike).
    """
    if split == "train":
        return _train(shape, None if motorcycle_native else shape)
    if split == "heldout":
        return _heldout(shape)
    raise ValueError(f"split: must be one of {SPLITS}, got {split!r}")
