"""The Sensorium 2023 submission file.

The competition's starter kit (``sensorium/utility/submission.py`` in ecker-lab/sensorium_2023)
defines it: one parquet file per test tier, compressed with brotli, named
``predictions_file_<tier>_<track>_track.parquet.brotli`` (track ``main`` for the ``*_main``
tiers, ``ood`` for the ``*_bonus`` tiers, whose clips are out-of-distribution stimuli), with
one row per trial:

- ``mouse``: the data set's name (the session folder's name, e.g.
  ``dynamic29156-11-10-Video-8744edeac3b4d1ce16b680916b5267ce``);
- ``trial_indices``: the trial's index in the data set (its file number, ``<i>.npy``);
- ``prediction``: ``[neurons][frames - 50]`` float32: the predicted responses from frame 50 to
  the trial's end (the first 50 frames of each trial are not scored);
- ``neuron_ids``: the neurons' unit ids (uint32), in the order of ``prediction``.

Test tiers' responses are withheld (zero-filled) in the release: they are predicted here and
never scored by ``cortexfm evaluate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from cortexfm.atomic import atomic_path
from cortexfm.model.network import FoundationModel

if TYPE_CHECKING:
    from cortexfm.data.cohort import Cohort

#: Frames at the start of each trial that the competition does not score.
SKIP_FRAMES = 50
SUBMISSION_TIERS = ("live_test_main", "live_test_bonus", "final_test_main", "final_test_bonus")


def submission_name(tier: str) -> str:
    track = "main" if tier.endswith("_main") else "ood"
    return f"predictions_file_{tier}_{track}_track.parquet.brotli"


def sensorium2023_submission(
    model: FoundationModel,
    cohort: Cohort,
    tiers: Sequence[str],
    out_dir: str | Path,
    *,
    skip: int = SKIP_FRAMES,
    progress: bool = True,
) -> list[Path]:
    """Write one submission file per tier in ``out_dir``; returns their paths."""
    unknown = [t for t in tiers if t not in SUBMISSION_TIERS]
    if unknown:
        raise ValueError(f"tier(s) {unknown} are not Sensorium 2023 test tiers {SUBMISSION_TIERS}")
    missing = [s for s in cohort.session_ids if s not in model.session_ids]
    if missing:
        raise KeyError(
            f"session(s) {missing} are not in the model (it knows {model.session_ids}); "
            "train or transfer to them first"
        )
    paths = []
    for tier in tiers:
        mice, trial_ids, predictions, neuron_ids = [], [], [], []
        for session in cohort:
            ids = session.trials_in(tier)
            unit_ids = session.unit_ids.astype(np.uint32)
            for trial_id in tqdm(ids, desc=f"{tier} {session.session_id}", disable=not progress):
                trial = session.trial(int(trial_id))
                if trial.n_frames <= skip:
                    raise ValueError(
                        f"{session.path}: trial {trial_id} has {trial.n_frames} frames, "
                        f"not more than the {skip} unscored ones"
                    )
                responses, _ = model.predict(
                    session.session_id, trial.video, trial.behavior, trial.pupil_center
                )
                mice.append(session.path.name)
                trial_ids.append(int(trial_id))
                predictions.append(responses[skip:].T.float().cpu().numpy())
                neuron_ids.append(unit_ids)
        if not mice:
            raise ValueError(f"no trial of tier {tier!r} in {cohort.session_ids}")
        table = pa.table(
            {
                "mouse": pa.array(mice, pa.string()),
                "trial_indices": pa.array(trial_ids, pa.int64()),
                "prediction": pa.array(
                    [list(p) for p in predictions], pa.list_(pa.list_(pa.float32()))
                ),
                "neuron_ids": pa.array(neuron_ids, pa.list_(pa.uint32())),
            }
        )
        path = Path(out_dir) / submission_name(tier)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="brotli")
        paths.append(path)
    return paths
