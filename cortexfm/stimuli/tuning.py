"""Orientation and direction tuning: the protocol and the indices, one definition for all.

The simulator's ground truth, in-silico experiments on the twin, the "in vivo" analysis of
simulated recordings and the real Sensorium tuning curves all use these directions, spatial
and temporal frequencies, and the global selectivity indices
gOSI = |sum r e^{2i theta}| / sum r and gDSI = |sum r e^{i theta}| / sum r.
"""

from __future__ import annotations

import numpy as np

#: 16 directions of motion, degrees (0 = rightward, counter-clockwise).
DIRECTIONS_16 = np.arange(16) * 22.5
#: Spatial frequencies (cycles/deg) and temporal frequency (Hz) of tuning gratings.
TUNING_SPATIAL_FREQUENCIES = (0.03, 0.06, 0.12)
TUNING_TEMPORAL_FREQUENCY = 2.0


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
