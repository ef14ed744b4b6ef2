"""The installed executables' launchers: SIGINT and SIGTERM blocked from the first instruction.

``ros2 run optical_flow_ros NAME`` and ``ros2 launch`` start ``lib/optical_flow_ros/NAME``,
which setup.py writes from :func:`script` (instead of setuptools' console scripts). The stop
handlers (:mod:`optical_flow_ros.ros.stop_signals`) can only be installed once the package's
code runs, ~60-140 ms after the process starts (the interpreter, ``site``, the ros-* wheels'
``.pth``, which re-executes the interpreter once, a console script's entry-point lookup);
until then a SIGINT gave a ``KeyboardInterrupt`` traceback or death by signal, a SIGTERM
exit code -15. A signal MASK, unlike a handler, survives ``execve`` and so does a signal
that is pending because it is blocked. So a launcher:

1. blocks SIGINT and SIGTERM: in ``/usr/bin/env --block-signal`` (GNU coreutils >= 8.31,
   named in the ``#!`` line) before the interpreter starts, and again as the script's first
   statement (the only block where ``env`` cannot do it; the C module ``_signal``, since
   ``import signal`` loads ``enum`` and ``functools`` first);
2. runs ``site`` itself (the interpreter starts with ``-S``, so that nothing runs before
   step 1): site-packages, ``.pth`` files, the ros-* wheels' re-execution (same argv, the
   mask and any pending signal carried over);
3. runs :func:`optical_flow_ros.tools.executables.run`, which installs the stop handlers
   and then unblocks the two signals: one that came in meanwhile is delivered to the handler
   at that moment and ends the process with exit code 0.

What remains unprotected is the process's life before the block: ``env``'s own start
(its loading: signals up to 1-5 ms after ``Popen`` returned still landed there on a shared
2-core machine), or, where ``env`` cannot block signals, the interpreter's start (5-20 ms).
A SIGINT there ends the process with -2 (or a traceback-free exit 0), a SIGTERM with -15.

:func:`command` starts an executable the same way without an installed file, and
:func:`spawn` starts a launcher (file or :func:`command`) with both signals blocked already in
the child before its ``execve``, so that no moment of the child's life is unprotected: the
package's own parents use it (:class:`~optical_flow_ros.tools.node_process.NodeProcess`, so
the demo and the tests). ``python -m optical_flow_ros NAME`` cannot block before ``site``: it
is covered from the package's first line only.

Standard library only: setup.py imports this module to write the launchers.
"""

from __future__ import annotations

import functools
import re
import signal
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["BLOCK_OPTION", "ENV", "command", "env_blocks_signals", "script", "shebang",
           "source", "spawn"]

ENV = "/usr/bin/env"
BLOCK_OPTION = "--block-signal=INT,TERM"
SHEBANG_MAX = 127
"""Longest ``#!`` line used with ``env``; Linux before 5.1 cuts the line at 127 characters."""

_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+-]+")   # nothing env -S would split or expand

_SOURCE = '''\
# {name}: an executable of optical_flow_ros, written by its setup.py from
# optical_flow_ros/tools/launcher.py. Started with -S: SIGINT and SIGTERM are blocked before
# anything else runs (site, imports), and unblocked once the stop handlers are installed.
try:
    import _signal
    _signal.pthread_sigmask(_signal.SIG_BLOCK, {{_signal.SIGINT, _signal.SIGTERM}})
except KeyboardInterrupt:   # a SIGINT during the interpreter's own start: stop, quietly
    raise SystemExit(0) from None
import sys
if sys.flags.no_site:   # site-packages and .pth files (they may re-execute the interpreter)
    import site
    site.main()
{set_argv0}from optical_flow_ros.tools.executables import run
sys.exit(run({name!r}))
'''


def source(name: str, *, argv0: bool = False) -> str:
    """Python source of the launcher of executable ``name`` (run by ``python -S``).

    Args:
        name: a key of :data:`optical_flow_ros.tools.executables.EXECUTABLES`.
        argv0: set ``sys.argv[0]`` to ``name`` (for ``python -c``, where it is ``-c``).
    """
    return _SOURCE.format(name=name, set_argv0=f"sys.argv[0] = {name!r}\n" if argv0 else "")


@functools.cache
def env_blocks_signals() -> bool:
    """True when :data:`ENV` takes ``-S`` and :data:`BLOCK_OPTION` (GNU coreutils >= 8.31).

    Asked once per process, by running it.
    """
    try:
        return subprocess.run([ENV, f"-S {BLOCK_OPTION} true"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def shebang(python: str) -> str:
    """The ``#!`` line of a launcher run by the interpreter ``python`` (absolute path).

    ``#!/usr/bin/env -S --block-signal=INT,TERM PYTHON -S`` where ``env`` can block signals
    and the line stays short and plain (``env -S`` splits the rest of the line into
    arguments); else ``#!PYTHON -S``.
    """
    via_env = f"#!{ENV} -S {BLOCK_OPTION} {python} -S"
    if (_PLAIN_PATH.fullmatch(python) and len(via_env) <= SHEBANG_MAX
            and env_blocks_signals()):
        return via_env
    return f"#!{python} -S"


def script(name: str, python: str) -> str:
    """The whole launcher file of executable ``name`` (installed as lib/optical_flow_ros/NAME)."""
    return f"{shebang(python)}\n{source(name)}"


def command(name: str, python: str = sys.executable) -> list[str]:
    """The argv that starts executable ``name`` as its launcher does; append its arguments.

    ``[env, --block-signal=INT,TERM, python, -S, -c, SOURCE]`` (without ``env`` where it
    cannot block signals). The package must be importable from ``PYTHONPATH`` or
    site-packages.
    """
    interpreter = [python, "-S"]
    if env_blocks_signals():
        interpreter = [ENV, BLOCK_OPTION, *interpreter]
    return [*interpreter, "-c", source(name, argv0=True)]


def spawn(argv: Sequence[str], **popen_kwargs: object) -> subprocess.Popen:
    """``subprocess.Popen(argv, **popen_kwargs)``, SIGINT and SIGTERM blocked in the child.

    Blocked from the child's creation on (the calling thread's mask, which ``fork`` and
    ``execve`` pass on). Only for a launcher (an installed executable or :func:`command`):
    it unblocks them once its stop handlers are in place; any other program would keep them
    blocked and then yield to SIGKILL only. A SIGINT or SIGTERM to the calling thread
    meanwhile is delivered when this returns.
    """
    stops = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        return subprocess.Popen(list(argv), **popen_kwargs)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
