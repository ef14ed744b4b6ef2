"""Invalid parameter values, at runtime and in the YAML at start-up, for every node.

Table-driven from each node's parameter table (``TRACKER_PARAMS``, ``DENSE_FLOW_PARAMS``,
``SIM_CAMERA_PARAMS``, ``VIDEO_SOURCE_PARAMS``), so a new parameter is covered without touching
this file. For each
parameter the invalid classes its row implies: read-only (any set), wrong type, unknown or
empty choice, below/above the range, the excluded bound of a half-open range, NaN and +-inf,
an even value where it must be odd; plus the cross-parameter rules the configs check.

Runtime: each node runs once (its own process, real DDS); one SetParameters request first sets
a valid non-default value of every runtime parameter, then every invalid value. Each invalid
one must be refused with a reason naming the parameter, and GetParameters must then return the
valid values: the node kept its previous configuration. Start-up: a YAML with one invalid
value must end the node with exit code 2, one line naming the parameter and no traceback.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter, parameter_value_to_python
from ros_harness import NodeProcess, RosPeer
from video_files import panning_frames, write_video

from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.nodes.dense_flow_node import DENSE_FLOW_PARAMS, build_dense_node_config
from optical_flow_ros.nodes.sim_camera_node import SIM_CAMERA_PARAMS, build_sim_node_config
from optical_flow_ros.nodes.video_source_node import (
    VIDEO_SOURCE_PARAMS,
    build_video_node_config,
)
from optical_flow_ros.ros.parameter_table import Param, Value, config_values, defaults
from optical_flow_ros.ros.tracker_pipeline import TRACKER_PARAMS, build_tracker_node_config

pytestmark = pytest.mark.dds

NODES: dict[str, tuple[str, tuple[Param, ...], Callable[[dict[str, Any]], Any]]] = {
    "tracker_node": ("optical_flow_ros.nodes.tracker_node", tuple(TRACKER_PARAMS),
                     build_tracker_node_config),
    "dense_flow_node": ("optical_flow_ros.nodes.dense_flow_node", tuple(DENSE_FLOW_PARAMS),
                        build_dense_node_config),
    "sim_camera_node": ("optical_flow_ros.nodes.sim_camera_node", tuple(SIM_CAMERA_PARAMS),
                        build_sim_node_config),
    "video_source_node": ("optical_flow_ros.nodes.video_source_node",
                          tuple(VIDEO_SOURCE_PARAMS), build_video_node_config),
}

# Values valid alone but not with the others' defaults: (node, {name: value}, a name the
# reason must contain).
CROSS_FIELD = [
    ("tracker_node", {"min_scene_distance": 600.0}, "min_scene_distance"),  # > max (500)
    ("dense_flow_node", {"patch_stride": 16}, "patch_stride"),               # > patch_size (8)
    ("dense_flow_node", {"patch_size": 2}, "patch_size"),                    # < preset stride
    ("sim_camera_node", {"altitude_amplitude": 6.0}, "altitude_amplitude"),  # >= altitude (5)
    ("sim_camera_node", {"range_max": 0.01}, "range_max"),                   # <= range_min
]


def _wrong_type(param: Param) -> Value:
    """A value of another ROS type than the parameter's (an int is no double either)."""
    kind = type(param.default)
    return {bool: "yes", int: 2.5, float: "fast", str: 3}[kind]


def invalid_values(param: Param) -> list[tuple[str, Value]]:
    """(class, value) of every invalid value its table row implies."""
    if param.read_only:  # even its own default: read-only is refused before any value check
        return [("read-only", param.default)]
    spec = param.spec
    out: list[tuple[str, Value]] = [("wrong type", _wrong_type(param))]
    if spec.optional and spec.value_type is bool:  # -1 | 0 | 1
        out += [("above range", 2), ("below range", -2)]
    if spec.choices is not None:
        out += [("unknown choice", f"no_such_{param.name}"), ("empty choice", "")]
        upper = spec.choices[0].upper()
        if upper not in spec.choices:
            out.append(("choice in another case", upper))
    if spec.range is not None:
        lo, hi = spec.range
        if spec.value_type is int:
            below = int(lo) - 1
            out += [("above range", int(hi) + 1)]
            if not (spec.optional and below == -1):  # -1 means "not set" there
                out.append(("below range", below))
            if lo > 0 and not spec.optional:  # e.g. a negative window
                out.append(("negative", -max(int(hi), 5)))
        else:
            margin = max((hi - lo) * 1e-3, 1e-6)
            out += [("above range", float(hi) + margin), ("NaN", math.nan),
                    ("+inf", math.inf), ("-inf", -math.inf)]
            if not (spec.optional and lo - margin <= -1.0 <= lo):
                out.append(("below range", float(lo) - margin))
            if spec.exclusive_min:
                out.append(("excluded minimum", float(lo)))
            if spec.exclusive_max:
                out.append(("excluded maximum", float(hi)))
        if spec.optional:
            out.append(("between -1 and the range", -2 if spec.value_type is int else -0.5))
    if spec.odd:
        even = param.default + 1 if param.default % 2 else param.default
        out.append(("even", even))
    return out


