"""confine_dds: loopback always; the user's ROS_DOMAIN_ID when exported, else one of its own."""

from __future__ import annotations

import os

import pytest

from optical_flow_ros.tools.node_process import MAX_DOMAIN_ID, confine_dds


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE", raising=False)
    return monkeypatch


def test_an_exported_domain_is_kept(env):
    env.setenv("ROS_DOMAIN_ID", "42")
    assert confine_dds() == 42
    assert os.environ["ROS_DOMAIN_ID"] == "42"
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


@pytest.mark.parametrize("unset", [None, ""])
def test_without_one_a_domain_of_its_own_is_picked_and_exported(env, unset):
    domains = set()
    for _ in range(20):
        if unset is None:
            env.delenv("ROS_DOMAIN_ID", raising=False)
        else:
            env.setenv("ROS_DOMAIN_ID", unset)
        domain = confine_dds()
        assert os.environ["ROS_DOMAIN_ID"] == str(domain)
        domains.add(domain)
    assert all(120 <= d <= 219 for d in domains) and len(domains) > 1


def test_an_explicit_domain_wins_over_the_exported_one(env):
    env.setenv("ROS_DOMAIN_ID", "42")
    assert confine_dds(7) == 7


@pytest.mark.parametrize("value", ["front", "1.5", str(MAX_DOMAIN_ID + 1), "-1"])
def test_a_domain_that_is_none_is_refused_with_the_reason(env, value):
    env.setenv("ROS_DOMAIN_ID", value)
    with pytest.raises(ValueError, match="ROS_DOMAIN_ID|out of range 0-232"):
        confine_dds()
