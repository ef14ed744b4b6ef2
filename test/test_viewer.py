"""The ``view`` command: its window on a virtual X display shows what the nodes publish, and
its keys (sent with xdotool) switch dense_flow_node's outputs, save snapshots and quit.

Xvfb and xdotool are Debian's (``scripts/setup_env.sh`` installs them when run as root); the
screenshots are Pillow's X grab (XCB, in Pillow's wheel).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import cv2
import ground_truth as gt
import numpy as np
import pytest
from rcl_interfaces.srv import GetParameters
from rclpy.node import Node
from ros_harness import REPO, NodeProcess
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from optical_flow_ros.core.flow_drawing import draw_hsv
from optical_flow_ros.core.view_scale import robust_magnitude
from optical_flow_ros.ros.fastdds_profile import PROFILE_VARIABLES
from optical_flow_ros.ros.image_messages import (
    array_to_compressed_msg,
    array_to_image_msg,
    image_msg_to_array,
)
from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.tools.viewer_node import (
    ANSWER_TIMEOUT_S,
    DENSE_OUTPUTS,
    FeedStatus,
    ImageFeed,
    ViewerNode,
    to_display,
)
from optical_flow_ros.tools.viewer_window import (
    PLACEHOLDER_SHAPE,
    STATUS_HEIGHT,
    PanelView,
    compose,
)

XVFB, XDOTOOL = shutil.which("Xvfb"), shutil.which("xdotool")
needs_x = pytest.mark.skipif(
    not (XVFB and XDOTOOL),
    reason="Xvfb or xdotool not installed (scripts/setup_env.sh installs Debian's xvfb and "
           "xdotool when run as root)")

SHAPE = (240, 320)
FRAMES_SENT = 120   # sim_camera_node frames in the every-frame test


@pytest.fixture
def xvfb() -> Iterator[str]:
    """A virtual X display on a free number (Xvfb picks it: -displayfd)."""
    proc = subprocess.Popen([XVFB, "-displayfd", "1", "-screen", "0", "1280x720x24",
                             "-nolisten", "tcp"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        number = proc.stdout.readline().strip() if ready else ""
        assert number.isdigit(), "Xvfb did not start"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def _xdotool(display: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([XDOTOOL, *args], env=dict(os.environ, DISPLAY=display),
                          capture_output=True, text=True, timeout=10)


def _geometry(display: str, window: str) -> tuple[int, int, int, int] | None:
    """x, y, width, height of an X window (no window manager: x, y are on the root); None
    when the window is gone."""
    shell = _xdotool(display, "getwindowgeometry", "--shell", window).stdout
    g = dict(line.split("=", 1) for line in shell.split() if "=" in line)
    if not {"X", "Y", "WIDTH", "HEIGHT"} <= g.keys():
        return None
    return int(g["X"]), int(g["Y"]), int(g["WIDTH"]), int(g["HEIGHT"])


def _settled_window(display: str, pid: int, timeout: float = 20.0) -> tuple[int, int, int, int]:
    """Geometry of the X window of process ``pid`` once window and geometry held for 0.3 s.

    pygame re-creates or resizes the window when the layout changes (a panel comes or goes);
    a key pressed meanwhile can be lost, and a window found may be gone when asked its size.
    """
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        ids = _xdotool(display, "search", "--pid", str(pid)).stdout.split()
        now = (ids[-1], _geometry(display, ids[-1])) if ids else None
        if now is not None and now[1] is not None and now == last:
            return now[1]
        last = now
        time.sleep(0.3)
    raise AssertionError(f"no settled window of pid {pid}")


def _press(display: str, pid: int, key: str) -> None:
    """Press ``key`` as a user would (XTEST) with the pointer on the viewer's window.

    Not ``key --window``: that fails when the window is re-created between search and
    press. The viewer's window stays centred on the screen, so its centre stays on it across
    re-creations.
    """
    x, y, w, h = _settled_window(display, pid)
    result = _xdotool(display, "mousemove", str(x + w // 2), str(y + h // 2), "key", key)
    assert result.returncode == 0, result.stderr


def _press_until_said(display: str, viewer: NodeProcess, key: str, said: str) -> None:
    """Press ``key`` until the viewer logs ``said`` once more (it answers a key at once).

    A key the X server delivers while pygame re-creates the window is lost (seen under load
    right after a panel came); a press is repeated only when the one before was not taken
    within 5 s, so no key acts twice.
    """
    for _ in range(3):
        before = viewer.output().count(said)
        _press(display, viewer.proc.pid, key)
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            if viewer.output().count(said) > before:
                return
            time.sleep(0.1)
    raise AssertionError(f"key {key!r} not taken: {viewer.output()}")


def _screenshot(display: str, pid: int) -> np.ndarray:
    """The viewer's window as BGR pixels, grabbed from the X server."""
    from PIL import ImageGrab

    x, y, w, h = _settled_window(display, pid)
    shot = ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=display)
    return np.asarray(shot.convert("RGB"))[..., ::-1]


