"""play_bag over real DDS into a live tracker_node (use_sim_time), against process_bag.

The node runs in its own process with reliable input QoS and a deep input queue, so no frame
is dropped; the bag is played at half speed. What the node publishes on flow/tracks and
flow/velocity must equal, byte for byte (padding zeroed), what process_bag wrote for the same
bag. A looping replay makes the stamps jump back: the tracker must reset and go on.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import TwistWithCovarianceStamped
from ros_harness import NodeProcess
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import PointCloud2

from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.ros.track_cloud import cloud_to_array
from optical_flow_ros.tools import process_bag, sample_bag
from optical_flow_ros.tools.bag_io import BagMessage, BagReader, deserialize, serialize

pytestmark = pytest.mark.dds

SIM = dict(rate=15.0, image_width=320, image_height=240, focal_length=250.0, altitude=2.0,
           velocity_x=0.8, velocity_y=0.3, yaw_rate=0.2, roll_amplitude=math.radians(5.0),
           pitch_amplitude=math.radians(5.0), attitude_period=3.0, gyro_noise_std=0.002)
TRACKER = {"use_sim_time": True, "input_reliability": "reliable", "input_depth": 100,
           "opencv_threads": 1}
INPUTS = ["/image", "/camera_info", "/range", "/imu", "/clock"]
TYPES = {"/flow/tracks": "sensor_msgs/msg/PointCloud2",
         "/flow/velocity": "geometry_msgs/msg/TwistWithCovarianceStamped"}


def _sample(path: Path, frames: int) -> Path:
    args = [a for k, v in SIM.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    assert sample_bag.main([str(path), "--frames", str(frames), *args]) == 0
    return path


class Recorder:
    """Raw flow/tracks and flow/velocity from the node, and /clock."""

    def __init__(self, peer) -> None:
        self.raw: dict[str, list[bytes]] = {topic: [] for topic in TYPES}
        self.clock: list[int] = []
        qos = keep_last_qos("reliable", 1000)
        node = peer.node
        self.subs = [
            node.create_subscription(PointCloud2, "/flow/tracks",
                                     self.raw["/flow/tracks"].append, qos, raw=True),
            node.create_subscription(TwistWithCovarianceStamped, "/flow/velocity",
                                     self.raw["/flow/velocity"].append, qos, raw=True)]
        node.create_subscription(
            Clock, "/clock", lambda m: self.clock.append(m.clock.sec * 10**9 + m.clock.nanosec),
            keep_last_qos("reliable", 1000))

    def messages(self, topic: str) -> list:
        return [deserialize(BagMessage(topic, TYPES[topic], 0, data))
                for data in self.raw[topic]]

    def canonical(self, topic: str) -> list[bytes]:
        return [serialize(m, TYPES[topic]) for m in self.messages(topic)]


def _player(bag: Path, *args: str) -> NodeProcess:
    return NodeProcess("optical_flow_ros.tools.play_bag",
                       args=[str(bag), "--wait-for", *INPUTS, "--delay", "0.5", *args])


def test_live_tracker_node_publishes_what_process_bag_wrote(ros_peer, tmp_path):
    frames = 45
    bag = _sample(tmp_path / "bag", frames)
    assert process_bag.main([str(bag), str(tmp_path / "out"), "--quiet"]) == 0
    with BagReader(tmp_path / "out") as reader:
        expected = {topic: [m.data for m in reader.messages([topic])] for topic in TYPES}
    recorder = Recorder(ros_peer)
    with NodeProcess("optical_flow_ros.nodes.tracker_node", params=TRACKER) as tracker:
        assert all(ros_peer.wait_for_publisher(sub) for sub in recorder.subs), tracker.output()
        with _player(bag, "--rate", "0.5") as player:
            done = ros_peer.spin_until(
                lambda: len(recorder.raw["/flow/tracks"]) >= frames and not player.alive(),
                60.0)
            ros_peer.spin_for(0.3)
            assert done and player.proc.returncode == 0, player.output() + tracker.output()
        assert tracker.alive(), tracker.output()
    assert len(expected["/flow/tracks"]) == frames
    assert len(expected["/flow/velocity"]) >= frames - 3
    for topic in TYPES:
        assert recorder.canonical(topic) == expected[topic], topic
    # /clock carried the bag's record time, forward only, up to the last message's. (The
    # first few may reach this subscriber before it has matched the player: not checked.)
    with BagReader(bag) as reader:
        start, end = reader.start_ns, reader.end_ns
    clock = np.array(recorder.clock)
    assert len(clock) > 100 and clock.min() >= start and clock.max() == end
    assert (np.diff(clock) >= 0).all()


def test_loop_replay_resets_the_tracker_cleanly(ros_peer, tmp_path):
    frames = 20
    bag = _sample(tmp_path / "bag", frames)
    recorder = Recorder(ros_peer)
    with NodeProcess("optical_flow_ros.nodes.tracker_node", params=TRACKER) as tracker:
        assert all(ros_peer.wait_for_publisher(sub) for sub in recorder.subs), tracker.output()
        with _player(bag, "--loop", "--rate", "1.5") as player:
            assert ros_peer.spin_until(
                lambda: len(recorder.raw["/flow/tracks"]) >= 3 * frames + 5, 40.0), \
                player.output() + tracker.output()
            assert player.alive(), player.output()
        ros_peer.spin_for(0.3)
        assert tracker.alive(), tracker.output()
        log = tracker.output()
    clouds = recorder.messages("/flow/tracks")
    stamps = np.array([m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in clouds])
    jumps = np.flatnonzero(np.diff(stamps) < 0) + 1
    assert len(jumps) >= 2, stamps
    assert (np.diff(jumps) == frames).all()          # every frame of every pass was tracked
    for jump in jumps:
        before, after = cloud_to_array(clouds[jump - 1]), cloud_to_array(clouds[jump])
        assert len(after) > 100
        assert (after["age"] == 1).all()              # a fresh start: all tracks new ...
        assert after["id"].min() > before["id"].max()  # ... with ids never used before
        assert np.isnan(after["vu"]).all()             # and no velocity across the jump
        assert stamps[jump] == stamps[0]
    assert "stamp went backwards" in log
    assert "Traceback" not in log and "ERROR" not in log, log
    # Each pass after a reset tracks exactly like the first one, with new ids.
    for one, two in zip(clouds[:frames], clouds[jumps[0]:jumps[0] + frames], strict=True):
        a, b = cloud_to_array(one), cloud_to_array(two)
        for field in ("u", "v", "vu", "vv", "age"):
            np.testing.assert_array_equal(a[field], b[field])
        assert len(set(b["id"] - a["id"])) <= 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_player_stops_cleanly_on_sigterm_and_ctrl_c(ros_peer, tmp_path, sig):
    bag = _sample(tmp_path / "bag", 10)
    with NodeProcess("optical_flow_ros.tools.play_bag", args=[str(bag), "--loop"]) as player:
        assert ros_peer.spin_until(lambda: "playing" in player.output(), 20.0), player.output()
        ros_peer.spin_for(0.5)                          # mid-playback, publishing
        assert player.alive(), player.output()
        started = time.monotonic()
        code = player.stop(sig)
        waited = time.monotonic() - started
        log = player.output()
    assert code == 0, log                               # a stop asked for: a normal end
    assert waited < 2.0
    assert "Traceback" not in log and "stopped after" in log, log
