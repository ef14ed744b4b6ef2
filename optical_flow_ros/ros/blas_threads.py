"""How many threads the BLAS library under numpy (OpenBLAS) may use, set at run time.

numpy's wheels (and Ubuntu's python3-numpy) run matrix products and solves on OpenBLAS,
which by default starts a thread per core and, after each call large enough to split, keeps
those threads spinning for a while. The velocity fit's products are tiny (a few hundred rows
by 5 columns), so the split gains nothing; on a 2-core machine the spinning threads take the
core the tracker's other thread needs. Measured (process_bag's velocity stage, 2 cores):
LMedS scoring 0.55 -> 0.25 ms per frame with one BLAS thread.

Results do not depend on the count for these products (OpenBLAS splits a product by output
blocks; each element is summed the same way): process_bag's outputs are byte-identical
with 1 and with the default (test_bag_tools).

Found through the libraries loaded in this process (``/proc/self/maps``): the OpenBLAS
numpy's wheels bundle (``scipy_openblas`` in numpy 2, ``openblas64_`` in numpy 1.26) or the
system's. Elsewhere (another BLAS, not Linux) nothing is changed.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["blas_threads"]

# (set, get) symbol pairs, numpy 2's scipy-openblas first, then numpy 1.26's, then plain.
_SYMBOLS = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
            ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
            ("openblas_set_num_threads", "openblas_get_num_threads"))


def _loaded_openblas() -> list[tuple[ctypes._CFuncPtr, ctypes._CFuncPtr]]:
    """(set, get) of every OpenBLAS mapped into this process."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    paths: dict[str, None] = {}
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and "openblas" in fields[5].lower():
            paths[fields[5]] = None
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _SYMBOLS:
            setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = (ctypes.c_int,), None
                getter.argtypes, getter.restype = (), ctypes.c_int
                found.append((setter, getter))
                break
    return found


@contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """Let every loaded OpenBLAS use ``count`` threads in the ``with`` block (process-wide).

    The previous counts are restored after it. Nothing changes where no OpenBLAS is loaded.

    Args:
        count: threads, >= 1.

    Raises:
        ValueError: ``count`` < 1.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    libraries = _loaded_openblas()
    previous = [int(getter()) for _, getter in libraries]
    for setter, _ in libraries:
        setter(count)
    try:
        yield
    finally:
        for (setter, _), before in zip(libraries, previous, strict=True):
            setter(before)
