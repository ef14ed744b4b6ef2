#!/usr/bin/env bash
# One command from a fresh clone to a working environment, for the distro and stack chosen by
# ROS_DISTRO (jazzy, the default, | kilted) and OPTICAL_FLOW_ROS_STACK (pinned, the default, |
# ubuntu-noble); see scripts/select_env.sh. For <env> = <distro>-<stack>:
#   .venv-<env>/     Python 3.11 venv with every pinned dependency (requirements/<distro>.txt,
#                    which includes requirements/common.txt, and requirements/stack-<stack>.txt),
#                    ROS 2 from PyPI's ros-* wheels included;
#   install-<env>/   the package built by colcon (build-<env>/ its build base), as in a ROS 2
#                    workspace;
#   .venv, install   symlinks to the two above, so `.venv/bin/python` and
#                    `source install/setup.bash` use the environment set up last.
#   Debian's xvfb and xdotool for the viewer's tests, when absent and we run as root.
# Idempotent: each environment's dependencies are reinstalled only when its requirement files
# change, and colcon rebuilds only when a file that goes into the package changed. Switching
# distro or stack reuses an environment already set up (only the symlinks move).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=select_env.sh
source scripts/select_env.sh

log() { printf '[setup] %s\n' "$*" >&2; }

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            command -v "$candidate"
            return 0
        fi
    done
    log "Python 3.11 is required (the ROS 2 $ROS_DISTRO wheels are cp311); set PYTHON=/path/to/python3.11"
    return 1
}

venv=".venv-$OFR_ENV_NAME"
install_base="install-$OFR_ENV_NAME"
requirement_files=("requirements/$ROS_DISTRO.txt" "requirements/stack-$OPTICAL_FLOW_ROS_STACK.txt")

# A clone set up before environments were per (distro, stack) has real .venv/ and install/
# directories (Kilted); they are generated, so they give way to the symlinks.
for link in .venv install; do
    if [ -e "$link" ] && [ ! -L "$link" ]; then
        log "removing the old single $link/ (environments are now $link-<distro>-<stack>/)"
        rm -rf "$link"
    fi
done

if [ ! -x "$venv/bin/python" ]; then
    python=$(find_python)
    log "creating $venv with $python"
    "$python" -m venv "$venv"
fi
ln -sfn "$venv" .venv
ln -sfn "$install_base" install

req_hash=$(cat "${requirement_files[@]}" requirements/common.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$req_hash" ]; then
    log "installing pinned dependencies into $venv (${requirement_files[*]})"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet --upgrade pip==25.3
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
        "${requirement_files[@]/#/-r}"
    echo "$req_hash" > "$venv/.requirements.sha256"
fi

# The viewer's tests run it on a virtual X display (Debian's xvfb) and press its keys with
# xdotool; their libx11-6 and libxext6 are also what the SDL in pygame's wheel loads at run
# time. Installed when absent and we can (root with apt-get); otherwise those tests skip.
missing_debs=()
command -v Xvfb >/dev/null 2>&1 || missing_debs+=(xvfb)
command -v xdotool >/dev/null 2>&1 || missing_debs+=(xdotool)
if [ ${#missing_debs[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing Debian packages for the viewer tests: ${missing_debs[*]}"
        apt_log=$(mktemp)
        if ! { apt-get update -qq &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                    "${missing_debs[@]}"; } >"$apt_log" 2>&1; then
            log "could not install ${missing_debs[*]} ($(tail -n 1 "$apt_log")); viewer tests will skip"
        fi
        rm -f "$apt_log"
    else
        log "${missing_debs[*]} missing and not root with apt-get: viewer tests will skip (sudo apt-get install ${missing_debs[*]})"
    fi
fi

# Hash every tracked or new file that colcon installs, so an unchanged tree skips the build.
src_hash=$(git ls-files --cached --others --exclude-standard -- \
        package.xml setup.py setup.cfg resource optical_flow_ros launch config 2>/dev/null |
    sort | xargs sha256sum 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$(cat "$install_base/.source.sha256" 2>/dev/null)" != "$src_hash" ] ||
        [ ! -f "$install_base/setup.bash" ]; then
    log "colcon build into $install_base"
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
    if ! output=$(colcon --log-base log build --paths . --build-base "build-$OFR_ENV_NAME" \
            --install-base "$install_base" --event-handlers console_cohesion- status- \
            summary- 2>&1); then
        printf '%s\n' "$output" >&2
        log "colcon build failed; see log/latest_build"
        exit 1
    fi
    echo "$src_hash" > "$install_base/.source.sha256"
fi
log "ready: ROS 2 $ROS_DISTRO, stack $OPTICAL_FLOW_ROS_STACK: .venv -> $venv, install -> $install_base (source install/setup.bash for ros2-style use)"
