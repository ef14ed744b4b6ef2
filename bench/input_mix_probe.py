"""Where a frame's latency goes inside a node: the probe of ``bench/bench_input_mix.py``.

Attached to a node's image subscription and its ``flow/tracks`` publisher, it writes one JSON
line per frame to a file, all on the system clock (ns), the clock the camera stamps with:

- ``stamp``: the image's header stamp (the camera's ``time.time_ns()`` just before publish);
- ``rx``: when DDS delivered the sample to the node's reader (``received_timestamp`` of the
  message info: Fast DDS's reception time, in its own thread, before the executor sees it);
- ``cb``: when the image callback began (the executor took the message);
- ``pub``: when ``flow/tracks`` for it had been published;
- ``cpu``: the main thread's CPU time over the callback (``time.thread_time``), so a callback
  that took long because the CPU was elsewhere shows as ``pub - cb`` well above ``cpu``;
- ``gc``: ms the garbage collector ran inside the callback;
- ``work`` / ``work_cpu``: with ``work`` given, wall and CPU ns inside that call (tracker_node:
  ``TrackerPipeline.process``, the pipeline the budget measures alone), so the callback's own
  overhead is ``pub - cb - work``.

So receipt - stamp = (rx - stamp) transport in + (cb - rx) waiting for the executor +
(pub - cb) the callback + (receipt - pub) transport out. Garbage collections anywhere in the
process are written too (``{"gc": start ns, "ms": duration, "gen": generation}``).
"""

from __future__ import annotations

import gc
import inspect
import json
import time
from collections.abc import Callable
from typing import Any

__all__ = ["attach_probe", "probe_path"]


def probe_path(argv: list[str]) -> str | None:
    """The path after ``--probe`` in ``argv`` (removed from it), or None."""
    if "--probe" not in argv:
        return None
    index = argv.index("--probe")
    path = argv[index + 1]
    del argv[index:index + 2]
    return path


def _info_time(info: Any, key: str) -> int:
    return int(info[key]) if info is not None else 0


def attach_probe(subscription: Any, publisher: Any, path: str,
                 work: tuple[Any, str] | None = None) -> None:
    """Time every frame from ``subscription``'s callback to ``publisher``'s publish.

    Args:
        subscription: the node's image subscription (its callback is wrapped; a callback that
            takes only the message keeps doing so).
        publisher: the node's ``flow/tracks`` publisher (its ``publish`` is wrapped).
        path: the JSON-lines file to write (line-buffered, so it survives a kill).
        work: (object, method name) whose calls inside the callback are timed.
    """
    out = open(path, "w", buffering=1)   # noqa: SIM115  (open for the process's lifetime)
    inner = subscription.callback
    takes_info = len(inspect.signature(inner).parameters) == 2
    current: dict[str, Any] = {}
    gc_start = [0]

    def on_gc(phase: str, info: dict) -> None:
        now = time.time_ns()
        if phase == "start":
            gc_start[0] = now
            return
        ms = (now - gc_start[0]) * 1e-6
        if current:
            current["gc"] += ms
        out.write(json.dumps({"gc": gc_start[0], "ms": ms, "gen": info["generation"]}) + "\n")

    gc.callbacks.append(on_gc)

    def callback(msg: Any, info: Any = None) -> None:
        cb, cpu = time.time_ns(), time.thread_time()
        current.clear()
        current.update(stamp=msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
                       rx=_info_time(info, "received_timestamp"), cb=cb, gc=0.0, pub=0,
                       work=0, work_cpu=0.0)
        try:
            if takes_info:
                inner(msg, info)
            else:
                inner(msg)
        finally:
            current["cpu"] = (time.thread_time() - cpu) * 1e9
            out.write(json.dumps(current) + "\n")
            current.clear()

    callback.__signature__ = inspect.Signature([   # type: ignore[attr-defined]
        inspect.Parameter("msg", inspect.Parameter.POSITIONAL_ONLY),
        inspect.Parameter("info", inspect.Parameter.POSITIONAL_ONLY)])
    subscription.callback = callback
    publish: Callable[[Any], None] = publisher.publish

    def timed_publish(msg: Any) -> None:
        publish(msg)
        if current:
            current["pub"] = time.time_ns()

    publisher.publish = timed_publish
    if work is not None:
        owner, name = work
        method = getattr(owner, name)

        def timed_work(*args: Any, **kwargs: Any) -> Any:
            t0, cpu0 = time.time_ns(), time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                if current:
                    current["work"] += time.time_ns() - t0
                    current["work_cpu"] += (time.thread_time() - cpu0) * 1e9

        setattr(owner, name, timed_work)
