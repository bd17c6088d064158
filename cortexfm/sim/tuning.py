"""Tuning measured from responses: global orientation/direction selectivity (gOSI, gDSI).

The same functions serve the simulator's ground truth (noise-free rates to drifting gratings),
the "in vivo" analysis of simulated recordings, and the real tuning curves of Sensorium mice
(which use gOSI = |sum r e^{2i theta}| / sum r and gDSI = |sum r e^{i theta}| / sum r).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cortexfm.stimuli import drifting_grating

TUNING_SF = (0.03, 0.06, 0.12)  # cycles/degree
TUNING_TF = 2.0  # Hz
TUNING_FRAMES = 60


def selectivity(curves: np.ndarray, directions_deg: np.ndarray) -> dict[str, np.ndarray]:
    """gOSI, gDSI and preferred direction/orientation of tuning ``curves [neurons, directions]``."""
    r = np.clip(np.asarray(curves, dtype=np.float64), 0, None)
    theta = np.deg2rad(directions_deg)[None]
    total = r.sum(1) + 1e-12
    vec1 = (r * np.exp(1j * theta)).sum(1) / total
    vec2 = (r * np.exp(2j * theta)).sum(1) / total
    return {
        "gOSI": np.abs(vec2),
        "gDSI": np.abs(vec1),
        "preferred_direction": np.rad2deg(np.angle(vec1)) % 360,
        "preferred_orientation": (np.rad2deg(np.angle(vec2)) / 2) % 180,
    }


def grating_tuning_curves(
    model,
    directions: np.ndarray,
    spatial_frequency: float,
    temporal_frequency: float = TUNING_TF,
    n_frames: int = TUNING_FRAMES,
) -> np.ndarray:
    """Noise-free mean rates ``[neurons, directions]`` to full-field drifting gratings."""
    from cortexfm.sim.response import KERNEL_FRAMES

    monitor = model.monitor
    frames = np.concatenate(
        [
            drifting_grating(monitor, n_frames, d, spatial_frequency, temporal_frequency).frames
            for d in directions
        ]
    )
    behavior = np.tile([50.0, 0.0], (len(frames), 1))
    rates = model.rates(frames, behavior, np.zeros((len(frames), 2)))
    rates = rates.reshape(len(directions), n_frames, -1)[:, KERNEL_FRAMES:]
    return rates.mean(1).T


def ground_truth_tuning(model) -> pd.DataFrame:
    """True tuning per neuron: best of a few spatial frequencies, 16 directions (and 8)."""
    directions = np.arange(16) * 22.5
    curves = np.stack(
        [grating_tuning_curves(model, directions, sf) for sf in TUNING_SF]
    )  # [sf, N, 16]
    best = curves.max(axis=2).argmax(axis=0)
    chosen = curves[best, np.arange(curves.shape[1])]
    s16 = selectivity(chosen, directions)
    s8 = selectivity(chosen[:, ::2], directions[::2])
    return pd.DataFrame(
        {
            "true_gOSI": s16["gOSI"],
            "true_gDSI": s16["gDSI"],
            "true_preferred_direction": s16["preferred_direction"],
            "true_preferred_orientation": s16["preferred_orientation"],
            "true_gOSI_8dir": s8["gOSI"],
            "true_gDSI_8dir": s8["gDSI"],
            "tuning_spatial_frequency": np.array(TUNING_SF)[best],
        }
    )
