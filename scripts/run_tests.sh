#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up (idempotent), lint, then pytest, in the
# environment ROS_DISTRO (jazzy, the default, | kilted) and OPTICAL_FLOW_ROS_STACK (pinned, the
# default, | ubuntu-noble) select (scripts/select_env.sh).
# Extra arguments go to pytest (e.g. scripts/run_tests.sh -k tracker).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=select_env.sh
source scripts/select_env.sh

bash scripts/setup_env.sh

# DDS stays on this machine, on OPTICAL_FLOW_ROS_TEST_DOMAIN, else the ROS_DOMAIN_ID exported,
# else a domain of this run's own (test/conftest.py reads OPTICAL_FLOW_ROS_TEST_DOMAIN).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
OPTICAL_FLOW_ROS_TEST_DOMAIN=${OPTICAL_FLOW_ROS_TEST_DOMAIN:-${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 20 ))}}
export OPTICAL_FLOW_ROS_TEST_DOMAIN ROS_DOMAIN_ID=$OPTICAL_FLOW_ROS_TEST_DOMAIN

versions=$(.venv/bin/python - <<'PY'
import importlib.metadata

import cv2
import numpy
import yaml

print(f"ros-rclpy {importlib.metadata.version('ros-rclpy')}, numpy {numpy.__version__}, "
      f"OpenCV {cv2.__version__}, PyYAML {yaml.__version__}")
PY
)
echo "[test] environment $OFR_ENV_NAME ($versions)"
echo "[test] ruff check"
.venv/bin/ruff check .

# Fast DDS's shared-memory transport leaves its segments and port mutexes in /dev/shm when a
# process is killed (the robustness tests kill nodes on purpose). With ~2600 of them collected
# on this machine, a node hung at start-up and a test process deadlocked inside Fast DDS;
# Fast DDS's own tool removes those no live process holds. Run with the environment's Python:
# its `fastdds` wrapper runs whatever python3 is first on PATH, and Kilted's tool needs psutil
# (requirements/kilted.txt), without which it did nothing: 432 files had piled up by the end of
# a CI run whose Kilted job saw a node print nothing for 60 s at start-up; with psutil Kilted's
# tool removed 260 of them (Jazzy's the rest but 41). Best effort.
fastdds_tool=.venv/tools/fastdds/fastdds.py
if [ -f "$fastdds_tool" ]; then
    timeout 60 .venv/bin/python "$fastdds_tool" shm clean >/dev/null 2>&1 || true
fi

echo "[test] pytest (ROS_DOMAIN_ID=$ROS_DOMAIN_ID, discovery LOCALHOST)"
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    # pytest's 5 means no test ran: for a test command that is a failure, never a pass.
    echo "[test] FAILED: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
