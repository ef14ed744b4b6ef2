"""Clean stops: every executable ends with exit 0, no traceback, within 2 s, whatever signals.

Each node executable and tool runs as its own process, started as ``ros2 run`` starts it
(the installed launcher, tools/launcher.py: SIGINT and SIGTERM blocked before the
interpreter starts), and gets 1-3 SIGINTs/SIGTERMs, 0, 1, 5 or 20 ms apart:

- from spawn: 0, 1, 5, 20, 50, 100 or 200 ms after ``Popen`` returns, to the executables
  colcon installed (during ``env``, the interpreter's start, ``site``, the ros-* wheels'
  re-execution, the imports). Only a signal that lands before the launcher's block (the
  first 1-5 ms, ``env``'s own start: read from /proc/PID/status just before sending) may
  end the process otherwise (death by that signal); those are counted and printed, every
  other case must end cleanly;
- at start-up: from the moment the process catches SIGTERM (its first line of package code,
  read from /proc/PID/status) plus 0-0.8 s, so during its imports, rclpy.init, the building of
  its node or its first callbacks;
- while busy: its output seen on DDS (nodes, play_bag), its bag being written (process_bag,
  sample_bag), its window subscribed and drawing (view), frames tracked (the demo: its whole
  process group gets the signals, as from a terminal's Ctrl-C, or the demo alone; either way
  no process of the group may be left).

Cases are drawn from a seeded generator and run a few at a time. Every wait has a deadline:
a process that would hang fails the test (and is killed), it never hangs the suite.
``OPTICAL_FLOW_ROS_STOP_REPEATS=N`` runs N times as many cases (a stress run). Last, a node
whose own callback is interrupted by the signal (deterministic: it signals itself).
"""

from __future__ import annotations

import os
import random
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import rclpy
from colcon_workspace import executable, workspace_env
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from ros_harness import REPO, NodeProcess
from sensor_msgs.msg import Image, PointCloud2
from video_files import panning_frames, write_video

from optical_flow_ros.ros.qos import keep_last_qos
from optical_flow_ros.tools import launcher, sample_bag
from optical_flow_ros.tools.bag_io import BagReader

pytestmark = pytest.mark.dds

LIMIT_S = 2.0           # a stopped process is gone this long after the first signal
HANG_S = 6.0            # after this it is killed and the case fails
START_S = 40.0          # deadline to reach the state a case signals in
GAPS_S = (0.0, 0.001, 0.005, 0.020)
SPAWN_DELAYS_S = (0.0, 0.001, 0.005, 0.020, 0.050, 0.100, 0.200)
REPEATS = int(os.environ.get("OPTICAL_FLOW_ROS_STOP_REPEATS", "1"))
XVFB = shutil.which("Xvfb")
FEED = {"rate": 30.0, "image_width": 320, "image_height": 240, "velocity_x": 0.5}
SMALL = {"rate": 30.0, "image_width": 160, "image_height": 120}

EVENTS_EXECUTOR_NODE = """
import sys
from optical_flow_ros.ros.stop_signals import install_for_process, run_program
with install_for_process().exit_at_once():
    from rclpy.experimental import EventsExecutor
    from optical_flow_ros.nodes.node_main import run_node
    from {module} import {cls} as make_node
sys.exit(run_program(lambda: run_node(make_node,
                                      executor=lambda context: EventsExecutor(context=context))))
"""


# ----- the harness ------------------------------------------------------------------------------

@dataclass
class Stop:
    """One way to stop a process: the signals and when."""

    when: str                                   # "spawn", "startup" or "busy"
    delay: float                                # s after the state is reached
    signals: list[tuple[signal.Signals, float]]  # (signal, gap before it, s)

    def __str__(self) -> str:
        sigs = " ".join(f"{s.name[3:]}+{g * 1e3:.0f}ms" for s, g in self.signals)
        return f"{self.when}+{self.delay * 1e3:.0f}ms [{sigs}]"


