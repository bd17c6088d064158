"""Readout, one per session: each neuron reads the core's feature map at its own position.

Per neuron ``n``:

- a position ``mu_n`` on the feature map (in [-1, 1]^2): ``tanh(A @ coords_n + a + delta_n)``,
  where ``coords_n`` are the neuron's cortical coordinates (z-scored within the session),
  ``A, a`` a map shared by all mice (it lives with the core) and ``delta_n`` learned per neuron
  (zero at initialisation, so positions start from cortical position);
- a spread ``sigma_n``: with ``ReadoutConfig.sample`` the position is sampled from
  ``N(mu_n, sigma_n^2)`` while training; at test (and by default) the mean is used;
- with ``ReadoutConfig.spatial_kernel`` k > 1, a spatial mask ``m_n`` over the k x k
  neighbourhood of the position (one map unit apart; starts as the point itself): the neuron
  reads ``sum_j m_nj f(mu_n + offset_j)``, the same channels at neighbouring positions;
- a feature-weight vector ``w_n`` (the neuron's *barcode*; with ``ReadoutConfig.barcode_norm``
  a gain times a zero-mean unit-norm direction, :meth:`Readout.barcodes`) and a bias ``b_n``.

``features [batch, time, C, h, w]`` -> ``responses [batch, time, neurons]`` (before the output
nonlinearity). Memory is linear in the number of neurons.

Training samples the map with ``grid_sample`` (gradients reach the positions). Inference (no
gradient, mean positions) runs the same computation as a sparse product,
:meth:`Readout.sparse_weights`: each neuron's nonzero weights on the flattened feature map (its
barcode times the four bilinear weights of its position), summed by ``embedding_bag`` over the
features laid out ``[C * h * w, frames]``. Without the ``[batch, time, C, neurons]``
intermediate, ~20x faster than ``grid_sample`` for thousands of neurons, and twice as fast as a
sparse CSR product (``benchmarks/predict_speed.py``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cortexfm.model.config import ReadoutConfig
from cortexfm.model.gabor import GaborBank, GaborPathway

#: Added to the squared norm of a normalised barcode's direction (as in cajal/fnn).
BARCODE_EPS = 1e-5


class PositionMap(nn.Module):
    """Cortical coordinates -> feature-map position, shared across mice."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        nn.init.eye_(self.linear.weight)
        self.linear.weight.data.mul_(0.5)
        nn.init.zeros_(self.linear.bias)

    def forward(self, coords: Tensor) -> Tensor:
        return self.linear(coords)


def standardise_coordinates(coordinates: np.ndarray) -> np.ndarray:
    """``[neurons, >=2]`` µm -> lateral (x, y) z-scored within the session; NaN -> 0."""
    xy = np.asarray(coordinates, dtype=np.float64)[:, :2]
    if not np.isfinite(xy).any():
        return np.zeros((len(xy), 2), dtype=np.float32)
    mean, std = np.nanmean(xy, axis=0), np.nanstd(xy, axis=0)
    z = (xy - mean) / np.where(std > 0, std, 1.0)
    return np.nan_to_num(z, nan=0.0).astype(np.float32)


