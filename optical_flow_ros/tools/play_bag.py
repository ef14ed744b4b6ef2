"""Play a bag over DDS with its original timing, and /clock for nodes with use_sim_time.

    ros2 run optical_flow_ros play_bag BAG [--rate 1.0] [--loop] [--start-offset 0]
        [--topics T ...] [--clock | --no-clock] [--clock-rate 100]
        [--qos-reliability reliable|best_effort] [--qos-durability volatile|transient_local]
        [--qos-depth N] [--qos-overrides FILE.yaml] [--wait-for TOPIC ...] [--delay S]
        [--ros-args ...]

``ros2 bag play`` for this package's users (rosbag2 has no PyPI wheel). Messages go out in
record order, message ``i`` ``(t_i - t_start) / rate`` seconds after playback starts, as the
raw CDR bytes stored in the bag (rclpy publishes them without deserialising). ``/clock``
(rosgraph_msgs/Clock) carries the bag's record time: before every message, the message's own
time, and in between at ``--clock-rate`` Hz; so a node with ``use_sim_time`` sees the time
the bag was recorded at. With ``--loop`` playback restarts at ``--start-offset`` when the
bag ends: the clock and every stamp jump back, which the nodes treat as a restart (the
tracker resets, "stamp went backwards").

QoS: each topic is offered with the reliability and durability its recording publishers
offered (when they agree; else reliable, volatile), keep-last ``--qos-depth``. The options
override them for every topic; ``--qos-overrides`` (rosbag2's YAML form:
``/topic: {reliability: best_effort, durability: volatile, depth: 5}``) per topic.

``--wait-for TOPIC ...`` holds playback until those topics (``/clock`` included) have a
subscriber (up to ``--wait-timeout``), so a node that starts at the same time misses
nothing. DDS settings come from the environment (``ROS_DOMAIN_ID``,
``ROS_AUTOMATIC_DISCOVERY_RANGE``); the project's scripts and tests set LOCALHOST.
Ctrl-C (SIGINT) or SIGTERM, however many, stops playback at once and says after how many
messages: a stop asked for is a normal end. Exit codes: 0 done or stopped, 1 bad bag or options.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
import yaml
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosbags.interfaces import QosDurability, QosReliability
from rosgraph_msgs.msg import Clock

from optical_flow_ros.core.errors import ConfigError, OpticalFlowError
from optical_flow_ros.ros.stop_signals import StopSignals, run_program, stop_signals
from optical_flow_ros.tools.bag_io import BagError, BagMessage, BagReader, BagTopic, message_class

__all__ = ["BagPlayer", "PlayOptions", "QosOverride", "main", "topic_qos"]

_RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE,
                "best_effort": ReliabilityPolicy.BEST_EFFORT}
_DURABILITY = {"volatile": DurabilityPolicy.VOLATILE,
               "transient_local": DurabilityPolicy.TRANSIENT_LOCAL}
_FROM_BAG_RELIABILITY = {QosReliability.RELIABLE: "reliable",
                         QosReliability.BEST_EFFORT: "best_effort"}
_FROM_BAG_DURABILITY = {QosDurability.VOLATILE: "volatile",
                        QosDurability.TRANSIENT_LOCAL: "transient_local"}
_MAX_SLEEP_S = 0.05
_ACK_SLICE_S = 0.05   # flush waits for acknowledgements in slices, to see a stop request


@dataclass(frozen=True)
class QosOverride:
    """QoS settings that replace what the bag recorded (None: keep)."""

    reliability: str | None = None
    durability: str | None = None
    depth: int | None = None


@dataclass
class PlayOptions:
    """Everything the player is told (the command line's options)."""

    rate: float = 1.0
    loop: bool = False
    start_offset: float = 0.0
    topics: Sequence[str] = ()
    clock: bool = True
    clock_rate: float = 100.0
    qos: QosOverride = QosOverride()
    qos_per_topic: Mapping[str, QosOverride] | None = None
    depth: int = 100
    wait_for: Sequence[str] = ()
    wait_timeout: float = 30.0
    delay: float = 0.0


def _agreed(values: list[str | None], default: str) -> str:
    known = set(values)
    return known.pop() if len(known) == 1 and None not in known else default


def topic_qos(topic: BagTopic, options: PlayOptions) -> QoSProfile:
    """The QoS a topic is offered with: recorded, then global, then per-topic overrides."""
    recorded = topic.qos
    reliability = _agreed([_FROM_BAG_RELIABILITY.get(q.reliability) for q in recorded],
                          "reliable")
    durability = _agreed([_FROM_BAG_DURABILITY.get(q.durability) for q in recorded],
                         "volatile")
    depth = options.depth
    for override in (options.qos, (options.qos_per_topic or {}).get(topic.name)):
        if override is None:
            continue
        reliability = override.reliability or reliability
        durability = override.durability or durability
        depth = override.depth or depth
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=_RELIABILITY[reliability], durability=_DURABILITY[durability])


