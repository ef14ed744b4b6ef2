"""The ``main()`` every node shares: init, spin, one clean teardown, clear start-up errors.

A stop (SIGINT or SIGTERM, any number of them, at any moment) never raises here: the signals
only record a request (:mod:`optical_flow_ros.ros.stop_signals`); the spin loop sees it within
one slice. rclpy's own signal handlers are not installed: they shut the context down from the
signal, under a callback that may be publishing (an executor that catches the callback's error
itself, such as the EventsExecutor, then logs it as FATAL). The context stays valid until the
node is torn down, exactly once, with nothing that can interrupt it, and the process exits 0.
A request that arrives before the loop (during start-up or while the node is being built)
skips it.

The executor is made in one place (``executor=``, :func:`default_executor`) and driven by its
``spin_once`` in short slices, which every rclpy executor has: the loop sees both the context
and the stop flag, and does not depend on an executor's own ``spin`` (in ros-rclpy 9.1.2,
``rclpy.experimental.EventsExecutor.spin()`` busy-waits at 100 % of a core, runs no timer and
ignores the context's shutdown; its ``spin_once`` works).

Every teardown is bounded (:meth:`~optical_flow_ros.ros.stop_signals.StopSignals.bound_teardown`,
with the process's handlers): one that has not ended by the deadline (the watchdog's after a
stop, else 10 s) ends the process with exit code 1 and the stack where it hung.

A node refused at start-up (an invalid parameter) has no teardown: the process ends at once
with exit code 2 after the error line (:func:`_end_refused`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import rclpy
from rclpy.context import Context
from rclpy.exceptions import ParameterException
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from optical_flow_ros.core.errors import OpticalFlowError
from optical_flow_ros.ros.stop_signals import StopSignals, stop_signals

__all__ = ["ExecutorFactory", "NodeExit", "default_executor", "run_node"]

ExecutorFactory = Callable[[Context], Executor]
"""Makes the executor that spins the node, on the node's context."""

#: Seconds teardown waits for a callback still running in another executor thread.
_CALLBACK_WAIT_S = 0.5
#: Longest wait of one spin_once: how soon an idle node notices a stop request.
_SPIN_SLICE_S = 0.1


class NodeExit(Exception):  # noqa: N818  (a request, not an error)
    """Raised from a callback to end the node's process with ``code``.

    For a node whose work is finite (a video file at its end): :func:`run_node` stops
    spinning, shuts down and returns ``code``.

    Args:
        code: the process exit code.
    """

    def __init__(self, code: int = 0) -> None:
        super().__init__(f"node exit with code {code}")
        self.code = code


def default_executor(context: Context) -> Executor:
    """The executor every node of the package spins in."""
    return SingleThreadedExecutor(context=context)


def run_node(make_node: Callable[[], Node], args: list[str] | None = None, *,
             executor: ExecutorFactory = default_executor) -> int:
    """Create the node, spin it until a stop request, tear it down once; the exit code.

    An invalid parameter (e.g. from the YAML) ends the process at start-up with exit code 2
    and one line naming the parameter and the reason. A callback ends it with
    :class:`NodeExit`. SIGINT and SIGTERM end it with 0, however many arrive and whenever.

    Args:
        make_node: builds the node (on the default context, which this initialises).
        args: command-line arguments for ``rclpy.init`` (None: ``sys.argv``).
        executor: makes the executor (any rclpy executor: its ``add_node``, ``spin_once``
            and ``shutdown`` are all this uses).

    Returns:
        The process exit code.
    """
    with stop_signals() as stop:
        if stop.requested:
            return 0
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        try:
            return _build_and_spin(make_node, executor, stop)
        finally:
            rclpy.try_shutdown()


def _build_and_spin(make_node: Callable[[], Node], executor_factory: ExecutorFactory,
                    stop: StopSignals) -> int:
    context = rclpy.get_default_context()
    try:
        node = make_node()
    except (ParameterException, OpticalFlowError) as err:
        stopping = _stopping(stop, context)
        if not stopping:
            print(f"[ERROR] invalid parameter: {err}", file=sys.stderr, flush=True)
        _end_refused(0 if stopping else 2)
    except Exception as err:
        stop.bound_teardown()
        _destroy_unfinished(err)
        if _stopping(stop, context):   # the stop shut the context down under the constructor
            return 0
        raise
    executor = executor_factory(context)
    code = 0
    try:
        executor.add_node(node)
        while context.ok() and not stop.requested:   # a request before rclpy.init: no spin
            executor.spin_once(timeout_sec=_SPIN_SLICE_S)
    except NodeExit as done:
        code = done.code
    except ExternalShutdownException:
        pass
    except Exception:
        # A signal that shuts the context down while a callback runs makes its next publish
        # fail ("publisher's context is invalid"): that is the stop, not a fault.
        if not _stopping(stop, context):
            raise
    finally:
        stop.bound_teardown()
        _teardown(executor, node)
    return code


def _end_refused(code: int) -> NoReturn:
    """End the process of a node refused at start-up now, with ``code``, touching nothing.

    The half-built node is neither destroyed nor shut down: deleting a DDS participant
    created a moment before sometimes deadlocks in the middleware while holding the GIL (on
    Kilted: about 1 in 400 refused starts when 18 nodes were refused at once on 2 cores;
    stack in ``Node.destroy_node`` -> ``destroy_when_not_in_use``, not even a Python timer
    thread ran), and the process then ended only by the teardown's bound, after 10 s, with
    exit code 1 instead of 2. The process ends anyway: the system closes its sockets, and
    other participants drop it from their graph when its lease expires (as after any
    crash).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _destroy_unfinished(err: BaseException) -> None:
    """Destroy the node whose constructor raised ``err``, now, before the context goes.

    The half-built node (its DDS participant, publishers, services) is otherwise left to the
    garbage collector: it sits in reference cycles with the traceback, so it would be
    destroyed at whatever later moment the collector runs, possibly after the context's
    shutdown or during the interpreter's exit, an order rclpy and the middleware never
    see in a normal teardown. Only for a constructor's unexpected error (a bug, whose
    traceback follows); a refused parameter ends the process without it (:func:`_end_refused`).
    """
    tb = err.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, Node):   # the outermost one: the node being built
            try:
                candidate.destroy_node()
            except Exception:   # noqa: BLE001  (half-built: some parts never existed)
                pass
            return
        tb = tb.tb_next


def _stopping(stop: StopSignals, context: Context) -> bool:
    return stop.requested or not context.ok()


def _teardown(executor: Executor, node: Node) -> None:
    """Stop the executor (waiting briefly for a callback in flight), destroy the node."""
    executor.shutdown(timeout_sec=_CALLBACK_WAIT_S)
    node.destroy_node()