def _frames(n: int) -> list[np.ndarray]:
    """Rotating and zooming texture: the HSV view has every hue, nothing uniform."""
    base = gt.texture("gravel", SHAPE)
    centre = (SHAPE[1] / 2, SHAPE[0] / 2)
    return [gt.render(base, gt.similarity(0, 0, 0.04 * i, 1.0 + 0.02 * i, centre), SHAPE)
            for i in range(n)]


def _dense_params(peer, client) -> dict[str, bool]:
    future = client.call_async(GetParameters.Request(names=["publish_hsv", "publish_warp"]))
    assert peer.spin_until(future.done, 10.0)
    hsv, warp = future.result().values
    return {"publish_hsv": hsv.bool_value, "publish_warp": warp.bool_value}


@pytest.mark.dds
@needs_x
def test_window_shows_the_published_view_and_keys_act(ros_peer, xvfb, tmp_path, monkeypatch):
    snaps = tmp_path / "snaps"
    hsv: list[Image] = []
    node = ros_peer.node
    pub = node.create_publisher(Image, "image", keep_last_qos("reliable", 10))
    hsv_sub = node.create_subscription(Image, "flow/dense/hsv", hsv.append,
                                       keep_last_qos("reliable", 10))
    params = node.create_client(GetParameters, "/dense_flow_node/get_parameters")
    with NodeProcess("optical_flow_ros.nodes.dense_flow_node",
                     params={"hsv_scale_mode": "fixed", "hsv_scale": 25.0}) as dense:
        with monkeypatch.context() as env:  # DISPLAY for the viewer process only
            env.setenv("DISPLAY", xvfb)
            viewer = NodeProcess("optical_flow_ros.tools.viewer",
                                 args=["--snapshot-dir", str(snaps)])
        with viewer:
            # No topics given: flow/image, plus flow/dense/hsv once the dense node answers.
            assert ros_peer.spin_until(lambda: node.count_subscribers("/flow/dense/hsv") >= 2,
                                       25.0), viewer.output() + dense.output()
            assert node.count_subscribers("/flow/image") == 1, viewer.output()
            assert ros_peer.wait_for_subscriber(pub), dense.output()
            assert ros_peer.wait_for_publisher(hsv_sub), dense.output()  # matched both ways
            for i, frame in enumerate(_frames(4)):
                msg = array_to_image_msg(frame, "mono8")
                msg.header.stamp = node.get_clock().now().to_msg()
                count = len(hsv)
                pub.publish(msg)
                if i == 0:
                    ros_peer.spin_for(0.5)
                else:
                    assert ros_peer.spin_until(lambda c=count: len(hsv) > c, 10.0)
            published = image_msg_to_array(hsv[-1])
            assert published.std() > 20  # a view with structure, so a shifted match fails
            time.sleep(1.0)  # the viewer draws the newest frame

            # Panels left to right: flow/image (no frames: a placeholder), flow/dense/hsv.
            shot = _screenshot(xvfb, viewer.proc.pid)
            x0 = PLACEHOLDER_SHAPE[1]
            shown = shot[:SHAPE[0], x0:x0 + SHAPE[1]]
            assert shown.shape == published.shape, shot.shape
            assert np.abs(shown.astype(int) - published).mean() < 1.0
            assert shot.shape[0] == SHAPE[0] + 2 * STATUS_HEIGHT

            _press_until_said(xvfb, viewer, "s", "saved ")
            stamp = hsv[-1].header.stamp
            saved = snaps / f"flow_dense_hsv_{stamp.sec}_{stamp.nanosec:09d}.png"
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                written = cv2.imread(str(saved)) if saved.exists() else None
                if written is not None:
                    break
                time.sleep(0.1)
            np.testing.assert_array_equal(written, published)

            # Warp on: parameter, and the viewer subscribes.
            _press_until_said(xvfb, viewer, "2", "publish_warp: asking")
            assert ros_peer.spin_until(
                lambda: _dense_params(ros_peer, params)["publish_warp"]
                and node.count_subscribers("/flow/dense/warp") == 1, 15.0), viewer.output()
            # HSV off: parameter, and the viewer leaves.
            _press_until_said(xvfb, viewer, "1", "publish_hsv: asking")
            assert ros_peer.spin_until(
                lambda: not _dense_params(ros_peer, params)["publish_hsv"]
                and node.count_subscribers("/flow/dense/hsv") == 1, 15.0), viewer.output()

            for _ in range(3):  # quit: repeated only while the window is still there
                _press(xvfb, viewer.proc.pid, "Escape")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    viewer.proc.wait(5)
                    break
            assert viewer.proc.wait(15) == 0, viewer.output()
        assert dense.alive(), dense.output()


