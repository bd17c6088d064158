"""A per-neuron Gabor pathway beside the readout: the classical V1 model (a simple cell's
linear receptive field, a complex cell's quadrature energy; Adelson & Bergen 1985) fitted for
each neuron directly on the retina, added to the readout's drive before the output
nonlinearity (``ReadoutConfig.gabor``; off by default, cajal/fnn has no such pathway).

Why: a twin whose drive is read from a learned core identifies each neuron's orientation and
spatial frequency poorly from natural movies, where they explain a small part of the
response (CHANGELOG, issue 17). Here they are each neuron's own few parameters: a wave vector
``k_n`` (orientation and spatial frequency, cycles per retina pixel), an envelope width
``sigma_n`` and a centre at the neuron's readout position plus a learned offset.

Per neuron ``n``, with ``G_n^even, G_n^odd`` its quadrature pair (zero mean, unit norm) and
``B_j`` fixed causal temporal bases (raised cosines over ``frames`` frames):

- spatial responses ``s_n^p(t) = <G_n^p, retina(t)>`` for ``p`` in (even, odd);
- filtered ``v_n^pj = B_j * s_n^p`` (causal);
- the drive ``sum_pj a_n^pj v_n^pj`` (linear: any spatial phase, and with different temporal
  weights on the two phases, a space-time oriented, direction-selective filter)
  ``+ c_n sqrt(sum_p (sum_j e_nj v_n^pj)^2 + eps)`` (the phase-invariant energy).

``a`` and ``c`` start at zero, so a model with the pathway starts as the model without it.
Its state, the last ``frames - 1`` retina frames, is passed in and returned.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Added under the energy's square root (a finite gradient at zero contrast).
ENERGY_EPS = 1e-4


def temporal_bases(frames: int, count: int) -> Tensor:
    """``[count, frames]`` raised-cosine bumps on a log-stretched time axis (Pillow et al.
    2008), tap 0 the current frame; each row sums to 1."""
    lag = torch.arange(frames, dtype=torch.float32)
    stretched = torch.log(lag + 1.0)
    centres = torch.linspace(0.0, float(stretched[-1]), count)
    width = (centres[1] - centres[0]) if count > 1 else stretched[-1] + 1.0
    arg = ((stretched[None] - centres[:, None]) * math.pi / (2 * width)).clamp(-math.pi, math.pi)
    bases = 0.5 * (1 + torch.cos(arg))
    return bases / bases.sum(dim=1, keepdim=True)


def causal_toeplitz(bases: Tensor, frames: int) -> Tensor:
    """``bases [K, L]`` (tap 0 the current frame) -> ``[L - 1 + frames, K * frames]``: a signal
    of ``L - 1`` history frames and ``frames`` new ones, times this matrix, is its causal
    filtering by each basis at each new frame (basis-major)."""
    k, taps = bases.shape
    matrix = bases.new_zeros(taps - 1 + frames, k, frames)
    out = torch.arange(frames, device=bases.device)
    for lag in range(taps):  # input frame (taps - 1 + t - lag) feeds output frame t
        matrix[taps - 1 + out - lag, :, out] = bases[:, lag]
    return matrix.flatten(1)


def quadrature_pairs(
    positions: Tensor, offset: Tensor, waves: Tensor, sigma: Tensor, height: int, width: int
) -> Tensor:
    """Gabor quadrature pairs centred at ``positions [n, 2]`` (x, y in [-1, 1] across the
    retina, ``align_corners``) plus ``offset [n, 2]`` pixels, wave vectors ``waves [n or 1,
    q, 2]`` (cycles per pixel) and envelope s.d. ``sigma [n or 1]`` (pixels) ->
    ``[n, q, 2, height * width]`` (even, odd), each of zero mean under its envelope (no
    response to uniform luminance) and unit norm."""
    centre_x = (positions[:, 0] + 1) / 2 * (width - 1) + offset[:, 0]
    centre_y = (positions[:, 1] + 1) / 2 * (height - 1) + offset[:, 1]
    ys = torch.arange(height, dtype=positions.dtype, device=positions.device)
    xs = torch.arange(width, dtype=positions.dtype, device=positions.device)
    dy = (ys[None, :, None] - centre_y[:, None, None])[:, None]  # [n, 1, h, 1]
    dx = (xs[None, None, :] - centre_x[:, None, None])[:, None]  # [n, 1, 1, w]
    envelope = torch.exp(-(dx**2 + dy**2) / (2 * sigma[:, None, None, None] ** 2))
    phase = 2 * math.pi * (waves[..., 0, None, None] * dx + waves[..., 1, None, None] * dy)
    pair = torch.stack([envelope * torch.cos(phase), envelope * torch.sin(phase)], 2)
    pair = pair.flatten(3)  # [n, q, 2, h * w]
    envelope = envelope.flatten(2)[:, :, None]  # [n, 1, 1, h * w]
    pair = pair - envelope * (pair.sum(-1, keepdim=True) / envelope.sum(-1, keepdim=True))
    return pair / (pair.pow(2).sum(-1, keepdim=True) + 1e-8).sqrt()


def with_history(retina: Tensor, history: Tensor | None, frames: int) -> tuple[Tensor, Tensor]:
    """``retina [b, t, h, w]`` after ``history [b, frames - 1, h, w]`` (None: blank, the
    model's zero) -> ``[b, frames - 1 + t, h, w]`` and the new history."""
    b, _, h, w = retina.shape
    if history is None:
        history = retina.new_zeros(b, frames - 1, h, w)
    joined = torch.cat([history, retina], dim=1)
    return joined, joined[:, joined.shape[1] - (frames - 1) :]


class GaborPathway(nn.Module):
    def __init__(
        self,
        neurons: int,
        frames: int = 12,
        bases: int = 4,
        spatial_frequency: float = 0.08,
        sigma: float = 3.0,
    ) -> None:
        """``spatial_frequency`` (cycles per retina pixel) and ``sigma`` (pixels) are the
        starting values; each neuron starts at a random orientation (the global seed's)."""
        super().__init__()
        angle = torch.rand(neurons) * math.pi
        self.wave = nn.Parameter(
            spatial_frequency * torch.stack([torch.cos(angle), torch.sin(angle)], -1)
        )
        self.log_sigma = nn.Parameter(torch.full((neurons,), math.log(sigma)))
        self.offset = nn.Parameter(torch.zeros(neurons, 2))  # pixels, beside the readout's
        self.linear = nn.Parameter(torch.zeros(neurons, 2, bases))
        self.energy_time = nn.Parameter(torch.full((neurons, bases), 1.0))
        self.energy = nn.Parameter(torch.zeros(neurons))
        self.register_buffer("bases", temporal_bases(frames, bases), persistent=False)
        self.frames = frames

    def filters(self, positions: Tensor, height: int, width: int) -> Tensor:
        """``positions [neurons, 2]`` (x, y in [-1, 1] across the retina) -> the quadrature
        pairs ``[neurons, 2, height * width]`` (even, odd), zero mean, unit norm."""
        return quadrature_pairs(
            positions, self.offset, self.wave[:, None], self.log_sigma.exp(), height, width
        )[:, 0]

    def forward(
        self, retina: Tensor, positions: Tensor, history: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """``retina [batch, time, H, W]`` (model units), the readout's ``positions [neurons,
        2]`` and ``history [batch, frames - 1, H, W]`` (the frames before; None: blank) ->
        the drive ``[batch, time, neurons]`` and the new history."""
        b, t, h, w = retina.shape
        frames, new_history = with_history(retina, history, self.frames)
        n = self.energy.shape[0]
        pair = self.filters(positions, h, w).to(retina.dtype)  # [n, 2, h * w]
        spatial = frames.flatten(2) @ pair.flatten(0, 1).t()  # [b, time', n * 2]
        spatial = spatial.transpose(1, 2).reshape(b * n * 2, 1, -1)
        kernels = self.bases.flip(-1)[:, None].to(retina.dtype)  # conv1d correlates
        filtered = F.conv1d(spatial, kernels)  # [b * n * 2, bases, t]
        filtered = filtered.reshape(b, n, 2, -1, t)
        linear = torch.einsum("bnpjt,npj->btn", filtered, self.linear)
        quadrature = torch.einsum("bnpjt,nj->bnpt", filtered, self.energy_time)
        energy = (quadrature.pow(2).sum(2) + ENERGY_EPS).sqrt().transpose(1, 2)  # [b, t, n]
        return linear + energy * self.energy, new_history


class GaborBank(nn.Module):
    """A fixed bank of quadrature pairs at each neuron's readout position (``orientations`` x
    ``frequencies`` cycles per retina pixel, each frequency's envelope ``cycles_per_sigma /
    frequency`` pixels, so every frequency has the same bandwidth in octaves), read by
    per-neuron weights (``ReadoutConfig.gabor="bank"``).

    Where :class:`GaborPathway` must find each neuron's orientation by gradient descent from a
    random start (and does not, CHANGELOG), here every orientation is there and the neuron's
    weights on them are linear. Natural movies drive the orientations' energies together (all
    follow local contrast), which leaves the differences between them, the orientation tuning,
    in the directions gradient descent learns slowest; so the drive reads the energies as
    their mean over orientations (the contrast) and each orientation's deviation from it:

    ``drive = sum_pj a_n^pj v_n^pj + c_n^0 mean_o E_no + sum_o c_n^o (E_no - mean_o E_no)``

    with ``v`` the pairs' responses filtered by the causal temporal bases and ``E_no`` the
    energy at orientation and frequency ``o`` after the neuron's energy temporal kernel.

    With ``normalize`` (``ReadoutConfig.gabor_normalization``) every energy is first divided
    by ``s_n + C_n``, ``C_n`` the mean energy over all the bank's pairs (the local contrast
    across orientations and frequencies) and ``s_n`` a learned semi-saturation (Heeger 1992;
    Carandini & Heeger 2012), and ``C_n`` itself is one more feature. The normalised energies
    say how much of the local contrast lies at each orientation and frequency: each near 1 on
    natural movies (every pair's energy near the mean), one pair's up to ``pairs`` on a grating
    that holds all the contrast at its orientation and frequency. Unnormalised, a
    neuron's weights fitted where every orientation's energy follows the local contrast
    confound the two.
    The bank does not learn (no gradient through the filters or the positions): only the
    weights, which start at zero.
    """

    def __init__(
        self,
        neurons: int,
        frames: int = 12,
        bases: int = 4,
        orientations: int = 4,
        frequencies: tuple[float, ...] = (0.1,),
        cycles_per_sigma: float = 0.4,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        pairs = orientations * len(frequencies)
        angle = torch.arange(orientations) * math.pi / orientations
        waves = [f * torch.stack([torch.cos(angle), torch.sin(angle)], -1) for f in frequencies]
        self.register_buffer("waves", torch.stack(waves), persistent=False)  # [f, o, 2]
        self.sigmas = [cycles_per_sigma / f for f in frequencies]
        self.orientations = orientations
        self.linear = nn.Parameter(torch.zeros(neurons, pairs, 2, bases))
        self.energy_time = nn.Parameter(torch.full((neurons, bases), 1.0))
        extra = 1 if normalize else 0  # the contrast C_n beside the normalised energies
        self.energy = nn.Parameter(torch.zeros(neurons, pairs + len(frequencies) + extra))
        # the semi-saturation s_n = exp(log_semisaturation), in the energies' units (model
        # units of the retina through unit-norm filters: ~1 on natural movies)
        self.log_semisaturation = nn.Parameter(torch.zeros(neurons)) if normalize else None
        self._spectrum: tuple[tuple, Tensor] | None = None  # the bank's FFT, per retina size
        self.register_buffer("bases", temporal_bases(frames, bases), persistent=False)
        self.frames = frames

    def grid(self, height: int, width: int) -> tuple[int, int, int]:
        """The FFT grid ``(rows, columns)`` for a ``height x width`` retina and the bank's
        radius (4 envelope s.d. of its widest filter): the retina zero-padded by the radius,
        so the correlation does not wrap around."""
        radius = math.ceil(4 * max(self.sigmas))
        return max(height + radius, 2 * radius + 1), max(width + radius, 2 * radius + 1), radius

    @torch.no_grad()
    def spectrum(self, height: int, width: int) -> Tensor:
        """The bank as complex filters (even + i odd, each zero mean under its envelope and
        unit norm, cut at the radius), point-reflected for a correlation, on the FFT grid ->
        their 2-D FFTs ``[pairs, rows, columns]`` (frequency-major, then orientation)."""
        rows, columns, radius = self.grid(height, width)
        dy = (torch.arange(rows) + rows // 2) % rows - rows // 2  # signed offsets, wrapped
        dx = (torch.arange(columns) + columns // 2) % columns - columns // 2
        inside = (dy.abs()[:, None] <= radius) & (dx.abs()[None, :] <= radius)
        dy, dx = -dy[:, None].double(), -dx[None, :].double()  # point reflection
        pairs = []
        for waves, sigma in zip(self.waves.cpu().double(), self.sigmas, strict=True):
            envelope = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2)) * inside
            phase = 2 * math.pi * (waves[:, 0, None, None] * dx + waves[:, 1, None, None] * dy)
            pair = envelope * torch.exp(1j * phase)  # [orientations, rows, columns]
            pair = pair - envelope * (pair.sum((-2, -1), keepdim=True) / envelope.sum())
            even = pair.real / pair.real.pow(2).sum((-2, -1), keepdim=True).sqrt()
            odd = pair.imag / pair.imag.pow(2).sum((-2, -1), keepdim=True).sqrt()
            pairs.append(torch.complex(even, odd))
        return torch.fft.fft2(torch.cat(pairs)).to(torch.complex64)

    @torch.no_grad()
    def responses(self, frames: Tensor, positions: Tensor) -> Tensor:
        """``frames [b, t, h, w]`` and ``positions [neurons, 2]`` (x, y in [-1, 1] across the
        retina, ``align_corners``) -> each pair's response at each neuron's position
        ``[b, neurons * pairs * 2, t]`` (even, odd): the retina correlated with the bank once
        (by FFT, grey beyond its edges), then sampled bilinearly at the positions, so the cost
        does not grow with the neurons."""
        b, t, h, w = frames.shape
        key = (h, w, str(frames.device))
        if self._spectrum is None or self._spectrum[0] != key:
            self._spectrum = (key, self.spectrum(h, w).to(frames.device))
        rows, columns, _ = self.grid(h, w)
        image = torch.fft.fft2(frames.float().flatten(0, 1), s=(rows, columns))
        maps = torch.fft.ifft2(image[:, None] * self._spectrum[1])[..., :h, :w]
        maps = torch.stack([maps.real, maps.imag], 2).flatten(1, 2)  # [b*t, pairs * 2, h, w]
        grid = positions.float()[None, :, None].expand(b * t, -1, -1, -1)  # [b*t, n, 1, 2]
        sampled = F.grid_sample(maps, grid, mode="bilinear", align_corners=True)
        n = positions.shape[0]
        sampled = sampled[..., 0].reshape(b, t, -1, n).permute(0, 3, 2, 1)  # [b, n, k, t]
        return sampled.reshape(b, -1, t).to(frames.dtype)

    def forward(
        self, retina: Tensor, positions: Tensor, history: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """As :meth:`GaborPathway.forward`."""
        b, t, h, w = retina.shape
        frames, new_history = with_history(retina, history, self.frames)
        n, pairs = self.linear.shape[:2]
        with torch.no_grad():  # the bank is fixed: its responses need no gradient
            spatial = self.responses(frames.detach(), positions.detach())  # [b, n*pairs*2, t']
            # causal filtering by every basis as one product with a banded matrix [t', K * t]
            filtered = spatial @ causal_toeplitz(self.bases.to(retina.dtype), t)
            filtered = filtered.reshape(b, n, pairs, 2, -1, t)
        linear = torch.einsum("bnqpjt,nqpj->btn", filtered, self.linear)
        quadrature = torch.einsum("bnqpjt,nj->bnqpt", filtered, self.energy_time)
        energy = (quadrature.pow(2).sum(3) + ENERGY_EPS).sqrt()  # [b, n, pairs, t]
        contrast = None
        if self.log_semisaturation is not None:
            contrast = energy.mean(2, keepdim=True)  # [b, n, 1, t]
            semisaturation = self.log_semisaturation.exp()[None, :, None, None]
            energy = energy / (semisaturation + contrast)
        per_frequency = energy.unflatten(2, (-1, self.orientations))  # [b, n, f, o, t]
        mean = per_frequency.mean(3)  # [b, n, f, t]: the contrast at each frequency
        deviation = (per_frequency - mean[:, :, :, None]).flatten(2, 3)  # [b, n, pairs, t]
        features = torch.cat([deviation, mean] + ([] if contrast is None else [contrast]), 2)
        return linear + torch.einsum("bnkt,nk->btn", features, self.energy), new_history
