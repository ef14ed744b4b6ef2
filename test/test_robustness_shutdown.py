"""Clean shutdown: SIGINT and SIGTERM end each node within 2 s, without a traceback.

sim_camera_node feeds tracker_node and dense_flow_node over real DDS (a listener on flow/tracks
and flow/dense makes both work); while frames flow, each node gets a signal. Two rounds so that
every node gets both signals. rclpy installs handlers for both (``SignalHandlerOptions.ALL``):
a signal shuts the context down, ``spin`` returns and ``run_node`` exits with code 0.
"""

from __future__ import annotations

import signal
import time

import pytest
from ros_harness import NodeProcess
from sensor_msgs.msg import Image, PointCloud2

from optical_flow_ros.ros.qos import keep_last_qos

pytestmark = pytest.mark.dds

SIM = {"rate": 30.0, "image_width": 320, "image_height": 240, "velocity_x": 0.5}
NODES = {
    "sim_camera_node": "optical_flow_ros.nodes.sim_camera_node",
    "tracker_node": "optical_flow_ros.nodes.tracker_node",
    "dense_flow_node": "optical_flow_ros.nodes.dense_flow_node",
}
LIMIT_S = 2.0


def _stop_all(procs: dict[str, NodeProcess], signals: dict[str, int]) -> dict[str, tuple]:
    """Signal the named nodes at once; (exit code, seconds to exit) of each."""
    sent = time.monotonic()
    for name, sig in signals.items():
        procs[name].proc.send_signal(sig)
    exits: dict[str, tuple] = {}
    while len(exits) < len(signals) and time.monotonic() < sent + 3 * LIMIT_S:
        for name in signals:
            code = procs[name].proc.poll()
            if name not in exits and code is not None:
                exits[name] = (code, time.monotonic() - sent)
        time.sleep(0.01)
    return exits


@pytest.mark.parametrize("round_", [0, 1], ids=["tracker-INT,dense-TERM,sim-INT",
                                                "tracker-TERM,dense-INT,sim-TERM"])
def test_signals_end_each_node_within_2_s_while_processing(ros_peer, round_):
    first, second = (signal.SIGINT, signal.SIGTERM)[::1 if round_ == 0 else -1]
    tracks: list[PointCloud2] = []
    flows: list[Image] = []
    qos = keep_last_qos("reliable", 5)
    subs = [ros_peer.node.create_subscription(PointCloud2, "flow/tracks", tracks.append, qos),
            ros_peer.node.create_subscription(Image, "flow/dense", flows.append, qos)]
    procs = {"sim_camera_node": NodeProcess(NODES["sim_camera_node"], params=SIM),
             "tracker_node": NodeProcess(NODES["tracker_node"]),
             "dense_flow_node": NodeProcess(NODES["dense_flow_node"])}
    try:
        for sub in subs:
            assert ros_peer.wait_for_publisher(sub), procs
        # processing: both outputs keep coming
        assert ros_peer.spin_until(lambda: len(tracks) >= 10 and len(flows) >= 10, 30.0), {
            name: proc.output()[-2000:] for name, proc in procs.items()}
        n_tracks, n_flows = len(tracks), len(flows)
        ros_peer.spin_for(0.3)
        assert len(tracks) > n_tracks and len(flows) > n_flows
        exits = _stop_all(procs, {"tracker_node": first, "dense_flow_node": second})
        exits.update(_stop_all(procs, {"sim_camera_node": first}))
    finally:
        for proc in procs.values():
            proc.stop(signal.SIGKILL)
    problems = []
    for name, proc in procs.items():
        code, seconds = exits.get(name, (None, None))
        out = proc.output()
        print(f"{name}: exit {code} after {seconds if seconds is None else round(seconds, 3)} s")
        if code != 0 or seconds is None or seconds > LIMIT_S:
            problems.append(f"{name}: exit code {code} after {seconds} s")
        if "Traceback" in out or "Exception" in out:
            problems.append(f"{name} printed a traceback:\n{out[-3000:]}")
    assert not problems, "\n".join(problems)


MID_CALLBACK_NODE = """
import os, signal, sys, time
from rclpy.node import Node
from std_msgs.msg import Empty
from optical_flow_ros.nodes.node_main import run_node

class SignalledMidCallback(Node):
    def __init__(self):
        super().__init__("signalled_mid_callback")
        self.pub = self.create_publisher(Empty, "mid_callback", 1)
        self.create_timer(0.05, self.on_timer)

    def on_timer(self):  # like a frame callback when Ctrl-C / kill arrives
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)  # rclpy's signal thread shuts the context down meanwhile
        self.pub.publish(Empty())

sys.exit(run_node(SignalledMidCallback))
"""


# Regression: the signal shuts the context down while the callback runs; its publish then
# raised RCLError ("publisher's context is invalid") through run_node: traceback, exit 1.
def test_signal_during_a_callback_exits_cleanly(tmp_path):
    script = tmp_path / "mid_callback_node.py"
    script.write_text(MID_CALLBACK_NODE)
    proc = NodeProcess(str(script))
    code = proc.proc.wait(20)
    assert code == 0 and "Traceback" not in proc.output(), proc.output()