def test_without_a_display_it_says_so_in_one_line_and_fails():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "optical_flow_ros.tools.viewer"],
                            cwd=REPO, env=dict(env, PYTHONPATH=str(REPO)),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0], result.stderr
    assert result.stdout == ""


def test_compose_puts_images_unscaled_at_the_left_and_shrinks_only_to_fit():
    a = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    b = np.full((100, 200, 3), 77, np.uint8)
    canvas = compose([PanelView(a, "a"), PanelView(b, "b"), PanelView(None, "c")], "footer")
    np.testing.assert_array_equal(canvas[:120, :160], a)
    np.testing.assert_array_equal(canvas[:100, 160:360], b)
    rows = max(120, PLACEHOLDER_SHAPE[0])
    assert canvas.shape == (rows + 2 * STATUS_HEIGHT, 360 + PLACEHOLDER_SHAPE[1], 3)
    assert canvas[rows:].any()  # status lines and footer carry text
    small = compose([PanelView(a, "a")], "f", max_size=(60 + 2 * STATUS_HEIGHT, 1000))
    assert small.shape[0] == 60 + 2 * STATUS_HEIGHT
    np.testing.assert_allclose(small[:60, :80].mean(), cv2.resize(a, (80, 60)).mean(), atol=1)


def test_feed_status_rate_and_latency():
    clock = {"ros": 100.0, "mono": 0.0}
    feed = ImageFeed("/flow/image", lambda: clock["ros"], lambda: clock["mono"])
    for i in range(11):
        msg = array_to_image_msg(np.zeros((4, 4), np.uint8), "mono8")
        msg.header.stamp.sec, msg.header.stamp.nanosec = 99, 980_000_000  # 20 ms old
        clock["mono"] = i * 0.1
        feed.on_message(msg)
    status = feed.status()
    assert status == FeedStatus("/flow/image", pytest.approx(10.0), pytest.approx(20.0), 11)
    assert status.text() == "/flow/image  10.0 fps  latency 20 ms"
    assert feed.take() is not None and feed.take() is None  # the newest, once
    clock["mono"] = 5.0
    assert feed.status().fps == 0.0  # stalled


@pytest.mark.parametrize("encoding", ["mono8", "mono16", "rgb8", "bgra8", "32FC1", "32FC2"])
def test_any_supported_encoding_is_displayable(encoding):
    rng = np.random.default_rng(1)
    arrays = {"mono8": rng.integers(0, 256, (6, 8), np.uint8),
              "mono16": rng.integers(0, 65536, (6, 8), np.uint16),
              "rgb8": rng.integers(0, 256, (6, 8, 3), np.uint8),
              "bgra8": rng.integers(0, 256, (6, 8, 4), np.uint8),
              "32FC1": rng.random((6, 8), np.float32),
              "32FC2": rng.normal(size=(6, 8, 2)).astype(np.float32)}
    shown = to_display(array_to_image_msg(arrays[encoding], encoding))
    assert shown.shape == (6, 8, 3) and shown.dtype == np.uint8
    if encoding == "32FC2":
        flow = arrays[encoding]   # its robust maximum (or 1 px, the least) at full brightness
        scale = 255.0 / max(robust_magnitude(flow, 99.0), 1.0)
        np.testing.assert_array_equal(shown, draw_hsv(flow, scale=scale))


def test_compressed_images_are_displayable():
    image = np.random.default_rng(2).integers(0, 256, (6, 8, 3), np.uint8)
    msg = array_to_compressed_msg(image, "png")
    assert isinstance(msg, CompressedImage)
    np.testing.assert_array_equal(to_display(msg), image)