def valid_other(param: Param, values: dict[str, Value],
                build: Callable[[dict[str, Any]], Any]) -> Value | None:
    """A valid value other than the current one, given the other current ``values``."""
    spec, current = param.spec, values[param.name]
    if spec.choices is not None:
        candidates: list[Value] = list(spec.choices)
    elif isinstance(param.default, bool):
        candidates = [not current]
    elif spec.range is not None:
        lo, hi = spec.range
        kind = float if isinstance(param.default, float) else int
        candidates = [kind((lo + hi) / 2), kind(hi), kind(lo), kind(hi) - 1, kind(lo) + 1]
    elif isinstance(param.default, str):
        candidates = [f"{current}_changed"]
    else:
        candidates = []
    for value in candidates:
        if value == current:
            continue
        try:
            build(config_values(NODES_BY_TABLE[id(param)], {**values, param.name: value}))
        except ConfigError:
            continue
        return value
    return None


NODES_BY_TABLE = {id(p): table for _, table, _ in NODES.values() for p in table}


def refused_by_table(param: Param, value: Value) -> bool:
    """True if the descriptor's range (checked by rclpy) or the row's check refuses ``value``."""
    limits = param.range
    if (limits is not None and isinstance(value, int | float) and not isinstance(value, bool)
            and not limits[0] <= value <= limits[1]):  # NaN too
        return True
    try:
        param.check(value)
    except ConfigError:
        return True
    return False


def test_every_row_has_invalid_values_the_table_refuses():
    for name, (_, table, _) in NODES.items():
        for param in table:
            cases = invalid_values(param)
            assert cases, f"{name}.{param.name}: no invalid value class"
            for label, value in cases:
                assert label == "read-only" or refused_by_table(param, value), (
                    name, param.name, label, value)


# ---- runtime -------------------------------------------------------------------------------

class RunningNodes:
    """Every node in its own process, and a peer with clients for their parameter services.

    Args:
        start: parameters a node needs to run at all (video_source_node: a file to play).
    """

    def __init__(self, start: dict[str, dict[str, Value]]) -> None:
        self.peer = RosPeer("param_fuzz")
        self.start = start
        self.procs = {name: NodeProcess(module, params=start.get(name))
                      for name, (module, _, _) in NODES.items()}
        self.results: dict[str, list[tuple[str, Value, Any]]] = {}
        self.expected: dict[str, dict[str, Value]] = {}
        self.got: dict[str, dict[str, Value]] = {}

    def call(self, srv_type, service: str, request, timeout: float = 30.0):
        client = self.peer.node.create_client(srv_type, service)
        assert client.wait_for_service(timeout_sec=timeout), service
        future = client.call_async(request)
        assert self.peer.spin_until(future.done, timeout), service
        return future.result()

    def exercise(self, name: str) -> None:
        """Cross-field cases on the defaults; then valid non-defaults, then every invalid
        value; read every parameter back."""
        _, table, build = NODES[name]
        read_only = {p.name for p in table if p.read_only}
        cross = [(key, value, "cross-field") for node, changes, _ in CROSS_FIELD
                 if node == name for key, value in changes.items() if key not in read_only]
        self.results[name] = self.set(name, cross)
        values = {**defaults(table), **self.start.get(name, {})}
        requests: list[tuple[str, Value, str]] = []  # (parameter, value, class)
        for param in table:
            if param.read_only:
                continue
            value = valid_other(param, values, build)
            if value is not None:
                values[param.name] = value
                requests.append((param.name, value, "valid"))
        for param in table:
            requests += [(param.name, value, label) for label, value in invalid_values(param)]
        self.results[name] += self.set(name, requests)
        self.expected[name] = values
        names = [p.name for p in table]
        got = self.call(GetParameters, f"/{name}/get_parameters",
                        GetParameters.Request(names=names))
        self.got[name] = {n: parameter_value_to_python(v)
                          for n, v in zip(names, got.values, strict=True)}

    def set(self, name: str, requests: list[tuple[str, Value, str]]) -> list[tuple]:
        """One SetParameters request (each parameter set on its own, in order)."""
        reply = self.call(SetParameters, f"/{name}/set_parameters", SetParameters.Request(
            parameters=[Parameter(p, value=v).to_parameter_msg() for p, v, _ in requests]))
        return [(p, v, label, r) for (p, v, label), r
                in zip(requests, reply.results, strict=True)]

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.peer.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    video = write_video(tmp_path_factory.mktemp("video") / "pan.mkv", panning_frames(10), 10.0)
    nodes = RunningNodes({"video_source_node": {"source": str(video), "loop": True}})
    try:
        for name in NODES:
            nodes.exercise(name)
        yield nodes
    finally:
        nodes.close()


