"""Behaviour of a simulated mouse: running bouts, pupil linked to running, eye movements.

Per frame: ``behavior [time, 2]`` = [pupil dilation (a.u., ~50), running speed (cm/s)];
``gaze [time, 2]`` = eye rotation (azimuth, elevation) in degrees; ``pupil_center [time, 2]`` =
what an eye camera records, ``PUPIL_CENTER_REST + EYE_PX_PER_DEG * gaze`` plus noise.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

EYE_PX_PER_DEG = 2.0
PUPIL_CENTER_REST = np.array([120.0, 120.0])


#: The simulated animal at rest: pupil at its typical dilation (50 a.u.), not running. Behaviour
#: gains are relative to it (``cortexfm.sim.response``).
RESTING_BEHAVIOR = (50.0, 0.0)


def _ou(rng: np.random.Generator, n: int, tau: float, sigma: float) -> np.ndarray:
    """Ornstein-Uhlenbeck process with time constant ``tau`` frames and s.d. ``sigma``."""
    a = np.exp(-1.0 / tau)
    noise = rng.normal(0, sigma * np.sqrt(1 - a * a), n)
    x0 = rng.normal(0, sigma)
    return lfilter([1.0], [1.0, -a], noise, zi=[a * x0])[0]


def simulate_behavior(
    n_frames: int, rng: np.random.Generator, frame_rate: float = 30.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns ``behavior [time, 2]``, ``gaze [time, 2]`` (deg) and ``pupil_center [time, 2]``."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    # running: a two-state (still / bout) Markov chain, smoothed speed during bouts
    p_start, p_stop = 1 / (8 * frame_rate), 1 / (4 * frame_rate)
    state = np.zeros(n_frames, dtype=bool)
    s = rng.random() < 0.35
    for t in range(n_frames):
        s = (rng.random() >= p_stop) if s else (rng.random() < p_start)
        state[t] = s
    smooth_state = lfilter([0.1], [1, -0.9], state.astype(float))
    speed = smooth_state * np.clip(15 + _ou(rng, n_frames, 1.5 * frame_rate, 5), 2, None)
    running = np.clip(speed + np.abs(rng.normal(0, 0.3, n_frames)), 0, None)
    # pupil follows running with a ~2 s lag, plus slow arousal fluctuations
    a = np.exp(-1 / (2 * frame_rate))
    pupil = (
        45
        + lfilter([1 - a], [1, -a], running * 0.8, zi=[a * running[0] * 0.8])[0]
        + _ou(rng, n_frames, 5 * frame_rate, 3)
    )
    # eye: fixational drift plus saccades (more frequent while running), slowly re-centring
    gaze = np.stack(
        [_ou(rng, n_frames, 2 * frame_rate, 0.6), _ou(rng, n_frames, 2 * frame_rate, 0.3)], axis=1
    )
    rate = (0.3 + 0.5 * state) / frame_rate
    offset = np.zeros(2)
    for t in range(n_frames):
        if rng.random() < rate[t]:
            offset = offset + rng.normal(0, [4.0, 1.5])
        offset *= np.exp(-1 / (2 * frame_rate))
        gaze[t] += offset
    behavior = np.stack([pupil, running], axis=1)
    pupil_center = PUPIL_CENTER_REST + EYE_PX_PER_DEG * gaze + rng.normal(0, 0.1, (n_frames, 2))
    return behavior.astype(np.float32), gaze, pupil_center.astype(np.float32)


def gaze_from_pupil_center(pupil_center: np.ndarray) -> np.ndarray:
    """Invert the eye camera model: pupil centre (camera pixels) -> gaze (degrees)."""
    return (np.asarray(pupil_center, dtype=np.float64) - PUPIL_CENTER_REST) / EYE_PX_PER_DEG
