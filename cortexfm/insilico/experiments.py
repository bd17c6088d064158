"""In-silico experiments on a trained model, batched over neurons (and over stimuli).

Every experiment shows stimuli to one session's digital twin with behaviour held at the
session's training mean and the eye centred, and summarises each neuron's predicted mean
response after a burn-in:

- :func:`direction_tuning`: drifting gratings (several spatial frequencies) or directional
  pink noise in 16 directions -> tuning curves, gOSI, gDSI, preferred direction (vector sum and
  a double von Mises fit);
- :func:`receptive_fields`: flashed Gaussian dots (on and off) on a grid -> maps, centre and
  size (moments of the thresholded map), spatial selectivity index;
- :func:`frequency_tuning`: spatial and temporal frequency tuning at the preferred direction;
- :func:`most_exciting_inputs`: gradient ascent on images or short videos under a contrast
  (RMS) constraint, with jitter and gradient smoothing.

Stimuli use the monitor of :mod:`cortexfm.stimuli` (the simulator's), in raw grey levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import curve_fit
from tqdm.auto import tqdm

from cortexfm.model.network import FoundationModel
from cortexfm.stimuli import Monitor, directional_pink_noise, drifting_grating
from cortexfm.stimuli.geometry import to_grey_levels
from cortexfm.stimuli.tuning import DIRECTIONS_16, TUNING_SPATIAL_FREQUENCIES, selectivity

DIRECTIONS = DIRECTIONS_16  # the 16 directions of every tuning experiment
GRATING_SF = TUNING_SPATIAL_FREQUENCIES
BURN_IN = 16
#: Frames a most exciting input is shown for (a short video is looped to this length).
MEI_PRESENT_FRAMES = 48


@torch.no_grad()
def mean_responses(
    model: FoundationModel,
    session_id: str,
    videos: np.ndarray,
    burn_in: int = BURN_IN,
    batch: int = 16,
) -> np.ndarray:
    """``videos [stimuli, time, H, W]`` (raw grey levels) -> mean predicted response after
    ``burn_in`` frames, ``[stimuli, neurons]``."""
    out = []
    for start in range(0, len(videos), batch):
        chunk = videos[start : start + batch].astype(np.float32)
        behavior, pupil = (
            np.tile(x, (len(chunk), chunk.shape[1], 1)) for x in model.resting_inputs(session_id)
        )
        responses, _ = model.predict(session_id, chunk, behavior, pupil)
        out.append(responses[:, burn_in:].mean(1).cpu().numpy())
    return np.concatenate(out)


def _double_von_mises(theta, base, a1, a2, kappa, mu):
    return (
        base
        + a1 * np.exp(kappa * (np.cos(theta - mu) - 1))
        + a2 * np.exp(kappa * (np.cos(theta - mu - np.pi) - 1))
    )


def fit_von_mises(curves: np.ndarray, directions_deg: np.ndarray) -> np.ndarray:
    """Preferred direction (deg) per neuron from a double von Mises fit (vector-sum fallback)."""
    theta = np.deg2rad(directions_deg)
    start = selectivity(curves, directions_deg)["preferred_direction"]
    out = start.copy()
    for n, curve in enumerate(curves):
        lo, hi = float(curve.min()), float(curve.max())
        if hi - lo <= 1e-9:
            continue
        p0 = [lo, hi - lo, 0.5 * (hi - lo), 2.0, np.deg2rad(start[n])]
        try:
            params, _ = curve_fit(
                _double_von_mises,
                theta,
                curve,
                p0=p0,
                maxfev=2000,
                bounds=([-np.inf, 0, 0, 0.1, -4 * np.pi], [np.inf, np.inf, np.inf, 50, 4 * np.pi]),
            )
        except (RuntimeError, ValueError):
            continue
        mu = params[4] if params[1] >= params[2] else params[4] + np.pi
        out[n] = np.rad2deg(mu) % 360
    return out


@dataclass
class TuningResult:
    curves: np.ndarray  # [neurons, directions]
    directions: np.ndarray
    table: pd.DataFrame  # gOSI, gDSI, preferred_direction (vector), preferred_direction_fit, ...


def tuning_stimuli(
    stimulus: str,
    monitor: Monitor,
    n_frames: int = 60,
    spatial_frequencies: tuple[float, ...] = GRATING_SF,
    temporal_frequency: float = 2.0,
    seeds: int = 3,
) -> np.ndarray:
    """The 16-direction tuning set ``[conditions, time, H, W]`` (grey levels): drifting
    gratings ordered (spatial frequency, direction), or directional pink noise ordered
    (noise seed, direction)."""
    if stimulus == "grating":
        return np.stack(
            [
                drifting_grating(monitor, n_frames, d, sf, temporal_frequency).frames
                for sf in spatial_frequencies
                for d in DIRECTIONS
            ]
        )
    if stimulus == "pink_noise":
        return np.stack(
            [
                directional_pink_noise(monitor, n_frames, np.random.default_rng(s), d).frames
                for s in range(seeds)
                for d in DIRECTIONS
            ]
        )
    raise ValueError(f"stimulus must be 'grating' or 'pink_noise', got {stimulus!r}")


def tuning_curves(
    responses: np.ndarray, stimulus: str, spatial_frequencies: tuple[float, ...] = GRATING_SF
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mean responses to :func:`tuning_stimuli` ``[conditions, neurons]`` -> tuning curves
    ``[neurons, 16]``: for gratings, at the spatial frequency that drives each neuron most
    (returned in the dict); for pink noise, averaged over noise seeds."""
    r = responses.reshape(-1, len(DIRECTIONS), responses.shape[-1])  # [sf or seed, 16, N]
    if stimulus == "grating":
        best = r.max(axis=1).argmax(axis=0)
        curves = r[best, :, np.arange(r.shape[2])]
        return curves, {"spatial_frequency": np.asarray(spatial_frequencies)[best]}
    return r.mean(0).T, {}