def stops(rng: random.Random, when: str, count: int) -> list[Stop]:
    """``count`` seeded patterns: 1-3 signals, kinds and gaps drawn from the grid."""
    out = []
    for _ in range(count * REPEATS):
        n = rng.randint(1, 3)
        out.append(Stop(when, rng.uniform(0.0, 0.8) if when == "startup" else
                        rng.uniform(0.0, 0.2),
                        [(rng.choice((signal.SIGINT, signal.SIGTERM)),
                          rng.choice(GAPS_S) if i else 0.0) for i in range(n)]))
    return out


@dataclass
class Outcome:
    """How one stopped process ended."""

    label: str
    code: int | None = None
    seconds: float | None = None
    output: str = ""
    problems: list[str] = field(default_factory=list)
    unprotected: bool = False   # signalled before the launcher blocked the signals
    resent: bool = False        # unprotected, still running after HANG_S: signalled again
    start_failed: bool = False  # the state to signal in was never reached (not a stop's fault)
    first_start: str = ""       # that start's label and output, when the case was run again


def _signal_bits(pid: int, key: str) -> int:
    """The SigBlk/SigCgt/... mask of ``/proc/PID/status`` (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


_STOP_BITS = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))


def protected(pid: int) -> bool:
    """True once SIGINT and SIGTERM are blocked (the launcher) or SIGTERM is caught (ours)."""
    return (_signal_bits(pid, "SigBlk") & _STOP_BITS == _STOP_BITS
            or catches_sigterm(pid))


def catches_sigterm(pid: int) -> bool:
    """True once the process has a SIGTERM handler: the package's first line has run."""
    return bool(_signal_bits(pid, "SigCgt") & (1 << (signal.SIGTERM - 1)))


def wait_until(done: Callable[[], bool], timeout: float, period: float = 0.002) -> bool:
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            return False
        time.sleep(period)
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run_case(label: str, start: Callable[[], subprocess.Popen], stop: Stop,
             busy: Callable[[subprocess.Popen], bool], output: Callable[[], str],
             *, group: bool = False, signal_group: bool = False) -> Outcome:
    """Start a process, reach ``stop.when``, send the signals, judge the end.

    ``group``: the process leads a session of its own, and the end is when none of its
    process group is left; ``signal_group``: the signals go to that whole group.
    """
    outcome = Outcome(f"{label} {stop}")
    proc = start()
    target = (lambda s: os.killpg(proc.pid, s)) if signal_group else proc.send_signal
    try:
        reached = stop.when == "spawn" or wait_until(
            lambda: catches_sigterm(proc.pid) or proc.poll() is not None, START_S)
        if reached and stop.when == "busy":
            reached = wait_until(lambda: busy(proc) or proc.poll() is not None, START_S, 0.01)
        if not reached or proc.poll() is not None:
            outcome.problems.append(f"never reached {stop.when} (exit {proc.poll()})")
            outcome.start_failed = True
            if proc.poll() is None:   # stuck: faulthandler prints every thread's stack
                proc.send_signal(signal.SIGABRT)
                proc.wait(5)
            return outcome
        time.sleep(stop.delay)
        outcome.unprotected = not protected(proc.pid)
        first = time.monotonic()
        for sig, gap in stop.signals:
            time.sleep(gap)
            try:
                target(sig)
            except ProcessLookupError:
                pass
        ended = wait_until(lambda: proc.poll() is not None, HANG_S, 0.005)
        outcome.seconds = time.monotonic() - first
        if not ended and outcome.unprotected:
            # Signalled before the launcher's block and still running: the signal was lost
            # before any of the package's code ran. Seen when the suite ran in the background
            # of a non-interactive shell, whose children inherit SIGINT ignored (conftest now
            # restores the default); kept for any other parent that does so. ros2 launch
            # escalates a stop that is not obeyed: do as it does once, and require the end.
            outcome.resent = True
            try:
                target(stop.signals[-1][0])
            except ProcessLookupError:
                pass
            ended = wait_until(lambda: proc.poll() is not None, LIMIT_S, 0.005)
            outcome.seconds = time.monotonic() - first
        if group:
            ended = wait_until(lambda: not group_alive(proc.pid), max(0.0, HANG_S - 1.0), 0.005)
            outcome.seconds = time.monotonic() - first
        if not ended:
            outcome.problems.append(f"still running {outcome.seconds:.1f} s after the stop")
        outcome.code = proc.poll()
    finally:
        if group and group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        outcome.output = output()
    if outcome.seconds is not None and outcome.seconds > LIMIT_S:
        outcome.problems.append(f"took {outcome.seconds:.2f} s")
    if outcome.unprotected:   # before the launcher's block: only gone in time is required
        if outcome.resent:   # (then from the repeated signal)
            outcome.problems = [p for p in outcome.problems if not p.startswith("took ")]
        return outcome
    if outcome.code != 0:
        outcome.problems.append(f"exit code {outcome.code}")
    for bad in ("Traceback", "KeyboardInterrupt", "Exception ignored", "[FATAL]",
                "teardown watchdog"):
        if bad in outcome.output:
            outcome.problems.append(f"printed {bad!r}")
    return outcome