@pytest.mark.parametrize("name", list(NODES))
def test_invalid_runtime_values_refused_with_a_reason_and_previous_values_kept(running, name):
    results = running.results[name]
    problems = []
    for param, value, label, result in results:
        if label == "valid":
            if not result.successful:
                problems.append(f"valid {param}={value!r} refused: {result.reason}")
        elif result.successful:
            problems.append(f"{label} {param}={value!r} accepted")
        elif param not in result.reason:
            problems.append(f"{label} {param}={value!r}: reason does not name it: "
                            f"{result.reason!r}")
    assert not problems, "\n".join(problems)
    assert sum(label != "valid" for *_, label, _ in results) >= len(NODES[name][1])
    # still the last valid configuration
    assert running.got[name] == running.expected[name]
    proc = running.procs[name]
    assert proc.alive(), proc.output()
    assert "Traceback" not in proc.output()


# ---- start-up ------------------------------------------------------------------------------

def _yaml_scalar(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return repr(value)


def _first(table, label: str) -> tuple[str, Value] | None:
    for param in table:  # read-only rows too: the YAML sets those
        for case, value in invalid_values(dataclasses.replace(param, read_only=False)):
            if case == label:
                return param.name, value
    return None


def startup_cases() -> list[tuple[str, str, dict[str, Value], str]]:
    """(node, class, YAML values, name to find in the error) for each node's invalid classes."""
    cases = []
    for name, (_, table, _) in NODES.items():
        for label in ("above range", "NaN", "unknown choice", "even"):
            found = _first(table, label)
            if found is not None:
                cases.append((name, label, {found[0]: found[1]}, found[0]))
    cases += [(node, "cross-field", changes, key) for node, changes, key in CROSS_FIELD]
    return cases


def _start_all(tmp_path, cases) -> list[tuple[NodeProcess, int | None]]:
    procs = []
    for i, (name, _, values, _) in enumerate(cases):
        path = tmp_path / f"bad_{i}.yaml"
        path.write_text("/**:\n  ros__parameters:\n" + "".join(
            f"    {key}: {_yaml_scalar(value)}\n" for key, value in values.items()))
        procs.append(NodeProcess(NODES[name][0], params_file=path))
    out = []
    for proc in procs:
        try:
            out.append((proc, proc.proc.wait(60)))
        except subprocess.TimeoutExpired:
            proc.stop()
            out.append((proc, None))
    return out


def test_invalid_yaml_values_stop_each_node_naming_the_parameter(tmp_path):
    cases = startup_cases()
    assert {name for name, *_ in cases} == set(NODES)
    problems = []
    for (name, label, values, key), (proc, code) in zip(cases, _start_all(tmp_path, cases),
                                                        strict=True):
        out = proc.output()
        if code != 2 or key not in out or "Traceback" in out or "[ERROR]" not in out:
            problems.append(f"{name} {label} {values}: exit {code}\n{out[-1500:]}")
    assert not problems, "\n\n".join(problems)


# Regression: a YAML value of the wrong type used to end the node with a traceback, exit 1.
def test_wrong_type_in_yaml_stops_each_node_naming_the_parameter(tmp_path):
    cases = []
    for name, (_, table, _) in NODES.items():
        float_param = next(p for p in table if isinstance(p.default, float))
        cases.append((name, "string for double", {float_param.name: "fast"}, float_param.name))
    problems = []
    for (name, label, values, key), (proc, code) in zip(cases, _start_all(tmp_path, cases),
                                                        strict=True):
        out = proc.output()
        if code != 2 or key not in out or "Traceback" in out:
            problems.append(f"{name} {label} {values}: exit {code}")
    assert not problems, "\n".join(problems)
