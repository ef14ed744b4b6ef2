"""SIGINT and SIGTERM as a request to stop: a flag and a wake-up, never an exception.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be, also
half-way through rclpy's teardown (a traceback; or a node destroyed twice, whose teardown
never ends), and SIGTERM kills the process (exit code -15). Under ``ros2 launch`` a node gets
SIGINT twice in quick succession (its process group's, then launch's own), so the second one
lands in the teardown the first one started. Here both signals, however many and whenever they
come, only record the request: the program's loops see it, stop, tear down once and exit 0.

The nodes call rclpy.init() without rclpy's own signal handlers (see nodes/node_main.py). A
program that lets rclpy.init() install them gets rclpy's C handlers in front of these,
chaining to them: a signal then also shuts the rclpy contexts down, and is still recorded here.

Two ways in:

- :func:`install_for_process`, for the package's executables (called on their first line,
  before the heavy imports): kept until the process ends. It then unblocks SIGINT and
  SIGTERM, which the installed executables' launchers block before the interpreter starts
  (:mod:`optical_flow_ros.tools.launcher`): a stop that came during the start-up is handled
  at that moment (threads started before, the watchdog's, keep them blocked: harmless, as
  Python runs the handlers in the main thread whichever thread the kernel interrupts).
  While the program is still starting (:meth:`StopSignals.exit_at_once`) a stop ends the
  process at once, since nothing exists yet that needs tearing down. A watchdog thread ends
  the process if it is still running :data:`WATCHDOG_S` after the first stop request (a
  teardown that overran; it says so on stderr): nothing of the package outlives its launch.
  It is woken by the C-level signal handler (``signal.set_wakeup_fd``), so it also fires
  while the main thread is stuck in C. :func:`run_program` runs ``main()``, then ignores
  the signals while the interpreter exits, and bounds that exit with faulthandler's timer
  (see :meth:`StopSignals.finish`).
- :func:`stop_signals`, for a ``main()`` that tests also call in-process: the process's
  handlers when installed, else its own for the duration of the ``with`` block, restored after
  (no watchdog then).

This module imports nothing but the standard library, so it can run before everything else.
"""

from __future__ import annotations

import faulthandler
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["WATCHDOG_S", "StopSignals", "install_for_process", "run_program", "stop_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

WATCHDOG_S = 1.7
"""Seconds from the first stop request after which the watchdog ends the process (exit 0)."""

FINALISE_LIMIT_S = 10.0
"""Longest interpreter finalisation after a ``main()`` that ended without a stop request."""

_Handler = Callable[[int, FrameType | None], object] | int | None   # as signal.signal takes

_process: StopSignals | None = None  # the process's handlers (one set per process by nature)


class StopSignals:
    """SIGINT/SIGTERM handlers that record a stop request (see the module docstring).

    ``requested`` and :meth:`wait` take no lock, so they are safe to call from any thread and
    from the handler's own interruptions.
    """

    def __init__(self) -> None:
        # Written once per signal by the Python-level handler and never drained: readable
        # from the first request on, so any number of threads can wait on it.
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._count = 0
        self._exit_at_once = False
        self._owns_process = False
        self._watchdog: _Watchdog | None = None
        self._previous: dict[int, _Handler] = {}

    @property
    def requested(self) -> bool:
        """True once SIGINT or SIGTERM has arrived."""
        return self._count > 0

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until a stop is requested or ``timeout`` s pass (None: no limit).

        Returns:
            ``requested``.
        """
        if self._count == 0:
            try:
                select.select([self._read_fd], [], [], timeout)
            except (OSError, ValueError):   # closed: the handlers were removed
                pass
        return self.requested

    @contextmanager
    def exit_at_once(self) -> Iterator[None]:
        """While active, a stop request ends the process at once with exit code 0.

        For work before the program has created anything that needs tearing down (imports,
        loading a texture); a request that came earlier ends it on entry. Only the process's
        handlers (:func:`install_for_process`) do this; temporary ones, as a ``main()`` called
        in-process gets, only record the request.
        """
        if not self._owns_process:
            yield
            return
        if self.requested:
            self._exit_now()
        self._exit_at_once = True
        try:
            yield
        finally:
            self._exit_at_once = False

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self._count += 1
        if self._watchdog is not None:
            self._watchdog.stop_seen()
        if self._exit_at_once:
            self._exit_now()
        try:
            os.write(self._write_fd, b"\0")
        except OSError:   # full (thousands of signals) or closed: already readable
            pass

    @staticmethod
    def _exit_now() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(0)

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only; ValueError elsewhere)."""
        self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}

    def restore(self) -> None:
        """Put back the handlers that were in place before :meth:`install`; close the pipe."""
        for sig, previous in self._previous.items():
            # None: a handler set outside Python, which Python cannot put back
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)
        self._previous = {}
        for fd in (self._read_fd, self._write_fd):
            os.close(fd)
        self._read_fd = self._write_fd = -1

    def finish(self) -> None:
        """Ignore SIGINT and SIGTERM from now on: the program is done, the interpreter exits.

        When Python finalises it puts the default handlers back, and a SIGTERM then would
        kill the process (exit code -15) after a clean teardown. With the process's handlers,
        the finalisation itself is bounded too (the watchdog's deadline after a stop, else
        :data:`FINALISE_LIMIT_S`): past it, faulthandler prints where it hangs and ends the
        process (exit code 1). The watchdog thread cannot do that: Python stops its threads while it
        finalises, and a process that ignores SIGINT and SIGTERM would otherwise only yield
        to SIGKILL.
        """
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        self.bound_teardown()

    def bound_teardown(self) -> None:
        """End the process if what follows (a node's teardown) has not ended by the deadline.

        The watchdog's deadline after a stop, else :data:`FINALISE_LIMIT_S`, from now: past
        it faulthandler prints where the process hangs and ends it (exit code 1). Unlike the
        watchdog thread it needs no GIL, so it also ends a teardown stuck in C that holds it
        (a node refused at start-up once hung so, stop or no stop: most likely in its DDS
        participant's deletion). Only with the process's handlers
        (:func:`install_for_process`); calling it again moves the deadline.
        """
        if self._watchdog is not None:
            faulthandler.dump_traceback_later(self._watchdog.seconds_left(), exit=True)

    def start_watchdog(self, seconds: float) -> None:
        """End the process (exit 0, one line on stderr) ``seconds`` after the first stop request.

        Woken by the C-level handler through ``signal.set_wakeup_fd``, so it counts from the
        signal's arrival even while the main thread is busy in C. Main thread only.
        """
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        self._watchdog = _Watchdog(wake_read, seconds)
        threading.Thread(target=self._watchdog.run, name="stop-watchdog", daemon=True).start()


