#!/usr/bin/env bash
# The main job on an embedded default: set up if needed, then run the full pipeline over
# real DDS (simulated camera -> tracker + dense flow) for ~15 s and print a summary.
# Options go to the demo: --duration S, --source sim|topic:<image topic>|video:FILE, --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# DDS stays on this machine; the demo picks a ROS domain of its own.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
exec .venv/bin/python -m optical_flow_ros demo "$@"