def judge(outcomes: list[Outcome]) -> None:
    for o in outcomes:
        print(f"{o.label}: exit {o.code} after "
              f"{'-' if o.seconds is None else f'{o.seconds:.3f}'} s {'; '.join(o.problems)}")
        if o.first_start:
            print(f"  started a second time; the first start:\n{o.first_start}")
    failed = [o for o in outcomes if o.problems]
    assert not failed, "\n\n".join(f"{o.label}: {'; '.join(o.problems)}\n{o.output[-3000:]}"
                                   for o in failed)


def run_all(cases: list[Callable[[], Outcome]], workers: int) -> list[Outcome]:
    """Run the cases; one whose process never reached its state is started once more.

    Seen once in some thousands of node starts on Kilted: a node process that never got going
    (no message on DDS in 40 s, nothing printed; rclpy's start-up on Kilted also segfaults
    about once in 850 starts). That is not what these tests judge, a stop, so such a case
    gets a second start, with the first one's stacks (faulthandler, SIGABRT) printed. At
    most ``REPEATS`` cases of a run may need one; more fail the test.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda case: case(), cases))
    stuck = [i for i, o in enumerate(outcomes) if o.start_failed]
    for i in stuck[:REPEATS]:
        first = outcomes[i]
        outcomes[i] = cases[i]()
        outcomes[i].first_start = (f"{first.label}: {'; '.join(first.problems)}\n"
                                   f"{first.output[-6000:]}")
    return outcomes


class Watcher:
    """A node in the test process, spinning in a thread, counting messages per topic."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("stop_watcher", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.counts: dict[str, int] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def count(self, topic: str, msg_type: type = Image) -> Callable[[object], bool]:
        """Subscribe to ``topic``; a busy test: at least 3 messages received."""
        self.counts[topic] = 0

        def received(_msg: object) -> None:
            self.counts[topic] += 1

        self.node.create_subscription(msg_type, topic, received, keep_last_qos("best_effort", 5))
        return lambda _proc=None: self.counts[topic] >= 3

    def subscribed(self, topic: str, namespace: str) -> Callable[[object], bool]:
        """A busy test: a node in ``namespace`` subscribes to ``topic``."""
        return lambda _proc: any(info.node_namespace == namespace for info in
                                 self.node.get_subscriptions_info_by_topic(topic))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(5.0)


