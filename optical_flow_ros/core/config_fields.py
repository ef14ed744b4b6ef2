"""Declarative, validated configuration fields for the core's config dataclasses.

A config class declares each field once with :func:`setting` (default, unit-bearing
description, allowed range or choices) and calls :func:`validate_fields` in
``__post_init__``. The ROS nodes build their parameter descriptors, YAML files and README
tables from the same metadata, so a range is written in exactly one place.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np

from optical_flow_ros.core.errors import ConfigError

__all__ = ["FieldSpec", "config_from_mapping", "field_specs", "setting", "validate_fields"]

ConfigT = TypeVar("ConfigT")


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """What a config field accepts.

    Attributes:
        name: field name.
        default: default value. ``None`` makes the field optional ("not set": e.g. keep a
            preset's value); then ``kind`` gives its type.
        description: one line with units.
        kind: ``bool``, ``int``, ``float`` or ``str``; the default's type when None.
        range: (min, max) for numbers, inclusive unless ``exclusive_min``/``exclusive_max``.
        choices: allowed strings, or None.
        odd: the integer must be odd (symmetric windows).
        exclusive_min: the minimum itself is not allowed (e.g. a scale in (0, 1]).
        exclusive_max: the maximum itself is not allowed.
        int_as_text: a string field that also takes a non-negative integer as its decimal
            text (ROS reads ``source:=0`` on the command line or in YAML as an integer).
    """

    name: str
    default: Any
    description: str
    kind: type | None = None
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    odd: bool = False
    exclusive_min: bool = False
    exclusive_max: bool = False
    int_as_text: bool = False

    @property
    def value_type(self) -> type:
        """The field's type: ``bool``, ``int``, ``float`` or ``str``."""
        return self.kind if self.kind is not None else type(self.default)

    @property
    def optional(self) -> bool:
        """True when ``None`` ("not set") is a valid value."""
        return self.default is None

    def check(self, value: Any) -> Any:
        """Return ``value`` as the field's Python type, or raise ConfigError with the reason.

        Ints are accepted for float fields, numpy scalars for Python ones.
        """
        if value is None and self.optional:
            return None
        value = self._coerce(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{self.name}: must be finite, got {value!r}")
        if self.range is not None:
            lo, hi = self.range
            above = lo < value if self.exclusive_min else lo <= value
            below = value < hi if self.exclusive_max else value <= hi
            if not (above and below):
                raise ConfigError(f"{self.name}: must be in {self.interval()}, got {value!r}")
        if self.odd and value % 2 == 0:
            raise ConfigError(f"{self.name}: must be odd, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{self.name}: must be one of {list(self.choices)}, got {value!r}")
        return value

    def _coerce(self, value: Any) -> Any:
        kind = self.value_type
        if kind is bool and isinstance(value, bool | np.bool_):
            return bool(value)
        if kind is int and isinstance(value, Integral) and not isinstance(value, bool | np.bool_):
            return int(value)
        if kind is float and isinstance(value, Real) and not isinstance(value, bool | np.bool_):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if (kind is str and self.int_as_text and isinstance(value, Integral)
                and not isinstance(value, bool | np.bool_) and value >= 0):
            return str(int(value))
        optional = " or None" if self.optional else ""
        raise ConfigError(f"{self.name}: must be of type {kind.__name__}{optional}, "
                          f"got {type(value).__name__} {value!r}")

    def interval(self) -> str:
        """The allowed range as text, e.g. ``(0.0, 1.0]``; empty when unbounded."""
        if self.range is None:
            return ""
        return (f"{'(' if self.exclusive_min else '['}{self.range[0]}, "
                f"{self.range[1]}{')' if self.exclusive_max else ']'}")


def setting(default: Any, description: str, *, kind: type | None = None,
            range: tuple[float, float] | None = None,  # noqa: A002  (the natural name)
            choices: tuple[str, ...] | None = None, odd: bool = False,
            exclusive_min: bool = False, exclusive_max: bool = False,
            int_as_text: bool = False) -> Any:
    """A dataclass field carrying its :class:`FieldSpec` (see module docstring)."""
    if default is None and kind is None:
        raise TypeError("an optional setting (default None) needs kind=")
    return dataclasses.field(default=default, metadata={"spec": dict(
        description=description, kind=kind, range=range, choices=choices, odd=odd,
        exclusive_min=exclusive_min, exclusive_max=exclusive_max, int_as_text=int_as_text)})


def field_specs(config_type: type) -> list[FieldSpec]:
    """The FieldSpec of every field of a config dataclass declared with :func:`setting`."""
    return [
        FieldSpec(name=f.name, default=f.default, **f.metadata["spec"])
        for f in dataclasses.fields(config_type)
        if "spec" in f.metadata
    ]


def validate_fields(config: Any) -> None:
    """Check every :func:`setting` field of a (frozen) config dataclass instance.

    Normalises values to the field's Python type in place. Raises ConfigError naming the
    first bad field.
    """
    for spec in field_specs(type(config)):
        object.__setattr__(config, spec.name, spec.check(getattr(config, spec.name)))


def config_from_mapping(config_type: type[ConfigT], values: Mapping[str, Any]) -> ConfigT:
    """Build a config dataclass from a plain mapping; unknown keys raise ConfigError."""
    names = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown parameter of {config_type.__name__}")
    return config_type(**dict(values))
