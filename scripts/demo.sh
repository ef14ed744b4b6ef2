#!/usr/bin/env bash
# The main job on an embedded default: set up if needed, then run the full pipeline over
# real DDS (simulated camera -> tracker + dense flow) for ~15 s and print a summary, in the
# environment ROS_DISTRO (jazzy, the default, | kilted) and OPTICAL_FLOW_ROS_STACK (pinned, the
# default, | ubuntu-noble) select (scripts/select_env.sh).
# Options go to the demo: --duration S, --source sim|topic:<image topic>|video:FILE, --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=select_env.sh
source scripts/select_env.sh
bash scripts/setup_env.sh
# DDS stays on this machine, on the ROS_DOMAIN_ID exported, else a domain the demo picks.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
exec .venv/bin/python -m optical_flow_ros demo "$@"