def load_qos_overrides(path: str | Path) -> dict[str, QosOverride]:
    """Per-topic overrides from rosbag2's ``--qos-profile-overrides-path`` YAML.

    Raises:
        ConfigError: unreadable file, unknown keys or values.
    """
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read QoS overrides: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected '/topic: {{reliability: ..., depth: ...}}' entries")
    out: dict[str, QosOverride] = {}
    for topic, entry in data.items():
        entry = entry if isinstance(entry, dict) else {}
        unknown = set(entry) - {"reliability", "durability", "depth", "history"}
        reliability, durability = entry.get("reliability"), entry.get("durability")
        if unknown or reliability not in (None, *_RELIABILITY) or durability not in (
                None, *_DURABILITY):
            raise ConfigError(f"{path}: {topic}: reliability must be one of "
                              f"{list(_RELIABILITY)}, durability one of {list(_DURABILITY)}, "
                              f"other keys: depth, history; got {entry}")
        depth = entry.get("depth")
        if depth is not None and (not isinstance(depth, int) or depth < 1):
            raise ConfigError(f"{path}: {topic}: depth must be a positive integer")
        out[str(topic)] = QosOverride(reliability, durability, depth)
    return out


class BagPlayer:
    """Publishes a bag's messages on a node with the recorded timing.

    Args:
        node: the node to publish from.
        reader: the open bag.
        options: timing, QoS and topic selection.
        stop: stop requests: playback ends at once when one arrives (None: never).

    Raises:
        BagError: a requested topic is missing, or a type has no installed Python package.
    """

    def __init__(self, node: Node, reader: BagReader, options: PlayOptions, *,
                 stop: StopSignals | None = None) -> None:
        if options.rate <= 0.0 or options.clock_rate <= 0.0:
            raise ConfigError("rate and clock rate must be > 0")
        self._node, self._reader, self._options = node, reader, options
        self._stop = stop
        names = list(options.topics) or list(reader.topics)
        self._topics = [reader.topic(name) for name in names]
        self._publishers: dict[str, Publisher[Any]] = {}
        for topic in self._topics:
            try:
                cls = message_class(topic.msgtype)
            except BagError as err:
                raise BagError(f"cannot play {topic.name}: {err}; leave it out with --topics "
                               "(the others)") from err
            self._publishers[topic.name] = node.create_publisher(
                cls, topic.name, topic_qos(topic, options))
        self._clock_pub = (node.create_publisher(
            Clock, "/clock", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
            if options.clock else None)
        self.published = 0
        self.loops = 0

    @property
    def publishers(self) -> dict[str, Publisher[Any]]:
        """Topic name -> its publisher."""
        return self._publishers

    @property
    def stopped(self) -> bool:
        """True once a stop was requested."""
        return self._stop is not None and self._stop.requested

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``, less when a stop is requested; True when one is."""
        if self._stop is None:
            time.sleep(seconds)
            return False
        return self._stop.wait(seconds)

    def wait_for_subscribers(self) -> None:
        """Hold until every ``wait_for`` topic has a subscriber (BagError after the timeout)."""
        end = time.monotonic() + self._options.wait_timeout
        for name in self._options.wait_for:
            publisher = self._clock_pub if name == "/clock" else self._publishers.get(name)
            if publisher is None:
                raise BagError(f"--wait-for {name}: no such topic is played")
            while publisher.get_subscription_count() == 0:
                if time.monotonic() > end:
                    raise BagError(f"--wait-for {name}: no subscriber within "
                                   f"{self._options.wait_timeout} s")
                if self._pause(0.02):
                    return

    def _publish_clock(self, bag_ns: int) -> None:
        if self._clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(bag_ns, 10**9)
            self._clock_pub.publish(msg)

    def _messages(self) -> Iterator[BagMessage]:
        start = self._reader.start_ns + round(self._options.start_offset * 1e9)
        return self._reader.messages([t.name for t in self._topics], start_ns=start)

    def _sleep_until(self, wall: float, wall0: float, bag0: int) -> bool:
        """Sleep until ``wall`` (perf_counter s), publishing /clock at the clock rate.

        Returns:
            True when a stop was requested (at once).
        """
        period = 1.0 / self._options.clock_rate
        rate = self._options.rate
        while (left := wall - time.perf_counter()) > 0.0:
            if self._pause(min(left, period, _MAX_SLEEP_S)):
                return True
            if self._clock_pub is not None and time.perf_counter() < wall:
                self._publish_clock(bag0 + round((time.perf_counter() - wall0) * rate * 1e9))
        return self.stopped

    def play_once(self) -> int:
        """Publish the bag (from the start offset) once, or until a stop request.

        Returns:
            The messages published.
        """
        rate = self._options.rate
        wall0: float | None = None
        bag0 = 0
        count = 0
        for message in self._messages():
            if wall0 is None:
                wall0, bag0 = time.perf_counter(), message.timestamp
            if self._sleep_until(wall0 + (message.timestamp - bag0) * 1e-9 / rate, wall0, bag0):
                break
            self._publish_clock(message.timestamp)
            self._publishers[message.topic].publish(message.data)   # raw CDR, as recorded
            count += 1
        self.published += count
        return count

    def play(self) -> None:
        """Wait for subscribers and the delay, then play once or, with ``loop``, forever.

        Returns early, without an error, when a stop is requested.
        """
        self.wait_for_subscribers()
        if self.stopped or (self._options.delay > 0.0 and self._pause(self._options.delay)):
            return
        while True:
            played = self.play_once()
            if self.stopped:
                return
            if played == 0:
                raise BagError(f"{self._reader.path}: nothing to play after the start offset "
                               f"{self._options.start_offset} s")
            self.loops += 1
            if not self._options.loop:
                break

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until reliable subscribers have acknowledged everything published.

        Gives up after ``timeout`` s, or at once when a stop is requested.
        """
        end = time.monotonic() + timeout
        for publisher in self._publishers.values():
            while not self.stopped and (left := end - time.monotonic()) > 0.0:
                step = min(left, _ACK_SLICE_S)
                if publisher.wait_for_all_acked(Duration(nanoseconds=int(step * 1e9))):
                    break


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="play_bag", description=__doc__.splitlines()[0])
    parser.add_argument("bag", type=Path, help="bag folder or .mcap/.db3 file")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--loop", action="store_true", help="play again and again")
    parser.add_argument("--start-offset", type=float, default=0.0,
                        help="start this many seconds into the bag")
    parser.add_argument("--topics", nargs="+", default=[], help="play only these topics")
    parser.add_argument("--clock", action=argparse.BooleanOptionalAction, default=True,
                        help="publish /clock with the bag's time (for use_sim_time)")
    parser.add_argument("--clock-rate", type=float, default=100.0,
                        help="/clock messages per second between bag messages")
    parser.add_argument("--qos-reliability", choices=tuple(_RELIABILITY),
                        help="offer this reliability on every topic")
    parser.add_argument("--qos-durability", choices=tuple(_DURABILITY),
                        help="offer this durability on every topic")
    parser.add_argument("--qos-depth", type=int, default=100, help="keep-last depth")
    parser.add_argument("--qos-overrides", type=Path,
                        help="per-topic QoS YAML (rosbag2's qos-profile-overrides form)")
    parser.add_argument("--wait-for", nargs="+", default=[], metavar="TOPIC",
                        help="start once these topics have a subscriber")
    parser.add_argument("--wait-timeout", type=float, default=30.0,
                        help="seconds --wait-for waits before giving up")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds to wait before playing (discovery)")
    return parser.parse_args(argv)


