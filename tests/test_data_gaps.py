"""Non-finite values inside trials: padding vs gaps, filled inputs, masked responses, Inf."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cortexfm.cli import main
from cortexfm.data import DataFormatError, open_session
from cortexfm.data.gaps import fill_input_gaps, frame_ranges, valid_length
from cortexfm.data.synthetic import write_synthetic_session
from cortexfm.data.validate import validate_tree
from cortexfm.model.loss import response_loss
from tests.conftest import TINY_TRAINING


@pytest.fixture
def padded_tree(tmp_path: Path) -> Path:
    """8 trials of 60-100 valid frames, every array NaN-padded to 110 frames."""
    return write_synthetic_session(
        tmp_path / "padded",
        n_neurons=12,
        tiers=("train",) * 6 + ("oracle",) * 2,
        trial_lengths=[60, 80, 100, 90, 70, 100, 80, 80],
        array_length=110,
        frame_size=(18, 32),
        seed=5,
    )


def _edit(path: Path, edit) -> None:
    array = np.load(path)
    edit(array)
    np.save(path, array)


def test_valid_length_ignores_gaps_and_stops_at_padding():
    x = np.arange(10, dtype=np.float32)
    assert valid_length(x) == 10
    x[3:5] = np.nan  # a gap
    assert valid_length(x) == 10
    x[7:] = np.nan  # padding
    assert valid_length(x) == 7
    assert valid_length(np.full(4, np.nan)) == 0
    assert frame_ranges(np.array([3, 4, 5, 9])) == "3-5, 9"


def test_fill_input_gaps_holds_video_and_interpolates_behavior(tmp_path: Path):
    video = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 3), np.float32)
    video[0, 1, 1] = np.nan  # a corrupted first frame takes the first valid one
    video[3] = np.nan
    filled = fill_input_gaps(video, "video", tmp_path / "v.npy")
    assert filled[0, 0, 0] == 1 and filled[3, 0, 0] == 2 and filled[4, 0, 0] == 4
    behavior = np.array([[0, 1], [np.nan, 2], [4, np.nan], [6, 4]], dtype=np.float32)
    filled = fill_input_gaps(behavior, "behavior", tmp_path / "b.npy")
    np.testing.assert_allclose(filled, [[0, 1], [2, 2], [4, 3], [6, 4]])
    with pytest.raises(DataFormatError, match="b.npy: behavior channel 1 has no finite value"):
        fill_input_gaps(np.array([[1, np.nan], [2, np.nan]]), "behavior", tmp_path / "b.npy")


def test_gaps_are_not_padding_and_reads_agree(padded_tree: Path):
    _edit(padded_tree / "data/responses/1.npy", lambda r: r.__setitem__((0, slice(30, 40)), np.nan))
    _edit(padded_tree / "data/behavior/1.npy", lambda b: b.__setitem__((1, slice(20, 25)), np.nan))
    _edit(padded_tree / "data/videos/1.npy", lambda v: v.__setitem__((..., 50), np.nan))
    session = open_session(padded_tree)
    assert session.trial_lengths[1] == 80  # a NaN in neuron 0 does not end the trial
    trial = session.trial(1)
    assert np.isnan(trial.responses[30:40, 0]).all()
    assert np.isfinite(np.delete(trial.responses, 0, axis=1)).all()
    assert np.isfinite(trial.behavior).all() and np.isfinite(trial.video).all()
    np.testing.assert_array_equal(trial.video[50], trial.video[49])
    # a window inside the gap sees the values filled over the whole trial
    window = session.window(1, 22, 30)
    np.testing.assert_array_equal(window["behavior"], trial.behavior[22:52])
    np.testing.assert_array_equal(window["video"], trial.video[22:52])


def test_validate_reports_gaps_as_warnings_and_inf_as_errors(padded_tree: Path, capsys):
    _edit(padded_tree / "data/responses/2.npy", lambda r: r.__setitem__((4, slice(10, 13)), np.nan))
    assert main(["validate", str(padded_tree)]) == 0
    out = capsys.readouterr().out
    assert "responses/2.npy: NaN gap in 1 neuron(s), e.g. unit 5 (index 4) at frame(s) 10-12" in out
    _edit(padded_tree / "data/pupil_center/3.npy", lambda p: p.__setitem__((0, 7), np.inf))
    assert main(["validate", str(padded_tree)]) == 1
    out = capsys.readouterr().out
    assert "pupil_center/3.npy: pupil_center has infinite values at frame(s) 7" in out


def test_every_random_corruption_is_reported(padded_tree: Path):
    """The issue's test: 40 random NaN/Inf corruptions of a good tree, none goes unreported."""
    rng = np.random.default_rng(0)
    folders = {"videos": 3, "responses": 2, "behavior": 2, "pupil_center": 2}
    session = open_session(padded_tree)
    for k in range(40):
        folder = str(rng.choice(list(folders)))
        trial = int(rng.integers(session.n_trials))
        path = padded_tree / "data" / folder / f"{trial}.npy"
        original = np.load(path)
        length = int(session.trial_lengths[trial])
        corrupted = original.copy()
        index = tuple(int(rng.integers(n)) for n in corrupted.shape[:-1])
        frame = int(rng.integers(1, length - 1))  # inside the trial: a gap, not padding
        corrupted[(*index, frame)] = np.nan if k % 2 else np.inf
        np.save(path, corrupted)
        (report,) = validate_tree(padded_tree, progress=False)
        messages = report.problems + report.warnings
        assert any(f"{folder}/{trial}.npy" in m for m in messages), (k, folder, trial, messages)
        np.save(path, original)


def test_response_loss_masks_nan_targets():
    torch.manual_seed(0)
    prediction = torch.rand(2, 10, 3) + 0.1
    target = torch.rand(2, 10, 3)
    target[0, 5:8, 1] = float("nan")
    valid = torch.isfinite(target)
    for loss in ("poisson", "gaussian"):
        masked = response_loss(prediction, target, loss)
        p, y = prediction[valid], target[valid]
        expected = (
            (p - y * torch.log(p + 1e-8)).mean() if loss == "poisson" else ((p - y) ** 2).mean()
        )
        torch.testing.assert_close(masked, expected)


def test_training_masks_gaps_and_refuses_inf(padded_tree: Path, tmp_path: Path, capsys):
    for trial in range(6):  # a gap in every training trial
        _edit(
            padded_tree / f"data/responses/{trial}.npy",
            lambda r: r.__setitem__((slice(0, 5), slice(10, 40)), np.nan),
        )
    args = ["train", "--data", str(padded_tree), "--preset", "tiny", *TINY_TRAINING]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    log = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert all(np.isfinite(r["loss"]) for r in log)
    assert sum(r["masked_responses"] for r in log) > 0
    _edit(padded_tree / "data/videos/0.npy", lambda v: v.__setitem__((..., 20), np.inf))
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "run_inf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "videos/0.npy: video has infinite values at frame(s) 20" in err[0]
