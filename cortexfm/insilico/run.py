"""``cortexfm insilico``: the standard in-silico experiments on one session of a twin.

Direction tuning to gratings and to directional pink noise, receptive fields, spatial and
temporal frequency tuning, and most exciting inputs for the most responsive neurons; one row
per neuron in ``properties.csv``, the inputs in ``most_exciting_inputs.npy`` (uint8) and
figures of the five strongest neurons.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cortexfm.insilico.experiments import (
    MEI_PRESENT_FRAMES,
    direction_tuning,
    frequency_tuning,
    most_exciting_inputs,
    receptive_fields,
)
from cortexfm.insilico.plots import FIGURES, plot_meis, plot_receptive_fields, plot_tuning_curves
from cortexfm.model.network import FoundationModel


def run_insilico(
    model: FoundationModel,
    session_id: str,
    folder: str | Path,
    *,
    n_meis: int = 10,
    mei_steps: int = 150,
    mei_frames: int = 8,
    n_frames: int = 60,
) -> pd.DataFrame:
    """Run every experiment for ``session_id`` into ``folder``; returns the per-neuron table."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    grating = direction_tuning(model, session_id, n_frames=n_frames)
    noise = direction_tuning(model, session_id, stimulus="pink_noise", n_frames=n_frames)
    rf = receptive_fields(model, session_id)
    freq = frequency_tuning(
        model, session_id, grating.table.preferred_direction_fit.to_numpy(), n_frames=n_frames
    )
    table = grating.table.merge(
        noise.table.drop(columns=["peak_response"]), on="unit_id", suffixes=("", "_pink_noise")
    )
    table = table.merge(rf.table, on="unit_id").merge(freq, on="unit_id")
    table.to_csv(folder / "properties.csv", index=False)
    strongest = np.argsort(-grating.table.peak_response.to_numpy())[:n_meis]
    meis = most_exciting_inputs(
        model,
        session_id,
        strongest,
        steps=mei_steps,
        frames=mei_frames,
        present_frames=MEI_PRESENT_FRAMES,
    )
    np.save(folder / "most_exciting_inputs.npy", meis.astype(np.uint8))
    ids = grating.table.unit_id.to_numpy()
    plot_tuning_curves(
        grating.curves[strongest[:5]],
        grating.directions,
        ids[strongest[:5]],
        folder / FIGURES["tuning_curves"],
    )
    plot_receptive_fields(
        rf.maps[strongest[:5]],
        rf.azimuth,
        rf.elevation,
        ids[strongest[:5]],
        folder / FIGURES["receptive_fields"],
    )
    plot_meis(meis[:5], ids[strongest[:5]], folder / FIGURES["most_exciting_inputs"])
    return table
