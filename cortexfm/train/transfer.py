"""Adapting a foundation model to a new mouse, or training an individual model from scratch.

- **foundation** (default): the new mouse gets fresh perspective, modulation and readout
  modules; the shared core (and the coordinate-to-position map) stays frozen; only the new
  modules are fitted.
- **from scratch** (the "individual model"): the same architecture, every parameter trained
  on the new mouse's data alone.

Both see only the first ``minutes`` of the new mouse's training trials (in recording order);
early stopping uses its ``validation`` trials; its repeated test clips are never seen.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from cortexfm.data.cohort import Cohort
from cortexfm.data.schema import TRAIN_TIER
from cortexfm.data.session import Session
from cortexfm.train.checkpoint import load_checkpoint
from cortexfm.train.config import RunConfig, with_overrides
from cortexfm.train.trainer import TrainResult, build_model, init_biases, session_info, train

#: Training settings of a transfer run unless overridden (``train.*`` overrides come after).
TRANSFER_DEFAULTS = {
    "max_steps": 600,
    "steps_per_epoch": 50,
    "warmup_steps": 50,
    "early_stopping_patience": 4,
    "max_minutes": 0.0,
    "position_search_steps": (0, 100),
}


def first_minutes(session: Session, minutes: float | None) -> np.ndarray:
    """Training trials, in recording order, up to ``minutes`` of frames (at least one trial)."""
    ids = session.trials_in(TRAIN_TIER)
    if minutes is None:
        return ids
    if minutes <= 0:
        raise ValueError(f"minutes must be > 0, got {minutes}")
    frames = np.cumsum(session.trial_lengths[ids])
    keep = int(np.searchsorted(frames, minutes * 60 * session.frame_rate, side="right"))
    return ids[: max(keep, 1)]


def transfer_config(
    foundation: RunConfig, overrides: list[str], *, from_scratch: bool
) -> RunConfig:
    """The foundation's config with :data:`TRANSFER_DEFAULTS`, then ``train.*`` overrides (the
    model is the foundation's, so ``model.*`` cannot change)."""
    train_config = replace(foundation.train, **TRANSFER_DEFAULTS, freeze_core=not from_scratch)
    config = RunConfig(preset=foundation.preset, model=foundation.model, train=train_config)
    return with_overrides(config, overrides, sections=("train",))


def transfer(
    foundation_checkpoint: str | Path,
    cohort: Cohort,
    out_dir: str | Path,
    *,
    minutes: float | None = None,
    from_scratch: bool = False,
    overrides: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Fit the new mice of ``cohort`` (see the module docstring); ``overrides`` are
    ``train.*`` fields as for ``cortexfm train``, e.g. ``["train.max_steps=300"]``."""
    ckpt = load_checkpoint(foundation_checkpoint)
    overlap = [s for s in cohort.session_ids if s in ckpt.model.session_ids]
    if overlap and not from_scratch:
        raise ValueError(
            f"sessions {overlap} were used to train {foundation_checkpoint}; transfer is for new mice"
        )
    config = transfer_config(ckpt.config, list(overrides or []), from_scratch=from_scratch)
    allowed = {s.session_id: first_minutes(s, minutes) for s in cohort}
    if from_scratch:
        model = build_model(cohort, config)
    else:
        model = ckpt.model
        infos = [
            session_info(s, config.train.response_transform, config.train.loss) for s in cohort
        ]
        for info in infos:
            model.add_session(info)
        init_biases(model, cohort, infos)
    return train(
        cohort,
        config,
        out_dir,
        resume=resume,
        model=model,
        progress=progress,
        allowed_trials=allowed,
    )
