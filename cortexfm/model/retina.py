"""The core's front end: what the retina does to the image before cortex sees it.

``retina [batch, time, 1, H, W]`` (normalised video on the retina grid) ->
``[batch, time, C, H', W']`` with ``C = channels(kind)`` (``H' = H`` except for the pyramid):

- ``"none"``: the image itself (C = 1);
- ``"contrast"``: each pixel divided by ``c50 + `` the RMS contrast of its neighbourhood
  (Gaussian pool of s.d. ``contrast_pool`` pixels; learned semi-saturation ``c50``, softplus,
  starting at 0.5 normalised units): contrast gain control, so that a full-contrast grating
  reaches the core in the range natural movies taught it (C = 1);
- ``"whiten"``: two channels, the local mean luminance (Gaussian blur of s.d. ``whiten_sigma``
  pixels) and the centre-surround residual ``image - blur`` scaled by 2. Natural images have
  a 1/f amplitude spectrum, so gradient descent on raw pixels learns the low spatial
  frequencies first and the finer, oriented structure (what gratings probe) last; the residual
  channel carries that structure at unit variance (its s.d. on natural movies is ~0.5 before
  the gain), as the retina's centre-surround whitening does (C = 2);
- ``"whiten_contrast"``: both: the residual channel divided by ``c50 +`` its local RMS (C = 2);
- ``"gabor_pyramid"``: a fixed V1-like bank (:class:`GaborPyramid`): quadrature (even, odd)
  Gabor filters at ``PYRAMID_ORIENTATIONS`` orientations and ``PYRAMID_SCALES`` octave-spaced
  spatial frequencies, and the local mean luminance, output at half the retina's resolution
  (C = orientations x (2 x scales + 1), orientation-major: one group of channels per
  orientation). Natural movies change every orientation's energy together, so a core learning its
  own first layer from them stays nearly untuned (CHANGELOG, issue 17); this front end gives
  it oriented inputs to start from, as simple cells' Gabor-like receptive fields do
  (Jones & Palmer 1987). With ``core.groups = PYRAMID_ORIENTATIONS`` the feed-forward layers
  keep the orientations apart.

Every step is per frame, so streaming in chunks is unchanged.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cortexfm.model.config import FrontEndKind

FRONT_ENDS = get_args(FrontEndKind)
#: Gain of the centre-surround residual (its s.d. on natural movies is ~0.5, blur s.d. 2 px).
RESIDUAL_GAIN = 2.0
#: The Gabor pyramid: orientations (every 22.5 deg), octave scales, and the finest period in
#: retina pixels. On the ``cpu`` preset's retina (about 1.9 deg per pixel) the periods are 4, 8
#: and 16 pixels: 0.13, 0.067 and 0.033 cycles/deg, the span of mouse V1's preferred spatial
#: frequencies (Niell & Stryker 2008).
PYRAMID_ORIENTATIONS = 8
PYRAMID_SCALES = 3
PYRAMID_PERIOD = 4.0


def gaussian_blur(x: Tensor, kernel: Tensor) -> Tensor:
    """Separable blur of ``x [n, 1, H, W]`` with a 1-D ``kernel`` (edges replicated)."""
    r = len(kernel) // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), kernel.view(1, 1, -1, 1))


def _gaussian(sigma: float) -> Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


class LocalContrastNormalization(nn.Module):
    """``x [n, 1, H, W]`` / (``c50`` + local RMS of ``x``), ``c50`` learned (starts at 0.5)."""

    def __init__(self, pool: float) -> None:
        super().__init__()
        self.register_buffer("kernel", _gaussian(pool), persistent=False)
        self.raw_c50 = nn.Parameter(torch.tensor(float(np.log(np.expm1(0.5)))))

    def forward(self, x: Tensor) -> Tensor:
        contrast = gaussian_blur(x * x, self.kernel).clamp_min(1e-6).sqrt()
        return x / (F.softplus(self.raw_c50) + contrast)


def gabor(radius: float, theta: float, period: float, phase: float) -> tuple[Tensor, Tensor]:
    """A Gabor on a square grid of ``2 radius + 1`` pixels (``radius`` may be a half-integer)
    with carrier orientation ``theta`` (radians), ``period`` (pixels) and ``phase``, under a
    Gaussian envelope of s.d. 0.45 periods: about one cycle, as V1 simple cells (Jones &
    Palmer 1987). Returns the kernel and its envelope, both ``[k, k]``, not normalised."""
    y, x = torch.meshgrid(
        torch.arange(-radius, radius + 1.0), torch.arange(-radius, radius + 1.0), indexing="ij"
    )
    envelope = torch.exp(-(x**2 + y**2) / (2 * (0.45 * period) ** 2))
    along = x * np.cos(theta) + y * np.sin(theta)
    return envelope * torch.cos(2 * np.pi * along / period + phase), envelope


def quadrature_gabors(orientations: int, period: float) -> Tensor:
    """Zero-mean, unit-norm (even, odd) Gabor pairs ``[2 x orientations, 1, k, k]``
    (orientation-major), ``k`` covering 2.8 envelope s.d. either side."""
    radius = int(np.ceil(2.8 * 0.45 * period))
    kernels = []
    for o in range(orientations):
        for phase in (0.0, np.pi / 2):
            g, envelope = gabor(radius, np.pi * o / orientations, period, phase)
            g = g - envelope * (g.sum() / envelope.sum())  # no response to uniform luminance
            kernels.append(g / g.norm())
    return torch.stack(kernels)[:, None]


class GaborPyramid(nn.Module):
    """A fixed quadrature Gabor bank applied at octave scales of a Gaussian pyramid, beside
    the local mean luminance.

    ``x [n, 1, H, W]`` -> ``[n, orientations x (2 x scales + 1), ceil(H / 2), ceil(W / 2)]``:
    per orientation ``o`` a group of ``2 x scales + 1`` channels, ``s * 2 + p`` for scale ``s``
    (period ``period x 2^s`` pixels) and phase ``p`` (even, odd), then the local mean luminance
    (the image blurred and decimated to half resolution; the same in every group, so that a
    layer that keeps the groups apart still sees what the Gabors, zero-mean, cannot: the
    luminance and the coarsest structure). Scale ``s`` is filtered at the pyramid level of
    resolution ``2^-s`` (blur, then 2 x 2 decimation) with the same kernels; the finest is
    evaluated at every second pixel and the coarsest interpolated (bilinear) up to half
    resolution. No parameters.
    """

    def __init__(self, orientations: int, scales: int, period: float) -> None:
        super().__init__()
        self.orientations, self.scales = orientations, scales
        self.register_buffer("bank", quadrature_gabors(orientations, period), persistent=False)
        self.register_buffer("blur", _gaussian(1.0), persistent=False)

    @property
    def channels(self) -> int:
        return self.orientations * (2 * self.scales + 1)

    def forward(self, x: Tensor) -> Tensor:
        size = ((x.shape[-2] + 1) // 2, (x.shape[-1] + 1) // 2)
        r = self.bank.shape[-1] // 2
        level, outputs, luminance = x, [], None
        for s in range(max(self.scales, 2)):
            if s:
                level = F.avg_pool2d(gaussian_blur(level, self.blur), 2, ceil_mode=True)
            if s == 1:
                luminance = level  # [n, 1, h, w], half resolution
            if s >= self.scales:
                break
            # the finest scale is evaluated at every second pixel (its carrier is not smoothed)
            y = F.conv2d(
                F.pad(level, (r, r, r, r), mode="replicate"), self.bank, stride=2 - min(s, 1)
            )
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            outputs.append(y)
        y = torch.stack(outputs, dim=1)  # [n, scales, orientations x 2, h, w]
        y = y.unflatten(2, (self.orientations, 2)).transpose(1, 2)  # [n, o, s, 2, h, w]
        y = y.flatten(2, 3)  # [n, o, 2 s, h, w]
        luminance = luminance[:, None].expand(-1, self.orientations, -1, -1, -1)
        return torch.cat([y, luminance], dim=2).flatten(1, 2)


class FrontEnd(nn.Module):
    def __init__(self, kind: FrontEndKind, contrast_pool: float, whiten_sigma: float) -> None:
        super().__init__()
        if kind not in FRONT_ENDS:
            raise ValueError(f"core.front_end must be one of {FRONT_ENDS}, got {kind!r}")
        self.kind = kind
        self.pyramid = (
            GaborPyramid(PYRAMID_ORIENTATIONS, PYRAMID_SCALES, PYRAMID_PERIOD)
            if kind == "gabor_pyramid"
            else None
        )
        self.channels = (
            self.pyramid.channels if self.pyramid else 2 if kind.startswith("whiten") else 1
        )
        self.stride = 2 if self.pyramid else 1  # output resolution: the retina's / stride
        self.contrast = (
            LocalContrastNormalization(contrast_pool) if kind.endswith("contrast") else None
        )
        self.register_buffer("blur", _gaussian(whiten_sigma), persistent=False)

    def forward(self, retina: Tensor) -> Tensor:
        if self.kind == "none":
            return retina
        b, t = retina.shape[:2]
        x = retina.flatten(0, 1)  # [n, 1, H, W]
        if self.pyramid is not None:
            out = self.pyramid(x)
        elif self.kind == "contrast":
            out = self.contrast(x)
        else:
            luminance = gaussian_blur(x, self.blur)
            residual = RESIDUAL_GAIN * (x - luminance)
            if self.contrast is not None:
                residual = self.contrast(residual)
            out = torch.cat([luminance, residual], dim=1)
        return out.unflatten(0, (b, t))
