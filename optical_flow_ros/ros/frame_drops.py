"""Frames lost before a subscription callback, from the publishers' sequence numbers.

Each DDS publisher numbers its messages 1, 2, 3, ...; rclpy hands the number to a callback
that takes a message info (``publication_sequence_number``). A gap between two consecutive
messages of one publisher is the number of messages the callback never saw: overwritten in a
keep-last queue while the node was busy, or lost by best-effort transport. A number that goes
back is a publisher that restarted: the count starts again, nothing is counted.

Where the ROS distros differ: rclpy 9 (Kilted) adds ``publisher_gid`` to the message info, so
the numbers are followed per publisher, however many publish on the topic. rclpy 7 (Jazzy)
has no gid (its keys: source and received timestamps, publication and reception sequence
numbers), so the numbers of two publishers cannot be told apart: there a gap is counted only
while exactly one publisher is matched on the topic (asked of the ROS graph at each message,
~7 us); with several publishers on Jazzy, dropped frames are not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["DropCounter"]

_NO_GID = b""


class DropCounter:
    """Counts the messages a subscription missed, from each message's info.

    Args:
        publisher_count: how many publishers the topic has now (``Node.count_publishers``);
            consulted only for infos without a publisher gid (Jazzy).
    """

    def __init__(self, publisher_count: Callable[[], int]) -> None:
        self._publisher_count = publisher_count
        self._last_seq: dict[bytes, int] = {}

    def missed(self, info: Mapping[str, object]) -> int:
        """Messages missed just before the one ``info`` describes (0 when unknown).

        Args:
            info: the message info rclpy passes to a subscription callback (a mapping with
                ``publication_sequence_number`` and, on Kilted, ``publisher_gid``).
        """
        seq = info.get("publication_sequence_number")
        if not isinstance(seq, int) or seq <= 0:  # None or 0: the RMW does not say
            return 0
        gid = info.get("publisher_gid")
        if gid is not None:
            key = bytes(gid["data"]) if isinstance(gid, Mapping) else bytes(gid)
        elif self._publisher_count() == 1:
            key = _NO_GID
        else:  # Jazzy with several publishers: their numbers interleave, nothing to count
            self._last_seq.pop(_NO_GID, None)
            return 0
        last = self._last_seq.get(key)
        self._last_seq[key] = seq
        return seq - last - 1 if last is not None and seq > last + 1 else 0