@pytest.fixture(scope="module", autouse=True)
def stacks_on_abort() -> Iterator[None]:
    """Processes started here print their Python stacks when sent SIGABRT (see run_all)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONFAULTHANDLER", "1")
        yield


@pytest.fixture(scope="module")
def watcher() -> Iterator[Watcher]:
    w = Watcher()
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def feed(watcher) -> Iterator[str]:
    """A simulated camera on /feed/image for the nodes under test."""
    sim = NodeProcess("optical_flow_ros.nodes.sim_camera_node", namespace="/feed", params=FEED)
    try:
        assert wait_until(watcher.count("/feed/image"), START_S, 0.01), sim.output()
        yield "/feed"
    finally:
        sim.stop()


def node_case(label: str, module: str, stop: Stop, busy: Callable, namespace: str, *,
              params: dict | None = None, remaps: dict | None = None) -> Callable[[], Outcome]:
    holder: dict[str, NodeProcess] = {}

    def start() -> subprocess.Popen:
        holder["p"] = NodeProcess(module, namespace=namespace, params=params, remaps=remaps)
        return holder["p"].proc

    return lambda: run_case(label, start, stop, busy, lambda: holder["p"].output())


# ----- nodes ------------------------------------------------------------------------------------

def test_nodes_stop_cleanly_under_any_signals(watcher, feed, tmp_path):
    rng = random.Random(14)
    video = write_video(tmp_path / "clip.mkv", panning_frames(30), 30.0)
    camera = {"image": f"{feed}/image", "camera_info": f"{feed}/camera_info"}
    cases = []
    kinds = [
        ("tracker_node", "optical_flow_ros.nodes.tracker_node", {}, camera, "flow/tracks",
         PointCloud2),
        ("dense_flow_node", "optical_flow_ros.nodes.dense_flow_node", {}, camera, "flow/dense",
         Image),
        ("sim_camera_node", "optical_flow_ros.nodes.sim_camera_node", SMALL, {}, "image", Image),
        ("video_source_node", "optical_flow_ros.nodes.video_source_node",
         {"source": str(video), "loop": True, "rate": 30.0}, {}, "image", Image),
    ]
    for name, module, params, remaps, output, msg_type in kinds:
        for stop in stops(rng, "startup", 2) + stops(rng, "busy", 3):
            ns = f"/n{len(cases)}"
            busy = watcher.count(f"{ns}/{output}", msg_type) if stop.when == "busy" else None
            cases.append(node_case(name, module, stop, busy, ns, params=params, remaps=remaps))
    judge(run_all(cases, workers=3))


def test_nodes_stop_cleanly_in_the_events_executor(watcher, tmp_path):
    """The same teardown with rclpy.experimental.EventsExecutor spinning the node.

    tracker_node and dense_flow_node cannot run in it with ros-rclpy 9.1.2: a subscription
    callback that takes MessageInfo (their image input counts dropped frames with it) makes
    its spin_once raise "SystemError: null argument to internal routine".
    """
    rng = random.Random(41)
    video = write_video(tmp_path / "clip.mkv", panning_frames(30), 30.0)
    cases = []
    for module, cls, params in (
            ("optical_flow_ros.nodes.sim_camera_node", "SimCameraNode", SMALL),
            ("optical_flow_ros.nodes.video_source_node", "VideoSourceNode",
             {"source": str(video), "loop": True, "rate": 30.0})):
        script = tmp_path / f"{cls}_events.py"
        script.write_text(EVENTS_EXECUTOR_NODE.format(module=module, cls=cls))
        for stop in stops(rng, "startup", 1) + stops(rng, "busy", 2):
            ns = f"/e{len(cases)}"
            busy = watcher.count(f"{ns}/image") if stop.when == "busy" else None
            cases.append(node_case(f"{cls} (EventsExecutor)", str(script), stop, busy, ns,
                                   params=params))
    judge(run_all(cases, workers=3))


# ----- from spawn: the installed executables -------------------------------------------------

def spawn_report(outcomes: list[Outcome], delays: list[float]) -> str:
    """Per delay: cases, how many were signalled before the launcher's block, how they ended."""
    lines = ["signals at spawn + delay (installed executables):"]
    for delay in sorted(set(delays)):
        mine = [o for o, d in zip(outcomes, delays, strict=True) if d == delay]
        early = [o for o in mine if o.unprotected]
        killed = [str(o.code) for o in early if o.code != 0]   # None: still running
        lines.append(f"  +{delay * 1e3:5.0f} ms: {len(mine):3d} cases; {len(early):3d} signalled "
                     f"before the launcher's block, {len(killed)} of them not exit 0 "
                     f"{sorted(killed)}; {sum(not o.problems for o in mine if not o.unprotected)}"
                     f" of the other {len(mine) - len(early)} clean"
                     f"; {sum(o.resent for o in early)} of the early ones lost the signal")
    return "\n".join(lines)


