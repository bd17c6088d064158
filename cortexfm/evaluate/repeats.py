"""Scoring a model on a session's test trials, per stimulus type, with the field's metrics.

Every trial of the chosen tiers that has ground truth is predicted once (causally, from its own
video, behaviour and eye position). Trials are grouped by stimulus type; within a type, clips
shown at least twice give the repeat-based metrics (CC_abs, CC_max, CC_norm, FEVE) and every
trial counts for the single-trial correlation. The first ``burn_in`` frames of every trial are
skipped (the model starts from a blank state).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from cortexfm.data.session import Session
from cortexfm.metrics import (
    cc_abs,
    cc_max,
    fraction_explainable_variance_explained,
    sensorium_correlation_to_average,
    sensorium_single_trial_correlation,
    single_trial_correlation,
)
from cortexfm.model.network import FoundationModel

#: Tiers scored by default: repeated natural clips and the out-of-distribution blocks.
TEST_TIERS = ("oracle", "final_test_bonus", "final_test_main", "live_test_main", "live_test_bonus")


@torch.no_grad()
def predict_trial(model: FoundationModel, session: Session, trial_id: int) -> np.ndarray:
    """The model's prediction ``[time, neurons]`` (raw units) for one recorded trial."""
    trial = session.trial(trial_id)
    out, _ = model.predict(session.session_id, trial.video, trial.behavior, trial.pupil_center)
    return out.cpu().numpy()


def scored_trials(session: Session, tiers: tuple[str, ...] = TEST_TIERS) -> np.ndarray:
    known = [t for t in tiers if t in set(session.tiers)]
    ids = session.trials_in(*known) if known else np.array([], dtype=np.int64)
    return np.array([i for i in ids if session.has_ground_truth(int(i))], dtype=np.int64)


def repeat_arrays(
    session: Session, trial_ids: np.ndarray, predictions: dict[int, np.ndarray], burn_in: int
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """``[repeats, time, neurons]`` predictions and responses over the repeated clips among
    ``trial_ids`` (clips concatenated in time), plus the per-clip arrays; None if no repeats."""
    groups: dict[str, list[int]] = {}
    for t in trial_ids:
        groups.setdefault(str(session.video_ids[t]), []).append(int(t))
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return None
    n_repeats = min(len(v) for v in groups.values())
    p_clips, r_clips = {}, {}
    for clip, ids in groups.items():
        ids = ids[:n_repeats]
        length = int(min(session.trial_lengths[ids]))
        p_clips[clip] = np.stack([predictions[t][burn_in:length] for t in ids])
        r_clips[clip] = np.stack([session.read(t, "responses", 0, length)[burn_in:] for t in ids])
    return (
        np.concatenate(list(p_clips.values()), axis=1),
        np.concatenate(list(r_clips.values()), axis=1),
        p_clips,
        r_clips,
    )


def evaluate_session(
    model: FoundationModel,
    session: Session,
    tiers: tuple[str, ...] = TEST_TIERS,
    burn_in: int = 10,
    predictions: dict[int, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """Per neuron and stimulus type: ``cc_abs, cc_max, cc_norm, feve, single_trial``; the
    Sensorium 2023 official scores (``sensorium_single_trial``, ``sensorium_to_average``).

    Returns the table and the predictions (trial id -> ``[time, neurons]``) for reuse.
    """
    ids = scored_trials(session, tiers)
    if len(ids) == 0:
        raise ValueError(
            f"session {session.session_id!r} has no trials with ground truth in tiers {list(tiers)}"
        )
    predictions = dict(predictions or {})
    for t in ids:
        if int(t) not in predictions:
            predictions[int(t)] = predict_trial(model, session, int(t))
    tables = []
    for stimulus_type in dict.fromkeys(session.stimulus_types[ids]):
        type_ids = ids[session.stimulus_types[ids] == stimulus_type]
        p_trials = [predictions[int(t)] for t in type_ids]
        r_trials = [session.read(int(t), "responses") for t in type_ids]
        table = pd.DataFrame(
            {
                "session_id": session.session_id,
                "unit_id": np.asarray(session.unit_ids),
                "stimulus_type": str(stimulus_type),
                "n_trials": len(type_ids),
                "single_trial": single_trial_correlation(p_trials, r_trials, skip=burn_in),
                "sensorium_single_trial": sensorium_single_trial_correlation(p_trials, r_trials),
            }
        )
        for column in ("cell_type", "area"):  # per-type reports, when the neuron table has them
            if column in session.neurons:
                table[column] = session.neurons[column].to_numpy()
        arrays = repeat_arrays(session, type_ids, predictions, burn_in)
        if arrays is not None:
            p, r, p_clips, r_clips = arrays
            table["n_repeats"] = p.shape[0]
            table["cc_abs"] = cc_abs(p, r)
            table["cc_max"] = cc_max(r)
            with np.errstate(invalid="ignore", divide="ignore"):
                table["cc_norm"] = np.where(table.cc_max > 0, table.cc_abs / table.cc_max, np.nan)
            table["feve"] = fraction_explainable_variance_explained(p.mean(0), r)
            table["sensorium_to_average"] = sensorium_correlation_to_average(
                {k: v for k, v in p_clips.items()}, r_clips, skip=max(0, 50 - burn_in)
            )
        tables.append(table)
    return pd.concat(tables, ignore_index=True), predictions


def repeat_scores(
    model: FoundationModel,
    session: Session,
    tiers: str | tuple[str, ...] = "oracle",
    burn_in: int = 10,
) -> pd.DataFrame:
    """Per neuron CC_abs, CC_max and CC_norm on the repeated clips of ``tiers``."""
    tiers = (tiers,) if isinstance(tiers, str) else tiers
    table, _ = evaluate_session(model, session, tiers, burn_in)
    return table.dropna(subset=["cc_max"]) if "cc_max" in table else table
