"""Hold a stream until its consumers are connected (``wait_for_subscribers``).

A node that plays something finite (a video file) or something that starts from t = 0 (the
simulated flight) loses its first messages to every consumer that is not matched yet. Between
two processes on one machine DDS discovery usually takes well under a second, but it can
take a full participant-announcement period (Fast DDS: 3 s; measured here: a consumer matched
3.5 s after the publisher's process started in 5 of 6 tries while the machine was loaded).
A gate keeps the stream's first frame (and the clock its stamps count from) until the
publisher has the wanted number of matched subscriptions; after that it stays open, whoever
comes or goes.
"""

from __future__ import annotations

from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.publisher import Publisher

__all__ = ["SubscriberGate"]


class SubscriberGate:
    """Opens once ``publisher`` has ``count`` matched subscriptions, then stays open.

    Args:
        publisher: the stream's main publisher (e.g. ``image``).
        count: matched subscriptions to wait for; 0 = open from the start.
        logger: where the wait and the start are announced (one line each).
    """

    def __init__(self, publisher: Publisher, count: int, logger: RcutilsLogger) -> None:
        self._publisher, self._count, self._logger = publisher, count, logger
        self._open = count <= 0
        if not self._open:
            logger.info(f"waiting for {count} subscriber(s) on {publisher.topic_name} "
                        "before the first frame (wait_for_subscribers)")

    def is_open(self) -> bool:
        """True from the first call at which enough subscriptions are matched on."""
        if not self._open:
            matched = self._publisher.get_subscription_count()
            if matched >= self._count:
                self._open = True
                self._logger.info(f"{matched} subscriber(s) on {self._publisher.topic_name}: "
                                  "starting")
        return self._open
