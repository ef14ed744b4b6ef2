"""Simulated flights with exact truth for the velocity benchmarks: render, track, record.

A flight is a :class:`~optical_flow_ros.core.sim_camera.SimCameraConfig` (640x480, f = 500 px
unless said) plus frame timing: ``jitter`` (each stamp moved by up to that fraction of the
frame period, uniform), ``drop`` (probability that a frame never reaches the tracker) and
``every`` (only every n-th frame reaches it: a node busy for n - 1 frame times after each).
:func:`record` renders it (image noise, gyro noise and range noise as configured), runs the
real :class:`~optical_flow_ros.core.lk_tracker.LKTracker` and keeps, per frame, what the
velocity stage gets (tracks, range reading and its stated variance) and the truth (the
camera's twist, the exact image velocity of every track at the image stamp). The gyro is a
separate stream (:func:`gyro_stream`): the flights' IMU gives one sample per frame at the
frame's time (``imu_rate`` 0, the issue's condition) unless a variant sets a rate; at frame t
the velocity stage has the samples stamped before t (the sample at t itself arrives after
its image), the last 2 s. :func:`gyro_stream` and :func:`range_readings` give the same
flight's sensors with other noise or another IMU rate, on the same frames and tracks.

The flights are in sets: ``TRAIN`` (used when a setting was chosen by measurement),
``HELD_OUT`` (never used to choose anything; they only report), ``FRESH`` (written after
the settings were chosen, with other seeds, to re-measure them once; never tuned on),
``LENS`` (held out, with lens distortion) and ``TURNS`` (steady turns drawn at random). They
cover the conditions the issue names: speeds 0.3-3 m/s, heights 1-10 m, textures, frame
rates 15-60 Hz, turning, tilting +/-3-5 deg at 0.45-0.7 Hz, with and without noise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from optical_flow_ros.core.lk_tracker import LKTracker, TrackerConfig
from optical_flow_ros.core.sim_camera import CameraState, SimCamera, SimCameraConfig
from optical_flow_ros.core.track_types import Tracks

__all__ = ["FRESH", "HELD_OUT", "NOISY", "TRAIN", "TURNS", "Flight", "FlightRecord", "FrameRecord",
           "GyroStream", "gyro_stream", "range_readings", "record"]

#: The issue's sensor noise: image 2 grey levels, gyro 0.005 rad/s, range 1 %; the gyro
#: gives one sample per frame (imu_rate 0).
NOISY = dict(image_noise_std=2.0, gyro_noise_std=0.005, range_noise_std=0.01, imu_rate=0.0)
GYRO_HISTORY_S = 2.0   # the velocity stage keeps this much gyro history, s
DEG = math.pi / 180.0


@dataclass(frozen=True)
class Flight:
    """A simulated flight and how its frames reach the tracker."""

    name: str
    sim: SimCameraConfig
    seconds: float = 4.0
    jitter: float = 0.0     # stamps moved by up to this fraction of the period (uniform)
    drop: float = 0.0       # probability that a frame is not delivered
    every: int = 1          # only every this-many-th frame is delivered (a busy node)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def quiet(self) -> Flight:
        """The same flight without any sensor noise."""
        sim = dataclasses.replace(self.sim, image_noise_std=0.0, gyro_noise_std=0.0,
                                  range_noise_std=0.0)
        return dataclasses.replace(self, name=f"{self.name}/quiet", sim=sim)

    def with_sim(self, suffix: str = "", **values: float) -> Flight:
        """The same flight with these SimCameraConfig values (e.g. another imu_rate)."""
        return dataclasses.replace(self, name=self.name + suffix,
                                   sim=dataclasses.replace(self.sim, **values))


class FrameRecord(NamedTuple):
    """One delivered frame: what the velocity stage gets, and the truth."""

    index: int                  # frame number (its image, range and per-frame gyro noise)
    t: float
    tracks: Tracks
    truth_px_s: np.ndarray      # (N, 2) exact image velocity of each track at t, px/s
    state: CameraState
    range: float                # rangefinder reading, m
    range_variance: float       # its stated variance, m^2


class FlightRecord(NamedTuple):
    """A rendered and tracked flight: its settings, the simulator, the frames and the gyro."""

    flight: Flight
    sim: SimCamera
    frames: list[FrameRecord]
    frame_times: np.ndarray     # (K,) times of every frame, delivered or dropped, s
    gyro: GyroStream


class GyroStream(NamedTuple):
    """An IMU's gyro samples over a flight, and their stated covariance."""

    times: np.ndarray                # (M,) s, increasing
    rates: np.ndarray                # (M, 3) rad/s, optical frame
    covariance: np.ndarray | None    # (3, 3) stated per sample, (rad/s)^2; None: not stated

    def received(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The samples the velocity stage has at the image stamped ``t`` (s).

        Those stamped before ``t`` (the sample at ``t`` arrives after its image), within
        GYRO_HISTORY_S of it.
        """
        lo = int(np.searchsorted(self.times, t - GYRO_HISTORY_S, side="left"))
        hi = int(np.searchsorted(self.times, t - 1e-9, side="left"))
        return self.times[lo:hi], self.rates[lo:hi]


def _sensors(config: SimCameraConfig) -> SimCamera:
    """A simulator for the sensors of ``config`` only (a blank texture: nothing rendered)."""
    shape = (16, 16, 3) if config.encoding == "bgr8" else (16, 16)
    return SimCamera(config, texture=np.zeros(shape, np.uint8))


def gyro_stream(rec: FlightRecord, sensors: SimCameraConfig | None = None) -> GyroStream:
    """The gyro of ``rec``'s flight as the IMU of ``sensors`` (default: the flight's) gives it.

    ``imu_rate`` 0: one sample at each frame's time (dropped frames too, jitter included);
    else every sample from t = 0 to the last frame. Noise and covariance from ``sensors``.
    """
    config = sensors or rec.flight.sim
    sim = _sensors(config)
    if config.imu_rate > 0.0:
        times, rates = sim.imu_samples(-0.5 / config.imu_rate, float(rec.frame_times[-1]))
    else:
        times = np.asarray(rec.frame_times, np.float64)
        rates = np.array([sim.gyro(k, sim.state(float(t))) for k, t in enumerate(times)])
    std = config.gyro_noise_std
    return GyroStream(times, rates.reshape(-1, 3), np.eye(3) * std**2 if std else None)


def range_readings(rec: FlightRecord, sensors: SimCameraConfig) -> list[tuple[float, float]]:
    """Per delivered frame of ``rec``: (reading m, stated variance m^2) of ``sensors``' range."""
    sim = _sensors(sensors)
    out = []
    for f in rec.frames:
        reading = sim.range_reading(f.index, f.state)
        out.append((reading, sim.range_variance(reading)))
    return out


