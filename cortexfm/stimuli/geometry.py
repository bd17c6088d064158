"""Monitor geometry and the stimulus container shared by every stimulus family.

Screen coordinates are degrees of visual angle, with (0, 0) at the screen centre, azimuth
increasing to the right and elevation upwards. The default monitor spans 120 x 67.5 degrees
with 36 x 64 pixels (1.875 degrees per pixel, the Sensorium 2023 resolution) at 30 Hz; the
screen is treated as flat in degrees (a linear pixel-to-degree map).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Monitor:
    """Where and how fast stimuli are shown."""

    height: int = 36  # pixels
    width: int = 64  # pixels
    frame_rate: float = 30.0  # Hz
    width_deg: float = 120.0  # horizontal field of view, degrees

    def __post_init__(self) -> None:
        if self.height < 2 or self.width < 2 or self.frame_rate <= 0 or self.width_deg <= 0:
            raise ValueError(f"invalid monitor geometry: {self}")

    @property
    def deg_per_pixel(self) -> float:
        return self.width_deg / self.width

    @property
    def height_deg(self) -> float:
        return self.height * self.deg_per_pixel

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Azimuth and elevation (degrees) of every pixel centre, each ``[height, width]``."""
        d = self.deg_per_pixel
        azimuth = (np.arange(self.width) - (self.width - 1) / 2) * d
        elevation = ((self.height - 1) / 2 - np.arange(self.height)) * d
        return np.meshgrid(azimuth, elevation)

    def seconds(self, n_frames: int) -> float:
        return n_frames / self.frame_rate

    def frames(self, seconds: float) -> int:
        return int(round(seconds * self.frame_rate))


@dataclass
class Stimulus:
    """Frames ``[time, height, width]`` uint8 (0-255, mean grey 128) and per-frame parameters."""

    frames: np.ndarray
    stimulus_type: str
    params: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        if self.frames.ndim != 3 or self.frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 [time, height, width], got {self.frames.dtype} {self.frames.shape}"
            )
        if len(self.params) and len(self.params) != len(self.frames):
            raise ValueError(f"{len(self.params)} parameter rows for {len(self.frames)} frames")

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def to_grey_levels(luminance):
    """Luminance in [-1, 1] (0 = mean grey) -> grey levels 0-255 (numpy or torch, unrounded)."""
    return 127.5 + 127.5 * luminance


def to_uint8(luminance: np.ndarray) -> np.ndarray:
    """Map luminance in [-1, 1] (0 = mean grey) to uint8 pixels."""
    return np.clip(np.round(to_grey_levels(luminance)), 0, 255).astype(np.uint8)


def concatenate(stimuli: list[Stimulus], stimulus_type: str | None = None) -> Stimulus:
    frames = np.concatenate([s.frames for s in stimuli])
    params = pd.concat([s.params for s in stimuli], ignore_index=True)
    return Stimulus(frames, stimulus_type or stimuli[0].stimulus_type, params)
