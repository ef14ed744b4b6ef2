"""Keep ``config/*.yaml`` and the README's parameter tables in step with the nodes' tables.

    python -m optical_flow_ros.tools.docs --write   # regenerate
    python -m optical_flow_ros.tools.docs --check   # exit 1 if anything is out of date

README sections are delimited by ``<!-- params:NODE -->`` and ``<!-- /params:NODE -->``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from optical_flow_ros.ros.parameter_table import Param, render_markdown, render_yaml

__all__ = ["NodeDocs", "main", "out_of_date", "rendered_files"]


@dataclass(frozen=True)
class NodeDocs:
    """Where one node's parameter table is documented."""

    node: str
    yaml_file: str
    table: Callable[[], list[Param]]


def _dense_table() -> list[Param]:
    from optical_flow_ros.nodes.dense_flow_node import DENSE_FLOW_PARAMS

    return DENSE_FLOW_PARAMS


def _tracker_table() -> list[Param]:
    from optical_flow_ros.nodes.tracker_node import TRACKER_PARAMS

    return TRACKER_PARAMS


def _sim_table() -> list[Param]:
    from optical_flow_ros.nodes.sim_camera_node import SIM_CAMERA_PARAMS

    return SIM_CAMERA_PARAMS


def _video_table() -> list[Param]:
    from optical_flow_ros.nodes.video_source_node import VIDEO_SOURCE_PARAMS

    return VIDEO_SOURCE_PARAMS


NODES = (
    NodeDocs("tracker_node", "config/tracker.yaml", _tracker_table),
    NodeDocs("dense_flow_node", "config/flow.yaml", _dense_table),
    NodeDocs("sim_camera_node", "config/sim_camera.yaml", _sim_table),
    NodeDocs("video_source_node", "config/video_source.yaml", _video_table),
)


def _readme_section(text: str, node: str, table: str) -> str:
    pattern = re.compile(rf"(<!-- params:{node} -->\n).*?(<!-- /params:{node} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no <!-- params:{node} --> section")
    return pattern.sub(lambda m: m.group(1) + table + m.group(2), text)


def rendered_files(root: Path) -> dict[Path, str]:
    """Path -> the content it should have."""
    files: dict[Path, str] = {}
    readme = (root / "README.md").read_text()
    for doc in NODES:
        table = doc.table()
        files[root / doc.yaml_file] = render_yaml(doc.node, table)
        readme = _readme_section(readme, doc.node, render_markdown(table))
    files[root / "README.md"] = readme
    return files


def out_of_date(root: Path) -> list[Path]:
    """Files whose content differs from what the tables say."""
    return [path for path, text in rendered_files(root).items()
            if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the files")
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    args = parser.parse_args(argv)
    if args.write:
        for path, text in rendered_files(args.root).items():
            path.write_text(text)
        return 0
    stale = out_of_date(args.root)
    for path in stale:
        print(f"out of date: {path} (run python -m optical_flow_ros.tools.docs --write)",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