def _flight(name: str, seconds: float = 4.0, *, noisy: bool = True, jitter: float = 0.0,
            drop: float = 0.0, **sim: float | str) -> Flight:
    values = dict(NOISY) if noisy else {}
    values.update(sim)
    return Flight(name, SimCameraConfig(**values), seconds=seconds, jitter=jitter, drop=drop)


def record(flight: Flight, *, tracker_config: TrackerConfig | None = None,
           seed: int = 0) -> FlightRecord:
    """Render and track ``flight`` (with ``tracker_config``, kept as the record's flight's)."""
    if tracker_config is not None:
        flight = dataclasses.replace(flight, tracker=tracker_config)
    sim = SimCamera(flight.sim)
    tracker = LKTracker(flight.tracker)
    rng = np.random.default_rng([seed, 99])
    rate = flight.sim.rate
    n = int(round(flight.seconds * rate))
    frame_times: list[float] = []
    frames: list[FrameRecord] = []
    for k in range(n):
        t = k / rate
        if flight.jitter:
            t += rng.uniform(-0.5, 0.5) * flight.jitter / rate
        frame_times.append(t)
        if k > 0 and flight.drop and rng.uniform() < flight.drop:
            continue
        if k % flight.every:
            continue
        state = sim.state(t)
        image = sim.image(k) if not flight.jitter else _noisy(sim, t, k)
        tracks = tracker.update(image, t, sim.camera)
        reading = sim.range_reading(k, state)
        frames.append(FrameRecord(k, t, tracks, sim.pixel_velocity(tracks.points, t), state,
                                  reading, sim.range_variance(reading)))
    partial = FlightRecord(flight, sim, frames, np.array(frame_times), GyroStream(
        np.zeros(0), np.zeros((0, 3)), None))
    return partial._replace(gyro=gyro_stream(partial))


