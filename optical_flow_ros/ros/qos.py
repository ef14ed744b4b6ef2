"""QoS profiles (REP-2003: sensor data best effort, small keep-last depth)."""

from __future__ import annotations

from typing import Any

from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import (
    InvalidQosOverridesError,
    QosCallbackResult,
    QoSOverridingOptions,
)

from optical_flow_ros.core.errors import ConfigError

__all__ = ["OUTPUT_DEPTH", "RELIABILITY_CHOICES", "VIEW_IMAGE_DEPTH", "keep_last_qos",
           "output_publisher"]

RELIABILITY_CHOICES = ("best_effort", "reliable")

#: Keep-last depth of the published debug views (flow/image, flow/dense/hsv, flow/dense/warp,
#: reliable). A bgr8 frame larger than Fast DDS's default 512 KiB shared-memory segment goes
#: over UDP in fragments; with depth 1 the next frame replaced a frame whose fragments were
#: still being repaired, and a reliable reader lost it (the viewer got 68 % of flow/image at
#: 1280x720; with 3, 97 %: bench/bench_viewer.py). Publishing never blocks on it (keep-last).
VIEW_IMAGE_DEPTH = 3

#: Keep-last depth of tracker_node's data outputs (flow/tracks, flow/velocity, reliable): a
#: reader busy for up to this many frames loses none; deeper via ``qos_overrides``
#: (:func:`output_publisher`).
OUTPUT_DEPTH = 5


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


def _keeps_messages(qos: QoSProfile) -> QosCallbackResult:
    """Refuse an override that keeps nothing (keep-last with depth 0 means "system default")."""
    if qos.history == HistoryPolicy.KEEP_LAST and qos.depth < 1:
        return QosCallbackResult(successful=False,
                                 reason=f"depth must be >= 1 with keep_last, got {qos.depth}")
    return QosCallbackResult(successful=True)


def output_publisher(node: Node, msg_type: Any, topic: str, qos: QoSProfile) -> Publisher:
    """``node.create_publisher`` whose history, depth and reliability users may override.

    The ROS 2 way (rclpy's ``QoSOverridingOptions``): read-only parameters
    ``qos_overrides.<resolved topic>.publisher.history|depth|reliability``, set at start-up
    (YAML, launch, ``--ros-args -p``), e.g. a deeper ``flow/tracks`` queue for a consumer that
    is busy for several frames. ``qos`` is the default. An invalid override ends the
    start-up with a :class:`ConfigError` that names the parameter and the value.
    """
    options = QoSOverridingOptions.with_default_policies(callback=_keeps_messages)
    prefix = f"qos_overrides.{node.resolve_topic_name(topic)}.publisher"
    try:
        return node.create_publisher(msg_type, topic, qos, qos_overriding_options=options)
    except InvalidQosOverridesError as err:
        raise ConfigError(f"{prefix}: {err}") from err
    except RuntimeError as err:
        if "QoS override" not in str(err):   # rclpy's "Unexpected QoS override for policy"
            raise
        raise ConfigError(f"{prefix}: {err} (history: keep_last, keep_all; reliability: "
                          "reliable, best_effort)") from err