def _options(args: argparse.Namespace) -> PlayOptions:
    if args.qos_depth < 1:
        raise ConfigError("--qos-depth must be >= 1")
    return PlayOptions(
        rate=args.rate, loop=args.loop, start_offset=args.start_offset, topics=args.topics,
        clock=args.clock, clock_rate=args.clock_rate,
        qos=QosOverride(args.qos_reliability, args.qos_durability),
        qos_per_topic=load_qos_overrides(args.qos_overrides) if args.qos_overrides else None,
        depth=args.qos_depth, wait_for=args.wait_for, wait_timeout=args.wait_timeout,
        delay=args.delay)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 done or stopped, 1 bad bag or options)."""
    all_args = list(sys.argv[1:] if argv is None else argv)
    ros_args = all_args[all_args.index("--ros-args"):] if "--ros-args" in all_args else []
    args = _parse(all_args[: len(all_args) - len(ros_args)])
    with stop_signals() as stop:
        # rclpy's own signal handlers stay out: a stop ends the loops here, and the context
        # lives until the node is destroyed, so no publish races a context shut down under it.
        context = Context()
        rclpy.init(args=["play_bag", *ros_args], context=context,
                   signal_handler_options=SignalHandlerOptions.NO)
        node: Node | None = None
        try:
            options = _options(args)
            node = Node("bag_player", context=context)
            with BagReader(args.bag) as reader:
                player = BagPlayer(node, reader, options, stop=stop)
                print(f"playing {args.bag}: {len(player.publishers)} topics, "
                      f"{reader.duration_ns * 1e-9:.2f} s at rate {options.rate:g}"
                      f"{', looping' if options.loop else ''}", file=sys.stderr)
                player.play()
                player.flush()
                print(f"{'stopped after' if player.stopped else 'played'} {player.published} "
                      "messages", file=sys.stderr)
        except (OpticalFlowError, ValueError) as err:
            print(f"play_bag: error: {err}", file=sys.stderr)
            return 1
        finally:
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown(context=context)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_program(main))
