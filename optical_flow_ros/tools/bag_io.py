"""Rosbag2 input and output for the bag tools, over the pure-Python ``rosbags`` library.

Reading: :class:`BagReader` opens a bag folder (``metadata.yaml`` plus ``.db3`` or ``.mcap``
files) or a bare ``.mcap`` / ``.db3`` file, lists its topics and yields raw CDR messages in
record-time order. Every problem (no such path, not a bag, truncated or corrupt file, a
message that does not decode) is a :class:`BagError` whose message names the bag, the topic
or the type.

Messages: :func:`message_class` resolves ``pkg/msg/Name`` to the installed rclpy class by
importing ``pkg.msg`` (``rosidl_runtime_py`` has no wheel); :func:`deserialize` and
:func:`serialize` use rclpy's own CDR, so a message read from a bag is exactly what a
subscriber receives. :func:`serialize` zeroes the alignment padding (rclpy leaves whatever
was in its buffer there), so the same message always gives the same bytes and processing a
bag twice writes byte-identical outputs.

Writing: :class:`BagWriter` writes into a hidden folder next to the target and renames it
into place only in :meth:`BagWriter.close`; :meth:`BagWriter.abort` (or any exception in a
``with`` block) deletes it. The target path is never half-written: it is either absent, the
previous bag (with ``overwrite``), or the complete new bag.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.rosbag2.errors import WriterError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from optical_flow_ros.core.errors import OpticalFlowError

__all__ = ["STORAGES", "BagError", "BagMessage", "BagReader", "BagTopic", "BagWriter",
           "deserialize", "message_class", "offered_qos", "serialize"]

STORAGES = ("mcap", "sqlite3")
"""Storage formats :class:`BagWriter` writes (rosbag2's identifiers; mcap is its default)."""

_PLUGINS = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
_ZERO = QosTime(0, 0)
# The storage backends raise whatever their parsers hit on a damaged file (apsw.CorruptError,
# OverflowError, struct.error, ReaderError, ...): every Exception while opening or reading
# a bag is reported as a damaged bag.
_DAMAGED = Exception


class BagError(OpticalFlowError):
    """A bag cannot be read or written; the message names the bag and the problem."""


@dataclass(frozen=True)
class BagTopic:
    """A topic of a bag.

    Attributes:
        name: topic name, e.g. ``/camera/image_raw``.
        msgtype: message type, e.g. ``sensor_msgs/msg/Image``.
        count: messages recorded.
        connections: the bag's connections of this topic (message definition, type hash
            and offered QoS, to copy the topic into another bag).
    """

    name: str
    msgtype: str
    count: int
    connections: tuple[Connection, ...]

    @property
    def qos(self) -> list[Qos]:
        """The QoS profiles the recorded publishers offered (may be empty)."""
        return [q for c in self.connections for q in getattr(c.ext, "offered_qos_profiles", ())]


class BagMessage(NamedTuple):
    """One recorded message: topic, type, record time (ns) and raw CDR bytes."""

    topic: str
    msgtype: str
    timestamp: int
    data: bytes


@cache
def _typestore() -> Typestore:
    return get_typestore(Stores.ROS2_KILTED)


@cache
def message_class(msgtype: str) -> type:
    """The rclpy message class of ``pkg/msg/Name`` (or ``pkg/Name``).

    Raises:
        BagError: the type is malformed or its package is not installed.
    """
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts.insert(1, "msg")
    if len(parts) != 3 or not all(parts) or parts[1] != "msg":
        raise BagError(f"unknown message type {msgtype!r}: expected 'package/msg/Name'")
    package, _, name = parts
    try:
        module = importlib.import_module(f"{package}.msg")
    except ImportError as err:
        raise BagError(f"unknown message type {msgtype!r}: the Python package of "
                       f"{package!r} messages is not installed ({err})") from err
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise BagError(f"unknown message type {msgtype!r}: {package}.msg has no {name!r}")
    return cls


def deserialize(message: BagMessage) -> Any:
    """The rclpy message of a recorded one.

    Raises:
        BagError: unknown type, or the bytes do not decode as that type.
    """
    cls = message_class(message.msgtype)
    try:
        return deserialize_message(message.data, cls)
    except Exception as err:  # rclpy raises plain Exceptions from C for bad CDR
        raise BagError(f"message on {message.topic} at {message.timestamp} ns does not "
                       f"decode as {message.msgtype}: {err}") from err


def serialize(msg: Any, msgtype: str | None = None) -> bytes:
    """CDR of ``msg`` as rclpy writes it, alignment padding zeroed (same message, same bytes).

    The zeroing goes through rosbags' Kilted type store, for the types whose definition there
    round-trips rclpy's bytes; other types keep rclpy's bytes as they are.

    Args:
        msg: an rclpy message.
        msgtype: its ``pkg/msg/Name``; derived from the class when None.
    """
    data = serialize_message(msg)
    if msgtype is None:
        cls = type(msg)
        msgtype = f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"
    if not _store_matches(msgtype, type(msg)):
        return data
    store = _typestore()
    canonical = bytes(store.serialize_cdr(store.deserialize_cdr(data, msgtype), msgtype))
    return canonical if len(canonical) == len(data) else data


@cache
def _store_matches(msgtype: str, cls: type) -> bool:
    """True when the type store's ``msgtype`` round-trips rclpy's CDR of ``cls``."""
    store = _typestore()
    if msgtype not in store.fielddefs:
        return False
    sample = cls()
    data = serialize_message(sample)
    try:
        canonical = bytes(store.serialize_cdr(store.deserialize_cdr(data, msgtype), msgtype))
    except Exception:  # a definition that does not even parse these bytes
        return False
    return len(canonical) == len(data) and deserialize_message(canonical, cls) == sample


def offered_qos(reliability: str, depth: int, durability: str = "volatile") -> Qos:
    """A QoS profile as recorded in bag metadata (keep-last ``depth``)."""
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability[reliability.upper()],
               QosDurability[durability.upper()], _ZERO, _ZERO, QosLiveliness.AUTOMATIC,
               _ZERO, False)


