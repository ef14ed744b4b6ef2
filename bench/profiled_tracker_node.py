"""tracker_node in its own process, with cProfile on while frames arrive.

    python bench/profiled_tracker_node.py OUT.prof --ros-args -r __ns:=/prof

A 10 Hz timer watches the node's ``frames_received`` counter: the profiler is switched on
when frames start arriving and off once none came for 0.2 s, so imports, set-up and idle
time stay out and per-frame figures are not diluted by the diagnostics timer of an idle
node. The profile covers everything the process does meanwhile: the executor (its wait
included), taking and deserialising messages, the node's callbacks and timers. On
SIGINT/SIGTERM it is written to ``OUT.prof`` (pstats format). Used by ``bench/run_all.py``.
"""

from __future__ import annotations

import cProfile
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rclpy  # noqa: E402
from rclpy.executors import ExternalShutdownException  # noqa: E402

from optical_flow_ros.nodes.tracker_node import TrackerNode  # noqa: E402


def main() -> int:
    out = sys.argv[1]
    rclpy.init(args=sys.argv)
    node = TrackerNode()
    profiler = cProfile.Profile()
    state = {"seen": 0, "on": False}

    def watch() -> None:
        seen = node._diag.counters["frames_received"]
        if seen != state["seen"] and not state["on"]:
            profiler.enable()
            state["on"] = True
        elif seen == state["seen"] and state["on"]:
            profiler.disable()
            state["on"] = False
        state["seen"] = seen

    node.create_timer(0.1, watch)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(out)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
