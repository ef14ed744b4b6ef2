"""optical_flow_ros.ros.stop_signals: signals become a stop request, never an exception.

In-process for the temporary handlers; in a subprocess for what belongs to a whole process
(exit at once while starting, the watchdog, the ignored signals after ``main``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from ros_harness import REPO

from optical_flow_ros.ros.stop_signals import stop_signals


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))


def _wait_for_line(proc: subprocess.Popen, text: str) -> None:
    line = proc.stdout.readline()
    assert text in line, line + proc.stdout.read()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_only_set_the_flag_and_the_handlers_are_put_back(sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with stop_signals() as stop:
        assert not stop.requested
        for _ in range(3):
            os.kill(os.getpid(), sig)   # no KeyboardInterrupt, the process is not killed
        time.sleep(0.01)
        assert stop.requested
        assert stop.wait(0.0)
    assert {s: signal.getsignal(s) for s in before} == before


def test_wait_returns_as_soon_as_a_signal_arrives():
    with stop_signals() as stop:
        assert not stop.wait(0.05)   # nothing yet: the timeout
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
        assert stop.wait(30.0)
        assert stop.requested


def test_stop_signals_outside_the_main_thread_never_turns_true():
    seen: list[bool] = []

    def worker() -> None:
        with stop_signals() as stop:
            seen.append(stop.requested)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    assert seen == [False]


def test_a_stop_while_starting_ends_the_process_at_once_with_0():
    proc = _python(
        "import time\n"
        "from optical_flow_ros.ros.stop_signals import install_for_process\n"
        "stop = install_for_process()\n"
        "with stop.exit_at_once():\n"
        "    print('starting', flush=True)\n"
        "    time.sleep(30)   # a long import\n"
        "print('not reached')\n")
    _wait_for_line(proc, "starting")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "not reached" not in out and "Traceback" not in out, out


def test_a_request_before_the_start_block_ends_the_process_on_entry():
    proc = _python(
        "import os, signal\n"
        "from optical_flow_ros.ros.stop_signals import install_for_process\n"
        "stop = install_for_process()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "print('requested', stop.requested, flush=True)\n"
        "with stop.exit_at_once():\n"
        "    print('not reached')\n")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip() == "requested True", out


def test_the_watchdog_ends_a_process_whose_teardown_overruns():
    proc = _python(
        "import time\n"
        "from optical_flow_ros.ros.stop_signals import install_for_process\n"
        "stop = install_for_process(watchdog_s=0.3)\n"
        "print('running', flush=True)\n"
        "while True:\n"
        "    time.sleep(1)   # a teardown that never ends\n")
    _wait_for_line(proc, "running")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "still running 0.3 s after the stop request; exiting now (teardown watchdog)" in out


def test_the_watchdog_fires_while_the_main_thread_is_stuck_in_c():
    # A blocking read in C never returns to Python, so the Python-level handler never runs;
    # the C-level handler's wake-up byte still reaches the watchdog.
    proc = _python(
        "import os\n"
        "from optical_flow_ros.ros.stop_signals import install_for_process\n"
        "stop = install_for_process(watchdog_s=0.3)\n"
        "read, _ = os.pipe()\n"
        "print('blocked', flush=True)\n"
        "os.read(read, 1)\n")
    _wait_for_line(proc, "blocked")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "teardown watchdog" in out, out


def test_no_watchdog_without_a_stop_and_none_after_a_clean_end():
    proc = _python(
        "import time\n"
        "from optical_flow_ros.ros.stop_signals import install_for_process, run_program\n"
        "install_for_process(watchdog_s=0.2)\n"
        "def main():\n"
        "    time.sleep(0.5)   # longer than the watchdog: it only counts after a stop\n"
        "    return 3\n"
        "raise SystemExit(run_program(main))\n")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3 and out == "", out


SLOW_FINALISER = """
import os, time
from optical_flow_ros.ros.stop_signals import run_program

class Slow:   # like DDS objects destroyed while the interpreter finalises
    def __init__(self):
        self.sleep, self.write = time.sleep, os.write
    def __del__(self):
        self.write(1, b"finalising\\n")
        self.sleep(1.0)

slow = Slow()
raise SystemExit({main})
"""


@pytest.mark.parametrize(("main", "code"), [("run_program(lambda: 0)", 0), ("0", -signal.SIGTERM)])
def test_signals_after_main_returned_do_not_kill_the_exiting_interpreter(main, code):
    # Python puts SIGTERM's default action back when it finalises: a SIGTERM then kills a
    # process that has already torn down cleanly (-15, the second case), unless run_program
    # has set the stop signals to be ignored (the first).
    proc = _python(SLOW_FINALISER.format(main=main))
    _wait_for_line(proc, "finalising")
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == code and "Traceback" not in out, out


def test_a_finalisation_that_hangs_after_a_stop_is_ended_by_faulthandler():
    # Python stops the watchdog thread while it finalises, and SIGINT/SIGTERM are ignored
    # then: faulthandler's C thread is what ends a hang there (exit 1, with the stacks).
    proc = _python(
        "import os, signal, time\n"
        "from optical_flow_ros.ros.stop_signals import install_for_process, run_program\n"
        "install_for_process(watchdog_s=0.5)\n"
        "class Hang:   # a destructor that never returns while the interpreter finalises\n"
        "    def __init__(self):\n"
        "        self.sleep = time.sleep\n"
        "    def __del__(self):\n"
        "        self.sleep(60)\n"
        "hang = Hang()\n"
        "def main():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)   # the stop; teardown is done at once\n"
        "    return 0\n"
        "raise SystemExit(run_program(main))\n")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "Timeout" in out and "__del__" in out, out
