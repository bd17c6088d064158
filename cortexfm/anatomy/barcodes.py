"""Functional barcodes: each neuron's readout feature weights, exported as a table.

Normalisation: the weight vector ``w_n`` is divided by its L2 norm, so the barcode describes
*which* core features drive the neuron, not how strongly it responds overall (response scale
and gain live in the norm and the bias, which are exported separately as ``barcode_norm`` and
``bias``). The readout position (mean, feature-map units in [-1, 1]) is exported too; it is
retinotopic location, not function, and the anatomy analyses keep it apart from the barcode.

A twin whose readout has a per-neuron behavioural gain (``model.readout.behavior_gain``) also
has each neuron's sensitivity to running and to pupil size; :func:`behavioural_modulation`
turns those session-specific weights into two numbers per neuron comparable across mice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from cortexfm.data.session import Session
from cortexfm.model.network import FoundationModel


@torch.no_grad()
def export_barcodes(model: FoundationModel, session_ids: list[str] | None = None) -> pd.DataFrame:
    """One row per neuron: ``session_id, unit_id, b0..b{C-1}, barcode_norm, bias, position_x,
    position_y``."""
    rows = []
    for session_id in session_ids or model.session_ids:
        modules = model.session(session_id)
        weight = modules.readout.barcodes().detach().cpu().double().numpy()
        norm = np.linalg.norm(weight, axis=1, keepdims=True)
        barcode = weight / np.where(norm > 0, norm, 1.0)
        positions = modules.readout.positions(model.position_map).cpu().double().numpy()
        table = pd.DataFrame(barcode, columns=[f"b{i}" for i in range(barcode.shape[1])])
        table.insert(0, "unit_id", modules.unit_ids.cpu().numpy())
        table.insert(0, "session_id", session_id)
        table["barcode_norm"] = norm[:, 0]
        table["bias"] = modules.readout.bias.cpu().double().numpy()
        table["position_x"] = positions[:, 0]
        table["position_y"] = positions[:, 1]
        rows.append(table)
    return pd.concat(rows, ignore_index=True)


def barcode_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("b") and c[1:].isdigit()]


@torch.no_grad()
def behavioural_modulation(
    model: FoundationModel, session: Session, max_trials: int = 40
) -> pd.DataFrame | None:
    """``unit_id, running_modulation, pupil_modulation``: the slopes of each neuron's learned
    log gain on running speed and pupil size (both z-scored over the session's first
    ``max_trials`` training trials), or ``None`` when the readout has no behavioural gain."""
    modules = model.session(session.session_id)
    if modules.readout.gain is None:
        return None
    ids = session.trials_in("train")[:max_trials]
    behavior = np.concatenate([session.read(int(t), "behavior") for t in ids])
    norm = modules.normalization
    device = next(model.parameters()).device
    x = torch.as_tensor(behavior, dtype=torch.float32, device=device)[None]
    modulation, _ = modules.modulation(norm.behavior(x))
    z = (behavior - behavior.mean(0)) / np.where(behavior.std(0) > 0, behavior.std(0), 1.0)
    design = np.column_stack([np.ones(len(z)), z[:, 1], z[:, 0]])  # running, pupil
    # log gain = modulation @ gain.T is linear in the modulation features: regress those
    # ([time, M]) and map the slopes through each neuron's gain weights ([M, neurons])
    features = modulation[0].double().cpu().numpy()
    per_feature = np.linalg.lstsq(design, features, rcond=None)[0][1:]  # [2, M]
    slopes = per_feature @ modules.readout.gain.detach().double().cpu().numpy().T
    return pd.DataFrame(
        {
            "unit_id": modules.unit_ids.cpu().numpy(),
            "running_modulation": slopes[0],
            "pupil_modulation": slopes[1],
        }
    )
