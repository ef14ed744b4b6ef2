"""Moved to :mod:`optical_flow_ros.ros.parameter_table`; kept so existing imports work."""

from optical_flow_ros.ros.parameter_table import (
    Param,
    Value,
    build_config,
    build_node_config,
    config_values,
    defaults,
    params_from,
    render_markdown,
    render_yaml,
)

__all__ = ["Param", "Value", "build_config", "build_node_config", "config_values", "defaults",
           "params_from", "render_markdown", "render_yaml"]