def _noisy(sim: SimCamera, t: float, index: int) -> np.ndarray:
    """The image at an arbitrary time ``t`` with frame ``index``'s noise."""
    image = sim.render(t)
    std = sim.config.image_noise_std
    if std == 0.0:
        return image
    noise = np.random.default_rng([sim.config.seed, index, 1]).standard_normal(
        image.shape, np.float32)
    return np.clip(np.rint(image.astype(np.float32) + np.float32(std) * noise), 0,
                   255).astype(np.uint8)


TRAIN = [
    _flight("train/yaw_2m_1ms_gravel", altitude=2.0, velocity_x=1.0, velocity_y=0.3,
            yaw_rate=0.3),
    _flight("train/tilt5_0.5Hz_3m_1ms_grass", texture="grass", altitude=3.0, velocity_x=1.0,
            velocity_y=-0.2, yaw_rate=0.15, roll_amplitude=5 * DEG, pitch_amplitude=5 * DEG,
            attitude_period=2.0),
    _flight("train/tilt3_0.7Hz_5m_2ms_brick", texture="brick", altitude=5.0, velocity_x=2.0,
            velocity_y=0.5, roll_amplitude=3 * DEG, attitude_period=1.43, yaw_rate=-0.2),
    _flight("train/slow_1m_0.3ms_astronaut_60Hz", texture="astronaut", rate=60.0, seconds=3.0,
            altitude=1.0, velocity_x=0.3, velocity_y=0.1, yaw_rate=0.1),
    _flight("train/high_10m_3ms_coffee_15Hz", texture="coffee", rate=15.0, seconds=6.0,
            altitude=10.0, velocity_x=3.0, velocity_y=-1.0, yaw_rate=0.2,
            pitch_amplitude=3 * DEG, attitude_period=1.8),
    _flight("train/jitter_drop_2m_1ms_gravel", jitter=0.4, drop=0.1, altitude=2.0,
            velocity_x=-0.8, velocity_y=0.6, yaw_rate=0.25, roll_amplitude=3 * DEG,
            pitch_amplitude=3 * DEG, attitude_period=2.0),
    _flight("train/straight_3m_1ms_gravel", altitude=3.0, velocity_x=1.0, velocity_y=0.3),
    _flight("train/creep_5m_0.05ms_grass", texture="grass", altitude=5.0, velocity_x=0.05,
            velocity_y=0.02, yaw_rate=0.01),
]

HELD_OUT = [
    _flight("held/tilt3_0.7Hz_2m_1ms_camera", texture="camera", altitude=2.0, velocity_x=1.0,
            velocity_y=0.4, yaw_rate=0.3, roll_amplitude=3 * DEG, pitch_amplitude=3 * DEG,
            attitude_period=1.43),
    _flight("held/tilt3_0.45Hz_4m_1.5ms_chelsea", texture="chelsea", altitude=4.0,
            velocity_x=-1.5, velocity_y=0.2, yaw=1.0, yaw_rate=-0.3, pitch_amplitude=3 * DEG,
            attitude_period=2.2),
    _flight("held/tilt5_0.6Hz_6m_2.5ms_rocket_30Hz", texture="rocket", altitude=6.0,
            velocity_x=2.0, velocity_y=-1.5, yaw_rate=0.2, roll_amplitude=5 * DEG,
            pitch_amplitude=5 * DEG, attitude_period=1.67, velocity_amplitude=0.3),
    _flight("held/slow_1.5m_0.3ms_grass_15Hz", texture="grass", rate=15.0, seconds=6.0,
            altitude=1.5, velocity_x=0.2, velocity_y=-0.2, yaw_rate=-0.1,
            roll_amplitude=3 * DEG, attitude_period=2.0),
    _flight("held/wobble_3m_1ms_moon_60Hz", texture="moon", rate=60.0, seconds=3.0,
            altitude=3.0, velocity_x=1.0, velocity_y=0.0, velocity_amplitude=0.4,
            velocity_period=2.0, yaw_rate=0.4, roll_amplitude=3 * DEG, attitude_period=1.6,
            altitude_amplitude=0.5, altitude_period=3.0),
    _flight("held/hover_8m_0.3ms_gravel", altitude=8.0, velocity_x=0.3, velocity_y=0.0,
            yaw_rate=0.05, roll_amplitude=4 * DEG, pitch_amplitude=4 * DEG,
            attitude_period=2.2),
    _flight("held/creep_3m_0.03ms_brick", texture="brick", altitude=3.0, velocity_x=-0.02,
            velocity_y=0.03, yaw_rate=-0.01, roll_amplitude=0.3 * DEG, attitude_period=2.0),
]

