"""tracker_node's MAVLink link: the flow as an autopilot's optical-flow sensor (PX4, ArduPilot).

No rclpy here: the node feeds :meth:`MavlinkOutput.send` once per processed frame and, from a
1 Hz timer, calls :meth:`MavlinkOutput.heartbeat` and reads :meth:`MavlinkOutput.events` (lines
to log) and :meth:`MavlinkOutput.counts` (for /diagnostics).

The link is a pymavlink connection (``mavutil.mavlink_connection``) opened from
``mavlink_url``: ``udpout:HOST:PORT`` (send to the autopilot or a router), ``udpin:HOST:PORT``
(listen; replies go to whoever sent last, e.g. mavlink-router), ``udp:HOST:PORT`` (the same as
udpin, pymavlink's legacy form), ``tcp:HOST:PORT`` (connect), or a serial device
``/dev/ttyACM0[,BAUD]`` (default 115200). Messages are MAVLink 2 of the ``common`` dialect,
encoded with pymavlink's generated code and a sequence number per link.

All I/O runs in one background thread, so a callback never waits on a socket or a serial
port and never sees an exception: frames are encoded in the caller's thread and queued (a
full queue drops the oldest; ``mavlink_dropped``). The thread opens the link (a failure is
counted, ``mavlink_connect_failures``, and retried after 0.5 s, doubling up to 8 s), writes
each message (a failed write, ``mavlink_send_errors``, closes the link and reopens it the same
way) and reads and discards what the autopilot sends (udpin learns its peer from it; a TCP
peer that closes is a send error). pymavlink's own ``write`` swallows socket errors and its
TCP connect sleeps between retries, so the writes go to the connection's port here, where
errors can be counted.
"""

from __future__ import annotations

import collections
import errno
import math
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from optical_flow_ros.core.config_fields import setting, validate_fields
from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.core.flow_sensor import FlowMeasurement, SensorFields, sensor_fields

__all__ = ["MESSAGE_CHOICES", "Endpoint", "MavlinkConfig", "MavlinkOutput", "parse_mavlink_url"]

MESSAGE_CHOICES = ("optical_flow_rad", "optical_flow", "both")
DEFAULT_BAUD = 115200
_QUEUE = 64                      # messages waiting for the link at most
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 8.0
_IDLE_WAIT_S = 0.05              # the thread's longest sleep when there is nothing to send
_MAV_TYPE_ONBOARD_CONTROLLER = 18
_MAV_AUTOPILOT_INVALID = 8
_MAV_STATE_ACTIVE = 4


class Endpoint(NamedTuple):
    """A parsed ``mavlink_url``.

    Attributes:
        kind: ``udpout``, ``udpin``, ``tcp`` or ``serial``.
        host: host name or address (udp/tcp), "" for serial.
        port: port (udp/tcp), 0 for serial.
        device: serial device path, "" otherwise.
        baud: serial baud rate, 0 otherwise.
    """

    kind: str
    host: str = ""
    port: int = 0
    device: str = ""
    baud: int = 0

    @property
    def url(self) -> str:
        """The connection string pymavlink opens."""
        if self.kind == "serial":
            return self.device
        return f"{self.kind}:{self.host}:{self.port}"


def parse_mavlink_url(url: str) -> Endpoint:
    """Parse a ``mavlink_url`` (see the module docstring); raises ConfigError with the reason."""
    text = url.strip()
    for prefix, kind in (("udpout:", "udpout"), ("udpin:", "udpin"), ("udp:", "udpin"),
                         ("tcp:", "tcp")):
        if text.startswith(prefix):
            host, sep, port = text[len(prefix):].rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"mavlink_url: {url!r} is not {prefix}HOST:PORT with a port "
                                  f"in 1..65535")
            return Endpoint(kind, host=host, port=int(port))
    if text.startswith("/"):
        device, sep, baud = text.partition(",")
        if sep and not (baud.isdigit() and int(baud) > 0):
            raise ConfigError(f"mavlink_url: {url!r}: the baud rate after ',' must be a "
                              f"positive integer")
        return Endpoint("serial", device=device, baud=int(baud) if sep else DEFAULT_BAUD)
    raise ConfigError(f"mavlink_url: {url!r} is not a supported connection: udpout:HOST:PORT, "
                      f"udpin:HOST:PORT, udp:HOST:PORT, tcp:HOST:PORT or a serial device "
                      f"/dev/...[,BAUD]; empty = no MAVLink output")


