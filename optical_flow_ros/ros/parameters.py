"""Declare a node's parameters from its table and keep them valid at start-up and at runtime.

A value is accepted only if it passes the table's type/range/choices check *and* the node's
``build`` function (which constructs the core config and raises ConfigError on a bad
combination). A refused ``ros2 param set`` answers with that reason and the node keeps its
previous configuration; an invalid value in the YAML at start-up raises
``rclpy.exceptions.InvalidParameterValueException`` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.ros.parameter_table import Param, Value, config_values, defaults

__all__ = ["ParameterBinding", "descriptor"]

ConfigT = TypeVar("ConfigT")

_ROS_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}


def descriptor(param: Param) -> ParameterDescriptor:
    """The ROS ParameterDescriptor of a table row (type, description, range, read-only)."""
    desc = ParameterDescriptor(
        name=param.name,
        type=_ROS_TYPES[type(param.default)],
        description=param.description,
        additional_constraints=param.limits_text(),
        read_only=param.read_only,
        # The node's own check (ParameterBinding._check) refuses a wrong type with a reason
        # that names the parameter, and widens an int given for a double (YAML ``1``);
        # rclpy's fixed typing would answer "Wrong parameter type, expected '2' got '4'" or
        # end the node at start-up with a traceback.
        dynamic_typing=True,
    )
    limits = param.range
    if limits is not None and isinstance(param.default, float):
        desc.floating_point_range = [
            FloatingPointRange(from_value=float(limits[0]), to_value=float(limits[1]))
        ]
    elif limits is not None and not isinstance(param.default, bool | str):
        desc.integer_range = [IntegerRange(from_value=int(limits[0]), to_value=int(limits[1]))]
    return desc


class ParameterBinding(Generic[ConfigT]):
    """The parameters of one node, validated as a whole.

    Args:
        node: the node to declare on.
        table: its parameter table.
        build: validated config values (name -> value, -1 already mapped to None) -> the
            node's config object; raises ConfigError when the combination is invalid.
        on_change: called with the new config and the names that changed, after a runtime set.
    """

    def __init__(self, node: Node, table: Iterable[Param],
                 build: Callable[[dict[str, Any]], ConfigT],
                 on_change: Callable[[ConfigT, set[str]], None] | None = None) -> None:
        self._table = {p.name: p for p in table}
        self._build = build
        self._on_change = on_change
        self._values: dict[str, Value] = defaults(self._table.values())
        self._ready = False
        node.add_on_set_parameters_callback(self._check)
        node.add_post_set_parameters_callback(self._applied)
        node.declare_parameters(
            "", [(p.name, p.default, descriptor(p)) for p in self._table.values()]
        )
        self.config: ConfigT = build(config_values(self._table.values(), self._values))
        self._ready = True

    @property
    def values(self) -> dict[str, Value]:
        """Current value of every parameter of the table."""
        return dict(self._values)

    def _candidate(self, params: list[Parameter]) -> dict[str, Value]:
        values = dict(self._values)
        values.update((p.name, p.value) for p in params if p.name in self._table)
        return values

    def _check(self, params: list[Parameter]) -> SetParametersResult:
        if not self._ready:
            # Declaration: rclpy sets the start-up values one parameter at a time, so a pair
            # valid only together (a lens's k1 and k2) was refused against the other's
            # default. The whole set is built (and refused with its reason) once declared.
            return SetParametersResult(successful=True)
        try:
            self._build(config_values(self._table.values(), self._candidate(params)))
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _applied(self, params: list[Parameter]) -> None:
        changed = {p.name for p in params if p.name in self._table}
        if not changed:
            return
        self._values = self._candidate(params)
        if self._ready:
            self.config = self._build(config_values(self._table.values(), self._values))
            if self._on_change is not None:
                self._on_change(self.config, changed)
