"""Which image topics of a bag to process, with each camera's companion topics.

A camera's ``camera_info``, ``range`` and ``imu`` are the topics of those names next to its
image topic (``/cam/image_raw`` -> ``/cam/camera_info``), else the bag's only topic of that
type, else none; an explicit name overrides (``none`` or an empty name: not used).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optical_flow_ros.tools.bag_io import BagError, BagReader, BagTopic

__all__ = ["IMAGE_TYPES", "CameraTopics", "find_cameras"]

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
_RANGE_TYPE = "sensor_msgs/msg/Range"
_IMU_TYPE = "sensor_msgs/msg/Imu"


@dataclass(frozen=True)
class CameraTopics:
    """One camera's input topics in the bag and the namespace of its outputs."""

    image: str
    camera_info: str | None = None
    range: str | None = None
    imu: str | None = None
    namespace: str = ""

    def output(self, relative: str) -> str:
        """Full output topic name."""
        return f"{self.namespace}/{relative}"


def _normalise_namespace(ns: str) -> str:
    ns = ns.strip("/")
    return f"/{ns}" if ns else ""


def _image_topics(reader: BagReader, requested: Sequence[str]) -> list[BagTopic]:
    if requested:
        if len(set(requested)) != len(requested):
            raise BagError("an --image-topic is given twice")
        return [reader.topic(name, msgtypes=IMAGE_TYPES) for name in requested]
    found = reader.topics_of_type(*IMAGE_TYPES)
    if len(found) == 1:
        return found
    if not found:
        raise BagError(f"{reader.path}: no image topic (sensor_msgs/Image or CompressedImage); "
                       f"the bag has: {reader.describe_topics()}")
    raise BagError(f"{reader.path}: several image topics ({', '.join(t.name for t in found)}); "
                   "choose with --image-topic")


def _companion(reader: BagReader, image: BagTopic, name: str, msgtype: str,
               explicit: str | None) -> str | None:
    """The camera_info/range/imu topic for ``image``: explicit, sibling, or the only one."""
    if explicit is not None:
        return None if explicit in ("", "none") else reader.topic(explicit,
                                                                  msgtypes=(msgtype,)).name
    base = image.name
    if image.msgtype == "sensor_msgs/msg/CompressedImage" and base.endswith("/compressed"):
        base = base[: -len("/compressed")]
    sibling = f"{base.rsplit('/', 1)[0]}/{name}"
    topic = reader.topics.get(sibling)
    if topic is not None and topic.msgtype == msgtype:
        return sibling
    only = reader.topics_of_type(msgtype)
    return only[0].name if len(only) == 1 else None


def find_cameras(reader: BagReader, *, image_topics: Sequence[str] = (),
                 namespaces: Sequence[str] = (), camera_info_topic: str | None = None,
                 range_topic: str | None = None,
                 imu_topic: str | None = None) -> list[CameraTopics]:
    """The cameras to process and their companion topics (see the module docstring).

    Args:
        reader: the open bag.
        image_topics: image topics to process (empty: the bag's only one).
        namespaces: output namespace per image topic (required when there are several).
        camera_info_topic: explicit camera_info topic for every camera (None: found as
            described above; "none": not used).
        range_topic: the same for the range topic.
        imu_topic: the same for the imu topic.

    Raises:
        BagError: a missing or ambiguous topic, or output names that would collide.
    """
    images = _image_topics(reader, image_topics)
    names = [_normalise_namespace(ns) for ns in namespaces]
    if len(images) > 1 and len(names) != len(images):
        raise BagError(f"{len(images)} image topics need one --namespace each (in the same "
                       "order), so that their outputs do not collide")
    if len(names) > len(images):
        raise BagError(f"{len(names)} --namespace options for {len(images)} image topic(s)")
    if len(set(names)) != len(names):
        raise BagError("--namespace values must differ")
    names += [""] * (len(images) - len(names))
    return [CameraTopics(
        image=image.name,
        camera_info=_companion(reader, image, "camera_info", _INFO_TYPE, camera_info_topic),
        range=_companion(reader, image, "range", _RANGE_TYPE, range_topic),
        imu=_companion(reader, image, "imu", _IMU_TYPE, imu_topic),
        namespace=ns) for image, ns in zip(images, names, strict=True)]