@pytest.mark.colcon
def test_installed_executables_stop_cleanly_from_spawn(colcon_install, tmp_path):
    """1-3 signals 0-200 ms after ``Popen`` returns, to the executables ``ros2 run`` starts."""
    rng = random.Random(1414)
    video = write_video(tmp_path / "clip.mkv", panning_frames(30), 30.0)
    kinds = [("tracker_node", []), ("dense_flow_node", []),
             ("sim_camera_node", [f"{k}:={v}" for k, v in SMALL.items()]),
             ("video_source_node", [f"source:={video}", "loop:=true"]),
             ("sample_bag", None)]
    cases, delays = [], []
    for _ in range(2 * REPEATS):
        for delay in SPAWN_DELAYS_S:
            for name, params in kinds:
                n = rng.randint(1, 3)
                stop = Stop("spawn", delay, [(rng.choice((signal.SIGINT, signal.SIGTERM)),
                                              rng.choice(GAPS_S) if j else 0.0)
                                             for j in range(n)])
                if params is None:   # a tool: writes a long bag unless stopped
                    args = [str(tmp_path / f"bag{len(cases)}"), "--frames", "3000"]
                else:
                    args = ["--ros-args", "-r", f"__ns:=/s{len(cases)}",
                            *(a for kv in params for a in ("-p", kv))]
                start, output = _tool(name, args, tmp_path,
                                      argv=[str(executable(colcon_install, name))],
                                      env=workspace_env(colcon_install, PYTHONUNBUFFERED="1"))
                cases.append(lambda n=name, s=start, o=output, st=stop:
                             run_case(f"installed {n}", s, st, None, o))
                delays.append(delay)
    outcomes = run_all(cases, workers=3)
    print(spawn_report(outcomes, delays))
    judge(outcomes)


# ----- tools ------------------------------------------------------------------------------------

def _tool(name: str, args: list[str], log_dir: Path, *, env: dict[str, str] | None = None,
          group: bool = False, argv: list[str] | None = None,
          ) -> tuple[Callable[[], subprocess.Popen], Callable[[], str]]:
    """start() and output() of executable NAME with ARGS, started as its launcher starts it
    (``argv``: the launcher file itself; ``env``: the whole environment then); its output
    goes to a file in ``log_dir``."""
    holder: dict[str, subprocess.Popen] = {}
    fd, path = tempfile.mkstemp(prefix=f"{name}_", suffix=".log", dir=log_dir)
    os.close(fd)
    log = Path(path)
    full_env = (env if argv else
                dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **(env or {})))
    cmd = [*(argv or launcher.command(name)), *args]

    def start() -> subprocess.Popen:
        with open(log, "wb") as out:
            holder["p"] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                           env=full_env, start_new_session=group)
        return holder["p"]

    return start, lambda: log.read_text(errors="replace")


def _partial_in(folder: Path) -> Callable[[object], bool]:
    """A busy test: a bag is being written in ``folder`` (the writer's hidden folder)."""
    return lambda _proc: any(".partial-" in p.name for p in folder.iterdir())


def test_bag_tools_stop_cleanly_under_any_signals(watcher, tmp_path):
    rng = random.Random(140)
    source = tmp_path / "source"
    assert sample_bag.main([str(source), "--frames", "600", "--rate", "30"]) == 0
    cases, checks = [], []

    for i, stop in enumerate(stops(rng, "startup", 1) + stops(rng, "busy", 2)):
        folder = tmp_path / f"process{i}"
        folder.mkdir()
        out = folder / "out"
        start, output = _tool("process_bag", [str(source), str(out), "--dense", "--draw",
                                              "--quiet"], tmp_path)
        cases.append(lambda s=start, o=output, st=stop, f=folder:
                     run_case("process_bag", s, st, _partial_in(f), o))

        def process_bag_result(out: Path = out, folder: Path = folder) -> str | None:
            left = [p.name for p in folder.iterdir() if p.name != "out"]
            if left:
                return f"process_bag left {left}"
            if out.exists():   # stopped while writing: a valid bag of the frames done
                with BagReader(out) as reader:
                    if reader.topics["/flow/tracks"].count < 1:
                        return "process_bag wrote an empty bag"
            return None
        checks.append(process_bag_result)

    for i, stop in enumerate(stops(rng, "startup", 1) + stops(rng, "busy", 2)):
        folder = tmp_path / f"sample{i}"
        folder.mkdir()
        start, output = _tool("sample_bag", [str(folder / "out"), "--frames", "3000"], tmp_path)
        cases.append(lambda s=start, o=output, st=stop, f=folder:
                     run_case("sample_bag", s, st, _partial_in(f), o))
        checks.append(lambda f=folder: f"sample_bag left {sorted(p.name for p in f.iterdir())}"
                      if any(f.iterdir()) else None)

    for i, stop in enumerate(stops(rng, "startup", 1) + stops(rng, "busy", 2)):
        bag = tmp_path / f"play{i}"
        assert sample_bag.main([str(bag), "--frames", "30", "--namespace", f"p{i}",
                                "--image-width", "160", "--image-height", "120"]) == 0
        start, output = _tool("play_bag", [str(bag), "--loop"], tmp_path)
        busy = watcher.count(f"/p{i}/image") if stop.when == "busy" else None
        cases.append(lambda s=start, o=output, st=stop, b=busy:
                     run_case("play_bag", s, st, b, o))

    outcomes = run_all(cases, workers=3)
    for check in checks:
        problem = check()
        if problem:
            outcomes[0].problems.append(problem)
    judge(outcomes)


