"""One table per node declares its parameters: name, default, range/choices, description.

Rows come from the core config dataclasses' field metadata (``params_from``), so a range is
declared once. The same table feeds the ROS parameter descriptors
(``optical_flow_ros.ros.parameters``), the YAML files under ``config/`` and the parameter
tables in the README, so the three cannot drift (``test/test_docs_in_step.py`` checks it).
Pure Python: no rclpy import here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from optical_flow_ros.core.config_fields import FieldSpec, field_specs

__all__ = ["Param", "Value", "defaults", "params_from", "render_markdown", "render_yaml"]

Value = bool | int | float | str


@dataclasses.dataclass(frozen=True)
class Param(FieldSpec):
    """A node parameter: a config field plus whether it can change at runtime.

    ``check(value)`` (from FieldSpec) validates a single value and raises ConfigError.
    """

    read_only: bool = False

    @property
    def type_name(self) -> str:
        """``bool``, ``int``, ``float`` or ``string``."""
        return {bool: "bool", int: "int", float: "float", str: "string"}[type(self.default)]


def params_from(config_type: type, *, read_only: bool = False) -> list[Param]:
    """One Param per :func:`~optical_flow_ros.core.config_fields.setting` field of a config."""
    return [Param(**dataclasses.asdict(spec), read_only=read_only)
            for spec in field_specs(config_type)]


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