def direction_tuning(
    model: FoundationModel,
    session_id: str,
    *,
    stimulus: str = "grating",
    monitor: Monitor | None = None,
    n_frames: int = 60,
    spatial_frequencies: tuple[float, ...] = GRATING_SF,
    temporal_frequency: float = 2.0,
    seeds: int = 3,
) -> TuningResult:
    """Orientation and direction tuning over 16 directions (see the module docstring).

    Gratings: each neuron's curve is taken at the spatial frequency that drives it most.
    Pink noise: curves are averaged over ``seeds`` noise patterns.
    """
    videos = tuning_stimuli(
        stimulus, monitor or Monitor(), n_frames, spatial_frequencies, temporal_frequency, seeds
    )
    curves, extra = tuning_curves(
        mean_responses(model, session_id, videos), stimulus, spatial_frequencies
    )
    s = selectivity(curves, DIRECTIONS)
    table = pd.DataFrame(
        {
            "unit_id": model.session(session_id).unit_ids.cpu().numpy(),
            "gOSI": s["gOSI"],
            "gDSI": s["gDSI"],
            "preferred_direction": s["preferred_direction"],
            "preferred_orientation": s["preferred_orientation"],
            "preferred_direction_fit": fit_von_mises(curves, DIRECTIONS),
            "peak_response": curves.max(1),
            **extra,
        }
    )
    return TuningResult(curves, DIRECTIONS, table)


def frequency_tuning(
    model: FoundationModel,
    session_id: str,
    preferred_direction: np.ndarray,
    *,
    monitor: Monitor | None = None,
    spatial_frequencies: tuple[float, ...] = (0.015, 0.03, 0.06, 0.12, 0.16),
    temporal_frequencies: tuple[float, ...] = (0.5, 1, 2, 4, 8),
    n_frames: int = 60,
) -> pd.DataFrame:
    """Preferred spatial and temporal frequency per neuron, at its preferred direction
    (rounded to the nearest of the 16 directions). SF at 2 Hz, then TF at the preferred SF."""
    monitor = monitor or Monitor()
    nearest = np.round(np.asarray(preferred_direction) / 22.5).astype(int) % 16
    n = len(nearest)
    sf_resp = np.zeros((n, len(spatial_frequencies)))
    tf_resp = np.zeros((n, len(temporal_frequencies)))
    for d in np.unique(nearest):
        idx = nearest == d
        videos = np.stack(
            [
                drifting_grating(monitor, n_frames, DIRECTIONS[d], sf, 2.0).frames
                for sf in spatial_frequencies
            ]
        )
        sf_resp[idx] = mean_responses(model, session_id, videos)[:, idx].T
    best_sf = np.asarray(spatial_frequencies)[sf_resp.argmax(1)]
    for d in np.unique(nearest):
        for sf in np.unique(best_sf[nearest == d]):
            idx = (nearest == d) & (best_sf == sf)
            videos = np.stack(
                [
                    drifting_grating(monitor, n_frames, DIRECTIONS[d], sf, tf).frames
                    for tf in temporal_frequencies
                ]
            )
            tf_resp[idx] = mean_responses(model, session_id, videos)[:, idx].T
    return pd.DataFrame(
        {
            "unit_id": model.session(session_id).unit_ids.cpu().numpy(),
            "preferred_spatial_frequency": best_sf,
            "preferred_temporal_frequency": np.asarray(temporal_frequencies)[tf_resp.argmax(1)],
        }
    )


@dataclass
class ReceptiveFieldResult:
    maps: np.ndarray  # [neurons, rows, cols]: on + off response above the grey baseline
    azimuth: np.ndarray  # [cols] degrees
    elevation: np.ndarray  # [rows] degrees
    table: pd.DataFrame  # rf_x, rf_y (deg), rf_size (deg), spatial_selectivity