@pytest.mark.skipif(XVFB is None, reason="Xvfb not installed (scripts/setup_env.sh installs it "
                                         "when run as root)")
def test_viewer_stops_cleanly_under_any_signals(watcher, feed, tmp_path):
    xvfb = subprocess.Popen([XVFB, "-displayfd", "1", "-screen", "0", "1280x720x24",
                             "-nolisten", "tcp"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([xvfb.stdout], [], [], 15.0)
        number = xvfb.stdout.readline().strip() if ready else ""
        assert number.isdigit(), "Xvfb did not start"
        rng = random.Random(1400)
        cases = []
        for i, stop in enumerate(stops(rng, "startup", 1) + stops(rng, "busy", 2)):
            ns = f"/v{i}"
            start, output = _tool("view", ["image", "--ros-args", "-r", f"__ns:={ns}", "-r",
                                           f"image:={feed}/image"],
                                  tmp_path, env={"DISPLAY": f":{number}"})
            busy = watcher.subscribed(f"{feed}/image", ns)
            cases.append(lambda s=start, o=output, st=stop, b=busy:
                         run_case("view", s, st, lambda p, b=b: b(p) and _after(p, 0.5), o))
        judge(run_all(cases, workers=2))
    finally:
        xvfb.terminate()
        xvfb.wait(10)


_seen: dict[int, float] = {}
_FRAMES_TRACKED = re.compile(r"frames tracked +[1-9]")


def _after(proc: subprocess.Popen, seconds: float) -> bool:
    """True ``seconds`` after the first call for ``proc`` (a busy state that lasts)."""
    first = _seen.setdefault(proc.pid, time.monotonic())
    return time.monotonic() - first >= seconds


@pytest.mark.parametrize("to_group", [True, False], ids=["process group", "demo alone"])
def test_demo_and_its_nodes_stop_cleanly(tmp_path, to_group):
    """A terminal's Ctrl-C (the demo and its three node processes all get the signals), or
    signals to the demo alone (it stops its nodes)."""
    rng = random.Random(14000 + to_group)
    outcomes = []
    for i, stop in enumerate(stops(rng, "startup", 1) + stops(rng, "busy", 1)):
        out = tmp_path / f"demo{i}"
        start, output = _tool("demo", ["--duration", "60", "--out", str(out)], tmp_path,
                              group=True)
        outcome = run_case(f"demo ({'process group' if to_group else 'demo alone'})", start,
                           stop, lambda _p, o=output: _FRAMES_TRACKED.search(o()) is not None,
                           output, group=True, signal_group=to_group)
        if stop.when == "busy" and "[demo] stopped after" not in outcome.output:
            outcome.problems.append("no '[demo] stopped after' line")
        outcomes.append(outcome)
    judge(outcomes)


# ----- a signal inside a callback ------------------------------------------------------------

SIGNALLED_NODE = """
import os, signal, sys, time
from rclpy.node import Node
from std_msgs.msg import Empty
from optical_flow_ros.nodes.node_main import run_node
from rclpy.experimental import EventsExecutor

class Signalled(Node):
    def __init__(self):
        super().__init__("signalled")
        self.pub = self.create_publisher(Empty, "signalled", 1)
        self.create_timer(0.05, self.on_timer)

    def on_timer(self):  # like a frame callback when Ctrl-C / kill arrives
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)  # rclpy's signal thread shuts the context down meanwhile
        self.pub.publish(Empty())

    def destroy_node(self):  # and more signals during the teardown, as launch sends them
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        super().destroy_node()
        os.kill(os.getpid(), signal.SIGTERM)
        print("destroyed", flush=True)

if "{executor}" == "events":
    sys.exit(run_node(Signalled, executor=lambda context: EventsExecutor(context=context)))
sys.exit(run_node(Signalled))
"""


def _run_script(path: Path, source: str, timeout: float) -> tuple[int | None, str]:
    """Run ``source`` as a script at ``path`` until it exits; its exit code and output.

    None as the code: still running after ``timeout`` s (then killed).
    """
    path.write_text(source)
    proc = NodeProcess(str(path))
    try:
        code = proc.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        proc.stop(signal.SIGKILL)
    return code, proc.output()


# Regression: the signal shuts the context down while the callback runs; its publish then
# raised RCLError ("publisher's context is invalid") through run_node: traceback, exit 1.
# Then signals in the teardown (the second one of ros2 launch): KeyboardInterrupt out of
# destroy_node, or a teardown re-entered that never ended.
@pytest.mark.parametrize("executor", ["single", "events"])
def test_signals_during_a_callback_and_the_teardown_exit_cleanly(tmp_path, executor):
    code, out = _run_script(tmp_path / "signalled_node.py",
                            SIGNALLED_NODE.format(executor=executor), 20.0)
    assert code == 0 and "Traceback" not in out and "destroyed" in out, out


REFUSED_NODE = """
import sys, time
from rclpy.node import Node
from std_msgs.msg import Empty
from optical_flow_ros.core.errors import ConfigError
from optical_flow_ros.ros.stop_signals import run_program
from optical_flow_ros.nodes.node_main import run_node

class Refused(Node):
    def __init__(self):
        super().__init__("refused")
        self.pub = self.create_publisher(Empty, "refused", 1)
        raise ConfigError("gain: must be > 0, got -1")

    def destroy_node(self):   # like a DDS participant whose deletion never returns
        print("destroying", flush=True)
        time.sleep(120)

sys.exit(run_program(lambda: run_node(Refused)))
"""


# Regression: a node refused at start-up was destroyed before the process ended, and on
# Kilted the deletion of its just-created DDS participant sometimes deadlocked holding the
# GIL (about 1 in 400 refused starts): the process ended only by the teardown's bound, after
# 10 s, with exit code 1. A refused node now ends its process at once with exit code 2,
# nothing torn down (here its teardown would hang for 120 s).
def test_a_node_refused_at_start_up_ends_at_once_without_a_teardown(tmp_path):
    start = time.monotonic()
    code, out = _run_script(tmp_path / "refused_node.py", REFUSED_NODE, 20.0)
    assert code == 2 and "Traceback" not in out, out
    assert "[ERROR] invalid parameter: gain: must be > 0, got -1" in out, out
    assert "destroying" not in out, out
    assert time.monotonic() - start < 10.0   # not the teardown's bound (10 s)


HANGING_TEARDOWN = """
import sys, time
from rclpy.node import Node
from optical_flow_ros.ros.stop_signals import run_program
from optical_flow_ros.nodes.node_main import run_node

class Stuck(Node):
    def __init__(self):
        super().__init__("stuck")
        raise RuntimeError("a bug in the constructor")

    def destroy_node(self):   # like a DDS participant whose deletion never returns
        print("destroying", flush=True)
        time.sleep(120)

sys.exit(run_program(lambda: run_node(Stuck)))
"""


# A teardown can hang in C holding the GIL (not even the stop watchdog's thread runs then);
# no signal comes, and under ros2 launch the process would stay forever. The teardown is
# bounded: faulthandler ends it, saying where. (Here after a constructor's bug, which is
# still torn down before its traceback; a stop's teardown is bounded alike.)
def test_a_teardown_that_hangs_without_a_stop_is_ended_with_its_stack(tmp_path):
    code, out = _run_script(tmp_path / "stuck_node.py", HANGING_TEARDOWN, 40.0)
    assert "destroying" in out, out
    assert code == 1 and "Timeout" in out and "destroy_node" in out, out
