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
        half_size = torch.tensor([config.monitor_half_width, config.monitor_half_height])
        self.register_buffer("half_size", half_size, persistent=False)

    def eye_rotation(self, pupil_center: Tensor) -> Tensor:
        """``[..., 2]`` normalised pupil centre -> ``[..., 3]`` rotation angles (radians)."""
        return 0.5 * torch.tanh(self.eye(pupil_center))  # at most ~29 degrees

    def sampling_grid(self, pupil_center: Tensor) -> Tensor:
        """``[n, 2]`` -> ``[n, h, w, 2]`` monitor coordinates in [-1, 1] (outside: missed).

        A retina ray ``r`` leaves the eye as ``E r`` (``E``: eye rotation) and meets the monitor
        plane (unit normal ``m``, centre ``o``) at ``s E r`` with ``s = (o . m) / (m . E r)``;
        its coordinates along the monitor's axes ``a_x, a_y`` are ``a . (s E r - o)``. Every
        step is linear in ``r`` except the division, so one ``[n, 3, 3]`` matrix per frame maps
        the rays to ``(a_x . E r, a_y . E r, m . E r)`` in a single batched product.
        """
        eye = rotation_matrix(self.eye_rotation(pupil_center))  # [n, 3, 3]
        monitor = rotation_matrix(self.monitor_rotation)  # columns: the monitor's x, y, normal
        normal = monitor[:, 2]
        origin = normal + self.monitor_translation  # the monitor's centre
        project = monitor.T @ eye  # [n, 3, 3]: rows a_x E, a_y E, m E
        h, w = self.config.retina_size
        projected = self.rays.reshape(1, h * w, 3) @ project.transpose(1, 2)  # [n, h*w, 3]
        denom = projected[..., 2:]
        hit = denom > 1e-6
        distance = (origin @ normal) / torch.where(hit, denom, torch.ones_like(denom))
        local = projected[..., :2] * distance - origin @ monitor[:, :2]
        local = local / self.half_size
        far = torch.full_like(local, 4.0)  # beyond the frame: zero padding
        return torch.where(hit, local, far).reshape(-1, h, w, 2)

    def forward(self, video: Tensor, pupil_center: Tensor) -> Tensor:
        b, t, height, width = video.shape
        gaze = pupil_center.reshape(b * t, 2)
        if bool((gaze == gaze[:1]).all()):  # one gaze throughout (e.g. predicting at rest)
            grid = self.sampling_grid(gaze[:1]).expand(b * t, -1, -1, -1)
        else:
            grid = self.sampling_grid(gaze)
        frames = video.reshape(b * t, 1, height, width)
        retina = F.grid_sample(
            frames, grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        return retina.reshape(b, t, *self.config.retina_size)
