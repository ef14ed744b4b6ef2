"""config/*.yaml and the README's parameter tables match the nodes' parameter tables."""

from __future__ import annotations

import yaml
from ros_harness import REPO

from optical_flow_ros.ros.parameter_table import defaults
from optical_flow_ros.tools.docs import NODES, out_of_date


def test_generated_docs_are_up_to_date():
    assert out_of_date(REPO) == []


def test_yaml_files_load_as_ros_parameters_with_every_default():
    for doc in NODES:
        data = yaml.safe_load((REPO / doc.yaml_file).read_text())
        assert data["/**"]["ros__parameters"] == defaults(doc.table())
