"""Per-neuron accuracy metrics, NaN-aware, in float64."""

from __future__ import annotations

import numpy as np


def cc_max(responses: np.ndarray) -> np.ndarray:
    """Noise ceiling per neuron from repeats ``responses [repeats, time, neurons]``.

    With n repeats, P = Var_t(mean over repeats), TP = mean over repeats of Var_t(response),
    SP = (n P - TP) / (n - 1) (signal power), CC_max = sqrt(SP / P). NaN where P is 0, 0
    where SP <= 0.
    """
    r = np.asarray(responses, dtype=np.float64)
    if r.ndim != 3:
        raise ValueError(f"responses must be [repeats, time, neurons], got shape {r.shape}")
    n = np.sum(np.all(np.isfinite(r), axis=1), axis=0).astype(
        np.float64
    )  # effective repeats per neuron
    if np.any(n < 2):
        raise ValueError("CC_max needs at least 2 repeats with data per neuron")
    p = np.nanvar(np.nanmean(r, axis=0), axis=0)
    tp = np.nanmean(np.nanvar(r, axis=1), axis=0)
    sp = (n * p - tp) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt(np.clip(sp, 0, None) / p)
    return np.where(p > 0, out, np.nan)


def correlation(prediction: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Pearson correlation per neuron over time, ``[time, neurons]`` each; float64.

    Frames where either value is NaN are dropped (per neuron). NaN for a neuron whose
    prediction or response does not vary.
    """
    x = np.asarray(prediction, dtype=np.float64)
    y = np.asarray(responses, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(
            f"prediction {x.shape} and responses {y.shape} must both be [time, neurons]"
        )
    valid = np.isfinite(x) & np.isfinite(y)
    n = valid.sum(axis=0)
    x, y = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = x.sum(0) / n, y.sum(0) / n
        dx, dy = np.where(valid, x - mx, 0.0), np.where(valid, y - my, 0.0)
        cov = (dx * dy).sum(0)
        denom = np.sqrt((dx * dx).sum(0) * (dy * dy).sum(0))
        r = cov / denom
    return np.where((denom > 0) & (n > 1), r, np.nan)
