"""keep_freed_memory: freed frame-sized blocks are reused instead of faulting in fresh pages.

Measured in fresh processes (the setting is process-wide and cannot be undone): a loop that,
like every frame's temporaries (corner detection's eigenvalue maps, pyramids), allocates three
4 MiB arrays, fills them and frees them together. glibc then finds 12 MiB free at the top of
its heap, above its adaptive trim threshold (twice the largest block freed so far), and hands
the excess back to the OS, so the next frame faults in those pages again, zeroed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from optical_flow_ros.ros.compute_config import ComputeConfig
from optical_flow_ros.ros.heap_tuning import keep_freed_memory

_PROBE = """
import json, resource, sys
import numpy as np
from optical_flow_ros.ros.heap_tuning import keep_freed_memory
applied = keep_freed_memory(64 << 20) if sys.argv[1] == "tuned" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def frame():
    blocks = [np.ones(4 << 20, np.uint8) for _ in range(3)]   # 3 x 1024 pages, then freed
for _ in range(5):                                  # warm-up
    frame()
start = faults()
for _ in range(50):
    frame()
print(json.dumps({"applied": applied, "faults_per_frame": (faults() - start) / 50}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_blocks_are_reused_instead_of_faulting_fresh_pages():
    default, tuned = _probe("default"), _probe("tuned")
    assert tuned["applied"] is True
    assert default["faults_per_frame"] >= 900      # a 4 MiB block's worth (1024 pages)
    assert tuned["faults_per_frame"] < 10          # reused


@pytest.mark.parametrize("value", [0, -1, 2**31])
def test_a_retention_outside_the_c_int_range_is_refused(value):
    with pytest.raises(ValueError, match="retain_bytes"):
        keep_freed_memory(value)


def test_the_parameter_is_bounded_and_zero_leaves_the_defaults():
    assert ComputeConfig().heap_retain_mb == 64
    with pytest.raises(ValueError, match="heap_retain_mb"):
        ComputeConfig(heap_retain_mb=4096)
    ComputeConfig(heap_retain_mb=0, opencv_threads=0).apply()    # no mallopt call: no error
