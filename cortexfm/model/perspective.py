"""Perspective: where the eye looks determines which part of the monitor lands on the retina.

Pupil centre -> MLP -> eye rotation (yaw, pitch, roll). Each retina pixel is a ray from the
eye; the rotated ray is intersected with the monitor plane (a learned pose: rotation and
translation) and the frame is sampled bilinearly there. At initialisation the rotation is zero
and the monitor sits at unit distance facing the eye, so the retinal image equals the frame
(identity at centred gaze). Rays that miss the monitor see the mean grey (0 after
normalisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cortexfm.model.config import PerspectiveConfig


def rotation_matrix(angles: Tensor) -> Tensor:
    """``[..., 3]`` (yaw about y, pitch about x, roll about z; radians) -> ``[..., 3, 3]``."""
    yaw, pitch, roll = angles.unbind(-1)
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    r_yaw = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).unflatten(-1, (3, 3))
    r_pitch = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).unflatten(-1, (3, 3))
    r_roll = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).unflatten(-1, (3, 3))
    return r_yaw @ r_pitch @ r_roll


class Perspective(nn.Module):
    """``video [batch, time, H, W]`` + ``pupil_center [batch, time, 2]`` -> retina
    ``[batch, time, h, w]`` (``h, w`` = ``retina_size``)."""

    def __init__(self, config: PerspectiveConfig) -> None:
        super().__init__()
        self.config = config
        self.eye = nn.Sequential(
            nn.Linear(2, config.hidden), nn.GELU(), nn.Linear(config.hidden, 3)
        )
        nn.init.zeros_(self.eye[-1].weight)
        nn.init.zeros_(self.eye[-1].bias)
        self.monitor_rotation = nn.Parameter(torch.zeros(3))
        self.monitor_translation = nn.Parameter(torch.zeros(3))
        h, w = config.retina_size
        v, u = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        rays = torch.stack(
            [u * config.monitor_half_width, v * config.monitor_half_height, torch.ones_like(u)], -1
        )
        self.register_buffer("rays", rays, persistent=False)  # [h, w, 3]

    def eye_rotation(self, pupil_center: Tensor) -> Tensor:
        """``[..., 2]`` normalised pupil centre -> ``[..., 3]`` rotation angles (radians)."""
        return 0.5 * torch.tanh(self.eye(pupil_center))  # at most ~29 degrees

    def sampling_grid(self, pupil_center: Tensor) -> Tensor:
        """``[n, 2]`` -> ``[n, h, w, 2]`` monitor coordinates in [-1, 1] (outside: missed)."""
        eye = rotation_matrix(self.eye_rotation(pupil_center))  # [n, 3, 3]
        rays = torch.einsum("nij,hwj->nhwi", eye, self.rays)
        monitor = rotation_matrix(self.monitor_rotation)  # [3, 3]
        normal = monitor[:, 2]
        origin = normal + self.monitor_translation
        denom = rays @ normal  # [n, h, w]
        hit = denom > 1e-6
        distance = (origin @ normal) / torch.where(hit, denom, torch.ones_like(denom))
        points = rays * distance.unsqueeze(-1) - origin  # on the plane, relative to its centre
        local = points @ monitor  # coordinates along the monitor's axes
        x = local[..., 0] / self.config.monitor_half_width
        y = local[..., 1] / self.config.monitor_half_height
        far = torch.full_like(x, 4.0)  # beyond the frame: zero padding
        return torch.stack([torch.where(hit, x, far), torch.where(hit, y, far)], -1)

    def forward(self, video: Tensor, pupil_center: Tensor) -> Tensor:
        b, t, height, width = video.shape
        grid = self.sampling_grid(pupil_center.reshape(b * t, 2))
        frames = video.reshape(b * t, 1, height, width)
        retina = F.grid_sample(
            frames, grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        return retina.reshape(b, t, *self.config.retina_size)
