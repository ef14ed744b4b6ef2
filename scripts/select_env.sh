# Sourced by setup_env.sh, run_tests.sh and demo.sh (not run on its own): which environment
# this run uses, from two variables, each refused with one line when unknown:
#   ROS_DISTRO              jazzy (default when unset: the LTS) | kilted
#   OPTICAL_FLOW_ROS_STACK  pinned (default: numpy 2, OpenCV 5) | ubuntu-noble (Ubuntu 24.04's
#                           numpy 1.26.4, OpenCV 4.6.0, PyYAML 6.0.1)
# Each (distro, stack) has its own .venv-<distro>-<stack>/, build-<distro>-<stack>/ and
# install-<distro>-<stack>/; setup_env.sh points the .venv and install symlinks at the
# selected ones, so `.venv/bin/python` and `source install/setup.bash` always mean the
# environment last set up. Sets and exports ROS_DISTRO and OPTICAL_FLOW_ROS_STACK, and sets
# OFR_ENV_NAME (<distro>-<stack>).
SUPPORTED_ROS_DISTROS="jazzy kilted"
SUPPORTED_STACKS="pinned ubuntu-noble"
ROS_DISTRO=${ROS_DISTRO:-jazzy}
OPTICAL_FLOW_ROS_STACK=${OPTICAL_FLOW_ROS_STACK:-pinned}
case " $SUPPORTED_ROS_DISTROS " in
    *" $ROS_DISTRO "*) ;;
    *) echo "ROS_DISTRO=$ROS_DISTRO is not supported; supported: ${SUPPORTED_ROS_DISTROS// /, } (unset means jazzy)" >&2
       exit 2 ;;
esac
case " $SUPPORTED_STACKS " in
    *" $OPTICAL_FLOW_ROS_STACK "*) ;;
    *) echo "OPTICAL_FLOW_ROS_STACK=$OPTICAL_FLOW_ROS_STACK is not supported; supported: ${SUPPORTED_STACKS// /, } (unset means pinned)" >&2
       exit 2 ;;
esac
export ROS_DISTRO OPTICAL_FLOW_ROS_STACK
OFR_ENV_NAME="$ROS_DISTRO-$OPTICAL_FLOW_ROS_STACK"
