"""Malformed trees raise one clear error naming the file; ``cortexfm validate`` lists them all."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cortexfm.cli import main
from cortexfm.data import DataFormatError, open_session


def _break(tree: Path, case: str) -> str:
    """Damage ``tree`` in one way; return a fragment the error must contain."""
    if case == "missing folder":
        shutil.rmtree(tree / "data" / "pupil_center")
        return "data/pupil_center: folder is missing"
    if case == "frames differ across modalities":
        np.save(tree / "data/behavior/2.npy", np.zeros((2, 50), dtype=np.float32))
        return "trial 2: different numbers of frames"
    if case == "neuron count mismatch":
        np.save(tree / "data/responses/1.npy", np.zeros((19, 90), dtype=np.float32))
        return "responses/1.npy: responses shape (19, 90), expected (20, time)"
    if case == "wrong dtype":
        np.save(tree / "data/pupil_center/3.npy", np.array([["a"] * 70] * 2))
        return "pupil_center/3.npy: dtype <U1 is not numeric"
    if case == "unknown tier":
        tiers = np.load(tree / "meta/trials/tiers.npy").astype(object)
        tiers[4] = "holdout"
        tiers = tiers.astype(str)
        np.save(tree / "meta/trials/tiers.npy", tiers)
        return "tiers.npy: unknown tier(s) ['holdout']"
    if case == "unreadable npy":
        (tree / "data/videos/5.npy").write_bytes(b"not a numpy file at all")
        return "videos/5.npy: unreadable .npy file"
    if case == "truncated npy":
        data = (tree / "data/responses/0.npy").read_bytes()
        (tree / "data/responses/0.npy").write_bytes(data[: len(data) // 2])
        return "responses/0.npy: truncated"
    if case == "pickled array":
        np.save(
            tree / "data/behavior/0.npy",
            np.array([[object()] * 80] * 2, dtype=object),
            allow_pickle=True,
        )
        return "behavior/0.npy: holds Python objects"
    if case == "missing trial file":
        (tree / "data/videos/7.npy").unlink()
        return "videos/7.npy: file is missing"
    if case == "coordinates mismatch":
        np.save(tree / "meta/neurons/cell_motor_coordinates.npy", np.zeros((20, 2)))
        return "cell_motor_coordinates.npy: shape (20, 2), expected (20, 3)"
    raise AssertionError(case)


CASES = [
    "missing folder",
    "frames differ across modalities",
    "neuron count mismatch",
    "wrong dtype",
    "unknown tier",
    "unreadable npy",
    "truncated npy",
    "pickled array",
    "missing trial file",
    "coordinates mismatch",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_tree_raises_clear_error(small_tree: Path, case: str):
    fragment = _break(small_tree, case)
    with pytest.raises(DataFormatError) as info:
        open_session(small_tree)
    assert fragment in str(info.value)
    assert str(small_tree) in str(info.value)


def test_validate_lists_every_problem_and_exits_nonzero(
    small_tree: Path, capsys: pytest.CaptureFixture
):
    fragments = [
        _break(small_tree, c)
        for c in ("frames differ across modalities", "neuron count mismatch", "unreadable npy")
    ]
    assert main(["validate", str(small_tree)]) == 1
    out = capsys.readouterr().out
    for fragment in fragments:
        assert fragment in out
    assert "3 problem(s)" in out


def test_validate_summarises_a_good_cohort(real_tree, capsys: pytest.CaptureFixture):
    path, _, picked = real_tree
    assert main(["validate", str(path.parent)]) == 0
    out = capsys.readouterr().out
    assert "sensorium-mouseA" in out and "120 neurons" in out and f"{len(picked)} trials" in out
    n_oracle = (picked.trial_type == "oracle").sum()
    n_clips = picked[picked.trial_type == "oracle"].video_ID.nunique()
    assert f"oracle            {n_oracle:>5} trials" in out
    assert f"{n_clips:>5} unique clips" in out
    assert "1/1 session(s) valid" in out


def test_validate_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["validate", str(tmp_path / "nowhere")]) == 1
    assert "folder does not exist" in capsys.readouterr().out
