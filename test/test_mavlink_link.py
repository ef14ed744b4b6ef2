"""The MAVLink link of tracker_node in this process, over real sockets on 127.0.0.1 (no DDS)."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.core.flow_sensor import FlowMeasurement
from optical_flow_ros.ros.mavlink_output import (
    Endpoint,
    MavlinkConfig,
    MavlinkOutput,
    parse_mavlink_url,
)

pytest.importorskip("pymavlink")
from pymavlink.dialects.v20 import common  # noqa: E402


@pytest.mark.parametrize(("url", "endpoint"), [
    ("udpout:127.0.0.1:14550", Endpoint("udpout", "127.0.0.1", 14550)),
    ("udpin:0.0.0.0:14540", Endpoint("udpin", "0.0.0.0", 14540)),
    ("udp:localhost:14540", Endpoint("udpin", "localhost", 14540)),
    ("tcp:192.168.1.2:5760", Endpoint("tcp", "192.168.1.2", 5760)),
    ("/dev/ttyACM0", Endpoint("serial", device="/dev/ttyACM0", baud=115200)),
    ("/dev/serial/by-id/usb-Pixhawk,921600", Endpoint("serial", device="/dev/serial/by-id/"
                                                                "usb-Pixhawk", baud=921600)),
])
def test_urls_parse_as_pymavlink_reads_them(url, endpoint):
    assert parse_mavlink_url(url) == endpoint


@pytest.mark.parametrize("url", ["udpout:127.0.0.1", "udpout::14550", "tcp:host:0",
                                 "tcp:host:70000", "udpin:host:port", "serial:/dev/ttyS0",
                                 "/dev/ttyS0,", "/dev/ttyS0,-5", "COM3", "tcpin:0.0.0.0:5760",
                                 "flow.tlog"])
def test_bad_urls_are_refused_naming_the_parameter(url):
    with pytest.raises(ConfigError, match="^mavlink_url: "):
        MavlinkConfig(mavlink_url=url)


def _measurement(time_usec: int = 1_000_000) -> FlowMeasurement:
    return FlowMeasurement(time_usec=time_usec, interval=0.05, flow_rate=np.array([0.1, -0.2]),
                           angular=np.zeros(3), n_inliers=80, n_tracks=100)


def _receive(sock: socket.socket, decoder, wanted: int, timeout: float = 5.0) -> list:
    got: list = []
    sock.settimeout(0.2)
    end = time.monotonic() + timeout
    while len(got) < wanted and time.monotonic() < end:
        try:
            got += decoder.parse_buffer(sock.recv(65535)) or []
        except TimeoutError:
            pass
    return got


def test_udpin_answers_the_peer_that_spoke_and_counts_what_it_could_not_send():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    link = MavlinkOutput(MavlinkConfig(mavlink_url=f"udpin:127.0.0.1:{port}",
                                       mavlink_system_id=9, mavlink_component_id=191))
    autopilot = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    autopilot.bind(("127.0.0.1", 0))
    try:
        link.heartbeat()                                   # nobody has spoken yet
        deadline = time.monotonic() + 5.0
        while not link.counts()["mavlink_no_peer"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert link.counts()["mavlink_no_peer"] == 1 and link.connected
        ping = common.MAVLink(None, srcSystem=1, srcComponent=1)
        autopilot.sendto(ping.heartbeat_encode(2, 12, 0, 0, 4).pack(ping), ("127.0.0.1", port))
        time.sleep(0.2)
        for k in range(3):
            link.send(_measurement(1_000_000 + 50_000 * k))
        got = _receive(autopilot, common.MAVLink(None), 3)
    finally:
        link.close()
        autopilot.close()
    assert [m.get_type() for m in got] == ["OPTICAL_FLOW_RAD"] * 3
    assert [m.time_usec for m in got] == [1_000_000, 1_050_000, 1_100_000]
    assert [m.get_seq() for m in got] == [1, 2, 3]         # the heartbeat had 0
    assert all((m.get_srcSystem(), m.get_srcComponent()) == (9, 191) for m in got)
    assert got[0].integrated_y == pytest.approx(-0.01, rel=1e-6)
    assert got[0].quality == round(255 * 0.8 * 0.8)   # 80 of 100 tracks, below 100 inliers
    assert link.counts()["mavlink_messages_sent"] == 3


def test_a_frame_mavlink_cannot_carry_is_counted_not_raised():
    link = MavlinkOutput(MavlinkConfig(mavlink_url="udpout:127.0.0.1:9"))
    try:
        assert link.send(_measurement(time_usec=-5)) is None
        assert link.send(_measurement()) is not None
        assert link.counts()["mavlink_encode_errors"] == 1
        assert [level for level, _ in link.events()] == ["error"]
    finally:
        link.close()


def test_a_refused_tcp_connection_is_retried_with_a_growing_delay():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    link = MavlinkOutput(MavlinkConfig(mavlink_url=f"tcp:127.0.0.1:{port}"))
    try:
        time.sleep(1.8)      # attempts at 0, 0.5, 1.5 s (then 3.5 s): 3 failures
        failures = link.counts()["mavlink_connect_failures"]
        assert failures == 3 and not link.connected
        assert "ConnectionRefusedError" in link.last_error
        events = link.events()
        assert len(events) == 1 and events[0][0] == "error" and str(port) in events[0][1]
    finally:
        link.close()
