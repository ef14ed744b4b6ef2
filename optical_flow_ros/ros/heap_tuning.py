"""Keep freed memory in the process instead of handing it back to the OS on every frame.

Every frame allocates and frees temporaries of 0.1-10 MB (OpenCV's eigenvalue maps and
pyramids in corner detection, numpy arrays in the velocity fit, message buffers). With
glibc's default settings each of those blocks is either its own ``mmap`` (blocks above
the mmap threshold) or returned to the OS by trimming the heap top (above the trim
threshold) as soon as it is freed, so the next frame's block is fresh memory whose every
page faults and is zeroed again. Measured at 640x480 (bench/bench_heap_tuning.py, a node's
callback thread): 362 -> 8 page faults per frame, ``LKTracker.update`` 4.21 -> 3.62 ms per
frame (``goodFeaturesToTrack`` alone 4.3 -> 1.8 ms per call), the velocity fit 1.41 -> 1.34 ms.

Raising both thresholds (``mallopt``) keeps those blocks in the heap for reuse; the price is
that up to ``retain_bytes`` of freed memory stays mapped to the process (it is reused, not
leaked: RSS settles at the peak working set).
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["MMAP_THRESHOLD_MAX", "keep_freed_memory"]

# glibc's mallopt parameters (malloc.h) and its largest allowed mmap threshold on 64-bit.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def _mallopt() -> ctypes._CFuncPtr | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        function = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl, macOS): nothing to tune
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


def keep_freed_memory(retain_bytes: int) -> bool:
    """Make malloc keep up to ``retain_bytes`` of freed memory for reuse (process-wide).

    Blocks up to 32 MiB come from the heap instead of their own ``mmap``, and the heap is
    trimmed only when more than ``retain_bytes`` at its top are free.

    Args:
        retain_bytes: bytes of freed memory the process may keep; > 0.

    Returns:
        True if applied; False where the C library has no ``mallopt`` (not glibc).

    Raises:
        ValueError: ``retain_bytes`` is not positive or does not fit a C int.
    """
    if not 0 < retain_bytes < 2**31:
        raise ValueError(f"retain_bytes must be in (0, 2^31), got {retain_bytes}")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
                and mallopt(_M_TRIM_THRESHOLD, retain_bytes))
