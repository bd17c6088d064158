"""Like-to-like connectivity: connection probability rises with functional similarity and
falls with cortical distance.

``p(i -> j) = p_max * exp(-d_ij^2 / (2 * length^2)) * sigmoid(slope * (similarity_ij - 0.5))``
where ``similarity`` is the correlation of the two neurons' noise-free responses to natural
movies and ``d`` the lateral-and-depth distance in µm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist


def sample_connections(
    rates: np.ndarray,
    xyz: np.ndarray,
    rng: np.random.Generator,
    p_max: float = 0.25,
    length_um: float = 150.0,
    slope: float = 6.0,
) -> pd.DataFrame:
    """Edges ``pre, post, synapse_count`` from noise-free ``rates [time, neurons]``."""
    similarity = np.corrcoef(rates.T)
    similarity = np.nan_to_num(similarity)
    distance = cdist(xyz, xyz)
    p = (
        p_max
        * np.exp(-(distance**2) / (2 * length_um**2))
        / (1 + np.exp(-slope * (similarity - 0.5)))
    )
    np.fill_diagonal(p, 0)
    pre, post = np.nonzero(rng.random(p.shape) < p)
    counts = 1 + rng.poisson(1.0 + 2.0 * np.clip(similarity[pre, post], 0, 1))
    return pd.DataFrame({"pre": pre, "post": post, "synapse_count": counts})
