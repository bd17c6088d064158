"""The core's front end: what the retina does to the image before cortex sees it.

``retina [batch, time, 1, H, W]`` (normalised video on the retina grid) ->
``[batch, time, C, H, W]`` with ``C = channels(kind)``:

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
- ``"whiten_contrast"``: both: the residual channel divided by ``c50 +`` its local RMS (C = 2).

Every step is per frame, so streaming in chunks is unchanged.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

FrontEndKind = Literal["none", "contrast", "whiten", "whiten_contrast"]
FRONT_ENDS = ("none", "contrast", "whiten", "whiten_contrast")
#: Gain of the centre-surround residual (its s.d. on natural movies is ~0.5, blur s.d. 2 px).
RESIDUAL_GAIN = 2.0


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


class FrontEnd(nn.Module):
    def __init__(self, kind: FrontEndKind, contrast_pool: float, whiten_sigma: float) -> None:
        super().__init__()
        if kind not in FRONT_ENDS:
            raise ValueError(f"core.front_end must be one of {FRONT_ENDS}, got {kind!r}")
        self.kind = kind
        self.channels = 2 if kind.startswith("whiten") else 1
        self.contrast = (
            LocalContrastNormalization(contrast_pool) if kind.endswith("contrast") else None
        )
        self.register_buffer("blur", _gaussian(whiten_sigma), persistent=False)

    def forward(self, retina: Tensor) -> Tensor:
        if self.kind == "none":
            return retina
        b, t = retina.shape[:2]
        x = retina.flatten(0, 1)  # [n, 1, H, W]
        if self.kind == "contrast":
            out = self.contrast(x)
        else:
            luminance = gaussian_blur(x, self.blur)
            residual = RESIDUAL_GAIN * (x - luminance)
            if self.contrast is not None:
                residual = self.contrast(residual)
            out = torch.cat([luminance, residual], dim=1)
        return out.unflatten(0, (b, t))
