"""Shared fixtures: small session trees, some built from real Sensorium 2023 metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cortexfm.data.synthetic import write_synthetic_session
from cortexfm.sim.calibration import shared_data_dir

# $CORTEXFM_SHARED_DATA, else ../shared/data beside the project (tests needing it skip without)
SHARED_DATA = shared_data_dir() or Path(__file__).resolve().parents[1].parent / "shared" / "data"
SENSORIUM_META = SHARED_DATA / "real" / "sensorium2023" / "metadata_anaflom"


#: Overrides for a few-step training run (mechanics, not accuracy).
TINY_TRAINING = [
    "train.max_steps=4",
    "train.steps_per_epoch=2",
    "train.warmup_steps=1",
    "train.window=24",
    "train.batch_size=2",
    "train.burn_in=4",
    "train.validation_trials=2",
]


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own cache directory."""
    monkeypatch.setenv("CORTEXFM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def real_sensorium_metadata() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Neurons and trials tables of the first real Sensorium 2023 recording (mouse A)."""
    if not SENSORIUM_META.is_dir():
        pytest.skip(f"real Sensorium 2023 metadata not found at {SENSORIUM_META}")
    recording = sorted(p for p in SENSORIUM_META.iterdir() if p.is_dir())[0]
    neurons = pd.read_csv(next((recording / "neurons").glob("meta-neurons_*.csv")))
    trials = pd.read_csv(next((recording / "trials").glob("meta-trials_*.csv")))
    return neurons, trials.sort_values("trial").reset_index(drop=True)


def pick_real_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """A small, tier-complete subset: 5 train trials, all repeats of two oracle clips, 2 hidden."""
    train = trials[trials.trial_type == "train"].head(5)
    oracle_clips = trials[trials.trial_type == "oracle"].video_ID.unique()[:2]
    oracle = trials[trials.video_ID.isin(oracle_clips) & (trials.trial_type == "oracle")]
    hidden = pd.concat(
        [trials[trials.trial_type == t].head(1) for t in ("live_test_main", "final_test_bonus")]
    )
    return pd.concat([train, oracle, hidden]).reset_index(drop=True)


@pytest.fixture
def real_tree(tmp_path: Path) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """A Sensorium 2023 tree with real coordinates, tiers, clip ids and frame counts (120 neurons)."""
    neurons, trials = real_sensorium_metadata()
    neurons = neurons.head(120)
    picked = pick_real_trials(trials)
    lengths = picked.valid_frames.astype(int).tolist()
    path = write_synthetic_session(
        tmp_path / "mouseA",
        n_neurons=len(neurons),
        tiers=picked.trial_type.tolist(),
        trial_lengths=lengths,
        array_length=max(lengths) + 10,
        coordinates=neurons[["coord_x", "coord_y", "coord_z"]].to_numpy(float),
        session_id="sensorium-mouseA",
        mouse_id="A",
        video_ids=picked.video_ID.tolist(),
        seed=1,
    )
    return path, neurons, picked


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    return write_synthetic_session(
        tmp_path / "small",
        n_neurons=20,
        trial_lengths=[80, 90, 100, 70, 120, 90, 80, 80, 80, 80],
        session_id="small-1",
        seed=3,
    )


@pytest.fixture
def cohort_dir(tmp_path: Path) -> Path:
    root = tmp_path / "cohort"
    for m, (n, trials) in enumerate([(15, 4), (25, 8), (10, 12)]):
        write_synthetic_session(
            root / f"m{m}",
            n_neurons=n,
            tiers=("train",) * trials + ("oracle",) * 2,
            trial_lengths=80,
            session_id=f"mouse-{m}",
            seed=m,
            frame_size=(18, 32),
        )
    return root


def assert_arrays_equal(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


@pytest.fixture(scope="session")
def sim_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small simulated mice (40 neurons, 30 s of training movie, 1 clip x 3 repeats):
    mouse0 from the Gabor energy generator, mouse1 from the LGN subunit generator."""
    from cortexfm.sim import SimulationConfig, simulate_cohort

    config = SimulationConfig(
        n_neurons=40, train_minutes=0.5, oracle_clips=1, repeats=3, ood_clips=0
    )
    root = tmp_path_factory.mktemp("sim_cohort")
    simulate_cohort(root, 2, config, seed=0, generators=["gabor", "subunit"])
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(sim_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `tiny` model trained for 2 steps on both simulated mice (mechanics, not accuracy)."""
    from cortexfm.cli import main as cli

    run = tmp_path_factory.mktemp("tiny_run")
    args = ["train", "--data", str(sim_cohort), "--out", str(run), "--preset", "tiny"]
    tiny = ["train.max_steps=2", "train.steps_per_epoch=2", "train.window=24", "train.batch_size=2"]
    assert cli([*args, *tiny]) == 0
    return run / "best.safetensors"
