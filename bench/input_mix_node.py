"""tracker_node spun by a chosen executor: the executor levers of ``bench/bench_input_mix.py``.

    python bench/input_mix_node.py EXECUTOR [--probe OUT.jsonl] --ros-args -r __ns:=/x [-p ...]

EXECUTOR is one of

- ``single``: rclpy's ``SingleThreadedExecutor`` (what ``rclpy.spin(node)`` uses);
- ``events``: ``rclpy.experimental.EventsExecutor`` (C++ event queue and timers), driven by
  ``spin_once(timeout_sec=0.1)`` (its ``spin()`` and ``spin_once()`` without a timeout never
  return in rclpy 9.1.2: nothing is processed);
- ``multi``: ``MultiThreadedExecutor`` with 2 threads, ``camera_info``, ``range`` and ``imu``
  in a callback group of their own so that they run beside the image callback (the cheap
  inputs on a second thread); the velocity inputs' cache is locked for it;
- ``wakes``: ``SingleThreadedExecutor`` with ``camera_info``, ``range`` and ``imu`` back in the
  node's default callback group and the imu deserialised by rclpy, i.e. the executor wakes
  for every message and runs its callback, as tracker_node did before its inputs were polled
  (``optical_flow_ros.ros.polled_input``); the frame-time polls then find nothing queued.

With ``--probe`` each frame's time inside the node is written to OUT.jsonl
(``bench/input_mix_probe.py``). The node is the package's ``TrackerNode``; only how it is
spun (and, for ``multi`` and ``wakes``, which callback group its cheap inputs are in) differs.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rclpy  # noqa: E402
from input_mix_probe import attach_probe, probe_path  # noqa: E402
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup  # noqa: E402
from rclpy.executors import (  # noqa: E402
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)

from optical_flow_ros.nodes.tracker_node import TrackerNode  # noqa: E402

EXECUTORS = ("single", "events", "multi", "wakes")
_CHEAP_INPUTS = ("camera_info", "range", "imu")


def _locked(lock: threading.Lock, func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return func(*args, **kwargs)
    return call


class GroupedTrackerNode(TrackerNode):
    """TrackerNode whose cheap inputs have a callback group (and a lock) of their own."""

    def __init__(self) -> None:
        self._cheap_group = MutuallyExclusiveCallbackGroup()
        self._lock = threading.Lock()
        super().__init__()
        inputs = self._pipeline.velocity_inputs
        inputs.gyro = _locked(self._lock, inputs.gyro)            # type: ignore[method-assign]
        inputs.distance = _locked(self._lock, inputs.distance)    # type: ignore[method-assign]

    def create_subscription(self, msg_type: Any, topic: str, callback: Callable[..., Any],
                            qos_profile: Any, **kwargs: Any) -> Any:
        """Node.create_subscription; camera_info, range and imu go to the cheap group."""
        if topic in _CHEAP_INPUTS:
            kwargs["callback_group"] = self._cheap_group
            callback = _locked(self._lock, callback)
        return super().create_subscription(msg_type, topic, callback, qos_profile, **kwargs)


class WakingTrackerNode(TrackerNode):
    """TrackerNode whose cheap inputs wake the executor per message (deserialised by rclpy)."""

    def create_subscription(self, msg_type: Any, topic: str, callback: Callable[..., Any],
                            qos_profile: Any, **kwargs: Any) -> Any:
        """Node.create_subscription; camera_info, range and imu in the default group."""
        if topic in _CHEAP_INPUTS:
            kwargs.pop("callback_group", None)
            if kwargs.pop("raw", False):      # imu: the message path instead of its CDR bytes
                callback = callback.__self__.on_imu
        return super().create_subscription(msg_type, topic, callback, qos_profile, **kwargs)


def main() -> int:
    kind = sys.argv[1]
    if kind not in EXECUTORS:
        print(f"executor must be one of {EXECUTORS}, got {kind!r}", file=sys.stderr)
        return 2
    probe = probe_path(sys.argv)
    rclpy.init(args=sys.argv)
    node = {"multi": GroupedTrackerNode, "wakes": WakingTrackerNode}.get(kind, TrackerNode)()
    if probe:
        attach_probe(node._input.subscription, node._pub_tracks, probe,
                     work=(node._pipeline, "process"))
    if kind == "events":
        from rclpy.experimental import EventsExecutor
        executor = EventsExecutor()
    elif kind == "multi":
        executor = MultiThreadedExecutor(num_threads=2)
    else:
        executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
