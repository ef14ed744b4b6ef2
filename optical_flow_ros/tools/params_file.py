"""A node's parameter values from a ROS 2 parameters YAML file, as rclpy would set them.

Used offline (``process_bag``, ``sample_bag``), where no node reads the file: the same
``/**`` / ``<node>`` / ``<namespace>/<node>`` sections apply, in file order, and names the
node does not declare are ignored and listed, as rclpy ignores them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import yaml

from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.ros.parameter_table import Param, config_values, defaults

__all__ = ["NodeParameters", "node_config", "node_parameters"]

_ROS_BUILTIN_PARAMS = frozenset({"use_sim_time"})   # every node has it; meaningless offline
ConfigT = TypeVar("ConfigT")


class NodeParameters(NamedTuple):
    """Parameter values for a node from a YAML file: defaults overridden by the file."""

    values: dict[str, Any]
    ignored: list[str]   # entries for this node that are not among its parameters


def _applies_to(key: str, node_name: str) -> bool:
    name = key.strip("/")
    return name in ("**", node_name) or name.endswith(f"/{node_name}")


def node_parameters(path: str | Path | None, node_name: str,
                    table: Sequence[Param]) -> NodeParameters:
    """A node's parameter values as ``ros2 run ... --params-file path`` would set them.

    Entries under ``/**``, ``<node_name>`` or ``<namespace>/<node_name>`` apply, in file
    order; names the node does not declare are ignored (as rclpy ignores them) and listed.

    Raises:
        ConfigError: the file cannot be read or is not a ROS parameters file.
    """
    values: dict[str, Any] = dict(defaults(table))
    if path is None:
        return NodeParameters(values, [])
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the parameters file: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a ROS parameters file (expected "
                          "'<node or /**>: ros__parameters: {...}')")
    known = {p.name for p in table}
    ignored: list[str] = []
    for key, entry in data.items():
        if not _applies_to(str(key), node_name):
            continue
        params = entry.get("ros__parameters") if isinstance(entry, dict) else None
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: '{key}' has no 'ros__parameters' mapping")
        for name, value in params.items():
            if name in known:
                values[name] = value
            elif name not in _ROS_BUILTIN_PARAMS:
                ignored.append(str(name))
    return NodeParameters(values, ignored)


def node_config(path: str | Path | None, node_name: str, table: Sequence[Param],
                build: Callable[[Mapping[str, Any]], ConfigT]) -> tuple[ConfigT, str | None]:
    """A node's configuration from a parameters file, and a note on the names it ignored.

    Args:
        path: the YAML file (None: the node's defaults).
        node_name: the node the file's sections are matched against.
        table: the node's parameter table.
        build: the node's ``build_*_config`` (validated values -> configuration).

    Raises:
        ConfigError: unreadable file or invalid values (the message names them).
    """
    params = node_parameters(path, node_name, table)
    note = (f"{path}: ignored (not {node_name} parameters): {', '.join(params.ignored)}"
            if params.ignored else None)
    return build(config_values(table, params.values)), note
