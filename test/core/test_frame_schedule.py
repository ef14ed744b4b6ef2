"""FrameSchedule: frame k is stamped start + k / rate, late ticks skip, stamps never lead."""

from __future__ import annotations

import math

import pytest

from optical_flow_ros.core.frame_schedule import DueFrame, FrameSchedule

START = 1_700_000_000_123_456_789  # ns


def test_on_time_ticks_give_consecutive_frames_with_exact_stamps():
    schedule = FrameSchedule(30.0)
    assert schedule.start_ns is None
    period = 1e9 / 30.0
    got = [schedule.next_frame(START + round(k * period) + 1000) for k in range(90)]
    assert schedule.start_ns == START + 1000
    assert [d.index for d in got] == list(range(90))
    assert all(d.skipped == 0 for d in got)
    # exact multiples of the period from the first tick, rounded once per stamp (not summed)
    assert [d.stamp_ns for d in got] == [START + 1000 + round(k / 30.0 * 1e9) for k in range(90)]


def test_a_late_tick_skips_the_missed_frames_and_early_ticks_never_repeat():
    schedule = FrameSchedule(10.0)  # 100 ms
    ticks_ms = [0, 100, 450, 455, 460, 600]
    got = [schedule.next_frame(START + t * 1_000_000) for t in ticks_ms]
    assert got[2] == DueFrame(4, START + 400_000_000, 2)   # frames 2 and 3 skipped
    assert [d.index for d in got] == [0, 1, 4, 5, 6, 7]     # early ticks take the next frame
    assert [d.skipped for d in got] == [0, 0, 2, 0, 0, 0]


def test_stamps_never_run_ahead_of_a_late_clock():
    schedule = FrameSchedule(30.0)
    period = 1e9 / 30.0
    for k in [0, 1, 2.6, 3, 4, 6.7, 7, 8, 20.99]:  # in periods after the first tick
        now = START + round(k * period)
        due = schedule.next_frame(now)
        assert now - period < due.stamp_ns <= now + 1000, (k, due)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf])
def test_rate_must_be_positive_and_finite(rate):
    with pytest.raises(ValueError, match="rate"):
        FrameSchedule(rate)
