"""Subscriptions that the node drains itself instead of the executor waking for each message.

rclpy's Python executors rebuild their wait set for every message they hand to a callback:
every subscription, service, timer and QoS event handler of the node is walked in Python,
and each callback re-triggers the executor's guard condition, which costs one more wait.
For tracker_node that is ~0.6-0.9 ms of CPU per message (measured: a 1 kHz IMU alone kept
88 % of a core busy with ``spin_once(timeout_sec=0.1)``, of which the callback itself was
5 %). The sensor inputs that only feed a cache (camera_info, range, imu) therefore sit in a
callback group the executor never waits on, :class:`PolledGroup`; the node takes all their
queued messages at once with :meth:`PolledSubscription.poll` (at each frame and from a
50 ms timer), each for ~3 us (raw) or the message's deserialisation.

An executor that does not ask callback groups (rclpy.experimental.EventsExecutor) still runs
the callback for each message as it arrives; both paths call the same callback, so either
way every message is handed to it exactly once, in arrival order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile

__all__ = ["PolledGroup", "PolledSubscription"]


class PolledGroup(CallbackGroup):
    """A callback group whose entities the executor never waits on nor runs.

    Its subscriptions keep receiving into their DDS queues (keep-last depth); the owner takes
    the messages with :meth:`PolledSubscription.poll`.
    """

    def can_execute(self, entity: Any) -> bool:
        """Never: the executor leaves these entities out of its wait set."""
        return False

    def beginning_execution(self, entity: Any) -> bool:
        """Never granted (the executor does not get this far for these entities)."""
        return False

    def ending_execution(self, entity: Any) -> None:
        """Nothing to release."""


class PolledSubscription:
    """A subscription drained by :meth:`poll`, not by the executor.

    Args:
        node: the owning node.
        msg_type: the message type.
        topic: the topic (relative names resolve in the node's namespace).
        callback: called with each message (its CDR bytes when ``raw``), oldest first.
        qos: the subscription's QoS; its keep-last depth must hold what arrives between two
            polls.
        group: the callback group shared by the node's polled inputs.
        raw: hand over the serialised message (bytes) instead of deserialising it.
    """

    def __init__(self, node: Node, msg_type: Any, topic: str, callback: Callable[[Any], None],
                 qos: QoSProfile, group: PolledGroup, *, raw: bool = False) -> None:
        self.subscription = node.create_subscription(msg_type, topic, callback, qos,
                                                     callback_group=group, raw=raw)

    def poll(self) -> int:
        """Take every message queued now and hand each to the callback; how many there were."""
        sub = self.subscription
        callback = sub.callback   # the subscription's own (a wrapper set on it is honoured)
        msg_type, raw = sub.msg_type, sub.raw
        taken = 0
        with sub.handle:
            take = sub.handle.take_message
            while (got := take(msg_type, raw)) is not None:
                callback(got[0])
                taken += 1
        return taken
