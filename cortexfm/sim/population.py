"""A simulated mouse's neurons: positions, areas, retinotopy, cell types and tuning parameters.

Every parameter that shapes a neuron's response is drawn here and kept as ground truth (one row
per neuron in :attr:`Population.table`). Cell types have their own, overlapping distributions
of receptive-field size, spatial and temporal frequency preference, complex-cell probability,
direction selectivity, orientation tuning, latency and behavioural gain, so that type is only
partly predictable from function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cortexfm.sim.calibration import CELL_TYPES, real_lateral_coordinates, sample_types_and_depths
from cortexfm.stimuli import Monitor

AREAS = ("V1", "LM", "AL", "RL")
#: Receptive-field size scale and retinotopic scatter (degrees) per area.
AREA_RF_SCALE = {"V1": 1.0, "LM": 1.3, "AL": 1.5, "RL": 1.6}
AREA_SCATTER_DEG = {"V1": 3.0, "LM": 5.0, "AL": 6.0, "RL": 6.0}

#: Per-type means: RF s.d. (deg), SF (cyc/deg), TF (Hz), P(complex), direction index,
#: untuned fraction, latency (frames), running gain, pupil gain.
TYPE_PARAMS = {
    "23P": (5.0, 0.07, 1.5, 0.35, 0.20, 0.40, 2.0, 0.30, 0.15),
    "4P": (4.0, 0.09, 2.0, 0.15, 0.15, 0.35, 1.0, 0.20, 0.10),
    "5P-IT": (6.0, 0.05, 2.5, 0.50, 0.25, 0.45, 2.5, 0.40, 0.20),
    "5P-ET": (8.0, 0.035, 4.0, 0.80, 0.40, 0.50, 1.5, 0.60, 0.30),
    "5P-NP": (9.0, 0.03, 3.0, 0.70, 0.10, 0.60, 3.0, 0.15, 0.05),
    "6P-IT": (6.0, 0.055, 1.5, 0.50, 0.15, 0.50, 3.0, 0.30, 0.10),
    "6P-CT": (7.0, 0.04, 3.5, 0.60, 0.30, 0.45, 2.0, 0.50, 0.25),
}


#: Calibration of selectivity to real mice (benchmarks/realism.py): scales of the direction
#: index and of the untuned fraction.
DIRECTION_SCALE = 2.6
UNTUNED_SCALE = 0.72


@dataclass
class Population:
    """Ground-truth parameters of one mouse's neurons (``table``: one row per neuron)."""

    table: pd.DataFrame
    mouse_id: str

    @property
    def n_neurons(self) -> int:
        return len(self.table)

    def __getitem__(self, column: str) -> np.ndarray:
        return self.table[column].to_numpy()


def sample_population(
    n_neurons: int,
    rng: np.random.Generator,
    monitor: Monitor,
    mouse_index: int = 0,
    mouse_id: str = "mouse0",
) -> Population:
    """Draw a mouse: real lateral coordinates when available, MICrONS-like types by depth."""
    if n_neurons < 1:
        raise ValueError(f"n_neurons must be >= 1, got {n_neurons}")
    lateral = real_lateral_coordinates(mouse_index)
    if lateral is not None:
        pick = rng.choice(len(lateral), size=n_neurons, replace=n_neurons > len(lateral))
        xy = lateral[pick] + rng.normal(0, 1.0, size=(n_neurons, 2))
    else:
        xy = rng.uniform(-600, 600, size=(n_neurons, 2))
    types, depth = sample_types_and_depths(n_neurons, rng)
    # areas: V1 medial, higher areas in bands along the lateral edge
    u = (xy[:, 0] - xy[:, 0].min()) / (np.ptp(xy[:, 0]) + 1e-9)
    v = (xy[:, 1] - xy[:, 1].min()) / (np.ptp(xy[:, 1]) + 1e-9)
    area = np.where(u < 0.55, "V1", np.where(v < 1 / 3, "LM", np.where(v < 2 / 3, "AL", "RL")))
    # retinotopy: smooth maps with a mirror reversal at the V1 border, per-area scatter
    half_w, half_h = 0.4 * monitor.width_deg, 0.4 * monitor.height_deg
    uu = np.where(area == "V1", u / 0.55, 1 - (u - 0.55) / 0.45)
    azimuth = -half_w + 2 * half_w * uu
    elevation = -half_h + 2 * half_h * v
    scatter = np.array([AREA_SCATTER_DEG[a] for a in area])
    azimuth = np.clip(azimuth + rng.normal(0, 1, n_neurons) * scatter, -half_w, half_w)
    elevation = np.clip(elevation + rng.normal(0, 1, n_neurons) * scatter, -half_h, half_h)

    p = np.array([TYPE_PARAMS[t] for t in types])
    lognormal = lambda mean, s: mean * np.exp(rng.normal(0, s, n_neurons))  # noqa: E731
    rf_size = lognormal(p[:, 0], 0.25) * np.array([AREA_RF_SCALE[a] for a in area])
    sf = np.clip(lognormal(p[:, 1], 0.35), 0.015, 0.16)
    tf = np.clip(lognormal(p[:, 2], 0.35), 0.5, 8.0)
    complex_cell = rng.random(n_neurons) < p[:, 3]
    direction_index = np.clip(rng.beta(2.0, 3.0, n_neurons) * p[:, 4] / 0.4 * DIRECTION_SCALE, 0, 1)
    untuned = np.clip(rng.beta(6.0, 6.0, n_neurons) * p[:, 5] / 0.5 * UNTUNED_SCALE, 0, 0.95)
    latency = np.clip(np.round(p[:, 6] + rng.normal(0, 0.7, n_neurons)), 0, 5).astype(int)
    table = pd.DataFrame(
        {
            "unit_id": np.arange(1, n_neurons + 1),
            "x": xy[:, 0].round(1),
            "y": xy[:, 1].round(1),
            "z": depth.round(1),
            "area": area,
            "cell_type": types,
            "layer": [_layer(d) for d in depth],
            "rf_x": azimuth,  # receptive-field centre, degrees
            "rf_y": elevation,
            "rf_size": rf_size,  # s.d. of the Gaussian envelope, degrees
            "orientation": rng.uniform(0, 180, n_neurons),  # of the carrier's wave vector
            "phase": rng.uniform(0, 2 * np.pi, n_neurons),
            "spatial_frequency": sf,
            "temporal_frequency": tf,
            "complex": complex_cell,
            "direction_index": direction_index,  # 0 = separable (non-directional) filter
            "direction_sign": rng.choice([-1.0, 1.0], n_neurons),
            "untuned_fraction": untuned,  # weight of an unoriented centre-surround drive
            "latency": latency,  # frames
            "running_gain": rng.normal(p[:, 7], 0.15),
            "pupil_gain": rng.normal(p[:, 8], 0.1),
            "amplitude": lognormal(1.0, 0.3),
            "baseline": lognormal(0.05, 0.5),
            "exponent": rng.uniform(1.2, 2.0, n_neurons),
        }
    )
    return Population(table, mouse_id)


def _layer(depth: float) -> str:
    for name, bottom in (("L2/3", 300), ("L4", 400), ("L5", 550)):
        if depth < bottom:
            return name
    return "L6"


def type_index(types: np.ndarray) -> np.ndarray:
    return np.array([CELL_TYPES.index(t) for t in types])
