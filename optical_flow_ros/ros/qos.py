"""QoS profiles (REP-2003: sensor data best effort, small keep-last depth)."""

from __future__ import annotations

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

__all__ = ["RELIABILITY_CHOICES", "VIEW_IMAGE_DEPTH", "keep_last_qos"]

RELIABILITY_CHOICES = ("best_effort", "reliable")

#: Keep-last depth of the published debug views (flow/image, flow/dense/hsv, flow/dense/warp,
#: reliable). A bgr8 frame larger than Fast DDS's default 512 KiB shared-memory segment goes
#: over UDP in fragments; with depth 1 the next frame replaced a frame whose fragments were
#: still being repaired, and a reliable reader lost it (the viewer got 68 % of flow/image at
#: 1280x720; with 3, 97 %: bench/bench_viewer.py). Publishing never blocks on it (keep-last).
VIEW_IMAGE_DEPTH = 3


def keep_last_qos(reliability: str, depth: int) -> QoSProfile:
    """Keep-last ``depth`` QoS with the given reliability (``best_effort`` | ``reliable``).

    For subscriptions, best effort matches both best-effort and reliable publishers (REP-2003
    sensor data), and depth 1 makes the middleware keep only the newest frame. For
    publishers, reliable matches every subscriber.
    """
    if reliability not in RELIABILITY_CHOICES:
        raise ValueError(f"reliability must be one of {RELIABILITY_CHOICES}, got {reliability!r}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=(ReliabilityPolicy.RELIABLE if reliability == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT),
    )
