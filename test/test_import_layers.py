"""The package's imports run one way: tools -> nodes -> ros -> core, with no cycle.

Read from the source with ``ast`` (every import, also those inside functions), so a module
that is never imported by a test is checked too.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "optical_flow_ros"

#: Rank of each layer: a module may import its own layer or a lower one only.
LAYERS = {"core": 0, "ros": 1, "nodes": 2, "tools": 3}

#: Third-party modules a layer must not import (core is ROS-free, usable as a plain library).
FORBIDDEN = {"core": ("rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "launch")}


def _module_name(path: Path, root: Path = PACKAGE_DIR.parent) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, root: Path = PACKAGE_DIR.parent) -> set[str]:
    """Every module named by an import statement of ``path`` (absolute names)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            # "from optical_flow_ros.tools import demo" imports the module demo.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


MODULES = _modules()


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


@functools.cache
def _internal_edges() -> dict[str, set[str]]:
    return {name: {m for m in _imports(path) if m in MODULES and m != name}
            for name, path in MODULES.items()}


def test_every_layer_has_modules() -> None:
    layers = {_layer(m) for m in MODULES}
    assert set(LAYERS) <= layers


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_imports_point_down_the_layers(module: str) -> None:
    rank = LAYERS[_layer(module)]  # type: ignore[index]
    upward = sorted(m for m in _internal_edges()[module]
                    if _layer(m) is not None and LAYERS[_layer(m)] > rank)  # type: ignore[index]
    assert not upward, f"{module} imports a layer above its own: {upward}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) in FORBIDDEN))
def test_core_imports_no_ros(module: str) -> None:
    banned = FORBIDDEN[_layer(module)]  # type: ignore[index]
    found = sorted(m for m in _imports(MODULES[module]) if m.split(".")[0] in banned)
    assert not found, f"{module} imports {found}"


def test_no_import_cycle() -> None:
    edges = _internal_edges()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_relative_and_function_level_imports_are_seen(tmp_path: Path) -> None:
    pkg = tmp_path / "optical_flow_ros" / "ros"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("def f():\n    from ..nodes import b\n    from . import c\n")
    got = _imports(pkg / "a.py", tmp_path)
    assert {"optical_flow_ros.nodes.b", "optical_flow_ros.ros.c"} <= got
