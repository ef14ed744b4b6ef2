"""Per-node diagnostics on ``/diagnostics`` (diagnostic_msgs/DiagnosticArray), once a second.

``diagnostic_updater`` has no PyPI wheel, so this is a small equivalent: counters that only
grow (frames received/processed/invalid/dropped), the latest values of gauges (per-stage
counts), processing-time percentiles over the last window, and named conditions that raise
the level to WARN or ERROR until cleared (each also listed as a key/value under its own name,
e.g. ``velocity``: ``no flow/velocity: <why>``, while it stands).
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Protocol

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

__all__ = ["CountSink", "Counts", "DiagnosticsReporter", "DiagnosticsSink", "OfflineDiagnostics"]

_LEVEL_NAMES = {DiagnosticStatus.OK: "OK", DiagnosticStatus.WARN: "WARN",
                DiagnosticStatus.ERROR: "ERROR", DiagnosticStatus.STALE: "STALE"}


class CountSink(Protocol):
    """Anything that counts events by name (DiagnosticsReporter, or Counts offline)."""

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key``."""


class DiagnosticsSink(CountSink, Protocol):
    """What processing stages report to: DiagnosticsReporter, or OfflineDiagnostics."""

    def set(self, **gauges: object) -> None:
        """Set gauges to their latest values."""

    def raise_condition(self, key: str, message: str, *, error: bool = False) -> None:
        """Hold a WARN (or ERROR) condition until cleared."""

    def clear(self, key: str) -> None:
        """Drop a condition."""


class Counts(Counter[str]):
    """Event counts without a node (bag processing); a :class:`CountSink`."""

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key``."""
        self[key] += n


class OfflineDiagnostics:
    """The DiagnosticsSink of offline processing: counters, gauges, conditions ever raised."""

    def __init__(self) -> None:
        self.counters = Counts()
        self.gauges: dict[str, object] = {}
        self.conditions: dict[str, str] = {}

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key``."""
        self.counters.count(key, n)

    def set(self, **gauges: object) -> None:
        """Set gauges to their latest values."""
        self.gauges.update(gauges)

    def raise_condition(self, key: str, message: str, *, error: bool = False) -> None:
        """Remember the latest message of condition ``key`` (kept after clear, for reports)."""
        self.conditions[key] = message

    def clear(self, key: str) -> None:
        """Conditions are kept for the final report; nothing to do."""


class DiagnosticsReporter:
    """Collects a node's health figures and publishes them periodically.

    Args:
        node: the owning node (its clock stamps the array).
        task: what the node does, e.g. "lk_tracker"; the status name is "<node>: <task>".
        period_s: publishing period in seconds.
        window: number of recent frames the processing-time percentiles cover.
    """

    def __init__(self, node: Node, task: str, *, period_s: float = 1.0, window: int = 300) -> None:
        self._node = node
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._name = f"{node.get_fully_qualified_name()}: {task}"
        self.counters: Counter[str] = Counter()
        self.gauges: dict[str, str] = {}
        self._times_ms: deque[float] = deque(maxlen=window)
        self._conditions: dict[str, tuple[bytes, str]] = {}
        self._processed_at_last_publish = 0
        self._timer = node.create_timer(period_s, self.publish)

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key``."""
        self.counters[key] += n

    def set(self, **gauges: object) -> None:
        """Set gauges to their latest values (shown as text)."""
        for key, value in gauges.items():
            self.gauges[key] = f"{value:.3f}" if isinstance(value, float) else str(value)

    def add_processing_time(self, ms: float) -> None:
        """Record one frame's processing time in ms (callback in to publish out)."""
        self._times_ms.append(ms)

    def raise_condition(self, key: str, message: str, *, error: bool = False) -> None:
        """Hold the status at WARN (or ERROR) with ``message`` until ``clear(key)``."""
        self._conditions[key] = (DiagnosticStatus.ERROR if error else DiagnosticStatus.WARN,
                                 message)

    def clear(self, key: str) -> None:
        """Drop a condition raised with ``raise_condition``."""
        self._conditions.pop(key, None)

    def status(self) -> DiagnosticStatus:
        """The current DiagnosticStatus (level, message, key/values)."""
        level, message = DiagnosticStatus.OK, "ok"
        if self._conditions:
            level, message = max(self._conditions.values())
        processed = self.counters["frames_processed"]
        if processed == self._processed_at_last_publish:
            # A stopped camera outranks any standing warning: say it first, keep the rest.
            stale = "no frames processed since the last report"
            level = DiagnosticStatus.STALE
            message = stale if message == "ok" else f"{stale}; {message}"
        self._processed_at_last_publish = processed
        values = [KeyValue(key=k, value=str(v)) for k, v in sorted(self.counters.items())]
        values += [KeyValue(key=k, value=v) for k, v in sorted(self.gauges.items())]
        # Every standing condition by its name (the message shows only the most severe).
        values += [KeyValue(key=k, value=m) for k, (_, m) in sorted(self._conditions.items())]
        if self._times_ms:
            p50, p99 = np.percentile(np.fromiter(self._times_ms, float), [50, 99])
            values += [KeyValue(key="processing_ms_p50", value=f"{p50:.3f}"),
                       KeyValue(key="processing_ms_p99", value=f"{p99:.3f}")]
        return DiagnosticStatus(level=level, name=self._name, message=message,
                                hardware_id=self._node.get_name(), values=values)

    def publish(self) -> None:
        """Publish the status now (the timer calls this every period)."""
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        array.status = [self.status()]
        self._pub.publish(array)
