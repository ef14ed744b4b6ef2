"""The executables' launchers: SIGINT and SIGTERM blocked from the first instruction.

Deterministic checks of each step (tools/launcher.py): the interpreter named in the ``#!``
line gets control with both signals blocked; ``site`` (started by hand after ``-S``) and the
ros-* wheels' re-execution run with them blocked; a stop that is pending then, also across a
re-execution of the interpreter, ends the executable with exit code 0 and no traceback as
soon as its handlers are in place, which then unblock the signals. Each for the three ways
in: the installed file as setup.py writes it, the same file with the plain ``#!python -S``
line (where ``env`` cannot block signals) and :func:`launcher.command` (NodeProcess). And
:func:`launcher.spawn`, which blocks them before the child's ``execve``: signals sent the
instant ``Popen`` returns stop it cleanly every time. The timing side (signals at spawn +
0..200 ms to the installed executables, as ``ros2 launch`` starts them) is in
test_robustness_shutdown.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ros_harness import REPO

from optical_flow_ros.tools import launcher

BOTH = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
ENV_BLOCKS = launcher.env_blocks_signals()

# Runs inside site.main() of the launched interpreter: records its state; optionally
# sends itself signals (pending while blocked) and re-executes the interpreter first, as the
# ros-* wheels' .pth does.
SITECUSTOMIZE = """
import json, os, signal, sys
record = {"pid": os.getpid(), "no_site": sys.flags.no_site, "argv": sys.orig_argv,
          "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
          "bootstrapped": os.environ.get("_ROS_WHEELS_BOOTSTRAP_COMPLETE")}
with open(os.environ["LAUNCHER_RECORD"], "a") as out:
    out.write(json.dumps(record) + "\\n")
for name in filter(None, os.environ.get("LAUNCHER_SEND", "").split(",")):
    os.kill(os.getpid(), getattr(signal, name))
if os.environ.get("LAUNCHER_REEXEC") == "1":
    os.environ["LAUNCHER_REEXEC"] = "done"
    os.execv(sys.executable, sys.orig_argv)