@pytest.mark.dds
def test_viewer_node_receives_every_frame_the_tracker_publishes(ros_peer):
    """640x480 bgr8 flow/image at 30 Hz, no Fast DDS profile: the viewer's subscription gets
    the frames (best effort lost ~2/3 of them to the default 512 KiB shared-memory segment).

    Every frame the tracker processes gives one flow/tracks and one flow/image with the same
    header, so flow/tracks (small, reliable) counts what was published.
    """
    env_profile = {k: os.environ.pop(k) for k in PROFILE_VARIABLES if k in os.environ}
    try:
        viewer = ViewerNode(["flow/image"], context=ros_peer.context)
        ros_peer.executor.add_node(viewer)
        tracks: list[float] = []
        sub = ros_peer.node.create_subscription(
            PointCloud2, "flow/tracks",
            lambda m: tracks.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9),
            keep_last_qos("reliable", 100))
        with NodeProcess("optical_flow_ros.nodes.tracker_node") as tracker:
            assert ros_peer.spin_until(
                lambda: ros_peer.node.count_publishers("/flow/image") == 1
                and sub.get_publisher_count() == 1, 20.0), tracker.output()
            ros_peer.spin_for(0.5)
            with NodeProcess("optical_flow_ros.nodes.sim_camera_node",
                             params={"frame_count": FRAMES_SENT, "rate": 30.0,
                                     # the flight starts once the tracker is matched
                                     "wait_for_subscribers": 1}) as camera:
                assert ros_peer.spin_until(lambda: len(tracks) > 0, 30.0), camera.output()
                last, since = -1, time.monotonic()
                end = time.monotonic() + 40.0
                while time.monotonic() < end and time.monotonic() - since < 2.0:
                    ros_peer.spin_for(0.25)
                    if len(tracks) != last:
                        last, since = len(tracks), time.monotonic()
                assert len(tracks) >= 30, camera.output() + tracker.output()
        frames = viewer.feeds()[0].status().frames
        assert frames >= 0.95 * len(tracks), (frames, len(tracks))
        # Never more than the camera sent (each counted once). Not <= len(tracks): under load
        # the tracker's reliable keep-last-5 flow/tracks writer can overwrite one sample this
        # busy reader had not yet acknowledged (seen: 54 frames viewed, 53 tracks counted).
        assert frames <= FRAMES_SENT
        ros_peer.executor.remove_node(viewer)
        viewer.destroy_node()
    finally:
        os.environ.update(env_profile)


@pytest.mark.dds
def test_viewer_falls_back_to_best_effort_for_a_best_effort_camera(ros_peer):
    viewer = ViewerNode(["camera/image"], context=ros_peer.context)
    ros_peer.executor.add_node(viewer)
    pub = ros_peer.node.create_publisher(Image, "camera/image", keep_last_qos("best_effort", 1))
    feed = viewer.feeds()[0]
    msg = array_to_image_msg(np.zeros((8, 8), np.uint8), "mono8")
    assert ros_peer.spin_until(lambda: pub.get_subscription_count() == 1, 20.0)
    assert ros_peer.spin_until(lambda: (pub.publish(msg), feed.status().frames > 0)[1], 20.0)
    assert "best effort" in viewer.footer()
    ros_peer.executor.remove_node(viewer)
    viewer.destroy_node()


@pytest.mark.dds
def test_an_unanswered_switch_is_given_up_and_the_key_works_again(ros_peer):
    """The dense node takes the viewer's set_parameters request but does not answer (it is
    not spun): after ANSWER_TIMEOUT_S the footer says so and the output is unchanged; a late
    answer to that request is dropped; the next press is asked and answered."""
    dense = Node("stalled_dense", context=ros_peer.context)
    for output in DENSE_OUTPUTS.values():
        dense.declare_parameter(output.parameter, False)
    viewer = ViewerNode([], dense_node="/stalled_dense", context=ros_peer.context)
    ros_peer.executor.add_node(viewer)
    ros_peer.executor.add_node(dense)
    try:
        assert ros_peer.spin_until(lambda: "2 warp off" in viewer.footer(), 20.0), viewer.footer()
        ros_peer.executor.remove_node(dense)   # stalled: its requests wait unanswered
        viewer.toggle("warp")
        start = time.monotonic()
        assert ros_peer.spin_until(lambda: "did not answer" in viewer.footer(), 20.0)
        assert time.monotonic() - start >= ANSWER_TIMEOUT_S - 0.1
        assert "2 warp off" in viewer.footer() and viewer.feeds() == []
        # The stalled request is answered now (and set); the viewer no longer waits for it.
        ros_peer.executor.add_node(dense)
        ros_peer.spin_for(1.0)
        assert "2 warp off" in viewer.footer() and viewer.feeds() == []
        viewer.toggle("warp")
        assert ros_peer.spin_until(lambda: "2 warp on" in viewer.footer(), 20.0), viewer.footer()
        assert [feed.topic for feed in viewer.feeds()] == ["/flow/dense/warp"]
        assert dense.get_parameter("publish_warp").value is True
    finally:
        ros_peer.executor.remove_node(viewer)
        ros_peer.executor.remove_node(dense)
        viewer.destroy_node()
        dense.destroy_node()
