#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up (idempotent), lint, then pytest.
# Extra arguments go to pytest (e.g. scripts/run_tests.sh -k tracker).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup_env.sh

# DDS stays on this machine, on a domain of this run's own (test/conftest.py uses the same).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
OPTICAL_FLOW_ROS_TEST_DOMAIN=${OPTICAL_FLOW_ROS_TEST_DOMAIN:-$(( (RANDOM % 100) + 20 ))}
export OPTICAL_FLOW_ROS_TEST_DOMAIN ROS_DOMAIN_ID=$OPTICAL_FLOW_ROS_TEST_DOMAIN

echo "[test] ruff check"
.venv/bin/ruff check .

echo "[test] pytest (ROS_DOMAIN_ID=$ROS_DOMAIN_ID, discovery LOCALHOST)"
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    # pytest's 5 means no test ran: for a test command that is a failure, never a pass.
    echo "[test] FAILED: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
