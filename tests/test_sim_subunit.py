"""The second response generator (LGN subunit cascade) and the harder out-of-distribution suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cortexfm.sim import SimulationConfig, load_ground_truth, rebuild_simulator, simulate_mouse
from cortexfm.sim.population import sample_population
from cortexfm.sim.subunit import SubunitResponseModel, subunit_parameters
from cortexfm.sim.tuning import ground_truth_tuning
from cortexfm.stimuli import OOD_FAMILIES, Monitor, drifting_grating, ood_clip

M = Monitor()


@pytest.fixture(scope="module")
def subunit_model() -> SubunitResponseModel:
    population = sample_population(200, np.random.default_rng(0), M)
    return SubunitResponseModel(subunit_parameters(population, np.random.default_rng(1)), M)


def _rest(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tile([50.0, 0.0], (n, 1)), np.zeros((n, 2))


def test_subunit_cells_are_tuned_by_class_and_direction_index(subunit_model):
    truth = ground_truth_tuning(subunit_model)
    table = subunit_model.population.table
    by_class = truth.true_gOSI.groupby(table.cell_class.to_numpy()).median()
    # oriented subunit layouts give orientation tuning; centre-surround cells have none
    assert by_class["simple"] > 2.5 * by_class["centre_surround"]
    assert by_class["complex"] > 2.5 * by_class["centre_surround"]
    oriented = table.cell_class.to_numpy() != "centre_surround"
    r = np.corrcoef(table.direction_index[oriented], truth.true_gDSI[oriented])[0, 1]
    assert r > 0.2  # the lagged-subunit slant makes direction selectivity


def test_centre_surround_cells_follow_their_polarity(subunit_model):
    """A full-field step brightening the screen drives ON cells, a darkening drives OFF."""
    table = subunit_model.population.table
    cs = table.cell_class.to_numpy() == "centre_surround"
    n = 40
    frames = np.full((n, M.height, M.width), 128, np.uint8)
    up, down = frames.copy(), frames.copy()
    up[10:], down[10:] = 200, 56
    r_up = subunit_model.rates(up, *_rest(n))[10:20].mean(0)
    r_down = subunit_model.rates(down, *_rest(n))[10:20].mean(0)
    on = cs & (table.polarity.to_numpy() > 0)
    off = cs & (table.polarity.to_numpy() < 0)
    assert np.mean(r_up[on] > r_down[on]) > 0.9
    assert np.mean(r_down[off] > r_up[off]) > 0.9


def test_contrast_gain_control_saturates_grating_responses(subunit_model):
    """Tripling contrast from 0.33 to 1 raises the stimulus drive by far less than 3x."""
    drive = {}
    for c in (1 / 3, 1.0):
        frames = np.concatenate(
            [drifting_grating(M, 60, d, 0.04, 2.0, contrast=c).frames for d in (0, 90)]
        )
        drive[c] = subunit_model.drive(frames, np.zeros((len(frames), 2)))[20:].mean()
    assert 1.0 < drive[1.0] / drive[1 / 3] < 2.0


def test_a_subunit_mouse_is_rebuilt_exactly(tmp_path: Path):
    config = SimulationConfig(
        n_neurons=30,
        train_minutes=0.3,
        oracle_clips=1,
        repeats=2,
        ood_clips=0,
        generator="subunit",
    )
    path = simulate_mouse(tmp_path / "m", config, seed=1, progress=False)
    truth, _ = load_ground_truth(path)
    assert set(truth.cell_class) <= {"centre_surround", "simple", "complex"}
    rebuilt = rebuild_simulator(path)
    assert isinstance(rebuilt, SubunitResponseModel)
    np.testing.assert_allclose(
        ground_truth_tuning(rebuilt).true_gOSI, truth.true_gOSI, rtol=1e-4, atol=1e-6
    )
    with pytest.raises(ValueError, match="unknown response generator"):
        SimulationConfig(generator="lnp")


def test_the_same_mouse_shares_its_parameters_across_generators():
    """Receptive fields and tuning parameters do not depend on the generator."""
    population = sample_population(50, np.random.default_rng(4), M)
    extended = subunit_parameters(population, np.random.default_rng(5))
    shared = population.table.columns
    assert extended.table[shared].equals(population.table)


@pytest.mark.parametrize("family", OOD_FAMILIES)
def test_ood_blocks_are_separated_by_grey_blanks(family: str):
    s = ood_clip(family, M, 150, np.random.default_rng(0))
    blank = s.params.blank.to_numpy()
    assert blank.any() and not blank.all()
    assert (s.frames[blank] == 128).all()


def test_full_field_gratings_are_full_contrast_everywhere():
    s = ood_clip("drifting_grating", M, 90, np.random.default_rng(1))
    on = ~s.params.blank.to_numpy()
    assert s.frames[on].min() <= 2 and s.frames[on].max() >= 253
    # every part of the screen modulates (full field), unlike the local Gabors
    assert (s.frames[on].std(axis=0) > 60).all()


def test_a_linear_lgn_lets_full_contrast_gratings_drive_cortex_harder():
    """lgn_c50 sets how much gain control there is: nearly linear at 10, saturating at 0.15."""
    from cortexfm.stimuli import natural_movie

    population = sample_population(80, np.random.default_rng(2), M)
    natural = natural_movie(M, 120, np.random.default_rng(3)).frames
    gratings = np.concatenate([drifting_grating(M, 60, d, 0.04, 2.0).frames for d in (0, 90)])
    ratio = {}
    for c50 in (0.15, 10.0):
        model = SubunitResponseModel(
            subunit_parameters(population, np.random.default_rng(4), lgn_c50=c50), M
        )
        sd = [model.rates(x, *_rest(len(x)))[20:].std(0).mean() for x in (natural, gratings)]
        ratio[c50] = sd[1] / sd[0]
    assert ratio[10.0] > 1.3 * ratio[0.15]


def test_ablations_hold_the_eye_still_and_remove_behavioural_gain(tmp_path: Path):
    """Switches for finding what a twin fails to model; the stimulus and noise draws stay."""
    from cortexfm.data import open_session

    base = dict(n_neurons=20, train_minutes=0.2, oracle_clips=0, ood_clips=0)
    plain = simulate_mouse(tmp_path / "a", SimulationConfig(**base), seed=1, progress=False)
    still = simulate_mouse(
        tmp_path / "b",
        SimulationConfig(**base, eye_movements=False, behavioral_gain=False),
        seed=1,
        progress=False,
    )
    a, b = open_session(plain).trial(0), open_session(still).trial(0)
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.behavior, b.behavior)
    assert a.pupil_center.std(0).max() > 1.0 > 0.2 > b.pupil_center.std(0).max()
    truth, _ = load_ground_truth(still)
    assert (truth.running_gain == 0).all() and (truth.pupil_gain == 0).all()