def receptive_fields(
    model: FoundationModel,
    session_id: str,
    *,
    monitor: Monitor | None = None,
    grid: tuple[int, int] = (18, 32),
    dot_size_deg: float = 4.0,
    dot_frames: int = 8,
    gap_frames: int = 4,
) -> ReceptiveFieldResult:
    """Flashed Gaussian dots (on and off) at every point of a grid, each in its own clip:
    grey for ``BURN_IN`` frames, the dot for ``dot_frames``, grey for ``gap_frames``."""
    monitor = monitor or Monitor()
    az, el = monitor.grid()
    xs = np.linspace(az.min(), az.max(), grid[1] + 2)[1:-1]
    ys = np.linspace(el.min(), el.max(), grid[0] + 2)[1:-1]
    videos = []
    for polarity in (1.0, -1.0):
        for y in ys:
            for x in xs:
                dot = polarity * np.exp(-((az - x) ** 2 + (el - y) ** 2) / (2 * dot_size_deg**2))
                clip = np.full((BURN_IN + dot_frames + gap_frames, *az.shape), to_grey_levels(0.0))
                clip[BURN_IN : BURN_IN + dot_frames] = to_grey_levels(dot)
                videos.append(clip)
    videos = np.stack(videos)
    baseline = mean_responses(
        model, session_id, np.full((1, *videos.shape[1:]), to_grey_levels(0.0))
    )
    responses = mean_responses(model, session_id, videos) - baseline  # [2 * cells, neurons]
    maps = responses.reshape(2, grid[0], grid[1], -1).clip(min=0).sum(0).transpose(2, 0, 1)
    gx, gy = np.meshgrid(xs, ys)
    rows = []
    for m in maps:
        peak = m.max()
        if peak <= 0:
            rows.append((np.nan, np.nan, np.nan, 0.0))
            continue
        w = np.where(m >= 0.5 * peak, m, 0.0)
        cx, cy = (w * gx).sum() / w.sum(), (w * gy).sum() / w.sum()
        size = np.sqrt((w * ((gx - cx) ** 2 + (gy - cy) ** 2)).sum() / w.sum() / 2)
        ssi = (peak - np.median(m)) / (peak + np.median(m))
        rows.append((cx, cy, size, ssi))
    table = pd.DataFrame(rows, columns=["rf_x", "rf_y", "rf_size", "spatial_selectivity"])
    table.insert(0, "unit_id", model.session(session_id).unit_ids.cpu().numpy())
    return ReceptiveFieldResult(maps, xs, ys, table)


def most_exciting_inputs(
    model: FoundationModel,
    session_id: str,
    neurons: np.ndarray,
    *,
    frames: int = 1,
    present_frames: int = 24,
    steps: int = 150,
    lr: float = 0.05,
    contrast: float = 0.35,
    jitter: int = 2,
    smooth_sigma: float = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Most exciting inputs of ``neurons`` (indices), one per neuron, by gradient ascent.

    ``frames=1`` optimises a static image (shown for ``present_frames``); ``frames>1`` a video
    of that many frames (looped to ``present_frames``). Constraint: every input keeps mean
    grey and RMS contrast ``contrast`` (fraction of the grey range). Regularisation: random
    jitter of up to ``jitter`` pixels per step, Gaussian smoothing of the gradient.
    Returns raw grey levels ``[neurons, frames, H, W]``.
    """
    torch.manual_seed(seed)
    monitor = Monitor()
    h, w = monitor.height, monitor.width
    norm = model.session(session_id).normalization
    k = len(neurons)
    x = torch.randn(k, frames, h, w) * 0.1
    x.requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    kernel = _gaussian_kernel(smooth_sigma)
    behavior, pupil = (
        torch.as_tensor(np.tile(x, (k, present_frames, 1)))
        for x in model.resting_inputs(session_id)
    )
    was_training = model.training
    model.eval()
    index = torch.as_tensor(np.asarray(neurons), dtype=torch.long)
    jitter_rng = np.random.default_rng(seed)
    for _ in tqdm(range(steps), desc="most exciting inputs", disable=not progress):
        video = _constrain(x, contrast)
        shift = jitter_rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
        video = torch.roll(video, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
        repeats = -(-present_frames // frames)
        video = video.repeat(1, repeats, 1, 1)[:, :present_frames]
        inputs = norm.inputs(to_grey_levels(video), behavior, pupil)
        out, _ = model(session_id, *inputs, sample=False)
        # batch element i is optimised for neuron index[i]
        activation = out[:, BURN_IN // 2 :, :].gather(
            2, index.view(k, 1, 1).expand(k, out.shape[1] - BURN_IN // 2, 1)
        )
        loss = -activation.mean()
        optimizer.zero_grad()
        loss.backward()
        with torch.no_grad():
            g = x.grad.reshape(k * frames, 1, h, w)
            x.grad.copy_(F.conv2d(g, kernel, padding=kernel.shape[-1] // 2).reshape_as(x))
        optimizer.step()
    model.train(was_training)
    with torch.no_grad():
        return to_grey_levels(_constrain(x, contrast)).clamp(0, 255).numpy()


def _constrain(x: torch.Tensor, contrast: float) -> torch.Tensor:
    centred = x - x.mean(dim=(1, 2, 3), keepdim=True)
    rms = centred.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-8
    return (centred / rms * contrast).clamp(-1, 1)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return torch.ones(1, 1, 1, 1)
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]
