"""Parametric stimuli: the paper's out-of-distribution families and tuning/RF mapping stimuli.

All sizes and positions are in degrees of visual angle (see :class:`Monitor`), spatial
frequency in cycles/degree, temporal frequency in Hz, directions in degrees (0 = rightward
motion, counter-clockwise positive). Each function returns a :class:`Stimulus` whose
``params`` has one row per frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from cortexfm.stimuli.geometry import Monitor, Stimulus, to_uint8
from cortexfm.stimuli.tuning import DIRECTIONS_16


def _check(**values: float) -> None:
    for name, v in values.items():
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite non-negative number, got {v}")


def drifting_gabor(
    monitor: Monitor,
    n_frames: int,
    direction: float,
    spatial_frequency: float = 0.04,
    temporal_frequency: float = 2.0,
    size: float = 20.0,
    position: tuple[float, float] = (0.0, 0.0),
    contrast: float = 1.0,
    phase: float = 0.0,
) -> Stimulus:
    """A grating drifting in ``direction`` under a Gaussian window of s.d. ``size`` degrees.

    ``size = inf`` gives a full-field grating.
    """
    _check(
        spatial_frequency=spatial_frequency,
        temporal_frequency=temporal_frequency,
        contrast=contrast,
    )
    if not size > 0:
        raise ValueError(f"size must be > 0 degrees, got {size}")
    az, el = monitor.grid()
    theta = np.deg2rad(direction)
    along = (az - position[0]) * np.cos(theta) + (el - position[1]) * np.sin(theta)
    window = (
        np.exp(-((az - position[0]) ** 2 + (el - position[1]) ** 2) / (2 * size**2))
        if np.isfinite(size)
        else 1.0
    )
    t = np.arange(n_frames)[:, None, None] / monitor.frame_rate
    carrier = np.cos(2 * np.pi * (spatial_frequency * along[None] - temporal_frequency * t) + phase)
    frames = to_uint8(contrast * window * carrier)
    params = pd.DataFrame(
        {
            "direction": float(direction) % 360,
            "spatial_frequency": spatial_frequency,
            "temporal_frequency": temporal_frequency,
            "size": size,
            "x": position[0],
            "y": position[1],
            "contrast": contrast,
        },
        index=range(n_frames),
    )
    return Stimulus(frames, "drifting_gabor" if np.isfinite(size) else "drifting_grating", params)


def drifting_grating(
    monitor: Monitor,
    n_frames: int,
    direction: float,
    spatial_frequency: float = 0.04,
    temporal_frequency: float = 2.0,
    contrast: float = 1.0,
) -> Stimulus:
    """Full-field drifting sinusoidal grating (tuning curves)."""
    return drifting_gabor(
        monitor,
        n_frames,
        direction,
        spatial_frequency,
        temporal_frequency,
        np.inf,
        (0.0, 0.0),
        contrast,
    )


def gaussian_dots(
    monitor: Monitor,
    n_frames: int,
    rng: np.random.Generator,
    dot_frames: int = 9,
    size_range: tuple[float, float] = (4.0, 10.0),
) -> Stimulus:
    """A sequence of flashed Gaussian dots (white or black), each shown for ``dot_frames``."""
    if dot_frames < 1:
        raise ValueError(f"dot_frames must be >= 1, got {dot_frames}")
    az, el = monitor.grid()
    frames = np.zeros((n_frames, monitor.height, monitor.width))
    rows = []
    for start in range(0, n_frames, dot_frames):
        x = rng.uniform(az.min(), az.max())
        y = rng.uniform(el.min(), el.max())
        size = rng.uniform(*size_range)
        polarity = 1.0 if rng.random() < 0.5 else -1.0
        frames[start : start + dot_frames] = polarity * np.exp(
            -((az - x) ** 2 + (el - y) ** 2) / (2 * size**2)
        )
        rows += [(x, y, size, "on" if polarity > 0 else "off")] * min(dot_frames, n_frames - start)
    params = pd.DataFrame(rows, columns=["x", "y", "size", "polarity"])
    return Stimulus(to_uint8(frames), "gaussian_dots", params)


def random_dot_kinematogram(
    monitor: Monitor,
    n_frames: int,
    rng: np.random.Generator,
    direction: float,
    coherence: float = 1.0,
    speed: float = 40.0,
    density: float = 0.02,
    dot_size: float = 2.5,
) -> Stimulus:
    """Dots moving at ``speed`` deg/s; a ``coherence`` fraction moves in ``direction``."""
    _check(coherence=coherence, speed=speed, density=density)
    if coherence > 1:
        raise ValueError(f"coherence must be in [0, 1], got {coherence}")
    az, el = monitor.grid()
    w, h = monitor.width_deg, monitor.height_deg
    n_dots = max(1, int(density * w * h))
    pos = np.stack([rng.uniform(-w / 2, w / 2, n_dots), rng.uniform(-h / 2, h / 2, n_dots)], axis=1)
    polarity = np.where(rng.random(n_dots) < 0.5, 1.0, -1.0)
    coherent = rng.random(n_dots) < coherence
    theta = np.where(coherent, np.deg2rad(direction), rng.uniform(0, 2 * np.pi, n_dots))
    step = speed / monitor.frame_rate * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    frames = np.zeros((n_frames, monitor.height, monitor.width))
    for t in range(n_frames):
        d2 = (az[None] - pos[:, 0, None, None]) ** 2 + (el[None] - pos[:, 1, None, None]) ** 2
        frames[t] = np.clip(
            (polarity[:, None, None] * np.exp(-d2 / (2 * dot_size**2))).sum(0), -1, 1
        )
        pos = pos + step
        pos[:, 0] = (pos[:, 0] + w / 2) % w - w / 2  # wrap around the screen
        pos[:, 1] = (pos[:, 1] + h / 2) % h - h / 2
    params = pd.DataFrame(
        {
            "direction": float(direction) % 360,
            "coherence": coherence,
            "speed": speed,
            "density": density,
        },
        index=range(n_frames),
    )
    return Stimulus(to_uint8(frames), "random_dot_kinematogram", params)


def directional_pink_noise(
    monitor: Monitor,
    n_frames: int,
    rng: np.random.Generator,
    direction: float,
    speed: float = 30.0,
    orientation_bias: float = 2.0,
    contrast: float = 0.8,
) -> Stimulus:
    """1/f noise whose orientation is biased orthogonal to ``direction``, drifting that way.

    ``orientation_bias`` is the concentration of a von Mises weighting of Fourier components
    around the motion axis (0 = isotropic pink noise). The pattern translates rigidly at
    ``speed`` deg/s, with periodic wrap-around computed in the Fourier domain.
    """
    _check(speed=speed, orientation_bias=orientation_bias, contrast=contrast)
    pad_h, pad_w = 2 * monitor.height, 2 * monitor.width
    ky = np.fft.fftfreq(pad_h, d=monitor.deg_per_pixel)[:, None]
    kx = np.fft.fftfreq(pad_w, d=monitor.deg_per_pixel)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = np.inf
    theta = np.deg2rad(direction)
    angle = np.arctan2(-ky, kx)  # wave-vector angle with elevation up (row index points down)
    weight = np.exp(
        orientation_bias * (np.cos(2 * (angle - theta)) - 1)
    )  # energy along the motion axis
    spectrum = (rng.normal(size=k.shape) + 1j * rng.normal(size=k.shape)) * weight / k
    spectrum[0, 0] = 0
    shift = speed / monitor.frame_rate * np.array([np.cos(theta), np.sin(theta)])  # deg per frame
    frames = np.empty((n_frames, monitor.height, monitor.width))
    for t in range(n_frames):
        # elevation axis points up while row index points down: y shift enters with a minus sign
        phase = np.exp(-2j * np.pi * (kx * shift[0] * t - ky * shift[1] * t))
        img = np.fft.ifft2(spectrum * phase).real[: monitor.height, : monitor.width]
        frames[t] = img
    frames = contrast * frames / (3 * frames.std() + 1e-12)
    params = pd.DataFrame(
        {"direction": float(direction) % 360, "speed": speed, "orientation_bias": orientation_bias},
        index=range(n_frames),
    )
    return Stimulus(to_uint8(np.clip(frames, -1, 1)), "directional_pink_noise", params)


def flashed_images(
    monitor: Monitor,
    images: list[np.ndarray],
    frames_on: int = 15,
    frames_off: int = 15,
    image_ids: list[str] | None = None,
) -> Stimulus:
    """Static images (any size, values in [0, 1]) flashed for ``frames_on`` then grey."""
    frames, rows = [], []
    for i, image in enumerate(images):
        img = np.asarray(image, dtype=np.float64)
        zoom = (monitor.height / img.shape[0], monitor.width / img.shape[1])
        img = ndimage.zoom(img, zoom, order=1)[: monitor.height, : monitor.width]
        img = (img - img.mean()) / (img.std() + 1e-8) * 0.35
        frames += [np.clip(img, -1, 1)] * frames_on + [np.zeros_like(img)] * frames_off
        name = image_ids[i] if image_ids else str(i)
        rows += [(name, True)] * frames_on + [(name, False)] * frames_off
    return Stimulus(
        to_uint8(np.stack(frames)), "static_images", pd.DataFrame(rows, columns=["image_id", "on"])
    )


def sparse_noise(
    monitor: Monitor,
    n_frames: int,
    rng: np.random.Generator,
    square_deg: float = 7.5,
    frames_per_flash: int = 6,
) -> Stimulus:
    """Single black or white squares flashed at random grid positions (receptive-field mapping)."""
    px = max(1, int(round(square_deg / monitor.deg_per_pixel)))
    rows_n, cols_n = monitor.height // px, monitor.width // px
    frames = np.zeros((n_frames, monitor.height, monitor.width))
    az, el = monitor.grid()
    rows = []
    for start in range(0, n_frames, frames_per_flash):
        r, c = rng.integers(rows_n), rng.integers(cols_n)
        polarity = 1.0 if rng.random() < 0.5 else -1.0
        frames[start : start + frames_per_flash, r * px : (r + 1) * px, c * px : (c + 1) * px] = (
            polarity
        )
        x = az[0, c * px : (c + 1) * px].mean()
        y = el[r * px : (r + 1) * px, 0].mean()
        rows += [(x, y, "on" if polarity > 0 else "off")] * min(frames_per_flash, n_frames - start)
    return Stimulus(
        to_uint8(frames), "sparse_noise", pd.DataFrame(rows, columns=["x", "y", "polarity"])
    )


#: The paper's out-of-distribution families, by the name used in ``stimulus_type``, and
#: full-field, full-contrast drifting gratings (the classic tuning stimulus, and the hardest
#: extrapolation from natural movies: uniform contrast over the whole screen).
OOD_FAMILIES = (
    "drifting_gabor",
    "drifting_grating",
    "gaussian_dots",
    "random_dot_kinematogram",
    "directional_pink_noise",
    "static_images",
)
#: Spatial frequencies (cycles/deg) of the test suite's gratings and Gabors.
TEST_SPATIAL_FREQUENCIES = (0.02, 0.04, 0.08)
#: Grey screen between stimulus blocks, seconds (real protocols have inter-stimulus blanks).
BLANK_SECONDS = 0.5
#: Contrasts of the local Gabors: log-uniform over the range real experiments use.
GABOR_CONTRAST_RANGE = (0.1, 1.0)


def grey(monitor: Monitor, n_frames: int) -> Stimulus:
    """A blank (mean grey) screen for ``n_frames``."""
    frames = np.full((n_frames, monitor.height, monitor.width), 128, dtype=np.uint8)
    return Stimulus(frames, "blank", pd.DataFrame({"blank": np.ones(n_frames, bool)}))


def ood_clip(
    family: str,
    monitor: Monitor,
    n_frames: int,
    rng: np.random.Generator,
    images: list[np.ndarray] | None = None,
) -> Stimulus:
    """One clip of an out-of-distribution family: blocks with random parameters, each followed
    by a grey blank of ``BLANK_SECONDS`` (static images have their own grey interval).

    Blocks: local drifting Gabors (1 s, 16 directions, contrast log-uniform in
    ``GABOR_CONTRAST_RANGE``), full-field full-contrast drifting gratings (2 s, 8 directions,
    1-4 Hz), flashed Gaussian dots (1 s), random-dot kinematograms (1 s), directional pink
    noise (1 s), static images (0.5 s on, 0.5 s off). ``params`` has a ``blank`` column.
    """
    from cortexfm.stimuli.geometry import concatenate
    from cortexfm.stimuli.natural import dead_leaves

    if family not in OOD_FAMILIES:
        raise ValueError(f"unknown stimulus family {family!r}; known: {OOD_FAMILIES}")
    block = monitor.frames(1.0)
    blank = monitor.frames(BLANK_SECONDS)
    parts: list[Stimulus] = []
    while sum(p.n_frames for p in parts) < n_frames:
        direction = float(rng.choice(DIRECTIONS_16))
        if family == "drifting_gabor":
            az, el = monitor.grid()
            low, high = np.log(GABOR_CONTRAST_RANGE)
            parts.append(
                drifting_gabor(
                    monitor,
                    block,
                    direction,
                    spatial_frequency=float(rng.choice(TEST_SPATIAL_FREQUENCIES)),
                    temporal_frequency=float(rng.choice([1.0, 2.0, 4.0])),
                    size=float(rng.uniform(10, 25)),
                    position=(
                        float(rng.uniform(az.min(), az.max()) * 0.7),
                        float(rng.uniform(el.min(), el.max()) * 0.7),
                    ),
                    contrast=float(np.exp(rng.uniform(low, high))),
                )
            )
        elif family == "drifting_grating":
            parts.append(
                drifting_grating(
                    monitor,
                    2 * block,
                    float(rng.choice(DIRECTIONS_16[::2])),
                    spatial_frequency=float(rng.choice(TEST_SPATIAL_FREQUENCIES)),
                    temporal_frequency=float(rng.choice([1.0, 2.0, 4.0])),
                    contrast=1.0,
                )
            )
        elif family == "gaussian_dots":
            parts.append(gaussian_dots(monitor, block, rng))
        elif family == "random_dot_kinematogram":
            parts.append(
                random_dot_kinematogram(
                    monitor,
                    block,
                    rng,
                    direction,
                    coherence=float(rng.choice([0.5, 1.0])),
                    speed=float(rng.uniform(20, 60)),
                )
            )
        elif family == "directional_pink_noise":
            parts.append(directional_pink_noise(monitor, block, rng, direction))
        else:
            pictures = images or [
                dead_leaves(rng, (2 * monitor.height, 2 * monitor.width)) for _ in range(2)
            ]
            parts.append(
                flashed_images(
                    monitor,
                    [pictures[rng.integers(len(pictures))]],
                    frames_on=block // 2,
                    frames_off=block - block // 2,
                )
            )
        parts[-1].params["blank"] = False
        if family == "static_images":
            parts[-1].params["blank"] = ~parts[-1].params["on"]
        elif blank:
            parts.append(grey(monitor, blank))
    clip = concatenate(parts, family)
    return Stimulus(
        clip.frames[:n_frames], family, clip.params.iloc[:n_frames].reset_index(drop=True)
    )