FRESH = [
    _flight("fresh/tilt5_0.55Hz_2.5m_1.2ms_coffee_20Hz", texture="coffee", rate=20.0,
            seconds=5.0, altitude=2.5, velocity_x=1.2, velocity_y=-0.5, yaw=0.7,
            yaw_rate=0.35, roll_amplitude=5 * DEG, pitch_amplitude=5 * DEG,
            attitude_period=1.82, seed=11),
    _flight("fresh/tilt4_0.65Hz_7m_2.8ms_astronaut_45Hz", texture="astronaut", rate=45.0,
            seconds=3.0, altitude=7.0, velocity_x=-2.2, velocity_y=1.7, yaw=-1.2,
            yaw_rate=-0.25, roll_amplitude=4 * DEG, pitch_amplitude=4 * DEG,
            attitude_period=1.54, velocity_amplitude=0.4, velocity_period=2.5, seed=12),
    _flight("fresh/tilt5_0.5Hz_1.2m_0.4ms_chelsea_30Hz", texture="chelsea", altitude=1.2,
            velocity_x=0.3, velocity_y=0.25, yaw=2.0, yaw_rate=0.2, roll_amplitude=5 * DEG,
            pitch_amplitude=5 * DEG, attitude_period=2.0, altitude_amplitude=0.2,
            altitude_period=4.0, seed=13),
    _flight("fresh/tilt3_0.45Hz_9.5m_1.8ms_moon_15Hz", texture="moon", rate=15.0,
            seconds=6.0, altitude=9.5, velocity_x=1.0, velocity_y=1.5, yaw=-0.4,
            yaw_rate=0.15, pitch_amplitude=3 * DEG, attitude_period=2.2, seed=14),
    _flight("fresh/tilt5_0.7Hz_3.5m_1.5ms_rocket_60Hz_norange", texture="rocket", rate=60.0,
            seconds=3.0, altitude=3.5, velocity_x=1.5, velocity_y=0.0, yaw=0.3,
            yaw_rate=-0.4, roll_amplitude=5 * DEG, pitch_amplitude=5 * DEG,
            attitude_period=1.43, range_noise_std=0.0, seed=15),
    _flight("fresh/tilt4_0.6Hz_4.5m_0.8ms_grass_25Hz_jitter", texture="grass", rate=25.0,
            seconds=5.0, jitter=0.3, drop=0.05, altitude=4.5, velocity_x=-0.5,
            velocity_y=-0.6, yaw=1.5, yaw_rate=0.3, roll_amplitude=4 * DEG,
            pitch_amplitude=4 * DEG, attitude_period=1.67, seed=16),
    # A camera whose velocity turns a 0.5 m/s circle every 2 s on top of its drift (1.6
    # m/s^2, 4.9 m/s^3): the velocity changes faster than on any flight above.
    _flight("fresh/circle_3m_1.2ms_0.5ms_2s_brick", texture="brick", altitude=3.0,
            velocity_x=1.2, velocity_y=-0.3, velocity_amplitude=0.5, velocity_period=2.0,
            yaw=0.5, yaw_rate=0.15, roll_amplitude=3 * DEG, pitch_amplitude=3 * DEG,
            attitude_period=1.9, seed=17),
]

