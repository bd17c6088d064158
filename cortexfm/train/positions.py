"""A data-driven start for the readout positions: fit the shared coordinate-to-position map.

Before training, each neuron's receptive-field location is estimated from the training data
with a cheap reverse correlation: the correlation of its response with the local contrast
energy of the (normalised) video a few frames earlier, on the core's output grid. The shared
linear map from cortical coordinates to feature-map positions (``PositionMap``) is then fitted
to those estimates by weighted least squares over all neurons of all mice (weights: how
clearly each neuron's map peaks). Readout positions therefore start from each neuron's
cortical coordinates through a map learned from the data, rather than from an arbitrary
orientation of the retinotopic map, which speeds up learning a lot.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cortexfm.data.cohort import Cohort
from cortexfm.data.schema import TRAIN_TIER
from cortexfm.model.network import FoundationModel

LAGS = (2, 3, 4, 5, 6)  # frames between a stimulus and the response it drives


def contrast_energy_maps(
    model: FoundationModel, session_id: str, video: np.ndarray, grid: tuple[int, int]
) -> np.ndarray:
    """``video [time, H, W]`` (raw) -> local contrast energy ``[time, gh * gw]``."""
    norm = model.session(session_id).normalization
    x = (torch.as_tensor(video) - norm.video_mean) / norm.video_std
    x = x - F.avg_pool2d(x[:, None], 5, stride=1, padding=2, count_include_pad=False)[:, 0]
    energy = F.adaptive_avg_pool2d((x * x)[:, None], grid)[:, 0]
    return energy.reshape(len(video), -1).numpy()


def estimate_positions(
    model: FoundationModel, cohort: Cohort, max_frames: int = 6000
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per session: estimated positions ``[neurons, 2]`` in [-1, 1] (x, y) and a confidence."""
    grid = model.core.output_size(model.config.perspective.retina_size)
    gy, gx = np.meshgrid(np.linspace(-1, 1, grid[0]), np.linspace(-1, 1, grid[1]), indexing="ij")
    out = {}
    for session in cohort:
        ids = session.trials_in(TRAIN_TIER)
        sums = None
        n_frames = 0
        for trial_id in ids:
            if n_frames >= max_frames:
                break
            video = session.read(int(trial_id), "video")
            if len(video) <= max(LAGS):
                continue
            if video.shape[-2:] != tuple(model.config.perspective.retina_size):
                video = F.interpolate(
                    torch.as_tensor(video)[:, None],
                    size=model.config.perspective.retina_size,
                    mode="area",
                )[:, 0].numpy()
            energy = contrast_energy_maps(model, session.session_id, video, grid)
            responses = session.read(int(trial_id), "responses").astype(np.float64)
            t = len(video)
            e = sum(energy[max(LAGS) - lag : t - lag] for lag in LAGS)  # [t', cells]
            r = responses[max(LAGS) :]
            e = e - e.mean(0)
            r = r - r.mean(0)
            part = (e.T @ r, (e * e).sum(0), (r * r).sum(0))
            sums = part if sums is None else tuple(a + b for a, b in zip(sums, part, strict=True))
            n_frames += t
        if sums is None:
            continue
        cov, ee, rr = sums
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / np.sqrt(np.outer(ee, rr))  # [cells, neurons]
        corr = np.nan_to_num(corr)
        best = corr.argmax(axis=0)
        positions = np.stack([gx.reshape(-1)[best], gy.reshape(-1)[best]], axis=1)
        spread = corr.std(axis=0) + 1e-9
        confidence = np.clip((corr.max(axis=0) - corr.mean(axis=0)) / spread, 0, None)
        out[session.session_id] = (positions, confidence)
    return out


def fit_position_map(model: FoundationModel, cohort: Cohort, max_frames: int = 6000) -> float:
    """Fit the shared coordinate -> position map to reverse-correlation estimates.

    Returns the weighted R^2 of the fit (how much of the estimated retinotopy is linear in
    cortical position). Sessions without coordinates are skipped.
    """
    estimates = estimate_positions(model, cohort, max_frames)
    xs, ys, ws = [], [], []
    for session_id, (positions, confidence) in estimates.items():
        coords = model.session(session_id).readout.coords.numpy().astype(np.float64)
        if not np.any(coords):
            continue
        xs.append(coords)
        ys.append(np.arctanh(np.clip(positions, -0.95, 0.95)))
        ws.append(confidence**2)
    if not xs:
        return float("nan")
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    w = np.concatenate(ws)
    design = np.hstack([x, np.ones((len(x), 1))])
    sw = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(design * sw, y * sw, rcond=None)  # [3, 2]
    fitted = design @ coef
    r2 = (
        1
        - (w[:, None] * (y - fitted) ** 2).sum()
        / (w[:, None] * (y - np.average(y, axis=0, weights=w)) ** 2).sum()
    )
    with torch.no_grad():
        model.position_map.linear.weight.copy_(torch.as_tensor(coef[:2].T, dtype=torch.float32))
        model.position_map.linear.bias.copy_(torch.as_tensor(coef[2], dtype=torch.float32))
    return float(r2)
