"""One table per node declares its parameters: name, default, range/choices, description.

Rows come from the core config dataclasses' field metadata (``params_from``), so a range is
declared once. The same table feeds the ROS parameter descriptors
(``optical_flow_ros.ros.parameters``), the YAML files under ``config/`` and the parameter
tables in the README, so the three cannot drift (``test/test_docs_in_step.py`` checks it).
Pure Python: no rclpy import here.

ROS parameters cannot be null, so an optional config field (default ``None``, e.g. "keep the
DIS preset's value") is exposed with the value ``-1`` meaning "not set"; an optional bool
becomes an integer -1 / 0 / 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, get_type_hints

from optical_flow_ros.core.config_fields import FieldSpec, field_specs

__all__ = ["Param", "Value", "build_config", "build_node_config", "config_values", "defaults",
           "params_from", "render_markdown", "render_yaml"]

Value = bool | int | float | str
ConfigT = TypeVar("ConfigT")

_TYPE_NAMES = {bool: "bool", int: "int", float: "double", str: "string"}


@dataclasses.dataclass(frozen=True)
class Param:
    """A node parameter: a config field as ROS sees it, plus whether it is start-up only."""

    spec: FieldSpec
    read_only: bool = False

    @property
    def name(self) -> str:
        """Parameter name as seen in ROS."""
        return self.spec.name

    @property
    def default(self) -> Value:
        """Default ROS value (``-1`` for an optional field: not set)."""
        if not self.spec.optional:
            return self.spec.default
        return -1.0 if self.spec.value_type is float else -1

    @property
    def description(self) -> str:
        """One-line description with units (and the meaning of -1 for optional fields)."""
        return self.spec.description + ("; -1 = not set" if self.spec.optional else "")

    @property
    def range(self) -> tuple[float, float] | None:
        """Inclusive range of the ROS value, or None (descriptor ranges are inclusive)."""
        if self.spec.optional and self.spec.value_type is bool:
            return (-1, 1)
        if self.spec.range is None:
            return None
        lo, hi = self.spec.range
        return (min(lo, self.default), hi) if self.spec.optional else (lo, hi)

    @property
    def type_name(self) -> str:
        """ROS type: ``bool``, ``int``, ``double`` or ``string``."""
        return _TYPE_NAMES[type(self.default)]

    def to_config(self, value: Value) -> Any:
        """The config value a ROS value stands for (maps -1 to None for optional fields)."""
        if self.spec.optional:
            if value == -1 and not isinstance(value, bool):
                return None
            if self.spec.value_type is bool and value in (0, 1) and not isinstance(value, bool):
                return bool(value)
        return value

    def check(self, value: Value) -> Any:
        """Validate a ROS value; returns the config value or raises ConfigError."""
        return self.spec.check(self.to_config(value))

    def limits_text(self) -> str:
        """Range or choices as shown in the YAML comments and the README."""
        if self.spec.choices is not None:
            return " | ".join(self.spec.choices)
        if self.spec.optional and self.spec.value_type is bool:
            return "-1 | 0 | 1"
        text = self.spec.interval()
        return f"-1 or {text}" if self.spec.optional and text else text


def params_from(config_type: type, *, read_only: bool = False) -> list[Param]:
    """One Param per :func:`~optical_flow_ros.core.config_fields.setting` field of a config."""
    return [Param(spec, read_only) for spec in field_specs(config_type)]


def defaults(table: Iterable[Param]) -> dict[str, Value]:
    """Name -> default ROS value of every parameter in ``table``."""
    return {p.name: p.default for p in table}


def config_values(table: Iterable[Param], values: Mapping[str, Value]) -> dict[str, Any]:
    """ROS values -> validated config values, for the parameters of ``table`` in ``values``.

    Raises:
        ConfigError: naming the first invalid parameter.
    """
    return {p.name: p.check(values[p.name]) for p in table if p.name in values}


def _yaml_scalar(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    text = repr(value)
    if isinstance(value, float) and "e" in text and "." not in text:
        text = text.replace("e", ".0e")  # YAML 1.1 reads 1e-05 as a string, 1.0e-05 as a float
    return text


def render_yaml(node_name: str, table: Iterable[Param], *,
                overrides: Mapping[str, Value] | None = None, header: str = "") -> str:
    """Render the ``config/*.yaml`` text (``/**: ros__parameters:``), each entry documented."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"# Parameters of {node_name}; generated from its parameter table",
              "# (python -m optical_flow_ros.tools.docs --write).", "/**:",
              "  ros__parameters:"]
    for p in table:
        limits = p.limits_text()
        allowed = f" Allowed: {limits}." if limits else ""
        ro = " Start-up only." if p.read_only else ""
        lines.append(f"    # {p.description}.{allowed}{ro}")
        value = (overrides or {}).get(p.name, p.default)
        lines.append(f"    {p.name}: {_yaml_scalar(value)}")
    return "\n".join(lines) + "\n"


def render_markdown(table: Iterable[Param]) -> str:
    """Render a Markdown table of the parameters for the README."""
    rows = ["| parameter | type | default | range / choices | description |",
            "|---|---|---|---|---|"]
    for p in table:
        ro = " (start-up only)" if p.read_only else ""
        rows.append(f"| `{p.name}` | {p.type_name} | `{_yaml_scalar(p.default)}` "
                    f"| {p.limits_text().replace(' | ', ', ')} | {p.description}{ro} |")
    return "\n".join(rows) + "\n"


def build_config(config_type: type[ConfigT], values: Mapping[str, Any]) -> ConfigT:
    """Construct (and so validate) ``config_type`` from the entries of ``values`` it has."""
    names = {f.name for f in dataclasses.fields(config_type)}
    return config_type(**{k: v for k, v in values.items() if k in names})


NodeConfigT = TypeVar("NodeConfigT")


def build_node_config(node_config_type: type[NodeConfigT],
                      values: Mapping[str, Any]) -> NodeConfigT:
    """Build a node's NamedTuple of config dataclasses, each from its entries of ``values``.

    The NamedTuple's field annotations (in declaration order) name the dataclasses.
    """
    return node_config_type(*(build_config(config_type, values)
                              for config_type in get_type_hints(node_config_type).values()))
