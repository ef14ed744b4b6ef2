"""How to hand Fast DDS an XML profile (config/fastdds_large_images.xml) on each distro.

Fast DDS reads its default profile file from an environment variable whose name changed with
its major version: Fast DDS 2.14 (Jazzy's ros-fastrtps) reads only
``FASTRTPS_DEFAULT_PROFILES_FILE`` and ignores ``FASTDDS_DEFAULT_PROFILES_FILE``; Fast DDS 3
(Kilted's ros-fastdds) reads ``FASTDDS_DEFAULT_PROFILES_FILE`` and still honours the old name
with a deprecation warning from every process. The profile XML itself is the same for both.
"""

from __future__ import annotations

import os

from optical_flow_ros.ros.ros_distro import ros_distro

__all__ = ["PROFILE_VARIABLES", "profile_env", "profiles_file_variable"]

#: Every variable Fast DDS (2 or 3) reads a default profile file from.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def profiles_file_variable(distro: str | None = None) -> str:
    """The profile-file variable the Fast DDS of ``distro`` reads (default: the installed one).

    ``FASTRTPS_DEFAULT_PROFILES_FILE`` for Jazzy (Fast DDS 2.14), otherwise
    ``FASTDDS_DEFAULT_PROFILES_FILE`` (Kilted and later: Fast DDS 3).
    """
    return ("FASTRTPS_DEFAULT_PROFILES_FILE" if (distro or ros_distro()) == "jazzy"
            else "FASTDDS_DEFAULT_PROFILES_FILE")


def profile_env(path: str | os.PathLike[str] | None,
                base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for child processes with Fast DDS's default profile set to ``path``.

    Args:
        path: the profile XML; None leaves the processes on Fast DDS's built-in defaults.
        base: the environment to start from (default: this process's).

    Returns:
        A copy of ``base`` without any profile variable, plus the installed distro's one
        set to ``path`` (when given).
    """
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in PROFILE_VARIABLES}
    if path is not None:
        env[profiles_file_variable()] = os.fspath(path)
    return env
