"""The simulator's ground-truth tuning: noise-free rates to drifting gratings, measured with
the protocol and indices of :mod:`cortexfm.stimuli.tuning`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cortexfm.stimuli import drifting_grating
from cortexfm.stimuli.tuning import (
    TUNING_SPATIAL_FREQUENCIES,
    TUNING_TEMPORAL_FREQUENCY,
    selectivity,
)

TUNING_FRAMES = 60


def grating_tuning_curves(
    model,
    directions: np.ndarray,
    spatial_frequency: float,
    temporal_frequency: float = TUNING_TEMPORAL_FREQUENCY,
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
        [grating_tuning_curves(model, directions, sf) for sf in TUNING_SPATIAL_FREQUENCIES]
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
            "tuning_spatial_frequency": np.array(TUNING_SPATIAL_FREQUENCIES)[best],
        }
    )
