"""One table per node declares its parameters: name, default, range/choices, description.

The same table feeds the ROS parameter descriptors (``optical_flow_ros.ros.parameters``), the
YAML files under ``config/`` and the parameter tables in the README, so the three cannot drift
(``test/test_docs_in_step.py`` checks it). Pure Python: no rclpy import here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from optical_flow_ros.core.errors import ConfigError

__all__ = ["Param", "check_value", "defaults", "render_markdown", "render_yaml"]

Value = bool | int | float | str


@dataclass(frozen=True)
class Param:
    """A node parameter.

    Attributes:
        name: parameter name as seen in ROS (``ros2 param get <node> <name>``).
        default: default value; its Python type is the parameter's type.
        description: one line for users, with units.
        range: inclusive (min, max) for int/float parameters, or None.
        choices: allowed values of a string parameter, or None.
        read_only: True when the value is only read at start-up (QoS, topics).
    """

    name: str
    default: Value
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False

    @property
    def type_name(self) -> str:
        """``bool``, ``int``, ``float`` or ``string``."""
        return {bool: "bool", int: "int", float: "float", str: "string"}[type(self.default)]


def check_value(param: Param, value: Value) -> Value:
    """Return ``value`` if it is valid for ``param``, else raise ConfigError with the reason.

    Ints are accepted for float parameters (YAML writes ``1`` for ``1.0``).
    """
    expected = type(param.default)
    if expected is float and type(value) is int:
        value = float(value)
    if type(value) is not expected:
        raise ConfigError(
            f"{param.name} must be of type {param.type_name}, got {type(value).__name__} {value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{param.name} must be finite, got {value!r}")
    if (param.range is not None and isinstance(value, int | float)
            and not param.range[0] <= value <= param.range[1]):
        raise ConfigError(
            f"{param.name} must be in [{param.range[0]}, {param.range[1]}], got {value!r}"
        )
    if param.choices is not None and value not in param.choices:
        raise ConfigError(f"{param.name} must be one of {list(param.choices)}, got {value!r}")
    return value


def defaults(table: Iterable[Param]) -> dict[str, Value]:
    """Name -> default value of every parameter in ``table``."""
    return {p.name: p.default for p in table}


def _yaml_scalar(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _limits(param: Param) -> str:
    if param.range is not None:
        lo, hi = (type(param.default)(x) for x in param.range)
        return f"[{lo}, {hi}]"
    if param.choices is not None:
        return " | ".join(param.choices)
    return ""


def render_yaml(node_name: str, table: Iterable[Param], *,
                overrides: Mapping[str, Value] | None = None, header: str = "") -> str:
    """The ``config/*.yaml`` text: ``/**: ros__parameters:`` with every parameter documented."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"# Parameters of {node_name}; generated from its parameter table.", "/**:",
              "  ros__parameters:"]
    for p in table:
        limits = _limits(p)
        note = f" ({limits})" if limits else ""
        ro = " Read at start-up only." if p.read_only else ""
        lines.append(f"    # {p.description}{note}.{ro}")
        value = (overrides or {}).get(p.name, p.default)
        lines.append(f"    {p.name}: {_yaml_scalar(value)}")
    return "\n".join(lines) + "\n"


def render_markdown(table: Iterable[Param]) -> str:
    """A Markdown table of the parameters for the README."""
    rows = ["| parameter | type | default | range / choices | description |",
            "|---|---|---|---|---|"]
    for p in table:
        ro = " (start-up only)" if p.read_only else ""
        rows.append(f"| `{p.name}` | {p.type_name} | `{_yaml_scalar(p.default)}` | {_limits(p)} "
                    f"| {p.description}{ro} |")
    return "\n".join(rows) + "\n"