@dataclass(frozen=True)
class MavlinkConfig:
    """tracker_node's MAVLink output (see the README section on PX4 / ArduPilot)."""

    mavlink_url: str = setting(
        "", "MAVLink output of the flow as an optical-flow sensor: udpout:HOST:PORT, "
        "udpin:HOST:PORT, tcp:HOST:PORT or a serial device /dev/...[,BAUD]; empty = off")
    mavlink_messages: str = setting(
        "optical_flow_rad", "Messages per frame: optical_flow_rad (id 106, PX4), optical_flow "
        "(id 100, ArduPilot) or both", choices=MESSAGE_CHOICES)
    mavlink_system_id: int = setting(
        1, "MAVLink system id of this component (the vehicle's)", range=(1, 255))
    mavlink_component_id: int = setting(
        191, "MAVLink component id (191 = MAV_COMP_ID_ONBOARD_COMPUTER)", range=(1, 255))
    mavlink_sensor_id: int = setting(0, "sensor_id of the flow and distance messages",
                                     range=(0, 255))
    mavlink_sensor_yaw: float = setting(
        0.0, "Mounting yaw of the camera on the vehicle (the flow is rotated by Rz(yaw) from "
        "the optical frame, as PX4's SENS_FLOW_ROT and ArduPilot's FLOW_ORIENT_YAW do; leave "
        "those at 0): 90 = image top towards the nose, 0 = image top to the left, deg",
        range=(-360.0, 360.0))
    mavlink_distance_sensor: bool = setting(
        False, "Also send DISTANCE_SENSOR (id 132, downward) from each range reading")

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.mavlink_url:
            parse_mavlink_url(self.mavlink_url)

    @property
    def enabled(self) -> bool:
        """True when a link is configured."""
        return bool(self.mavlink_url)


class _Link:
    """An open pymavlink connection, written and read on its own port (errors raise)."""

    def __init__(self, endpoint: Endpoint, source_system: int, source_component: int) -> None:
        from pymavlink import mavutil

        self.endpoint = endpoint
        self._peer: Any = None
        if endpoint.kind == "udpout":    # resolve once: an unknown host is an open failure
            self._peer = socket.getaddrinfo(endpoint.host, endpoint.port, socket.AF_INET,
                                            socket.SOCK_DGRAM)[0][4]
        if endpoint.kind == "serial":
            import serial  # noqa: F401  (pymavlink opens serial ports with pyserial)
        self.conn = mavutil.mavlink_connection(
            endpoint.url, baud=endpoint.baud or DEFAULT_BAUD, source_system=source_system,
            source_component=source_component, retries=0, autoreconnect=False)

    def write(self, buf: bytes) -> bool:
        """Send one encoded message; False when there is nobody to send to yet (udpin)."""
        port = self.conn.port
        if self.endpoint.kind == "udpout":
            port.sendto(buf, self._peer)
        elif self.endpoint.kind == "udpin":
            if self._peer is None:
                return False
            port.sendto(buf, self._peer)
        elif self.endpoint.kind == "tcp":
            if port.send(buf) != len(buf):
                raise OSError(errno.EAGAIN, "TCP send buffer full")
        else:
            port.write(buf)
        return True

    def drain(self) -> None:
        """Read and drop what the other end sent (udpin: remember it as the peer)."""
        port = self.conn.port
        if self.endpoint.kind == "serial":
            waiting = port.in_waiting
            if waiting:
                port.read(waiting)
            return
        while True:
            try:
                if self.endpoint.kind == "tcp":
                    data = port.recv(4096)
                    if not data:
                        raise ConnectionError("TCP connection closed by the peer")
                else:
                    data, address = port.recvfrom(65535)
                    if self.endpoint.kind == "udpin":
                        self._peer = address
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:   # an ICMP port unreachable of an earlier datagram
                if self.endpoint.kind == "tcp":
                    raise
                return

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:   # noqa: BLE001  (closing a broken port must not stop the thread)
            pass


