"""The ground-truth simulator: tuning recovery, noise ceilings, determinism, output trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cortexfm.data import open_session, repeat_groups
from cortexfm.evaluate import cc_max
from cortexfm.sim import (
    NoiseConfig,
    ResponseModel,
    SimulationConfig,
    load_ground_truth,
    rebuild_simulator,
    sample_population,
    simulate_mouse,
)
from cortexfm.sim.behavior import simulate_behavior
from cortexfm.sim.calibration import CELL_TYPES
from cortexfm.sim.response import KERNEL_FRAMES
from cortexfm.sim.tuning import ground_truth_tuning
from cortexfm.stimuli import Monitor, drifting_grating, natural_movie
from cortexfm.stimuli.tuning import selectivity

M = Monitor()
TINY = SimulationConfig(
    n_neurons=60,
    train_minutes=0.5,
    oracle_clips=1,
    repeats=3,
    ood_clips=1,
    ood_families=("drifting_gabor",),
)


@pytest.fixture(scope="module")
def model() -> ResponseModel:
    return ResponseModel(sample_population(150, np.random.default_rng(0), M), M)


@pytest.fixture(scope="module")
def tiny_mouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_mouse(tmp_path_factory.mktemp("sim") / "m", TINY, seed=3, progress=False)


def test_noisy_grating_responses_recover_true_preferred_orientation(model: ResponseModel):
    truth = ground_truth_tuning(model)
    rng = np.random.default_rng(1)
    directions = np.arange(16) * 22.5
    sf = truth.tuning_spatial_frequency.to_numpy()
    curves = np.zeros((model.population.n_neurons, 16))
    for s in np.unique(sf):  # "in vivo": noisy responses, 6 repeats, each neuron at its best SF
        frames = np.concatenate([drifting_grating(M, 60, d, s).frames for d in directions])
        for _ in range(6):
            behavior, gaze, _ = simulate_behavior(len(frames), rng)
            responses, _ = model.responses(frames, behavior, np.zeros_like(gaze), rng)
            mean = responses.reshape(16, 60, -1)[:, KERNEL_FRAMES:].mean(1).T
            curves[sf == s] += mean[sf == s] / 6
    measured = selectivity(curves, directions)
    selective = truth.true_gOSI.to_numpy() > 0.3
    assert selective.sum() >= 10
    error = np.abs(
        (measured["preferred_orientation"] - truth.true_preferred_orientation.to_numpy() + 90) % 180
        - 90
    )
    assert np.median(error[selective]) < 12
    assert np.corrcoef(measured["gOSI"], truth.true_gOSI)[0, 1] > 0.7


def test_repeats_give_the_expected_noise_ceiling(model: ResponseModel):
    rng = np.random.default_rng(2)
    clip = natural_movie(M, 240, np.random.default_rng(3)).frames
    responses, rates = [], []
    for _ in range(10):
        behavior, gaze, _ = simulate_behavior(len(clip), rng)
        r, lam = model.responses(clip, behavior, gaze, rng)
        responses.append(r[KERNEL_FRAMES:])
        rates.append(lam[KERNEL_FRAMES:])
    responses_arr = np.stack(responses)
    estimated = cc_max(responses_arr)
    # the ceiling is the correlation of the trial average with the expected response to the
    # stimulus (marginalised over behaviour and latents: from 30 further, independent repeats)
    for _ in range(30):
        behavior, gaze, _ = simulate_behavior(len(clip), rng)
        rates.append(
            model.rates(clip, behavior, gaze, model.sample_latents(len(clip), rng))[KERNEL_FRAMES:]
        )
    expected_signal = np.stack(rates[10:]).mean(0)
    from scipy.signal import lfilter

    a = np.exp(-1 / model.noise.calcium_tau_frames)
    expected_signal = lfilter([1 - a], [1, -a], expected_signal, axis=0)
    mean_response = responses_arr.mean(0)
    direct = np.array(
        [
            np.corrcoef(mean_response[:, i], expected_signal[:, i])[0, 1]
            for i in range(mean_response.shape[1])
        ]
    )
    ok = np.isfinite(estimated) & np.isfinite(direct)
    assert np.median(np.abs(estimated[ok] - direct[ok])) < 0.08
    assert 0.3 < np.median(estimated[ok]) < 0.95


def test_equal_seeds_give_equal_data(tiny_mouse: Path, tmp_path: Path):
    again = simulate_mouse(tmp_path / "again", TINY, seed=3, progress=False)
    other = simulate_mouse(tmp_path / "other", TINY, seed=4, progress=False)
    a, b, c = open_session(tiny_mouse), open_session(again), open_session(other)
    for i in (0, a.n_trials - 1):
        for m in ("video", "responses", "behavior", "pupil_center"):
            np.testing.assert_array_equal(a.read(i, m), b.read(i, m))
    assert not np.array_equal(a.read(0, "responses"), c.read(0, "responses"))
    ta, _ = load_ground_truth(tiny_mouse)
    tb, _ = load_ground_truth(again)
    assert ta.equals(tb)


def test_simulated_tree_has_tiers_repeats_and_ground_truth(tiny_mouse: Path):
    s = open_session(tiny_mouse)
    assert set(s.tiers) == {"train", "validation", "oracle", "final_test_bonus"}
    assert set(s.stimulus_types[s.trials_in("final_test_bonus")]) == {"drifting_gabor"}
    groups = repeat_groups(s, ["oracle"])
    assert len(groups) == 1 and all(len(v) == 3 for v in groups.values())
    # repeats show identical frames with different behaviour
    ids = next(iter(groups.values()))
    np.testing.assert_array_equal(s.read(int(ids[0]), "video"), s.read(int(ids[1]), "video"))
    assert not np.array_equal(s.read(int(ids[0]), "behavior"), s.read(int(ids[1]), "behavior"))
    truth, connections = load_ground_truth(tiny_mouse)
    assert len(truth) == 60 and set(truth.cell_type) <= set(CELL_TYPES)
    assert {
        "rf_x",
        "rf_y",
        "rf_size",
        "true_gOSI",
        "true_gDSI",
        "true_preferred_direction",
        "spatial_frequency",
        "temporal_frequency",
        "running_gain",
    } <= set(truth.columns)
    assert list(s.neurons.cell_type) == list(truth.cell_type)
    # a 60-neuron mouse may have no connection (the like-to-like test below checks sampling)
    assert {"pre", "post", "synapse_count"} == set(connections.columns)
    assert connections[["pre", "post"]].to_numpy().max(initial=0) < len(truth)


def test_connections_are_like_to_like_and_local():
    """Two functional groups of neurons in one column: more connections within a group than
    between groups, and none between neurons a millimetre apart."""
    from cortexfm.sim.connectivity import sample_connections

    rng = np.random.default_rng(0)
    drive = rng.normal(size=(2, 500))
    group = np.repeat([0, 1], 100)
    rates = (drive[group] + 0.3 * rng.normal(size=(200, 500))).T
    xyz = rng.uniform(0, 50, size=(200, 3))
    xyz[150:, 0] += 1000  # half of group 1 far away
    edges = sample_connections(rates, xyz, rng)
    same = group[edges.pre] == group[edges.post]
    near = (edges.pre < 150) & (edges.post < 150)
    assert len(edges) > 100
    assert same[near].mean() > 0.8  # like to like
    far = (edges.pre < 150) != (edges.post < 150)
    assert not far.any()  # 1 mm apart: no connection


def test_every_unique_clip_shows_a_different_movie(tiny_mouse: Path):
    """Training, validation and test clips are distinct movies (no clip is shown in two tiers
    unless it is a repeat of itself)."""
    s = open_session(tiny_mouse)
    first = {}
    for i in range(s.n_trials):
        first.setdefault(str(s.video_ids[i]), i)
    signatures = {clip: s.read(i, "video")[::50].tobytes() for clip, i in first.items()}
    assert len(signatures) >= 4
    assert len(set(signatures.values())) == len(signatures)


def test_rebuilt_simulator_reproduces_rates(tiny_mouse: Path):
    rebuilt = rebuild_simulator(tiny_mouse)
    truth, _ = load_ground_truth(tiny_mouse)
    np.testing.assert_allclose(
        ground_truth_tuning(rebuilt).true_gOSI, truth.true_gOSI, rtol=1e-4, atol=1e-6
    )


def test_cell_types_follow_depth():
    pop = sample_population(3000, np.random.default_rng(0), M).table
    depth = pop.groupby("cell_type").z.median()
    assert depth["23P"] < depth["4P"] < depth["5P-IT"] < depth["6P-IT"]
    assert set(pop.area) == {"V1", "LM", "AL", "RL"}


def test_eye_position_moves_the_image_on_the_retina(model: ResponseModel):
    frames = natural_movie(M, 2, np.random.default_rng(0)).frames
    shifted = model.retinal_frames(frames, np.array([[0.0, 0.0], [2 * M.deg_per_pixel, 0.0]]))
    plain = model.retinal_frames(frames, np.zeros((2, 2)))
    # looking 2 pixels to the right: the retina sees the screen content 2 columns further right
    np.testing.assert_allclose(shifted[1][:, :-4], plain[1][:, 2:-2], atol=1e-5)


def test_an_image_folder_given_as_a_path_is_kept_as_text():
    # the config is written into each mouse's ground truth as JSON: a Path must not break that
    config = SimulationConfig(image_folder=Path("photos"))
    assert config.image_folder == "photos"


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="n_neurons"):
        SimulationConfig(n_neurons=0)
    with pytest.raises(ValueError, match="unknown stimulus families"):
        SimulationConfig(ood_families=("plaids",))
    with pytest.raises(ValueError, match="invalid noise"):
        NoiseConfig(mean_rate=-1)
    with pytest.raises(ValueError, match="n_frames"):
        simulate_behavior(0, np.random.default_rng(0))


def test_held_out_mice_continue_the_cohort_numbering(sim_cohort: Path, tmp_path: Path):
    """`simulate --first-mouse 1` makes the same animal as mouse 1 of a cohort from mouse 0."""
    from cortexfm.cli import main as cli

    out = tmp_path / "held_out"
    args = ["simulate", "--mice", "1", "--first-mouse", "1", "--neurons", "40"]
    args += ["--minutes", "0.5", "--oracle-clips", "1", "--repeats", "3", "--ood-clips", "0"]
    args += ["--generator", "subunit"]  # the fixture's mouse1 is a subunit-generator mouse
    assert cli([*args, "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["mouse1"]
    held_out, same = open_session(out / "mouse1"), open_session(sim_cohort / "mouse1")
    assert held_out.session_id == same.session_id == "sim-mouse1-s0"
    assert held_out.session_id != open_session(sim_cohort / "mouse0").session_id
    np.testing.assert_array_equal(held_out.trial(0).responses, same.trial(0).responses)
