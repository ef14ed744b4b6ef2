"""The motion field: image velocity of static scene points for a moving camera.

For a camera with linear velocity v (m/s) and angular velocity w (rad/s), both expressed in
its optical frame (x right, y down, z forward), a static point at depth Z (m, along the
optical axis) seen at normalised image coordinates (x, y) moves in the image at
(Longuet-Higgins & Prazdny)::

    x' = (-vx + x vz) / Z + x y wx - (1 + x^2) wy + y wz
    y' = (-vy + y vz) / Z + (1 + y^2) wx - x y wy - x wz

in normalised units per second; multiply by (fx, fy) for px/s (away from lens distortion).
The translational part scales with 1/Z, the rotational part does not depend on depth.
"""

from __future__ import annotations

import numpy as np

__all__ = ["motion_field", "rotational_basis", "rotational_field", "translational_field"]


def translational_field(points_n: np.ndarray, linear: np.ndarray,
                        depth: float | np.ndarray) -> np.ndarray:
    """Image velocity (normalised units/s) caused by the camera's translation alone.

    Args:
        points_n: (N, 2) normalised image coordinates (x, y).
        linear: camera linear velocity (vx, vy, vz), m/s, optical frame.
        depth: depth of each point along the optical axis, m (scalar or (N,)).
    """
    p = np.asarray(points_n, np.float64).reshape(-1, 2)
    v = np.asarray(linear, np.float64)
    z = np.asarray(depth, np.float64)
    return np.column_stack((-v[0] + p[:, 0] * v[2], -v[1] + p[:, 1] * v[2])) / np.reshape(
        z, (-1, 1) if z.ndim else ())


def rotational_basis(points_n: np.ndarray) -> np.ndarray:
    """Image velocity (normalised units/s) of a unit rotation about each optical axis.

    Args:
        points_n: (N, 2) normalised image coordinates (x, y).

    Returns:
        (N, 2, 3) float64: ``[:, :, k]`` is the flow of 1 rad/s about axis k (x, y, z of the
        optical frame), so ``basis @ angular`` is :func:`rotational_field`.
    """
    p = np.asarray(points_n, np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    xy = x * y
    basis = np.empty((p.shape[0], 2, 3))
    basis[:, 0, 0], basis[:, 1, 0] = xy, 1.0 + y * y       # about x
    basis[:, 0, 1], basis[:, 1, 1] = -1.0 - x * x, -xy     # about y
    basis[:, 0, 2], basis[:, 1, 2] = y, -x                 # about z
    return basis


def rotational_field(points_n: np.ndarray, angular: np.ndarray) -> np.ndarray:
    """Image velocity (normalised units/s) caused by the camera's rotation alone.

    Args:
        points_n: (N, 2) normalised image coordinates (x, y).
        angular: camera angular velocity (wx, wy, wz), rad/s, optical frame.
    """
    return rotational_basis(points_n) @ np.asarray(angular, np.float64).reshape(3)


def motion_field(points_n: np.ndarray, linear: np.ndarray, angular: np.ndarray,
                 depth: float | np.ndarray) -> np.ndarray:
    """Image velocity (normalised units/s) of static points: translation + rotation.

    Args:
        points_n: (N, 2) normalised image coordinates (x, y).
        linear: camera linear velocity, m/s, optical frame.
        angular: camera angular velocity, rad/s, optical frame.
        depth: depth of each point along the optical axis, m (scalar or (N,)).

    Returns:
        (N, 2) float64 velocities (x', y') in normalised units per second.
    """
    return translational_field(points_n, linear, depth) + rotational_field(points_n, angular)