class MavlinkOutput:
    """Owns the MAVLink link; :meth:`send` and :meth:`tick` never block and never raise.

    Args:
        config: the link and message settings (``config.enabled`` must be True).
        clock: monotonic seconds (for the retry delays and DISTANCE_SENSOR's ms).

    Raises:
        ConfigError: pymavlink is not installed (the message says how to install it).
    """

    def __init__(self, config: MavlinkConfig, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        try:
            from pymavlink.dialects.v20 import common
        except ModuleNotFoundError as err:
            raise ConfigError(
                "mavlink_url: the MAVLink output needs the Python package 'pymavlink', which "
                "is not installed; install it with: python3 -m pip install pymavlink (rosdep "
                "key python3-pymavlink-pip)") from err

        self._config = config
        self._endpoint = parse_mavlink_url(config.mavlink_url)
        self._clock = clock
        self._started_at = clock()
        self._mavlink = common
        self._encoder = common.MAVLink(None, srcSystem=config.mavlink_system_id,
                                       srcComponent=config.mavlink_component_id)
        self._lock = threading.RLock()
        self._queue: collections.deque[bytes] = collections.deque(maxlen=_QUEUE)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._counters: collections.Counter[str] = collections.Counter()
        self._events: collections.deque[tuple[str, str]] = collections.deque(maxlen=16)
        self._connected = False
        self._last_error = ""
        self._thread = threading.Thread(target=self._run, name="mavlink_output", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> Endpoint:
        """Where the messages go."""
        return self._endpoint

    @property
    def connected(self) -> bool:
        """Whether the link is open now."""
        return self._connected

    @property
    def last_error(self) -> str:
        """The latest open or write error ("" if none yet)."""
        return self._last_error

    # ----- caller's thread ---------------------------------------------------------------

    def send(self, measurement: FlowMeasurement, *,
             focal_px: float = math.nan) -> SensorFields | None:
        """Queue the configured messages of one frame; returns the fields (None if unencodable).

        A field that MAVLink cannot carry (e.g. a negative stamp) is counted
        (``mavlink_encode_errors``) and the frame skipped.
        """
        try:
            return self._send(measurement, focal_px)
        except (struct.error, ValueError, OverflowError) as err:
            self._failed("mavlink_encode_errors", f"{type(err).__name__}: {err}",
                         first=self.counts()["mavlink_encode_errors"] == 0)
            return None

    def _send(self, measurement: FlowMeasurement, focal_px: float) -> SensorFields:
        cfg = self._config
        fields = sensor_fields(measurement, yaw_deg=cfg.mavlink_sensor_yaw,
                               sensor_id=cfg.mavlink_sensor_id, focal_px=focal_px,
                               time_boot_ms=int((self._clock() - self._started_at) * 1e3))
        messages = []
        if cfg.mavlink_messages in ("optical_flow_rad", "both"):
            messages.append(self._mavlink.MAVLink_optical_flow_rad_message(
                **_as_dict(fields.flow_rad)))
        if cfg.mavlink_messages in ("optical_flow", "both"):
            messages.append(self._mavlink.MAVLink_optical_flow_message(**_as_dict(fields.flow)))
        if cfg.mavlink_distance_sensor and fields.distance_sensor is not None:
            messages.append(self._mavlink.MAVLink_distance_sensor_message(
                **_as_dict(fields.distance_sensor), horizontal_fov=0.0, vertical_fov=0.0,
                quaternion=[0.0, 0.0, 0.0, 0.0], signal_quality=0))
        self._enqueue(messages)
        return fields

    def heartbeat(self) -> None:
        """Queue a HEARTBEAT (onboard controller, no autopilot, active)."""
        self._enqueue([self._mavlink.MAVLink_heartbeat_message(
            type=_MAV_TYPE_ONBOARD_CONTROLLER, autopilot=_MAV_AUTOPILOT_INVALID, base_mode=0,
            custom_mode=0, system_status=_MAV_STATE_ACTIVE, mavlink_version=3)])

    def counts(self) -> collections.Counter[str]:
        """A copy of the counters.

        ``mavlink_messages_sent``, ``mavlink_send_errors``, ``mavlink_connect_failures``,
        ``mavlink_dropped``, ``mavlink_no_peer``, ``mavlink_encode_errors``.
        """
        with self._lock:
            return collections.Counter(self._counters)

    def events(self) -> list[tuple[str, str]]:
        """(level ``error`` | ``info``, line) of what happened since the last call."""
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread (waiting up to ``timeout`` s) and close the link."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _enqueue(self, messages: list[Any]) -> None:
        with self._lock:
            encoded = []
            for message in messages:     # all or nothing: one bad field skips the frame
                encoded.append(message.pack(self._encoder))
                self._encoder.seq = (self._encoder.seq + 1) % 256
            for buf in encoded:
                if len(self._queue) == self._queue.maxlen:
                    self._counters["mavlink_dropped"] += 1
                self._queue.append(buf)
        self._wake.set()

    # ----- the link's thread -------------------------------------------------------------

    def _run(self) -> None:
        link: _Link | None = None
        retry_at, delay = 0.0, _RETRY_FIRST_S
        failures_in_a_row = 0
        while not self._stop.is_set():
            self._wake.wait(_IDLE_WAIT_S)
            self._wake.clear()
            if link is None and self._clock() >= retry_at:
                link, error = self._open()
                if link is None:
                    failures_in_a_row += 1
                    self._failed("mavlink_connect_failures", error,
                                 first=failures_in_a_row == 1)
                    retry_at, delay = self._clock() + delay, min(2.0 * delay, _RETRY_MAX_S)
                else:
                    if failures_in_a_row:
                        self._event("info", f"MAVLink: {self._endpoint.url} open again after "
                                            f"{failures_in_a_row} failed attempts")
                    failures_in_a_row, delay = 0, _RETRY_FIRST_S
            if link is None:
                self._discard_queue()
                continue
            try:
                link.drain()
                self._write_queue(link)
            except (OSError, ValueError) as err:   # socket, serial (SerialException: OSError)
                link.close()
                link = None
                self._connected = False
                failures_in_a_row += 1
                self._failed("mavlink_send_errors", f"{type(err).__name__}: {err}",
                             first=failures_in_a_row == 1)
                retry_at, delay = self._clock() + delay, min(2.0 * delay, _RETRY_MAX_S)
        if link is not None:
            link.close()
        self._connected = False

    def _open(self) -> tuple[_Link | None, str]:
        cfg = self._config
        try:
            link = _Link(self._endpoint, cfg.mavlink_system_id, cfg.mavlink_component_id)
        except (OSError, ValueError) as err:
            return None, f"{type(err).__name__}: {err}"
        self._connected = True
        return link, ""

    def _write_queue(self, link: _Link) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                buf = self._queue[0]
            sent = link.write(buf)
            with self._lock:
                self._counters["mavlink_messages_sent" if sent else "mavlink_no_peer"] += 1
                if self._queue and self._queue[0] is buf:
                    self._queue.popleft()

    def _discard_queue(self) -> None:
        with self._lock:
            self._counters["mavlink_dropped"] += len(self._queue)
            self._queue.clear()

    def _failed(self, counter: str, error: str, *, first: bool) -> None:
        with self._lock:
            self._counters[counter] += 1
        self._last_error = error
        if first:
            self._event("error", f"MAVLink: {self._endpoint.url}: {error}; retrying "
                                 f"(counted in /diagnostics as {counter})")

    def _event(self, level: str, line: str) -> None:
        with self._lock:
            self._events.append((level, line))


def _as_dict(fields: Any) -> dict[str, Any]:
    return {name: getattr(fields, name) for name in fields.__dataclass_fields__}
