"""The README's pictures from a demo run: demo_tracks.jpg, demo_dense_hsv.png, demo_velocity.png.

    scripts/demo.sh --pictures docs      # runs the demo, then writes the three pictures

Web-friendly: at most 640 px wide (the demo's frames are 640x480; the plot is shrunk to
fit), the tracks frame as JPEG (a photo: ~100 KB instead of ~650 KB as PNG), the HSV view and
the plot as PNG (flat colours and thin lines, which JPEG would blur).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["PICTURES", "export_pictures"]

#: demo output -> README picture.
PICTURES = {"tracks.png": "demo_tracks.jpg", "dense_hsv.png": "demo_dense_hsv.png",
            "velocity.png": "demo_velocity.png"}

_MAX_WIDTH = 640
_JPEG_QUALITY = 85


def _fit(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= _MAX_WIDTH:
        return image
    return cv2.resize(image, (_MAX_WIDTH, round(h * _MAX_WIDTH / w)),
                      interpolation=cv2.INTER_AREA)


def export_pictures(out: Path, docs: Path) -> list[Path]:
    """Write the README pictures from the demo outputs in ``out`` to ``docs``.

    Returns:
        The pictures written (those whose demo output exists).

    Raises:
        OSError: ``docs`` cannot be created or written.
    """
    docs.mkdir(parents=True, exist_ok=True)
    written = []
    for source, name in PICTURES.items():
        image = cv2.imread(str(out / source), cv2.IMREAD_COLOR)
        if image is None:
            continue
        target = docs / name
        params = ([cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
                  if name.endswith(".jpg") else [cv2.IMWRITE_PNG_COMPRESSION, 9])
        ok, data = cv2.imencode(Path(name).suffix, _fit(image), params)
        if not ok:
            raise OSError(f"cannot encode {target}")
        target.write_bytes(data.tobytes())
        written.append(target)
    return written