class _Watchdog:
    """Ends the process ``seconds`` after the first SIGINT/SIGTERM byte on ``fd``."""

    def __init__(self, fd: int, seconds: float) -> None:
        self._fd, self._seconds = fd, seconds
        self._first_stop_at: float | None = None   # time.monotonic()

    def stop_seen(self) -> None:
        """Note a stop request's arrival (the thread notes it too, maybe later)."""
        if self._first_stop_at is None:
            self._first_stop_at = time.monotonic()

    def seconds_left(self) -> float:
        """Until the deadline (:data:`FINALISE_LIMIT_S` while no stop has come); >= 0.1."""
        if self._first_stop_at is None:
            return FINALISE_LIMIT_S
        return max(self._seconds - (time.monotonic() - self._first_stop_at), 0.1)

    def run(self) -> None:
        """The thread: wait for a stop byte, then the deadline, then exit 0."""
        stops = {int(sig) for sig in STOP_SIGNALS}
        while True:
            select.select([self._fd], [], [])
            try:
                data = os.read(self._fd, 512)
            except BlockingIOError:
                continue
            if stops.intersection(data):
                break
        self.stop_seen()
        time.sleep(self.seconds_left())
        os.write(2, (f"[WARN] {os.path.basename(sys.argv[0])}: still running "
                     f"{self._seconds:g} s after the stop request; exiting now (teardown "
                     "watchdog)\n").encode())
        os._exit(0)


def install_for_process(watchdog_s: float = WATCHDOG_S) -> StopSignals:
    """The process's stop handlers, installed on the first call and kept (main thread only).

    Args:
        watchdog_s: seconds after the first stop request at which the process ends regardless.

    Returns:
        The handlers (the same object on every call).
    """
    global _process  # signal handlers belong to the process: one set per process
    if _process is None:
        stop = StopSignals()
        stop.install()
        stop.start_watchdog(watchdog_s)
        stop._owns_process = True
        _process = stop
        # The executables' launchers block both signals before the interpreter's start-up
        # (tools/launcher.py); one that came in since is delivered to the handler now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return _process


def run_program(main: Callable[[], int]) -> int:
    """Run a program's ``main()`` with the process's stop handlers; its exit code.

    For a module started as a program (``if __name__ == "__main__"``): the handlers are
    installed first (though after the module's own imports) and signals are ignored once
    ``main`` has returned.
    """
    stop = install_for_process()
    try:
        return main()
    finally:
        stop.finish()


@contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """Stop handlers for the block: the process's when installed, else temporary ones.

    Outside the main thread (where handlers cannot be set) the flag never turns true.
    """
    if _process is not None:
        yield _process
        return
    stop = StopSignals()
    try:
        stop.install()
    except ValueError:   # not the main thread: no handlers, the flag stays false
        pass
    try:
        yield stop
    finally:
        stop.restore()
