"""tracker_node's cheap inputs (camera_info, range, imu) are polled, over real DDS.

The executor does not wake for each of their messages (at 1 kHz that alone took most of a
core); the node takes them all at once before each frame and from a 50 ms timer. Truth here:
every gyro sample a 1 kHz IMU sent reaches the velocity stage's history, in order and with
its exact values, camera_info and range arrive too, while the executor ran a small fraction
of the callbacks a per-message subscription needs (one per sample); a frame published while
the IMU floods is tracked and sees every sample sent before it.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image, Imu, PointCloud2, Range
from std_msgs.msg import Header

from optical_flow_ros.nodes.tracker_node import TrackerNode
from optical_flow_ros.ros.image_messages import array_to_image_msg
from optical_flow_ros.ros.qos import keep_last_qos

N_IMU = 1000


def _imu(stamp_ns: int, rate: np.ndarray) -> Imu:
    msg = Imu(header=Header(frame_id="imu"))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = map(float, rate)
    msg.angular_velocity_covariance = [1e-6, 0.0, 0.0, 0.0, 1e-6, 0.0, 0.0, 0.0, 1e-6]
    return msg


class _InProcessTracker:
    """tracker_node in this process, on its own context, spun here so its wakes can be counted."""

    def __init__(self, namespace: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = TrackerNode(context=self.context, namespace=namespace)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spins = 0

    def spin_until(self, done, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.1)
            self.spins += 1
        return done()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def test_a_1khz_imu_is_taken_whole_without_waking_the_executor_per_sample(ros_peer):
    ns = "/polled_inputs"
    tracker = _InProcessTracker(ns)
    try:
        node = ros_peer.node
        imu_pub = node.create_publisher(Imu, f"{ns}/imu", keep_last_qos("reliable", 10))
        range_pub = node.create_publisher(Range, f"{ns}/range", keep_last_qos("reliable", 10))
        info_pub = node.create_publisher(CameraInfo, f"{ns}/camera_info",
                                         keep_last_qos("reliable", 1))
        image_pub = node.create_publisher(Image, f"{ns}/image", keep_last_qos("reliable", 1))
        clouds: list[PointCloud2] = []
        node.create_subscription(PointCloud2, f"{ns}/flow/tracks", clouds.append,
                                 keep_last_qos("reliable", 5))
        inputs = tracker.node._pipeline.velocity_inputs
        pubs = (imu_pub, range_pub, info_pub, image_pub)
        matched = lambda: all(p.get_subscription_count() > 0 for p in pubs)   # noqa: E731
        assert tracker.spin_until(matched, 20.0)
        assert ros_peer.spin_until(matched, 20.0)
        tracker.spin_until(lambda: False, 0.3)

        rng = np.random.default_rng(5)
        rates = rng.normal(0.0, 0.2, (N_IMU, 3))
        t0 = time.time_ns()
        stamps = t0 + np.arange(N_IMU) * 1_000_000

        def send() -> None:
            start = time.perf_counter()
            for k in range(N_IMU):
                while time.perf_counter() < start + k * 1e-3:
                    time.sleep(2e-4)
                imu_pub.publish(_imu(int(stamps[k]), rates[k]))
                if k == N_IMU // 2:     # a frame in the middle of the flood, camera_info first
                    header = Header(frame_id="camera")
                    header.stamp.sec, header.stamp.nanosec = divmod(int(stamps[k]), 10**9)
                    info = CameraInfo(header=header, width=64, height=48,
                                      distortion_model="plumb_bob", d=[0.0] * 5,
                                      k=[50.0, 0.0, 31.5, 0.0, 50.0, 23.5, 0.0, 0.0, 1.0])
                    info_pub.publish(info)
                    range_pub.publish(Range(header=header, min_range=0.1, max_range=10.0,
                                            range=2.5))
                    image = rng.integers(0, 255, (48, 64), dtype=np.uint8)
                    image_pub.publish(array_to_image_msg(image, "mono8", header))

        pipeline = tracker.node._pipeline
        at_frame: list[float] = []
        process = pipeline.process

        def process_and_look(frame, **kwargs):
            at_frame.append(inputs._gyro.newest_stamp())
            return process(frame, **kwargs)

        pipeline.process = process_and_look
        sender = threading.Thread(target=send)
        sender.start()
        spins_before = tracker.spins
        tracker.spin_until(lambda: not sender.is_alive() and len(inputs._gyro) == N_IMU, 30.0)
        sender.join()
        wakes = tracker.spins - spins_before
        times, got = inputs._gyro.samples()
        np.testing.assert_array_equal(times, (stamps // 10**9) + (stamps % 10**9) * 1e-9)
        np.testing.assert_array_equal(got, rates)     # imu in the optical frame: unrotated
        # one wake per sample is what a per-message subscription costs; polled, the timer's
        # and the frame's (and spin_once's own timeouts) are all
        assert wakes < N_IMU // 4, wakes
        assert tracker.node._pipeline.camera is not None
        assert tracker.node._pipeline.camera.width == 64
        assert inputs.distance(stamps[N_IMU // 2] * 1e-9) == (2.5, "")
        # the frame saw every sample published before it (all but the last arrived earlier)
        assert len(at_frame) == 1 and at_frame[0] >= times[N_IMU // 2 - 1]
        assert ros_peer.spin_until(lambda: len(clouds) == 1, 10.0)
        assert clouds[0].header.stamp.sec * 10**9 + clouds[0].header.stamp.nanosec == \
            int(stamps[N_IMU // 2])
    finally:
        tracker.close()