def _describe(path: Path, err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return f"{path}: not a readable rosbag2 bag (truncated or corrupt?): {text}"


class BagReader:
    """A rosbag2 bag opened for reading.

    Args:
        path: bag folder, or a bare ``.mcap`` / ``.db3`` file.

    Raises:
        BagError: the path does not exist, is no bag, or the bag is damaged.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag (folder or .mcap/.db3 file)")
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            raise BagError(f"{self.path}: not a rosbag2 bag folder (no metadata.yaml)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except _DAMAGED as err:
            raise BagError(_describe(self.path, err)) from err
        self.topics: dict[str, BagTopic] = {}
        for name, info in sorted(self._reader.topics.items()):
            if info.msgtype is None:
                types = sorted({c.msgtype for c in info.connections})
                raise BagError(f"{self.path}: topic {name} is recorded with several message "
                               f"types ({', '.join(types)})")
            self.topics[name] = BagTopic(name, info.msgtype, info.msgcount,
                                         tuple(info.connections))

    @property
    def start_ns(self) -> int:
        """Record time of the first message, ns."""
        return self._reader.start_time if self._reader.message_count else 0

    @property
    def duration_ns(self) -> int:
        """Record time from the first to the last message, ns."""
        # rosbags counts one past the last message, as rosbag2 does
        return max(0, self._reader.duration - 1) if self._reader.message_count else 0

    @property
    def end_ns(self) -> int:
        """Record time of the last message, ns."""
        return self.start_ns + self.duration_ns

    @property
    def message_count(self) -> int:
        """Messages in the bag."""
        return self._reader.message_count

    def topic(self, name: str, *, msgtypes: Iterable[str] = ()) -> BagTopic:
        """The topic ``name``, checked to be of one of ``msgtypes`` (when given).

        Raises:
            BagError: no such topic (naming the topics there are), or another type.
        """
        topic = self.topics.get(name)
        if topic is None:
            raise BagError(f"{self.path}: no topic {name} in the bag; it has: "
                           f"{self.describe_topics()}")
        allowed = tuple(msgtypes)
        if allowed and topic.msgtype not in allowed:
            raise BagError(f"{self.path}: topic {name} is {topic.msgtype}, expected "
                           f"{' or '.join(allowed)}")
        return topic

    def topics_of_type(self, *msgtypes: str) -> list[BagTopic]:
        """Topics whose type is one of ``msgtypes``, by name."""
        return [t for t in self.topics.values() if t.msgtype in msgtypes]

    def describe_topics(self) -> str:
        """``name (type, count)`` of every topic, for error messages and listings."""
        if not self.topics:
            return "no topics"
        return ", ".join(f"{t.name} ({t.msgtype}, {t.count})" for t in self.topics.values())

    def messages(self, topics: Sequence[str] | None = None, *,
                 start_ns: int | None = None) -> Iterator[BagMessage]:
        """Raw messages of ``topics`` (all when None) in record-time order.

        Args:
            topics: names to read; an unknown one raises BagError.
            start_ns: skip messages recorded before this time, ns.

        Raises:
            BagError: a topic is missing, or the file turns out damaged while reading.
        """
        names = list(self.topics) if topics is None else list(topics)
        connections = [c for name in names for c in self.topic(name).connections]
        if not connections:
            return
        try:
            for conn, timestamp, data in self._reader.messages(connections, start=start_ns):
                yield BagMessage(conn.topic, conn.msgtype, timestamp, data)
        except _DAMAGED as err:
            raise BagError(_describe(self.path, err)) from err

    def close(self) -> None:
        """Close the bag."""
        if self._reader.is_open:
            try:
                self._reader.close()
            except _DAMAGED as err:
                raise BagError(_describe(self.path, err)) from err

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BagWriter:
    """Writes a new rosbag2 bag that appears at ``path`` only when complete.

    Messages go to ``.<name>.partial-<pid>/<name>`` next to ``path`` (same file system, so
    the final rename is atomic); :meth:`close` writes the metadata and renames the bag into
    place, :meth:`abort` deletes it. Used as a context manager, a clean exit closes and an
    exception aborts.

    Args:
        path: the bag folder to create.
        storage: ``mcap`` (rosbag2's default since Iron) or ``sqlite3``.
        overwrite: replace an existing bag at ``path`` (only once the new one is complete).

    Raises:
        BagError: ``path`` exists (without ``overwrite``), or the folder cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], *, storage: str = "mcap",
                 overwrite: bool = False) -> None:
        if storage not in _PLUGINS:
            raise BagError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}")
        self.path = Path(path).absolute()
        if self.path.exists() and not overwrite:
            raise BagError(f"{self.path} exists already (remove it or pass --overwrite)")
        self._overwrite = overwrite
        self._scratch = self.path.parent / f".{self.path.name}.partial-{os.getpid()}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._scratch.exists():
                shutil.rmtree(self._scratch)
            self._scratch.mkdir()
            self._writer: Writer | None = Writer(self._scratch / self.path.name, version=9,
                                                 storage_plugin=_PLUGINS[storage])
            self._writer.open()
        except (OSError, WriterError) as err:
            shutil.rmtree(self._scratch, ignore_errors=True)
            raise BagError(f"cannot write {self.path}: {err}") from err
        self._connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, name: str, msgtype: str, *, qos: Sequence[Qos] = (),
                  like: BagTopic | None = None) -> None:
        """Declare a topic before writing to it.

        Args:
            name: topic name.
            msgtype: ``pkg/msg/Name``.
            qos: the offered QoS profiles to record in the metadata.
            like: copy the message definition, type hash and QoS of this recorded topic
                (for types this library's type store does not know).
        """
        writer = self._open()
        conn = like.connections[0] if like is not None and like.connections else None
        if conn is not None:
            qos = list(qos) or like.qos[:1]
        try:
            if conn is not None and conn.msgdef.data and conn.digest:
                self._connections[name] = writer.add_connection(
                    name, msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest,
                    offered_qos_profiles=qos)
            elif msgtype in _typestore().fielddefs:
                self._connections[name] = writer.add_connection(
                    name, msgtype, typestore=_typestore(), offered_qos_profiles=qos)
            else:
                raise BagError(f"cannot add topic {name} to {self.path}: unknown message type "
                               f"{msgtype!r} and no recorded definition to copy")
        except (WriterError, KeyError, AssertionError) as err:
            raise BagError(f"cannot add topic {name} ({msgtype}) to {self.path}: {err}") from err
        self.counts[name] = 0

    def write(self, topic: str, timestamp: int, data: bytes) -> None:
        """Write raw CDR ``data`` on ``topic`` at record time ``timestamp`` (ns)."""
        self._open().write(self._connections[topic], timestamp, data)
        self.counts[topic] += 1

    def write_message(self, topic: str, timestamp: int, msg: Any) -> None:
        """Serialise (:func:`serialize`) and write an rclpy message."""
        self.write(topic, timestamp, serialize(msg, self._connections[topic].msgtype))

    def close(self) -> Path:
        """Finish the bag and move it to ``path``; returns ``path``."""
        writer = self._open()
        self._writer = None
        try:
            writer.close()
            old = self._scratch.with_name(self._scratch.name + ".old")
            if self._overwrite and self.path.exists():
                self.path.rename(old)
            (self._scratch / self.path.name).rename(self.path)
            shutil.rmtree(old, ignore_errors=True)
        except (OSError, WriterError) as err:
            raise BagError(f"cannot finish {self.path}: {err}") from err
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Discard everything written; ``path`` stays as it was."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.abort()
            except Exception:  # the files are deleted next anyway
                pass
        shutil.rmtree(self._scratch, ignore_errors=True)

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or :meth:`abort`."""
        return self._writer is None

    def _open(self) -> Writer:
        if self._writer is None:
            raise BagError(f"{self.path}: the bag writer is closed")
        return self._writer

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()
