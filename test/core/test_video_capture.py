"""VideoSource reads back what OpenCV's VideoWriter wrote, loops exactly, and refuses bad sources.

Videos are written in tmp_path from a panning photo (``video_files``), so every frame's content
is known. FFV1 is lossless here: frames compare bit for bit. mp4v and MJPG are lossy; measured
on 160x120 frames: mean absolute error <= 4.0 grey levels, PSNR >= 33.5 dB, while the nearest
other frame differs by >= 17.7 on average.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from video_files import LOSSLESS, LOSSY, match_frame, panning_frames, write_video

from optical_flow_ros.core.errors import ConfigError, VideoSourceError
from optical_flow_ros.core.video_capture import (
    DEFAULT_DEVICE_RATE,
    VideoInfo,
    VideoSource,
    VideoSourceConfig,
    parse_source,
    playback_rate,
    start_frame,
)

N = 12
FPS = 15.0


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return panning_frames(N)


@pytest.fixture
def lossless(tmp_path, frames) -> Path:
    return write_video(tmp_path / f"v{LOSSLESS[1]}", frames, FPS, LOSSLESS[0])


def read_all(video: VideoSource, limit: int = 1000) -> list[np.ndarray]:
    out = []
    while len(out) < limit and (frame := video.read()) is not None:
        out.append(frame)
    return out


def test_lossless_file_gives_back_every_written_frame(lossless, frames):
    with VideoSource(str(lossless), encoding="bgr8") as video:
        assert video.info == VideoInfo(source=str(lossless), is_device=False, width=160,
                                       height=120, fps=FPS, frame_count=N)
        assert video.index == -1
        got = read_all(video)
        assert video.index == N - 1
        assert video.read() is None  # clean end of stream, and it stays ended
        assert video.read() is None
    assert len(got) == N
    for written, read in zip(frames, got, strict=True):
        assert read.dtype == np.uint8 and read.flags.c_contiguous
        np.testing.assert_array_equal(read, written)  # BGR order kept, bit for bit


def test_mono8_is_the_grey_of_the_written_frames(lossless, frames):
    with VideoSource(str(lossless), encoding="mono8") as video:
        got = read_all(video)
    assert [g.shape for g in got] == [(120, 160)] * N
    for written, read in zip(frames, got, strict=True):
        np.testing.assert_array_equal(read, cv2.cvtColor(written, cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize(("fourcc", "ext"), LOSSY)
def test_lossy_files_match_within_codec_tolerance(tmp_path, frames, fourcc, ext):
    path = write_video(tmp_path / f"v{ext}", frames, FPS, fourcc)
    with VideoSource(str(path)) as video:
        assert (video.info.fps, video.info.frame_count) == (FPS, N)
        got = read_all(video)
    assert len(got) == N
    for i, read in enumerate(got):
        error = np.abs(read.astype(np.float64) - frames[i])
        psnr = 10 * np.log10(255.0**2 / (error**2).mean())
        assert error.mean() < 6.0 and psnr > 30.0, (i, error.mean(), psnr)
        # and it is frame i, not a neighbour: every other frame is far further away
        others = [np.abs(read.astype(np.float64) - f).mean() for j, f in enumerate(frames)
                  if j != i]
        assert min(others) > 2 * error.mean(), i


def test_loop_wraps_to_frame_0_exactly(lossless, frames):
    with VideoSource(str(lossless), loop=True) as video:
        got = read_all(video, limit=2 * N + 3)
        assert video.loops == 2 and video.index == 2
    assert [match_frame(g, frames) for g in got] == [i % N for i in range(2 * N + 3)]


@pytest.mark.parametrize(("fourcc", "ext"), LOSSY)
def test_lossy_loop_decodes_frame_0_as_the_first_pass_did(tmp_path, frames, fourcc, ext):
    path = write_video(tmp_path / f"v{ext}", frames, FPS, fourcc)
    with VideoSource(str(path), loop=True) as video:
        got = read_all(video, limit=N + 2)
    np.testing.assert_array_equal(got[N], got[0])
    np.testing.assert_array_equal(got[N + 1], got[1])


def test_without_loop_the_end_is_reported_not_wrapped(lossless):
    with VideoSource(str(lossless), loop=False) as video:
        assert len(read_all(video)) == N
        assert not video.grab() and video.loops == 0


def test_seek_makes_that_frame_the_next(lossless, frames):
    with VideoSource(str(lossless)) as video:
        video.seek(7)
        assert video.index == 6
        np.testing.assert_array_equal(video.read(), frames[7])
        video.seek(0)
        np.testing.assert_array_equal(video.read(), frames[0])
        with pytest.raises(VideoSourceError, match="frame 12 is outside"):
            video.seek(N)


def test_still_image_is_a_one_frame_video(tmp_path, frames):
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), frames[3])
    with VideoSource(str(path), loop=False) as video:
        assert video.info.frame_count is None
        assert len(read_all(video)) == 1
    with VideoSource(str(path), loop=True) as video:  # seeking does not take: reopened
        got = read_all(video, limit=4)
        assert video.loops == 3
    assert [match_frame(g, frames) for g in got] == [3, 3, 3, 3]


def test_numbered_image_sequence(tmp_path, frames):
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"img_{i:04d}.png"), frame)
    with VideoSource(str(tmp_path / "img_%04d.png"), loop=True) as video:
        assert video.info.frame_count == N
        got = read_all(video, limit=N + 1)
    assert [match_frame(g, frames) for g in got] == [*range(N), 0]


def test_truncated_file_ends_early_and_says_how_many_it_declared(tmp_path, frames):
    # Matroska keeps its index at the start: half a file still opens and decodes its first half.
    path = write_video(tmp_path / "v.mkv", frames, FPS)
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:len(data) // 2])
    with VideoSource(str(cut)) as video:
        got = read_all(video)
        assert video.info.frame_count == N and 0 < len(got) < N
    assert [match_frame(g, frames) for g in got] == list(range(len(got)))


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mp4_head(folder: Path) -> Path:
    """The first 2000 bytes of an mp4: its index (moov atom, at the end) is missing."""
    full = write_video(folder / "full.mp4", panning_frames(N), FPS, "mp4v")
    return _written(folder / "head.mp4", full.read_bytes()[:2000])


BAD_FILES = {
    # name: (make the path in a folder, phrase the message must contain, path it names)
    "missing": (lambda d: d / "nope.mp4", "not found", None),
    "folder": (lambda d: d, "is a folder", None),
    "empty": (lambda d: _written(d / "e.avi", b""), "empty", None),
    "text": (lambda d: _written(d / "t.mp4", b"not a video\n" * 20), "could not be opened",
             None),
    "mp4 without its index": (_mp4_head, "could not be opened", None),
    "sequence without images": (lambda d: d / "img_%04d.png", "no image matches", None),
    "sequence in a missing folder": (lambda d: d / "nowhere" / "img_%04d.png",
                                     "folder not found", lambda p: p.parent),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_raise_a_clear_error_naming_the_path(tmp_path, case):
    make, phrase, named = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(VideoSourceError) as err:
        VideoSource(str(path))
    message = str(err.value)
    assert phrase in message and str(named(path) if named else path) in message, message
    assert "\n" not in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_refused(tmp_path):
    path = write_video(tmp_path / "locked.mkv", panning_frames(2), FPS)
    path.chmod(0)
    with pytest.raises(VideoSourceError, match="not readable"):
        VideoSource(str(path))


def test_camera_device_that_does_not_exist(tmp_path):
    with pytest.raises(VideoSourceError, match="camera device 63 could not be opened"):
        VideoSource("63")


def test_opening_leaves_opencvs_log_level_as_it_was(tmp_path, capfd):
    # OpenCV 5 keeps the log level in cv2.utils.logging, OpenCV 4.6 in cv2.get/setLogLevel.
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    get_level, set_level = ((logging.getLogLevel, logging.setLogLevel) if logging is not None
                            else (cv2.getLogLevel, cv2.setLogLevel))
    before = get_level()
    set_level(4)  # INFO
    try:
        with pytest.raises(VideoSourceError):
            VideoSource("63")  # every backend tried would log its failure
        assert get_level() == 4
        set_level(3)  # WARNING
        VideoSource(str(write_video(tmp_path / "ok.mkv", panning_frames(2), FPS)))
        assert get_level() == 3
    finally:
        set_level(before)
    assert "VIDEOIO" not in capfd.readouterr().err  # the opening attempts stayed quiet


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 0), (" 12 ", 12), ("./0", Path("0")), ("video.mp4", Path("video.mp4")),
    ("~/v.mp4", Path.home() / "v.mp4"), ("-1", Path("-1")),
])
def test_parse_source_like_create_capture(text, expected):
    assert parse_source(text) == expected


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_source_is_an_error(text):
    with pytest.raises(VideoSourceError, match="no source given"):
        parse_source(text)


def test_unknown_encoding_is_a_config_error(lossless):
    with pytest.raises(ConfigError, match="encoding"):
        VideoSource(str(lossless), encoding="rgb8")


def _info(fps: float | None, count: int | None = 100, device: bool = False) -> VideoInfo:
    return VideoInfo(source="s", is_device=device, width=4, height=4, fps=fps,
                     frame_count=count)


@pytest.mark.parametrize(("rate", "info", "expected"), [
    (12.0, _info(25.0), 12.0),                       # the parameter wins
    (0.0, _info(25.0), 25.0),                        # the file's own rate
    (0.0, _info(None, None, device=True), DEFAULT_DEVICE_RATE),
    (0.0, _info(60.0, None, device=True), 60.0),
])
def test_playback_rate(rate, info, expected):
    assert playback_rate(rate, info) == expected


def test_file_without_a_rate_needs_the_rate_parameter():
    with pytest.raises(ConfigError, match="^rate: 's' reports no frame rate"):
        playback_rate(0.0, _info(None))


@pytest.mark.parametrize(("offset", "info", "expected"), [
    (0.0, _info(None, None, device=True), 0), (1.0, _info(25.0), 25), (0.5, _info(15.0), 8),
    (3.96, _info(25.0), 99),
])
def test_start_frame(offset, info, expected):
    assert start_frame(offset, info) == expected


@pytest.mark.parametrize(("offset", "info", "phrase"), [
    (4.0, _info(25.0), "past the last frame"),
    (1.0, _info(None), "no frame rate"),
    (1.0, _info(30.0, None, device=True), "camera device cannot start at an offset"),
])
def test_start_frame_refused(offset, info, phrase):
    with pytest.raises(ConfigError, match=f"^start_offset: .*{phrase}"):
        start_frame(offset, info)


def test_config_fields_validated():
    assert VideoSourceConfig(source=3).source == "3"  # ROS reads source:=3 as an int
    for bad in (dict(rate=-1.0), dict(encoding="yuv"), dict(start_offset=float("nan")),
                dict(source=-2)):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            VideoSourceConfig(**bad)
