"""Readout position search: planted receptive fields are found; cortical pooling; training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cortexfm.data import open_cohort
from cortexfm.train import load_run_config
from cortexfm.train.positions import best_positions, pool_over_cortex, position_scores
from cortexfm.train.trainer import Trainer


def _planted(n_neurons: int, noise: float, seed: int = 0):
    """Features ``[T, C, 6, 10]`` and responses driven by the features at one cell each."""
    rng = np.random.default_rng(seed)
    t, c, h, w = 3000, 6, 6, 10
    features = rng.normal(size=(t, c, h, w)).astype(np.float32)
    cell_y, cell_x = rng.integers(h, size=n_neurons), rng.integers(w, size=n_neurons)
    weights = rng.normal(size=(n_neurons, c))
    drive = np.einsum("tcn,nc->tn", features[:, :, cell_y, cell_x], weights)
    responses = drive + noise * rng.normal(size=drive.shape) * drive.std(0)
    expected = np.stack([cell_x / (w - 1) * 2 - 1, cell_y / (h - 1) * 2 - 1], axis=1)
    return torch.from_numpy(features), torch.from_numpy(responses.astype(np.float32)), expected


def test_search_finds_planted_positions():
    features, responses, expected = _planted(40, noise=1.0)
    scores = position_scores(features, responses)
    assert scores.shape == (6, 10, 40)
    found = best_positions(scores).numpy()
    # within a quarter of a cell of the planted one (sub-cell refinement may move it a little)
    step = np.array([2 / 9, 2 / 5])
    assert (np.abs(found - expected) <= step / 4 + 1e-6).all()


def test_cortical_pooling_rescues_noisy_neurons():
    """Neurons in tight cortical clusters share a receptive field; each alone is too noisy."""
    rng = np.random.default_rng(1)
    t, c, h, w, clusters, per = 400, 4, 6, 10, 8, 12
    features = torch.from_numpy(rng.normal(size=(t, c, h, w)).astype(np.float32))
    cells = rng.choice(h * w, size=clusters, replace=False)
    responses, coordinates, expected = [], [], []
    for k, cell in enumerate(cells):
        y, x = divmod(int(cell), w)
        drive = features[:, :, y, x].numpy() @ rng.normal(size=(c, per))
        responses.append(drive + 6 * drive.std(0) * rng.normal(size=drive.shape))
        coordinates.append(np.array([500.0 * k, 0.0]) + rng.normal(0, 10, size=(per, 2)))
        expected += [[x / (w - 1) * 2 - 1, y / (h - 1) * 2 - 1]] * per
    responses_t = torch.from_numpy(np.concatenate(responses, axis=1).astype(np.float32))
    coords, expected = np.concatenate(coordinates), np.array(expected)
    scores = position_scores(features, responses_t)

    def hits(s: torch.Tensor) -> float:
        return float((np.abs(best_positions(s).numpy() - expected).max(1) < 0.2).mean())

    alone, pooled = hits(scores), hits(pool_over_cortex(scores, coords, pooling_um=30.0))
    assert pooled >= 0.9 and pooled > alone + 0.3
    # no coordinates: the neurons keep their own evidence
    nan_coords = np.full_like(coords, np.nan)
    assert torch.equal(pool_over_cortex(scores, nan_coords, 30.0), scores)


RUN = [
    "train.max_steps=2",
    "train.steps_per_epoch=2",
    "train.window=24",
    "train.batch_size=2",
    "train.burn_in=4",
    "train.validation_trials=2",
    "train.ema_decay=0.5",
]


def test_training_searches_positions_and_keeps_the_ema_in_step(sim_cohort: Path, tmp_path: Path):
    cohort = open_cohort(sim_cohort)
    config = load_run_config(
        None,
        [*RUN, "train.position_search_steps=[0]", "train.position_search_frames=200"],
        preset_name="tiny",
    )
    trainer = Trainer(cohort, config, tmp_path / "run", progress=False)
    trainer.fit()
    model = trainer.model
    assert model is not None
    for session in cohort:
        key = f"sessions.{model._key(session.session_id)}.readout.delta"
        delta = model.state_dict()[key]
        assert delta.abs().max() > 0.05  # the search moved the readouts from their start
        # the EMA copy followed the jump (it differs from the weights only by two small steps)
        assert (trainer.ema[key] - delta).abs().max() < 0.05
    # with the search off, two steps barely move the readouts
    off = Trainer(
        cohort,
        load_run_config(None, [*RUN, "train.position_search_steps=[]"], preset_name="tiny"),
        tmp_path / "off",
        progress=False,
    )
    off.fit()
    assert off.model is not None
    for session in cohort:
        assert off.model.session(session.session_id).readout.delta.abs().max() < 0.05
