"""Size and fidelity of the demo video (tracks.mp4) per encoder, on the demo's own drawings.

    .venv/bin/python bench/bench_video_encoding.py [--seconds 15]

Renders the demo's scene in-process without DDS (sim camera per config/demo.yaml, the
tracker with RANSAC homography, flow/image's drawing, the camera-velocity overlay from the
simulator's truth), writes it with OpenCV's mp4v (what the demo did) and with
tools/video_writer.VideoWriter (H.264 via PyAV) at several CRFs, decodes each with OpenCV and
compares every 5th decoded frame with the drawn one: file size (MB per 15 s), PSNR (dB) of
the colour frame and of its luma (brightness, where the 1 px lines are drawn), SSIM, and the
trails: on the pixels that are colour in the drawing (trails and points: channel spread
>= 80 on the grey photo), the mean absolute error and the share that is still colour
(spread >= 40) when decoded. The first row is the drawing through 4:2:0 colour and back
without compression: the most any widely playable video can keep.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from optical_flow_ros.core.lk_tracker import LKTracker  # noqa: E402
from optical_flow_ros.core.sim_camera import SimCamera, SimCameraConfig  # noqa: E402
from optical_flow_ros.core.track_drawing import draw_tracks  # noqa: E402
from optical_flow_ros.core.tracker_config import TrackerConfig  # noqa: E402
from optical_flow_ros.tools.demo_overlay import draw_velocity, velocity_caption  # noqa: E402
from optical_flow_ros.tools.video_writer import (  # noqa: E402
    DEFAULT_CRF,
    DEFAULT_MAX_KBPS,
    VideoWriter,
)

FPS = 30.0


def drawn_frames(seconds: float) -> list[np.ndarray]:
    """The demo's annotated frames, exactly as drawn (no transport, no loss)."""
    demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    sim_params = demo["/**/sim_camera_node"]["ros__parameters"]
    sim = SimCamera(SimCameraConfig(**sim_params))
    tracker = LKTracker(TrackerConfig(
        ransac=demo["/**/tracker_node"]["ros__parameters"]["ransac"]))
    frames = []
    for k in range(int(seconds * FPS)):
        t = k / FPS
        gray = sim.render(t)
        tracks = tracker.update(gray, t)
        vis = draw_tracks(gray, tracks, tracker.trails())
        velocity = sim.state(t).velocity[:2]
        draw_velocity(vis, velocity, velocity_caption(velocity, ""))
        frames.append(vis)
    return frames


def _write_mp4v(path: Path, frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()


def _write_h264(path: Path, frames: list[np.ndarray], crf: int,
                max_kbps: int | None = None) -> None:
    h, w = frames[0].shape[:2]
    writer = VideoWriter(path, FPS, (w, h), crf=crf, max_kbps=max_kbps)
    assert writer.codec == "h264", writer.note
    for frame in frames:
        writer.write(frame)
    writer.close()


def _yuv420_round_trip(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Each frame through 4:2:0 and back, uncompressed: the best any playable file shows."""
    import av
    return [av.VideoFrame.from_ndarray(f, format="bgr24").reformat(format="yuv420p")
            .reformat(format="bgr24").to_ndarray() for f in frames]


def _score(path: Path | None, frames: list[np.ndarray], seconds: float) -> dict[str, float]:
    decoded = [] if path is not None else _yuv420_round_trip(frames)
    capture = cv2.VideoCapture(str(path)) if path is not None else None
    while capture is not None:
        ok, frame = capture.read()
        if not ok:
            break
        decoded.append(frame)
    assert len(decoded) == len(frames), (len(decoded), len(frames))
    psnr, luma, ssim, trail_err, trail_ok = [], [], [], [], []
    for drawn, got in list(zip(frames, decoded, strict=True))[::5]:
        psnr.append(cv2.PSNR(drawn, got))
        luma.append(cv2.PSNR(cv2.cvtColor(drawn, cv2.COLOR_BGR2GRAY),
                             cv2.cvtColor(got, cv2.COLOR_BGR2GRAY)))
        ssim.append(structural_similarity(drawn, got, channel_axis=2))
        spread = drawn.max(axis=2).astype(int) - drawn.min(axis=2)
        colour = spread >= 80
        err = np.abs(drawn[colour].astype(int) - got[colour])
        trail_err.append(err.mean())
        # still a colour pixel (the trail visible as colour on the grey photo)
        got_spread = got.max(axis=2).astype(int) - got.min(axis=2)
        trail_ok.append((got_spread[colour] >= 40).mean())
    size = path.stat().st_size if path is not None else 0
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)) if capture is not None else 0
    return {"mb_per_15s": size / 1e6 * 15.0 / seconds,
            "psnr_db": float(np.median(psnr)), "luma_psnr_db": float(np.median(luma)),
            "ssim": float(np.median(ssim)),
            "trail_mae": float(np.mean(trail_err)), "trail_colour": float(np.mean(trail_ok)),
            "fourcc": fourcc.to_bytes(4, "little").decode(errors="replace") if fourcc else "-"}


def main() -> None:
    """Print one line per encoder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--crf", type=int, nargs="+", default=[23, 26, 28])
    parser.add_argument("--max-kbps", type=int, default=DEFAULT_MAX_KBPS,
                        help="bitrate cap of the last row (the demo's setting)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    frames = drawn_frames(args.seconds)
    print(f"{len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]} drawn", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("4:2:0 only (ceiling)", None),
                 ("mp4v (OpenCV, before)", lambda p: _write_mp4v(p, frames))]
        cases += [(f"h264 crf {crf}", lambda p, c=crf: _write_h264(p, frames, c))
                  for crf in args.crf]
        cases.append((f"h264 crf {DEFAULT_CRF} cap {args.max_kbps}k (demo)",
                      lambda p: _write_h264(p, frames, DEFAULT_CRF, args.max_kbps)))
        for i, (name, write) in enumerate(cases):
            path = Path(tmp) / f"{i}.mp4" if write is not None else None
            start = time.perf_counter()
            if write is not None:
                write(path)
            ms = (time.perf_counter() - start) * 1e3 / len(frames)
            s = _score(path, frames, args.seconds)
            print(f"{name:32s} {s['fourcc']:4s} {s['mb_per_15s']:6.2f} MB/15 s "
                  f"{ms:5.1f} ms/frame  PSNR {s['psnr_db']:5.2f} dB (luma "
                  f"{s['luma_psnr_db']:5.2f})  SSIM {s['ssim']:.3f}  "
                  f"trails: MAE {s['trail_mae']:5.1f}, {100 * s['trail_colour']:5.1f} % "
                  "still colour", flush=True)


if __name__ == "__main__":
    main()
