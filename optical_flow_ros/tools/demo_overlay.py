"""The demo video's camera-velocity overlay: an arrow and its value, or why there is none.

Pure functions over what the demo's listener knows: the newest flow/velocity (and how far
its stamp is from the frame's), whether camera_info arrived, and the tracker's diagnostics
``velocity`` entry, which holds the estimator's reason while no velocity is published.
"""

from __future__ import annotations

import cv2
import numpy as np

from optical_flow_ros.core.text_label import label_style, put_label

__all__ = ["ARROW_PX_PER_M_S", "VELOCITY_MAX_AGE_S", "draw_velocity", "no_velocity_reason",
           "velocity_caption"]

#: Length of the camera-velocity arrow per m/s, px.
ARROW_PX_PER_M_S = 100.0

#: A flow/velocity stamped further than this from the frame is not drawn on it, s.
VELOCITY_MAX_AGE_S = 0.5

_DIAGNOSTIC_PREFIX = "no flow/velocity: "


def no_velocity_reason(*, camera_info: bool, diagnostic: str | None) -> str:
    """Why a frame has no camera velocity, in a few words.

    Args:
        camera_info: whether the listener has received a camera_info.
        diagnostic: the tracker's diagnostics ``velocity`` entry (``"no flow/velocity:
            <reason>"``) from its latest report, or None when it has none (no report yet,
            or the condition cleared: a velocity is due).

    Returns:
        e.g. ``"no camera_info"``, ``"no distance"``, or the estimator's own reason.
    """
    if diagnostic:
        reason = diagnostic.removeprefix(_DIAGNOSTIC_PREFIX)
        if reason.startswith("no camera intrinsics"):
            return "no camera_info"
        if "range reading" in reason or reason.startswith("no usable distance"):
            return "no distance"
        return reason
    if not camera_info:
        return "no camera_info"
    return "waiting for flow/velocity"


def velocity_caption(velocity: np.ndarray | None, reason: str) -> str:
    """The caption: ``camera velocity 1.04 m/s``, or ``no camera velocity (<reason>)``.

    Args:
        velocity: the camera's linear velocity in its optical frame, m/s (at least x, y), or
            None when none is known for the frame.
        reason: why not, when ``velocity`` is None (:func:`no_velocity_reason`).
    """
    if velocity is None:
        return f"no camera velocity ({reason})"
    return f"camera velocity {float(np.hypot(velocity[0], velocity[1])):.2f} m/s"


def draw_velocity(image: np.ndarray, velocity: np.ndarray | None, caption: str) -> None:
    """Draw the velocity arrow (when known) and the caption into ``image`` (in place).

    The arrow starts at the image centre and points along the camera's (x right, y down)
    velocity, :data:`ARROW_PX_PER_M_S` px per m/s; the caption is at the bottom left, white
    with a black outline, shrunk (down to 0.7 of the image's label size) and then cut with
    "..." so it fits the width.

    Args:
        image: (H, W, 3) uint8 BGR, modified.
        velocity: optical-frame linear velocity, m/s, or None.
        caption: the text (:func:`velocity_caption`).
    """
    h, w = image.shape[:2]
    if velocity is not None:
        centre = (w // 2, h // 2)
        tip = (int(round(centre[0] + velocity[0] * ARROW_PX_PER_M_S)),
               int(round(centre[1] + velocity[1] * ARROW_PX_PER_M_S)))
        cv2.arrowedLine(image, centre, tip, (0, 0, 255), max(2, round(h / 160)),
                        tipLength=0.2)
    style = label_style(image.shape)
    margin = round(8 * style.scale)
    room = w - 2 * margin
    if style.text_size(caption)[0] > room:
        smaller = label_style(image.shape, scale=style.scale * 0.7)
        fit = style.scale * room / style.text_size(caption)[0]
        style = label_style(image.shape, scale=max(fit, smaller.scale))
    text = caption
    while style.text_size(text)[0] > room and len(text) > 4:
        text = text[:-4] + "..."
    put_label(image, text, (margin, h - margin - style.text_size(text)[2]), style)