class Readout(nn.Module):
    def __init__(
        self,
        config: ReadoutConfig,
        channels: int,
        coordinates: np.ndarray,
        modulation_features: int = 0,
    ) -> None:
        super().__init__()
        self.config = config
        n = len(coordinates)
        # behaviour's gain on each neuron (ReadoutConfig.behavior_gain): zero = no effect
        self.gain = (
            nn.Parameter(torch.zeros(n, modulation_features)) if config.behavior_gain else None
        )
        self.register_buffer("coords", torch.from_numpy(standardise_coordinates(coordinates)))
        self.delta = nn.Parameter(torch.zeros(n, 2))
        self.log_sigma = nn.Parameter(torch.full((n,), float(np.log(config.init_sigma))))
        if config.barcode_init == "uniform":
            barcodes = torch.full((n, channels), 1.0 / channels)
        else:
            barcodes = torch.randn(n, channels) / channels**0.5
        self.weight = nn.Parameter(barcodes)  # the barcodes (their direction, barcode_norm)
        self.barcode_gain = nn.Parameter(torch.ones(n)) if config.barcode_norm else None
        self.bias = nn.Parameter(torch.zeros(n))
        k = config.spatial_kernel
        if k > 1:  # the mask over the k x k neighbourhood starts as the point readout
            mask = torch.zeros(n, k * k)
            mask[:, k * k // 2] = 1.0
            self.mask = nn.Parameter(mask)
        else:
            self.mask = None
        if config.gabor == "fitted":
            self.gabor: GaborPathway | GaborBank | None = GaborPathway(n, config.gabor_frames)
        elif config.gabor == "bank":
            self.gabor = GaborBank(
                n,
                config.gabor_frames,
                frequencies=tuple(config.gabor_frequencies),
                normalize=config.gabor_normalization,
            )
        else:
            self.gabor = None

    def offsets(self, height: int, width: int) -> Tensor:
        """The neighbourhood's offsets ``[k * k, 2]`` (x, y) in [-1, 1] units, one map unit
        apart, row-major (the centre, offset zero, is in the middle)."""
        r = self.config.spatial_kernel // 2
        steps = torch.arange(-r, r + 1, dtype=torch.float32)
        dy, dx = torch.meshgrid(steps, steps, indexing="ij")
        scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
        return torch.stack([dx.flatten(), dy.flatten()], -1) * scale

    @property
    def n_neurons(self) -> int:
        return self.bias.shape[0]

    def barcodes(self) -> Tensor:
        """The feature weights ``[neurons, C]`` the readout applies (``ReadoutConfig.barcode_norm``:
        gain x zero-mean unit-norm direction)."""
        if self.barcode_gain is None:
            return self.weight
        centred = self.weight - self.weight.mean(dim=1, keepdim=True)
        scale = (centred.pow(2).sum(dim=1, keepdim=True) + BARCODE_EPS).rsqrt()
        return centred * scale * self.barcode_gain[:, None]

    def log_gain(self, modulation: Tensor) -> Tensor:
        """``modulation [batch, time, M]`` -> each neuron's log gain ``[batch, time, neurons]``."""
        if self.gain is None:
            raise ValueError("this readout has no behavioural gain (readout.behavior_gain)")
        return modulation @ self.gain.t()

    def positions(self, position_map: PositionMap) -> Tensor:
        """Mean positions ``[neurons, 2]`` (x, y) in [-1, 1]."""
        return torch.tanh(position_map(self.coords) + self.delta)

    @torch.no_grad()
    def move_to(self, positions: Tensor, position_map: PositionMap) -> None:
        """Set the mean positions ``[neurons, 2]`` (x, y in [-1, 1]) through ``delta``."""
        target = positions.to(self.delta).clamp(-0.99, 0.99)
        self.delta.copy_(torch.atanh(target) - position_map(self.coords))

    def corners(self, points: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
        """Map positions ``[..., 2]`` (x, y in [-1, 1], ``align_corners=True``) -> the flat
        indices of their four bilinear corners on the map zero-padded by :attr:`padding`, and
        the corners' weights, each ``[..., 4]`` (the weights differentiable in the points)."""
        p = self.padding
        x = (points[..., 0] + 1) / 2 * (width - 1) + p
        y = (points[..., 1] + 1) / 2 * (height - 1) + p
        x0, y0 = x.detach().floor(), y.detach().floor()
        fx, fy = x - x0, y - y0
        padded_width = width + 2 * p
        corner = (y0 * padded_width + x0).long()
        # (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1)
        pixels = torch.stack(
            [corner, corner + 1, corner + padded_width, corner + padded_width + 1], -1
        )
        bilinear = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], -1)
        return pixels, bilinear

    def spatial_weights(self, positions: Tensor, height: int, width: int) -> Tensor:
        """``positions [b, n, 2]`` -> each neuron's weights on the map ``[b, n, height * width]``:
        its mask's weights splatted bilinearly at its position's neighbours (differentiable in
        the positions and the mask; what falls off the map is dropped, as ``grid_sample``'s
        zero padding does)."""
        p = self.padding
        b, n = positions.shape[:2]
        points = positions[:, :, None] + self.offsets(height, width).to(positions)  # [b, n, k*k, 2]
        pixels, bilinear = self.corners(points, height, width)
        values = bilinear * self.mask[None, :, :, None]  # [b, n, k*k, 4]
        padded_width = width + 2 * p
        plane = positions.new_zeros(b, n, (height + 2 * p) * padded_width)
        plane = plane.scatter_add(2, pixels.flatten(2), values.flatten(2))
        plane = plane.unflatten(2, (height + 2 * p, padded_width))[..., p:-p, p:-p]
        return plane.flatten(2)

    @property
    def padding(self) -> int:
        """Zero rows and columns around the feature map in the inference product."""
        return self.config.spatial_kernel // 2 + 1

    def sparse_weights(
        self, position_map: PositionMap, height: int, width: int
    ) -> tuple[Tensor, Tensor]:
        """Each neuron's nonzero weights on the features zero-padded by ``p =``
        :attr:`padding` rows and columns on every side and flattened to ``C * (height + 2p) *
        (width + 2p)``: ``(columns, values)``, each ``[neurons, C * points * 4]``, the
        bilinear corners of its mean position (and, with a spatial mask, of each neighbour,
        times its mask weight; ``align_corners=True``, zeros outside) times its barcode. A
        column may repeat (neighbours share corners): the product sums repeats."""
        p = self.padding
        mu = self.positions(position_map).detach().float()  # [n, 2]
        if self.mask is None:
            points, weights = mu[:, None], torch.ones(len(mu), 1, device=mu.device)
        else:
            points = mu[:, None] + self.offsets(height, width).to(mu)[None]  # [n, k*k, 2]
            weights = self.mask.detach().float()
        pixels, bilinear = self.corners(points, height, width)  # [n, points, 4]
        bilinear = bilinear * weights[..., None]
        barcodes = self.barcodes().detach().float()
        n, c = barcodes.shape
        plane = (height + 2 * p) * (width + 2 * p)
        pixels, bilinear = pixels.reshape(n, -1), bilinear.reshape(n, -1)  # [n, points * 4]
        columns = torch.arange(c, device=mu.device)[None, :, None] * plane + pixels[:, None, :]
        values = barcodes[:, :, None] * bilinear[:, None, :]  # [n, c, points * 4]
        return columns.reshape(n, -1), values.reshape(n, -1)

    def forward(self, features: Tensor, position_map: PositionMap, sample: bool) -> Tensor:
        b, t, c, h, w = features.shape
        if not sample and not torch.is_grad_enabled():
            columns, values = self.sparse_weights(position_map, h, w)
            p = self.padding
            table = features.new_zeros(c, h + 2 * p, w + 2 * p, b * t)  # zero-padded map
            table[:, p : h + p, p : w + p] = features.reshape(b * t, c, h, w).permute(1, 2, 3, 0)
            # each neuron: the sum of its columns' rows, weighted; in the features' precision
            # (under bfloat16 autocast the sums accumulate in float32, rounded once at the end)
            out = F.embedding_bag(
                columns,
                table.reshape(-1, b * t),
                per_sample_weights=values.to(table.dtype),
                mode="sum",
            )  # [neurons, b * t]
            return torch.add(out.t(), self.bias).reshape(b, t, -1)  # float32, like the bias
        mu = self.positions(position_map)
        if sample:
            noise = torch.randn(b, *mu.shape, device=mu.device, dtype=mu.dtype)
            grid = mu + noise * self.log_sigma.exp()[:, None]  # [b, n, 2], one draw per window
            grid = grid.unsqueeze(1).expand(b, t, -1, -1).reshape(b * t, 1, -1, 2)
        else:
            grid = mu.expand(b * t, 1, -1, -1)
        if self.mask is not None:  # one dense product with each neuron's spatial weights
            # [b or 1, n, 2]: one draw per window, constant over time
            positions = grid.reshape(b, t, -1, 2)[:, 0] if sample else mu[None]
            spatial = self.spatial_weights(positions, h, w)  # [b or 1, n, h * w]
            weights = self.barcodes()[None, :, :, None] * spatial[:, :, None]  # [., n, c, h*w]
            flat = features.reshape(b, t, c * h * w)
            if not sample:
                return torch.einsum("btf,nf->btn", flat, weights[0].flatten(1)) + self.bias
            return torch.einsum("btf,bnf->btn", flat, weights.flatten(2)) + self.bias
        sampled = F.grid_sample(features.reshape(b * t, c, h, w), grid, align_corners=True)
        sampled = sampled.reshape(b, t, c, -1)  # [b, t, c, n]
        return (sampled * self.barcodes().t()).sum(dim=2) + self.bias
