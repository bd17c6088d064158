"""Readout position search: place each neuron's readout where the core's features explain it.

A Gaussian readout learns its position by gradient descent through bilinear sampling, which
only sees the neighbouring feature-map cells: a neuron that starts several cells away from its
receptive field may never find it. On the simulated cohort, starting the readouts at the true
receptive fields doubled the correlation reached in 4 minutes (``benchmarks/core_probe.py``:
0.76 vs 0.43 with the true rate). The search does without the truth:

1. stream the session's training trials (normalised as in training; the first ``burn_in``
   frames of each trial dropped) through its perspective, modulation and the core, collecting
   the feature map ``[frames, C, h, w]``;
2. at every feature-map position ``p``, ridge-regress every neuron's responses on the ``C``
   features there (centred; ridge ``ridge x`` the mean feature variance) and take the variance
   explained, ``b_p^T (X_p^T X_p + lambda I)^{-1} b_p`` with ``b_p = X_p^T y``;
3. pool each neuron's score map with those of its cortical neighbours (Gaussian weights over
   lateral distance, s.d. ``pooling_um``): retinotopy is smooth on the scale of tens of
   micrometres, and one neuron's map is too noisy to trust on its own (on the simulated cohort,
   pooling at 50 µm raised the correlation of the found with the true receptive-field
   positions from 0.46 / 0.53 to 0.96 / 0.94 in x / y, 20,000 frames);
4. move each neuron to its best position, refined to sub-cell precision by a parabola through
   the neighbouring scores along x and y.

It runs at the steps in ``TrainConfig.position_search_steps`` (first thing in a transfer, when
the core is already trained; after a few hundred steps when the core is learning too).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cortexfm.data.session import Session
from cortexfm.model.network import FoundationModel

#: Largest feature buffer (bytes) the search keeps in memory; fewer frames for bigger cores.
MEMORY_BUDGET = 512 * 2**20


@torch.no_grad()
def collect_features(
    model: FoundationModel,
    session: Session,
    trial_ids: np.ndarray,
    *,
    max_frames: int,
    burn_in: int,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """Features ``[frames, C, h, w]`` and normalised responses ``[frames, neurons]``."""
    features, responses, total = [], [], 0
    for trial_id in trial_ids:
        if total >= max_frames:
            break
        trial = session.trial(int(trial_id))
        if trial.n_frames <= burn_in:
            continue
        norm = model.session(session.session_id).normalization
        inputs = [
            torch.as_tensor(getattr(trial, m), device=device)[None]
            for m in ("video", "behavior", "pupil_center")
        ]
        f, _ = model.features(session.session_id, *norm.inputs(*inputs))
        keep = min(trial.n_frames - burn_in, max_frames - total)
        features.append(f[0, burn_in : burn_in + keep].float())
        y = norm.targets(torch.as_tensor(trial.responses[burn_in : burn_in + keep], device=device))
        responses.append(y.float())
        total += keep
    if not features:
        raise ValueError(
            f"session {session.session_id!r}: no training trial longer than {burn_in} frames "
            "to search readout positions on"
        )
    return torch.cat(features), torch.cat(responses)


def position_scores(features: Tensor, responses: Tensor, ridge: float = 0.1) -> Tensor:
    """Variance explained by a ridge readout at each position: ``[h, w, neurons]``.

    ``features [frames, C, h, w]``, ``responses [frames, neurons]`` (NaN gaps are set to the
    neuron's mean, so they carry no weight once centred).
    """
    t, c, h, w = features.shape
    x = features.permute(2, 3, 0, 1).reshape(h * w, t, c).double()
    x = x - x.mean(1, keepdim=True)
    y = responses.double()
    y = y - torch.nan_to_num(y.nanmean(0))
    y = torch.nan_to_num(y)
    xtx = x.transpose(1, 2) @ x  # [p, c, c]
    scale = xtx.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-12)
    xtx = xtx + ridge * scale[:, None, None] * torch.eye(c, dtype=x.dtype, device=x.device)
    xty = x.transpose(1, 2) @ y  # [p, c, n]
    score = (torch.linalg.solve(xtx, xty) * xty).sum(1)  # [p, n]
    return (score / (y * y).sum(0).clamp(min=1e-12)).reshape(h, w, -1).float()


def pool_over_cortex(scores: Tensor, coordinates: np.ndarray, pooling_um: float) -> Tensor:
    """Gaussian-weighted sum of ``[h, w, neurons]`` score maps over cortical neighbours.

    ``coordinates [neurons, >=2]`` in µm (lateral x, y used); neurons without coordinates keep
    their own map. Neighbours beyond 3 s.d. are ignored (a sparse kernel: linear memory).
    """
    from scipy.sparse import coo_matrix
    from scipy.spatial import cKDTree

    h, w, n = scores.shape
    xy = np.asarray(coordinates, dtype=np.float64)[:, :2]
    valid = np.isfinite(xy).all(1)
    if pooling_um <= 0 or valid.sum() < 2:
        return scores
    index = np.flatnonzero(valid)
    pairs = cKDTree(xy[valid]).query_pairs(3 * pooling_um, output_type="ndarray")
    i, j = index[pairs[:, 0]], index[pairs[:, 1]]
    d2 = ((xy[i] - xy[j]) ** 2).sum(1)
    weight = np.exp(-d2 / (2 * pooling_um**2))
    rows = np.concatenate([i, j, np.arange(n)])
    cols = np.concatenate([j, i, np.arange(n)])
    values = np.concatenate([weight, weight, np.ones(n)])
    kernel = coo_matrix((values, (rows, cols)), shape=(n, n)).tocsr()
    flat = scores.reshape(h * w, n).cpu().numpy().astype(np.float64)
    pooled = (kernel @ flat.T).T  # [p, n]
    return torch.as_tensor(pooled, dtype=scores.dtype, device=scores.device).reshape(h, w, n)


def best_positions(scores: Tensor) -> Tensor:
    """``[h, w, neurons]`` scores -> positions ``[neurons, 2]`` (x, y in [-1, 1],
    ``align_corners`` convention), the argmax refined by a parabola along each axis."""
    h, w, n = scores.shape
    flat = scores.reshape(h * w, n).argmax(0)
    iy, ix = flat // w, flat % w
    cols = torch.arange(n, device=scores.device)

    def refine(i: Tensor, size: int, along_x: bool) -> Tensor:
        lo, hi = (i - 1).clamp(min=0), (i + 1).clamp(max=size - 1)
        if along_x:
            s0, sm, sp = scores[iy, i, cols], scores[iy, lo, cols], scores[iy, hi, cols]
        else:
            s0, sm, sp = scores[i, ix, cols], scores[lo, ix, cols], scores[hi, ix, cols]
        curvature = sm - 2 * s0 + sp
        offset = torch.where(
            (curvature < 0) & (lo < i) & (hi > i),
            0.5 * (sm - sp) / curvature.clamp(max=-1e-12),
            torch.zeros_like(s0),
        ).clamp(-0.5, 0.5)
        return ((i.float() + offset) / max(size - 1, 1)) * 2 - 1

    return torch.stack([refine(ix, w, True), refine(iy, h, False)], dim=1)


def search_positions(
    model: FoundationModel,
    session: Session,
    trial_ids: np.ndarray,
    *,
    max_frames: int,
    burn_in: int,
    device: torch.device,
    pooling_um: float = 50.0,
    ridge: float = 0.1,
) -> dict[str, float]:
    """Move the readout positions of ``session``'s neurons (see the module docstring)."""
    was_training = model.training
    model.eval()
    try:
        c, (h, w) = (
            model.core.out_channels,
            model.core.output_size(model.config.perspective.retina_size),
        )
        frames = max(100, min(max_frames, MEMORY_BUDGET // (4 * c * h * w)))
        features, responses = collect_features(
            model,
            session,
            trial_ids,
            max_frames=frames,
            burn_in=burn_in,
            device=device,
        )
        scores = position_scores(features, responses, ridge)
        readout = model.session(session.session_id).readout
        before = readout.positions(model.position_map).detach()
        after = best_positions(pool_over_cortex(scores, session.coordinates, pooling_um))
        readout.move_to(after, model.position_map)
    finally:
        model.train(was_training)
    shift = (after - before).abs() * torch.tensor([(w - 1) / 2, (h - 1) / 2], device=after.device)
    return {
        "frames": int(len(responses)),
        "median_variance_explained": float(scores.amax((0, 1)).median()),
        "median_shift_cells": float(shift.norm(dim=1).median()),
    }
