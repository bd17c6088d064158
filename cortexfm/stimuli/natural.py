"""Natural movies: camera pans, zooms and saccades over natural images.

Images come from a folder of real pictures when one is given (PNG/JPEG, converted to
grayscale), else from a dead-leaves generator, whose occluding discs with power-law sizes give
the 1/f amplitude spectrum and the sharp edges of natural scenes. Frames of a real film given as
an array are used as they are (resized to the monitor).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from cortexfm.stimuli.geometry import Monitor, Stimulus


def dead_leaves(
    rng: np.random.Generator,
    size: tuple[int, int] = (144, 256),
    n_leaves: int = 600,
    min_radius: float = 2.0,
    max_radius: float = 60.0,
) -> np.ndarray:
    """A dead-leaves image in [0, 1]: discs with radius density ~ r^-3 (scale invariance)."""
    h, w = size
    image = np.full(size, np.nan)
    yy, xx = np.mgrid[0:h, 0:w]
    # inverse-CDF sampling of p(r) ~ r^-3 on [min_radius, max_radius]
    u = rng.random(n_leaves)
    a, b = min_radius**-2, max_radius**-2
    radii = (a - u * (a - b)) ** -0.5
    for r, cy, cx, v in zip(
        radii,
        rng.uniform(0, h, n_leaves),
        rng.uniform(0, w, n_leaves),
        rng.beta(2, 2, n_leaves),
        strict=True,
    ):
        y0, y1 = int(max(cy - r, 0)), int(min(cy + r + 1, h))
        x0, x1 = int(max(cx - r, 0)), int(min(cx + r + 1, w))
        if y0 >= y1 or x0 >= x1:
            continue
        patch = image[y0:y1, x0:x1]  # leaves fall front to back: fill only empty pixels
        inside = ((yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r) & np.isnan(
            patch
        )
        patch[inside] = v
    image[np.isnan(image)] = rng.random()
    return ndimage.gaussian_filter(image, 0.7)


def load_images(folder: str | Path) -> list[np.ndarray]:
    """Grayscale images in [0, 1] from every PNG/JPEG file in ``folder``."""
    from PIL import Image

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .png or .jpg images")
    return [np.asarray(Image.open(p).convert("L"), dtype=np.float64) / 255.0 for p in files]


def natural_movie(
    monitor: Monitor,
    n_frames: int,
    rng: np.random.Generator,
    images: list[np.ndarray] | None = None,
    saccade_rate: float = 0.8,
    clip_id: str = "",
) -> Stimulus:
    """Camera motion over one natural image: smooth pans and zooms, and saccade-like jumps.

    ``saccade_rate`` is jumps per second. Per-frame parameters: the camera centre (image
    pixels), the zoom, and whether a saccade happened on that frame.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    image = (
        images[rng.integers(len(images))]
        if images
        else dead_leaves(rng, (4 * monitor.height, 4 * monitor.width))
    )
    image = (image - image.mean()) / (image.std() + 1e-8)
    ih, iw = image.shape
    crop_h = ih / 2.0  # the camera sees half the image height at zoom 1
    zoom = np.exp(np.cumsum(rng.normal(0, 0.01, n_frames)).clip(-0.4, 0.4))
    velocity = rng.normal(0, 0.6, 2)
    center = np.array([ih / 2, iw / 2]) + rng.normal(0, [ih / 8, iw / 8])
    centers = np.zeros((n_frames, 2))
    saccades = rng.random(n_frames) < saccade_rate / monitor.frame_rate
    for t in range(n_frames):
        if saccades[t]:
            center = center + rng.normal(0, [ih / 6, iw / 6])
            velocity = rng.normal(0, 0.6, 2)
        velocity = 0.95 * velocity + rng.normal(0, 0.15, 2)
        center = center + velocity
        center = np.clip(
            center, [crop_h / 2, crop_h * iw / ih / 2], [ih - crop_h / 2, iw - crop_h * iw / ih / 2]
        )
        centers[t] = center
    ys = (np.arange(monitor.height) - (monitor.height - 1) / 2) / monitor.height
    xs = (np.arange(monitor.width) - (monitor.width - 1) / 2) / monitor.height
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    frames = np.empty((n_frames, monitor.height, monitor.width))
    for t in range(n_frames):
        scale = crop_h / zoom[t]
        coords = np.stack([centers[t, 0] + gy * scale, centers[t, 1] + gx * scale])
        frames[t] = ndimage.map_coordinates(image, coords, order=1, mode="reflect")
    luminance = np.tanh(frames * 0.45)  # natural contrast, within the screen's range
    params = pd.DataFrame(
        {
            "clip_id": clip_id,
            "center_y": centers[:, 0],
            "center_x": centers[:, 1],
            "zoom": zoom,
            "saccade": saccades,
        }
    )
    return Stimulus(
        np.clip(np.round(127.5 + 127.5 * luminance), 0, 255).astype(np.uint8),
        "natural_movie",
        params,
    )


def film(frames: np.ndarray, monitor: Monitor) -> Stimulus:
    """Frames of a real film ``[time, height, width]`` (uint8 or float 0-255), resized to the monitor."""
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise ValueError(f"film frames must be [time, height, width], got shape {frames.shape}")
    if frames.shape[1:] != (monitor.height, monitor.width):
        zoom = (1, monitor.height / frames.shape[1], monitor.width / frames.shape[2])
        frames = ndimage.zoom(frames.astype(np.float64), zoom, order=1)
    out = np.clip(np.round(frames), 0, 255).astype(np.uint8)
    return Stimulus(out, "natural_movie", pd.DataFrame({"frame": np.arange(len(out))}))
