"""The tracker run one frame ahead in a worker thread (offline processing)."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from optical_flow_ros.core.camera_model import PinholeCamera, same_lens
from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig, TrackerStats
from optical_flow_ros.core.track_types import Tracks

__all__ = ["LookaheadTracker"]


class _Update(NamedTuple):
    tracks: Tracks | None
    error: Exception | None
    stats: TrackerStats
    trails: np.ndarray | None


class LookaheadTracker:
    """Stands in for a TrackerPipeline's LKTracker and runs ``update`` one frame ahead.

    Offline, the next frame is known before the pipeline asks for this frame's tracks, so
    the real tracker's update of the next frame (OpenCV, which releases the GIL) runs in a
    worker thread while the pipeline estimates this frame's velocity and its outputs are
    written. The real tracker gets exactly the calls it would get in order, one at a time,
    so its results are the same; ``stats`` and ``trails()`` are those of the frame
    :meth:`update` last returned. It offers what :meth:`TrackerPipeline.process` uses of
    the tracker (``update``, ``stats``, ``trails``, ``config``); offline nothing
    reconfigures or resets it.

    Args:
        tracker: the pipeline's tracker.
        trails: keep each frame's trails (for drawing).
    """

    def __init__(self, tracker: LKTracker, *, trails: bool) -> None:
        self._tracker = tracker
        self._keep_trails = trails
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="lookahead_tracker")
        self._ahead: deque[tuple[np.ndarray, float, PinholeCamera | None,
                                 Future[_Update]]] = deque()
        self._last = _Update(None, None, tracker.stats, None)

    @property
    def config(self) -> TrackerConfig:
        """The tracker's settings."""
        return self._tracker.config

    @property
    def stats(self) -> TrackerStats:
        """Counts of the frame :meth:`update` returned last."""
        return self._last.stats

    def trails(self) -> np.ndarray:
        """Trails of the frame :meth:`update` returned last (needs ``trails=True``)."""
        if self._last.trails is None:
            raise RuntimeError("trails were not kept for this frame")
        return self._last.trails

    def prefetch(self, gray: np.ndarray, stamp: float, camera: PinholeCamera | None) -> None:
        """Start updating the tracker with the next frame in the worker.

        ``camera``: the intrinsics the pipeline will use for that frame (its lens decides
        where the motion field is fitted), known from the camera_info read before it.
        """
        self._ahead.append((gray, stamp, camera,
                            self._worker.submit(self._run, gray, stamp, camera)))

    def _run(self, gray: np.ndarray, stamp: float, camera: PinholeCamera | None) -> _Update:
        try:
            tracks = self._tracker.update(gray, stamp, camera)
        except Exception as err:  # handed to the caller of update(), as if raised there
            return _Update(None, err, self._tracker.stats, None)
        return _Update(tracks, None, self._tracker.stats,
                       self._tracker.trails() if self._keep_trails else None)

    def update(self, gray: np.ndarray, stamp: float,
               camera: PinholeCamera | None = None) -> Tracks:
        """The tracks of this frame: computed ahead when prefetched, else now."""
        if self._ahead:
            ahead_gray, ahead_stamp, ahead_camera, future = self._ahead.popleft()
            if ahead_gray is not gray or ahead_stamp != stamp:
                raise RuntimeError("LookaheadTracker: frames asked for out of order")
            if not same_lens(ahead_camera, camera):
                raise RuntimeError("LookaheadTracker: the frame was tracked ahead with "
                                   "another lens than the pipeline uses for it")
            self._last = future.result()
        else:
            self._last = self._run(gray, stamp, camera)
        if self._last.error is not None:
            raise self._last.error
        assert self._last.tracks is not None
        return self._last.tracks

    def close(self) -> None:
        """Wait for the worker (a frame computed ahead and not asked for is dropped)."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._ahead.clear()
