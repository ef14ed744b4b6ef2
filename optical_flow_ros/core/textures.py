"""Real photo textures from scikit-image's bundled data (no network: they ship in its wheel).

Used by the simulated camera (:mod:`optical_flow_ros.core.sim_camera`) as the ground it
flies over, and by tests and demos that need natural image content with known motion.
"""

from __future__ import annotations

import cv2
import numpy as np

from optical_flow_ros.core.errors import ConfigError

__all__ = ["TEXTURE_NAMES", "load_texture", "mirror_tile"]

# Images that are part of scikit-image's wheel (``skimage/data/*.png|jpg``), never fetched.
# Gray ones first; colour ones are converted when ``color=False``.
TEXTURE_NAMES = (
    "gravel", "grass", "brick", "camera", "moon",
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
)


def load_texture(name: str = "gravel", *, color: bool = False) -> np.ndarray:
    """Load one of :data:`TEXTURE_NAMES` as a contiguous uint8 image.

    Args:
        name: skimage.data image name.
        color: True: ``(H, W, 3)`` BGR (gray photos replicated into 3 channels);
            False: ``(H, W)`` gray.

    Returns:
        The image, uint8, C-contiguous.

    Raises:
        ConfigError: ``name`` is not one of :data:`TEXTURE_NAMES`.
    """
    if name not in TEXTURE_NAMES:
        raise ConfigError(f"texture: must be one of {list(TEXTURE_NAMES)}, got {name!r}")
    from skimage import data as skdata  # heavy import, only when a texture is wanted

    img = np.asarray(getattr(skdata, name)(), dtype=np.uint8)
    if img.ndim == 3:
        img = img[..., :3]
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_RGB2BGR if color
                                                 else cv2.COLOR_RGB2GRAY))
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if color else img)


def mirror_tile(texture: np.ndarray) -> np.ndarray:
    """The 2x2 mirrored block ``[[T, fliplr T], [flipud T, flip T]]``.

    Tiling the result periodically covers the plane seamlessly (every edge meets its own
    mirror image), so it can be sampled with ``BORDER_WRAP`` at any distance.

    Args:
        texture: ``(H, W)`` or ``(H, W, C)`` image.

    Returns:
        ``(2H, 2W[, C])`` image of the same dtype; its period is ``(2H, 2W)``.
    """
    top = np.concatenate([texture, texture[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.concatenate([top, top[::-1]], axis=0))
