"""Scoring a model on repeated test clips: CC_abs, CC_max and CC_norm per neuron."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from cortexfm.data.loader import repeat_groups
from cortexfm.data.session import Session
from cortexfm.evaluate.metrics import cc_max, correlation
from cortexfm.model.network import FoundationModel


def predict_trial(model: FoundationModel, session: Session, trial_id: int) -> np.ndarray:
    """The model's prediction ``[time, neurons]`` (raw units) for one recorded trial."""
    trial = session.trial(trial_id)
    out, _ = model.predict(session.session_id, trial.video, trial.behavior, trial.pupil_center)
    return out.cpu().numpy()


def repeated_clip_arrays(
    model: FoundationModel,
    session: Session,
    tiers: str | tuple[str, ...] = "oracle",
    burn_in: int = 10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions and responses on every repeat of every clip of ``tiers``.

    Returns ``predictions, responses`` as ``[repeats, time, neurons]`` (clips concatenated in
    time after dropping each clip's first ``burn_in`` frames; repeats beyond the smallest count
    of any clip dropped) and the clip label of each time bin.
    """
    groups = repeat_groups(session, tiers)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        raise ValueError(
            f"session {session.session_id!r} has no clip repeated at least twice in tier(s) {tiers}"
        )
    n_repeats = min(len(v) for v in groups.values())
    predictions, responses, labels = [], [], []
    for clip, trial_ids in groups.items():
        trial_ids = trial_ids[:n_repeats]
        length = int(min(session.trial_lengths[trial_ids]))
        p = np.stack([predict_trial(model, session, int(t))[burn_in:length] for t in trial_ids])
        r = np.stack([session.read(int(t), "responses", 0, length)[burn_in:] for t in trial_ids])
        predictions.append(p)
        responses.append(r)
        labels += [clip] * p.shape[1]
    return np.concatenate(predictions, 1), np.concatenate(responses, 1), np.array(labels)


@torch.no_grad()
def repeat_scores(
    model: FoundationModel,
    session: Session,
    tiers: str | tuple[str, ...] = "oracle",
    burn_in: int = 10,
) -> pd.DataFrame:
    """Per neuron: ``cc_abs`` (trial-averaged prediction vs trial-averaged response),
    ``cc_max`` (noise ceiling) and ``cc_norm = cc_abs / cc_max``."""
    predictions, responses, _ = repeated_clip_arrays(model, session, tiers, burn_in)
    cc_abs = correlation(predictions.mean(0), responses.mean(0))
    ceiling = cc_max(responses)
    with np.errstate(invalid="ignore", divide="ignore"):
        cc_norm = np.where(ceiling > 0, cc_abs / ceiling, np.nan)
    return pd.DataFrame(
        {
            "session_id": session.session_id,
            "unit_id": np.asarray(session.unit_ids),
            "cc_abs": cc_abs,
            "cc_max": ceiling,
            "cc_norm": cc_norm,
        }
    )
