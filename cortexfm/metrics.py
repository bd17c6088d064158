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


def _check_repeats(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"{name} must be [repeats, time, neurons], got shape {x.shape}")
    return x


def cc_abs(predictions: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Correlation of the trial-averaged prediction with the trial-averaged response.

    ``predictions`` and ``responses`` are ``[repeats, time, neurons]`` (a prediction without
    repeats may be ``[time, neurons]``).
    """
    r = _check_repeats("responses", responses)
    p = np.asarray(predictions, dtype=np.float64)
    p_mean = p if p.ndim == 2 else np.nanmean(_check_repeats("predictions", p), axis=0)
    return correlation(p_mean, np.nanmean(r, axis=0))


def cc_norm(predictions: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """``CC_abs / CC_max`` per neuron (NaN where the ceiling is 0 or undefined)."""
    ceiling = cc_max(responses)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ceiling > 0, cc_abs(predictions, responses) / ceiling, np.nan)


def single_trial_correlation(
    predictions: list[np.ndarray] | np.ndarray,
    responses: list[np.ndarray] | np.ndarray,
    skip: int = 0,
) -> np.ndarray:
    """Correlation per neuron over all frames of all trials pooled (first ``skip`` frames of
    each trial dropped). Trials are ``[time, neurons]`` arrays (or one ``[trials, time, N]``)."""
    p = [np.asarray(x, dtype=np.float64)[skip:] for x in predictions]
    r = [np.asarray(x, dtype=np.float64)[skip:] for x in responses]
    if len(p) != len(r) or any(a.shape != b.shape for a, b in zip(p, r, strict=False)):
        raise ValueError("predictions and responses must hold the same trials with equal shapes")
    return correlation(np.concatenate(p), np.concatenate(r))


def fraction_explainable_variance_explained(
    predictions: np.ndarray, responses: np.ndarray
) -> np.ndarray:
    """FEVE per neuron (Cadena et al. 2019) on repeats ``[repeats, time, neurons]``.

    ``1 - (MSE - noise) / (Var(responses) - noise)``, noise = the mean over time bins of the
    variance across repeats. ``predictions`` may be ``[time, neurons]`` (the same for every
    repeat) or ``[repeats, time, neurons]``.
    """
    r = _check_repeats("responses", responses)
    p = np.asarray(predictions, dtype=np.float64)
    if p.ndim == 2:
        p = np.broadcast_to(p, r.shape)
    noise = np.nanmean(np.nanvar(r, axis=0, ddof=1), axis=0)
    total = np.nanvar(r.reshape(-1, r.shape[-1]), axis=0, ddof=1)
    mse = np.nanmean((p - r).reshape(-1, r.shape[-1]) ** 2, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 1 - (mse - noise) / (total - noise)
    return np.where(total - noise > 0, out, np.nan)


# -- the Sensorium 2023 competition's official scores ------------------------------------------

SENSORIUM_SKIP_FRAMES = 50


def _align_to_end(prediction: np.ndarray, response: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The official scorer aligns a (possibly shorter) prediction to the end of the trial."""
    n = min(len(prediction), len(response))
    return prediction[len(prediction) - n :], response[len(response) - n :]


def sensorium_single_trial_correlation(
    predictions: list[np.ndarray], responses: list[np.ndarray], skip: int = SENSORIUM_SKIP_FRAMES
) -> np.ndarray:
    """Sensorium 2023 "single-trial correlation": per trial the prediction is aligned to the
    end of the response, the first ``skip`` frames of the response are dropped, all trials are
    pooled per neuron, and NaN correlations count as 0."""
    p_all, r_all = [], []
    for p, r in zip(predictions, responses, strict=True):
        r = np.asarray(r, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        start = max(skip - (len(r) - len(p)), 0)  # frames of the aligned prediction to drop
        p, r = _align_to_end(p, r)
        p_all.append(p[start:])
        r_all.append(r[start:])
    return np.nan_to_num(correlation(np.concatenate(p_all), np.concatenate(r_all)), nan=0.0)


def sensorium_correlation_to_average(
    predictions: dict[str, np.ndarray],
    responses: dict[str, np.ndarray],
    skip: int = SENSORIUM_SKIP_FRAMES,
) -> np.ndarray:
    """Sensorium 2023 "correlation to average": per clip, responses and predictions are
    averaged over its repeats (``[repeats, time, neurons]`` per clip id), the first ``skip``
    frames dropped, clips pooled per neuron; NaN counts as 0."""
    p_all, r_all = [], []
    for clip, r in responses.items():
        r_mean = np.nanmean(_check_repeats(f"responses[{clip!r}]", r), axis=0)
        p = np.asarray(predictions[clip], dtype=np.float64)
        p_mean = p if p.ndim == 2 else np.nanmean(p, axis=0)
        p_mean, r_mean = _align_to_end(p_mean, r_mean)
        p_all.append(p_mean[skip:])
        r_all.append(r_mean[skip:])
    return np.nan_to_num(correlation(np.concatenate(p_all), np.concatenate(r_all)), nan=0.0)


def sensorium_normalize_responses(responses: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The official loader's per-neuron response normalisation, applied to every frame:
    ``responses / s`` with ``s = std`` floored at 1% of the mean std over neurons."""
    std = np.asarray(std, dtype=np.float64)
    floor = 0.01 * np.nanmean(std)
    return np.asarray(responses, dtype=np.float64) / np.where(std > floor, std, floor)