# Held out as well: lenses in camera_info (a wide-angle k1 = -0.25, k2 = 0.05 and a milder
# k1 = -0.1), where the tracker fits its motion field in the undistorted image.
LENS = [
    _flight("lens/tilt4_0.6Hz_2.5m_1.2ms_gravel_k1-0.25", altitude=2.5, velocity_x=1.2,
            velocity_y=-0.4, yaw_rate=0.25, roll_amplitude=4 * DEG, pitch_amplitude=4 * DEG,
            attitude_period=1.67, k1=-0.25, k2=0.05, seed=21),
    _flight("lens/tilt3_0.5Hz_5m_2ms_astronaut_30Hz_k1-0.1", texture="astronaut",
            altitude=5.0, velocity_x=-2.0, velocity_y=0.8, yaw=0.8, yaw_rate=-0.2,
            roll_amplitude=3 * DEG, attitude_period=2.0, k1=-0.1, seed=22),
]

# Steady turns (no tilt, constant velocity and yaw rate; parameters drawn at random once: 1.5-6 m,
# 0.3-2 m/s, 0.1-0.5 rad/s, nine photos), where Lucas-Kanade's window leaves each track an error
# of its own that lasts while the track lives (field_velocity's persistent variance). The
# persistent variance was studied on flights like these; it has no constant to choose.
TURNS = [
    _flight("turns/2.1m_1.1ms_yaw+0.16_gravel", texture="gravel", altitude=2.1, velocity_x=-0.92,
            velocity_y=-0.68, yaw_rate=0.16, seed=31),
    _flight("turns/5.7m_0.4ms_yaw-0.48_brick", texture="brick", altitude=5.7, velocity_x=0.29,
            velocity_y=0.31, yaw_rate=-0.48, seed=32),
    _flight("turns/4.3m_0.9ms_yaw-0.21_grass", texture="grass", altitude=4.3, velocity_x=-0.92,
            velocity_y=-0.07, yaw_rate=-0.21, seed=33),
    _flight("turns/2.1m_1.6ms_yaw+0.30_moon", texture="moon", altitude=2.1, velocity_x=-0.79,
            velocity_y=-1.44, yaw_rate=0.3, seed=34),
    _flight("turns/5.2m_1.2ms_yaw-0.32_coffee", texture="coffee", altitude=5.2, velocity_x=1.22,
            velocity_y=-0.15, yaw_rate=-0.32, seed=35),
    _flight("turns/3.7m_0.9ms_yaw-0.19_chelsea", texture="chelsea", altitude=3.7, velocity_x=-0.76,
            velocity_y=-0.49, yaw_rate=-0.19, seed=36),
    _flight("turns/5.1m_1.8ms_yaw+0.21_astronaut", texture="astronaut", altitude=5.1,
            velocity_x=1.22, velocity_y=1.28, yaw_rate=0.21, seed=37),
    _flight("turns/1.9m_1.8ms_yaw-0.16_camera", texture="camera", altitude=1.9, velocity_x=-1.65,
            velocity_y=0.78, yaw_rate=-0.16, seed=38),
    _flight("turns/4.5m_0.6ms_yaw+0.11_rocket", texture="rocket", altitude=4.5, velocity_x=0.52,
            velocity_y=-0.37, yaw_rate=0.11, seed=39),
    _flight("turns/2.4m_0.9ms_yaw-0.46_gravel", texture="gravel", altitude=2.4, velocity_x=-0.87,
            velocity_y=0.17, yaw_rate=-0.46, seed=40),
    _flight("turns/4.6m_0.9ms_yaw-0.50_brick", texture="brick", altitude=4.6, velocity_x=0.87,
            velocity_y=0.09, yaw_rate=-0.5, seed=41),
    _flight("turns/3.6m_1.5ms_yaw-0.11_grass", texture="grass", altitude=3.6, velocity_x=1.39,
            velocity_y=0.5, yaw_rate=-0.11, seed=42),
]
