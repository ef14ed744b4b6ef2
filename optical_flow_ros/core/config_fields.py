"""Declarative, validated configuration fields for the core's config dataclasses.

A config class declares each field once with :func:`setting` (default, unit-bearing
description, allowed range or choices) and calls :func:`validate_fields` in
``__post_init__``. The ROS nodes build their parameter descriptors, YAML files and README
tables from the same metadata, so a range is written in exactly one place.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from optical_flow_ros.core.errors import ConfigError

__all__ = ["FieldSpec", "field_specs", "setting", "validate_fields"]


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """What a config field accepts.

    Attributes:
        name: field name.
        default: default value; its type is the field's type (ints are accepted for floats).
        description: one line with units.
        range: inclusive (min, max) for numbers, or None.
        choices: allowed strings, or None.
        odd: the integer must be odd (symmetric windows).
    """

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    odd: bool = False

    def check(self, value: Any) -> Any:
        """Return ``value`` (ints widened to float for float fields) or raise ConfigError."""
        expected = type(self.default)
        if expected is float and type(value) is int:
            value = float(value)
        if type(value) is not expected:
            raise ConfigError(f"{self.name} must be a {expected.__name__}, "
                              f"got {type(value).__name__} {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{self.name} must be finite, got {value!r}")
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            raise ConfigError(f"{self.name} must be in [{self.range[0]}, {self.range[1]}], "
                              f"got {value!r}")
        if self.odd and value % 2 == 0:
            raise ConfigError(f"{self.name} must be odd, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
        return value


def setting(default: Any, description: str, *, range: tuple[float, float] | None = None,  # noqa: A002
            choices: tuple[str, ...] | None = None, odd: bool = False) -> Any:
    """A dataclass field carrying its :class:`FieldSpec` (see module docstring)."""
    return dataclasses.field(default=default, metadata={"spec": dict(
        description=description, range=range, choices=choices, odd=odd)})


def field_specs(config_type: type) -> list[FieldSpec]:
    """The FieldSpec of every field of a config dataclass declared with :func:`setting`."""
    return [
        FieldSpec(name=f.name, default=f.default, **f.metadata["spec"])
        for f in dataclasses.fields(config_type)
        if "spec" in f.metadata
    ]


def validate_fields(config: Any) -> None:
    """Check every :func:`setting` field of a (frozen) config dataclass instance.

    Widens ints given for float fields in place. Raises ConfigError naming the first bad field.
    """
    for spec in field_specs(type(config)):
        value = spec.check(getattr(config, spec.name))
        object.__setattr__(config, spec.name, value)
