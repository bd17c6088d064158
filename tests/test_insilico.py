"""In-silico experiments: mechanics on a small model, and fits checked on known curves."""

from __future__ import annotations

import numpy as np
import torch

from cortexfm.insilico import (
    direction_tuning,
    fit_von_mises,
    frequency_tuning,
    mean_responses,
    most_exciting_inputs,
    receptive_fields,
)
from cortexfm.insilico.experiments import DIRECTIONS, _double_von_mises
from tests.test_model import _model


def test_von_mises_fit_recovers_the_preferred_direction():
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 360, 20)
    theta = np.deg2rad(DIRECTIONS)
    curves = np.stack([_double_von_mises(theta, 0.1, 1.0, 0.4, 3.0, np.deg2rad(t)) for t in true])
    curves += rng.normal(0, 0.02, curves.shape)
    fitted = fit_von_mises(curves, DIRECTIONS)
    error = np.abs((fitted - true + 180) % 360 - 180)
    assert np.median(error) < 5


def test_tuning_receptive_fields_and_frequencies_run_batched():
    model = _model("tiny", sessions=(("a", 12),))
    grating = direction_tuning(model, "a", n_frames=24, spatial_frequencies=(0.04,))
    assert grating.curves.shape == (12, 16)
    assert grating.table.gOSI.between(0, 1).all() and grating.table.gDSI.between(0, 1).all()
    noise = direction_tuning(model, "a", stimulus="pink_noise", n_frames=24, seeds=1)
    assert noise.curves.shape == (12, 16)
    rf = receptive_fields(model, "a", grid=(3, 4))
    assert rf.maps.shape == (12, 3, 4)
    located = rf.table.dropna()
    assert located.rf_x.between(-60, 60).all() and located.rf_y.between(-34, 34).all()
    freq = frequency_tuning(
        model,
        "a",
        grating.table.preferred_direction.to_numpy(),
        n_frames=24,
        spatial_frequencies=(0.03, 0.09),
        temporal_frequencies=(1, 4),
    )
    assert set(freq.preferred_spatial_frequency) <= {0.03, 0.09}


def test_most_exciting_inputs_beat_random_inputs_under_the_same_contrast():
    model = _model("tiny", sessions=(("a", 6),))
    neurons = np.array([0, 3, 5])
    mei = most_exciting_inputs(model, "a", neurons, steps=40, present_frames=20, jitter=0)
    assert mei.shape == (3, 1, 36, 64)
    rms = (mei - 127.5).reshape(3, -1).std(axis=1) / 127.5
    assert np.allclose(rms, 0.35, atol=0.03)
    videos = np.repeat(mei, 20, axis=1)
    driven = mean_responses(model, "a", videos, burn_in=8)[np.arange(3), neurons]
    rng = np.random.default_rng(0)
    random = np.clip(127.5 + 127.5 * 0.35 * rng.normal(size=(8, 1, 36, 64)), 0, 255).repeat(
        20, axis=1
    )
    baseline = mean_responses(model, "a", random, burn_in=8)[:, neurons]
    assert np.all(driven > baseline.max(axis=0))
    video_mei = most_exciting_inputs(model, "a", neurons[:1], frames=4, steps=3, present_frames=12)
    assert video_mei.shape == (1, 4, 36, 64) and torch.isfinite(torch.as_tensor(video_mei)).all()
    # jitter is drawn from the seed: the same seed gives the same input
    again = most_exciting_inputs(model, "a", neurons[:1], frames=4, steps=3, present_frames=12)
    np.testing.assert_array_equal(video_mei, again)


def test_insilico_command_with_and_without_ground_truth(sim_cohort, tmp_path, tiny_checkpoint):
    import json

    from cortexfm.cli import main as cli

    ckpt = str(tiny_checkpoint)
    out = tmp_path / "plain"
    assert (
        cli(
            [
                "insilico",
                ckpt,
                "--data",
                str(sim_cohort / "mouse0"),
                "--out",
                str(out),
                "--meis",
                "2",
                "--mei-steps",
                "5",
                "--frames",
                "30",
            ]
        )
        == 0
    )
    folder = next(out.iterdir())
    for name in (
        "properties.csv",
        "tuning_curves.png",
        "receptive_fields.png",
        "most_exciting_inputs.png",
    ):
        assert (folder / name).exists(), name
    out = tmp_path / "validated"  # mouse1: the subunit generator's ground truth
    assert (
        cli(
            [
                "insilico",
                ckpt,
                "--data",
                str(sim_cohort / "mouse1"),
                "--out",
                str(out),
                "--meis",
                "2",
                "--mei-steps",
                "5",
                "--frames",
                "30",
                "--validate",
            ]
        )
        == 0
    )
    summary = json.loads(next(out.iterdir()).joinpath("summary.json").read_text())
    for key in (
        "gOSI_r_in_silico_vs_true",
        "gDSI_r_in_vivo_vs_true",
        "pink_noise_gOSI_r_in_silico_vs_true",
        "pink_noise_median_direction_error_in_vivo_deg",
        "median_rf_centre_error_deg",
        "mei_beats_every_natural_clip_fraction",
    ):
        assert key in summary
    assert 0 <= summary["mei_beats_every_natural_clip_fraction"] <= 1


def test_simulator_tuning_matches_the_ground_truth_and_pink_noise_agrees_with_gratings():
    """The tuning set shown to the simulator reproduces its stored ground truth (same stimuli,
    same analysis), and directional pink noise finds the gratings' preferred orientation."""
    from cortexfm.insilico.validation import simulator_tuning_curves
    from cortexfm.sim.population import sample_population
    from cortexfm.sim.response import ResponseModel
    from cortexfm.sim.tuning import ground_truth_tuning
    from cortexfm.stimuli import Monitor
    from cortexfm.stimuli.tuning import selectivity

    monitor = Monitor()
    population = sample_population(60, np.random.default_rng(3), monitor)
    simulator = ResponseModel(population, monitor)
    truth = ground_truth_tuning(simulator)
    gratings = selectivity(simulator_tuning_curves(simulator, "grating"), DIRECTIONS)
    np.testing.assert_allclose(gratings["gOSI"], truth.true_gOSI, atol=1e-4)
    pink = selectivity(simulator_tuning_curves(simulator, "pink_noise"), DIRECTIONS)
    tuned = truth.true_gOSI.to_numpy() > 0.3
    assert tuned.sum() >= 5
    error = np.abs(
        (pink["preferred_orientation"] - truth.true_preferred_orientation.to_numpy() + 90) % 180
        - 90
    )
    assert np.median(error[tuned]) < 20, np.median(error[tuned])
    noisy = simulator_tuning_curves(simulator, "pink_noise", repeats=2, seed=1)
    assert not np.allclose(noisy, simulator_tuning_curves(simulator, "pink_noise"))
