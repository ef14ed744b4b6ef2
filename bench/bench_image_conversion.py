"""Benchmark: numpy <-> sensor_msgs/Image conversion against the naive ways of doing it.

Run from the repository root:  .venv/bin/python bench/bench_image_conversion.py

For each size and encoding, prints the median time (ms) of

* array -> Image: ``array_to_image_msg`` vs. the naive ``msg.data = ndarray`` assignment
  (rclpy then checks and converts every element in Python) and ``msg.data = a.tobytes()``;
* Image -> array, on a message deserialised from CDR exactly as a subscriber receives it:
  ``image_msg_to_array`` (a view, no copy) vs. ``np.array(msg.data).reshape(...)`` (a copy),

with the ratio baseline / ours. A second run in a child interpreter repeats 640x480 with
``ROS_PYTHON_CHECK_FIELDS=1`` (rclpy's field checks, which make ``msg.data = bytes`` iterate over
every byte in Python while ``array('B')`` is stored as is). No DDS traffic and no rclpy.init.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from optical_flow_ros.ros.image_messages import (  # noqa: E402
    array_to_image_msg,
    image_msg_to_array,
)

SIZES = {"640x480": (480, 640), "1920x1080": (1080, 1920)}
ENCODINGS = {"bgr8": 3, "mono8": 1}


def median_ms(func: Callable[[], object], reps: int) -> float:
    """Median wall time of ``func()`` in ms over ``reps`` calls, after one warm-up call."""
    func()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def naive_assign(image: np.ndarray, encoding: str) -> Image:
    """What a first attempt looks like: hand rclpy the ndarray."""
    msg = Image(height=image.shape[0], width=image.shape[1], encoding=encoding,
                step=image.strides[0])
    msg.data = image.reshape(-1)
    return msg


def tobytes_assign(image: np.ndarray, encoding: str) -> Image:
    """The usual advice: hand rclpy bytes."""
    msg = Image(height=image.shape[0], width=image.shape[1], encoding=encoding,
                step=image.strides[0])
    msg.data = image.tobytes()
    return msg


def copy_read(msg: Image, channels: int) -> np.ndarray:
    """The common subscriber idiom: copy msg.data into a new array and reshape."""
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return np.array(msg.data, dtype=np.uint8).reshape(shape)


def measure(reps: int, naive_reps: int, sizes: list[str]) -> list[tuple]:
    """Time every case; returns rows (case, direction, ours ms, baseline, baseline ms)."""
    check_fields = Image()._check_fields  # ROS_PYTHON_CHECK_FIELDS=1, read at import
    rng = np.random.default_rng(0)
    rows = []
    for size_name in sizes:
        height, width = SIZES[size_name]
        for encoding, channels in ENCODINGS.items():
            shape = (height, width) if channels == 1 else (height, width, channels)
            image = rng.integers(0, 256, shape, dtype=np.uint8)
            case = f"{size_name} {encoding}"

            ours = median_ms(lambda i=image, e=encoding: array_to_image_msg(i, e), reps)
            if not check_fields:  # with field checks rclpy rejects an ndarray outright
                naive = median_ms(lambda i=image, e=encoding: naive_assign(i, e), naive_reps)
                rows.append((case, "array -> Image", ours, "msg.data = ndarray", naive))
            tobytes = median_ms(lambda i=image, e=encoding: tobytes_assign(i, e),
                                naive_reps if check_fields else reps)
            rows.append((case, "array -> Image", ours, "msg.data = a.tobytes()", tobytes))

            received = deserialize_message(serialize_message(array_to_image_msg(image, encoding)),
                                           Image)
            assert np.array_equal(image_msg_to_array(received), image)
            ours = median_ms(lambda m=received: image_msg_to_array(m), reps)
            copy = median_ms(lambda m=received, c=channels: copy_read(m, c), reps)
            rows.append((case, "Image -> array", ours, "np.array(msg.data)", copy))
    return rows


def print_table(rows: list[tuple]) -> None:
    header = (f"{'case':<16} {'direction':<15} {'ours ms':>9}  {'baseline':<23} "
              f"{'base ms':>9} {'ratio':>9}")
    print(header)
    print("-" * len(header))
    for case, direction, ours, baseline, base in rows:
        print(f"{case:<16} {direction:<15} {ours:>9.3f}  {baseline:<23} {base:>9.3f} "
              f"{base / ours:>8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50, help="repetitions per fast case")
    parser.add_argument("--naive-reps", type=int, default=5,
                        help="repetitions of the slow baselines (msg.data = ndarray)")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--no-check-fields-run", action="store_true",
                        help="skip the second run with ROS_PYTHON_CHECK_FIELDS=1")
    args = parser.parse_args()

    check_fields = os.environ.get("ROS_PYTHON_CHECK_FIELDS") == "1"
    print(f"ROS_PYTHON_CHECK_FIELDS={'1' if check_fields else 'unset'}: median of {args.reps} "
          f"reps ({args.naive_reps} for the slow baselines); ratio = baseline / ours")
    print_table(measure(args.reps, args.naive_reps, args.sizes))
    if not check_fields and not args.no_check_fields_run:
        # rclpy reads the variable at import, so the checked run needs a fresh interpreter
        print()
        subprocess.run(
            [sys.executable, __file__, "--reps", str(args.reps), "--naive-reps", "3",
             "--sizes", "640x480", "--no-check-fields-run"],
            env={**os.environ, "ROS_PYTHON_CHECK_FIELDS": "1"}, check=True,
        )


if __name__ == "__main__":
    main()
