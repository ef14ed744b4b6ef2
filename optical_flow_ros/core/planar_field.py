"""The planar motion field the tracker fits to its tracks: its basis in image px.

Units and frames: positions are full-resolution image px (x right, y down), velocities px/s;
the field's coordinates ``x, y`` are positions relative to ``centre`` in units of ``scale``
px (:mod:`~optical_flow_ros.core.field_velocity`: the image centre and half the larger image
side).

The field has 8 parameters ``th`` (px/s)::

    u' = th0 + th1 x + th2 y + th6 x^2 + th7 x y
    v' = th3 + th4 x + th5 y + th6 x y + th7 y^2

the image motion of a plane seen by a moving, rotating pinhole camera (Longuet-Higgins). Its
fit to the tracks and its course in time are :mod:`~optical_flow_ros.core.field_velocity`'s.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_FIELD_TRACKS", "basis_rows", "field_basis", "monomials"]

#: Fewest tracks followed over an interval for the field to be fitted (8 parameters, 2 equations
#: per track: 3x over-determined); with fewer the field restarts.
MIN_FIELD_TRACKS = 12


def field_basis(points: np.ndarray, centre: np.ndarray, scale: float) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """Rows of the planar field for u' and v' at ``points`` (N, 2) px: two (N, 8) arrays.

    ``(bu @ theta, bv @ theta)`` is the field's velocity there, px/s.
    """
    rows = basis_rows(monomials(np.asarray(points, np.float64).T, centre, scale))
    return rows[:, 0], rows[:, 1]


def basis_rows(monomials: np.ndarray) -> np.ndarray:
    """(N, 2, 8) the field's rows for u' and v' from the monomials (6, N) of :func:`monomials`."""
    rows = np.zeros((monomials.shape[1], 2, 8))
    rows[:, 0, [0, 1, 2, 6, 7]] = monomials[:5].T
    rows[:, 1, [3, 4, 5, 6, 7]] = monomials[[0, 1, 2, 4, 5]].T
    return rows


def monomials(points: np.ndarray, centre: np.ndarray, scale: float,
              out: np.ndarray | None = None) -> np.ndarray:
    """(6, N) ``1, x, y, x^2, x y, y^2`` of the field's coordinates at ``points`` (2, N) px.

    Written into ``out`` when given.
    """
    d = np.empty((6, points.shape[1])) if out is None else out
    d[0] = 1.0
    np.subtract(points, centre[:, None], out=d[1:3])
    d[1:3] *= 1.0 / scale
    np.multiply(d[1:3], d[1], out=d[3:5])
    np.multiply(d[2], d[2], out=d[5])
    return d