"""


def _start_argv(form: str, name: str, folder: Path) -> list[str]:
    """argv that starts executable ``name`` the way ``form`` names."""
    if form == "command":
        return launcher.command(name)
    path = folder / name
    if form == "installed":
        path.write_text(launcher.script(name, sys.executable))
    else:   # "plain": where /usr/bin/env cannot block signals
        path.write_text(f"#!{sys.executable} -S\n{launcher.source(name)}")
    path.chmod(0o755)
    return [str(path)]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(site), str(REPO))),
               LAUNCHER_RECORD=str(tmp_path / "record.jsonl"), **extra)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    return env


def _records(tmp_path: Path) -> list[dict]:
    path = tmp_path / "record.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


FORMS = ["installed", "plain", "command"]


def test_shebang_blocks_signals_with_env_where_it_can():
    python = "/usr/bin/python3"
    line = launcher.shebang(python)
    if ENV_BLOCKS:
        assert line == f"#!/usr/bin/env -S --block-signal=INT,TERM {python} -S"
    else:
        assert line == f"#!{python} -S"
    # env -S would split a path with a space; the kernel would cut a long line
    assert launcher.shebang("/opt/my ws/python3") == "#!/opt/my ws/python3 -S"
    long = "/opt/" + "w" * 120 + "/python3"
    assert launcher.shebang(long) == f"#!{long} -S"


@pytest.mark.skipif(not ENV_BLOCKS, reason="/usr/bin/env has no --block-signal "
                                           "(GNU coreutils < 8.31): the plain #! line is used")
def test_the_interpreter_gets_control_with_both_signals_blocked(tmp_path):
    # A stand-in interpreter that reports its own signal mask, named in the launcher's #! line.
    fake = tmp_path / "python3"
    fake.write_text(f"#!{sys.executable} -S\nimport _signal\n"
                    "print(sorted(int(s) for s in _signal.pthread_sigmask("
                    "_signal.SIG_BLOCK, ())))\n")
    fake.chmod(0o755)
    exe = tmp_path / "tracker_node"
    exe.write_text(launcher.script("tracker_node", str(fake)))
    exe.chmod(0o755)
    assert exe.read_text().startswith("#!/usr/bin/env -S --block-signal")
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    blocked = set(json.loads(result.stdout))
    assert {signal.SIGINT, signal.SIGTERM} <= blocked


@pytest.mark.parametrize("form", FORMS)
def test_site_and_the_bootstrap_run_with_both_signals_blocked(tmp_path, form):
    result = subprocess.run([*_start_argv(form, "process_bag", tmp_path), "--help"],
                            capture_output=True, text=True, timeout=60, env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: process_bag "), result.stdout   # argv[0] kept
    records = _records(tmp_path)
    # sitecustomize runs after the .pth files: only in the re-executed interpreter
    assert len(records) == 1, records
    record = records[0]
    assert record["bootstrapped"] == "1" and record["no_site"] == 1, record
    assert {signal.SIGINT, signal.SIGTERM} <= set(record["blocked"]), record
    assert "-S" in record["argv"], record


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("send", ["SIGINT", "SIGTERM", "SIGTERM,SIGINT,SIGTERM"])
@pytest.mark.parametrize("reexec", [False, True], ids=["", "across a re-exec"])
def test_a_stop_pending_during_start_up_ends_the_executable_cleanly(tmp_path, form, send,
                                                                    reexec):
    out = tmp_path / "bag"
    env = _env(tmp_path, LAUNCHER_SEND=send, LAUNCHER_REEXEC="1" if reexec else "0")
    result = subprocess.run([*_start_argv(form, "sample_bag", tmp_path), str(out),
                             "--frames", "100000"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "KeyboardInterrupt" not in result.stderr
    assert not out.exists()   # stopped before sample_bag began
    records = _records(tmp_path)
    assert len(records) == (2 if reexec else 1), records
    assert all({signal.SIGINT, signal.SIGTERM} <= set(r["blocked"]) for r in records), records


def _status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith(key + ":"))
    return int(line.split()[1], 16)


@pytest.mark.parametrize("form", FORMS)
def test_once_started_the_signals_are_unblocked_and_stop_it(tmp_path, form):
    out = tmp_path / "bag"
    proc = subprocess.Popen([*_start_argv(form, "sample_bag", tmp_path), str(out),
                             "--frames", "100000"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=_env(tmp_path))
    try:
        end = time.monotonic() + 40.0
        # handlers installed (SIGTERM caught), then both signals unblocked
        while not (_status(proc.pid, "SigCgt") & BOTH == BOTH
                   and _status(proc.pid, "SigBlk") & BOTH == 0):
            assert proc.poll() is None and time.monotonic() < end, proc.stdout.read()
            time.sleep(0.002)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, output
    assert b"Traceback" not in output, output


@pytest.mark.parametrize("form", ["installed", "command"])
@pytest.mark.parametrize("send", ["SIGINT", "SIGTERM", "SIGINT,SIGINT,SIGTERM"])
def test_spawn_leaves_no_moment_unprotected(tmp_path, form, send):
    # launcher.spawn (NodeProcess): blocked before the child's execve, so signals sent the
    # instant Popen returns are each a clean stop, every time.
    argv = _start_argv(form, "sample_bag", tmp_path)
    for attempt in range(4):
        out = tmp_path / f"bag{attempt}"
        proc = launcher.spawn([*argv, str(out), "--frames", "100000"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=_env(tmp_path))
        try:
            assert _status(proc.pid, "SigBlk") & BOTH == BOTH
            for name in send.split(","):
                proc.send_signal(getattr(signal, name))
            output, _ = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == 0, output
        assert b"Traceback" not in output and b"KeyboardInterrupt" not in output, output
        assert not out.exists()
    # this process's own mask is as it was
    assert not set(signal.pthread_sigmask(signal.SIG_BLOCK, [])) & {signal.SIGINT,
                                                                    signal.SIGTERM}
