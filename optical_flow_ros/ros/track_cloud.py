"""Tracks <-> sensor_msgs/PointCloud2 (the ``flow/tracks`` topic).

One point per live track. Fields (all 4 bytes, little-endian, point_step 40):

=========  =======  ==========================================================================
field      type     meaning
=========  =======  ==========================================================================
x, y, z    float32  normalised ray (x_n, y_n, 1) when intrinsics are known, else (u, v, 0)
id         uint32   track id, unique for the tracker's lifetime
u, v       float32  pixel position in the image (px)
vu, vv     float32  pixel velocity at the header stamp (px/s, from the stamps); NaN while
                    unknown (a track's first frame, after a time gap)
age        uint32   frames the track has been followed (1 = detected in this frame)
fb_error   float32  forward-backward error (px)
=========  =======  ==========================================================================

``vu, vv`` with the tracker's default ``velocity_estimator`` (motion_field): the velocity at
the image's stamp, the planar motion field fitted to all tracks and extrapolated to the stamp
plus the track's own averaged deviation from it, shrunk by what the scene shows of it
(``velocity_deviation_shrink``: tracking noise shrinks away, a moving object keeps its own
motion; :mod:`optical_flow_ros.core.field_velocity`); median error 0.12-0.75 % of the speed
on simulated flights with 2 grey levels of image noise (~0.2-2 px/s). With ``slope``: the
least-squares slope over ``velocity_window`` frames, ~2 frames before the image.

``sensor_msgs_py`` has no PyPI wheel; :func:`cloud_to_array` reads any PointCloud2 with
scalar fields into a numpy structured array for users and tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from optical_flow_ros.core.camera_model import PinholeCamera
from optical_flow_ros.core.lk_tracker import Tracks

__all__ = ["TRACK_DTYPE", "cloud_to_array", "tracks_to_cloud"]

TRACK_DTYPE = np.dtype([
    ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4"), ("u", "<f4"), ("v", "<f4"),
    ("vu", "<f4"), ("vv", "<f4"), ("age", "<u4"), ("fb_error", "<f4"),
])

_TO_DATATYPE = {
    np.dtype("i1"): PointField.INT8, np.dtype("u1"): PointField.UINT8,
    np.dtype("<i2"): PointField.INT16, np.dtype("<u2"): PointField.UINT16,
    np.dtype("<i4"): PointField.INT32, np.dtype("<u4"): PointField.UINT32,
    np.dtype("<f4"): PointField.FLOAT32, np.dtype("<f8"): PointField.FLOAT64,
}
_FROM_DATATYPE = {v: k for k, v in _TO_DATATYPE.items()}

_TRACK_FIELDS = [
    PointField(name=name, offset=TRACK_DTYPE.fields[name][1],
               datatype=_TO_DATATYPE[TRACK_DTYPE.fields[name][0]], count=1)
    for name in TRACK_DTYPE.names or ()
]


def tracks_to_cloud(tracks: Tracks, header: Header, camera: PinholeCamera | None) -> PointCloud2:
    """Build the ``flow/tracks`` message for ``tracks`` observed in the image with ``header``.

    Args:
        tracks: the tracker's output for one frame.
        header: the image's header (stamp and optical frame id are kept).
        camera: intrinsics for the normalised ray (x, y, z); None -> (u, v, 0).
    """
    n = len(tracks)
    cloud = np.empty(n, TRACK_DTYPE)
    cloud["u"], cloud["v"] = tracks.points[:, 0], tracks.points[:, 1]
    if camera is not None:
        rays = camera.normalize(tracks.points)
        cloud["x"], cloud["y"], cloud["z"] = rays[:, 0], rays[:, 1], 1.0
    else:
        cloud["x"], cloud["y"], cloud["z"] = tracks.points[:, 0], tracks.points[:, 1], 0.0
    cloud["id"] = tracks.ids
    cloud["vu"], cloud["vv"] = tracks.velocities[:, 0], tracks.velocities[:, 1]
    cloud["age"] = tracks.ages
    cloud["fb_error"] = tracks.fb_errors
    return PointCloud2(
        header=header, height=1, width=n, fields=_TRACK_FIELDS, is_bigendian=False,
        point_step=TRACK_DTYPE.itemsize, row_step=TRACK_DTYPE.itemsize * n,
        data=cloud.tobytes(), is_dense=False,
    )


def cloud_to_array(msg: Any) -> np.ndarray:
    """Read a PointCloud2 (rclpy or rosbags message) into a structured array of its fields.

    Raises:
        ValueError: a field with count != 1, an unknown datatype, or a data size mismatch.
    """
    names, formats, offsets = [], [], []
    for field in msg.fields:
        if field.count != 1 or field.datatype not in _FROM_DATATYPE:
            raise ValueError(f"unsupported PointCloud2 field {field.name!r} "
                             f"(datatype {field.datatype}, count {field.count})")
        dtype = _FROM_DATATYPE[field.datatype]
        names.append(field.name)
        formats.append(dtype.newbyteorder(">") if msg.is_bigendian else dtype)
        offsets.append(field.offset)
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                      "itemsize": msg.point_step})
    n = msg.width * msg.height
    data = memoryview(msg.data).cast("B") if not isinstance(msg.data, bytes) else msg.data
    if len(data) < n * msg.point_step:
        raise ValueError(f"PointCloud2 data has {len(data)} bytes, expected {n * msg.point_step}")
    return np.frombuffer(data, dtype=dtype, count=n)
