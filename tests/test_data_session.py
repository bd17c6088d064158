"""Reading, writing and round-tripping session trees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cortexfm.data import (
    DataFormatError,
    SessionWriter,
    StaticSession,
    copy_session,
    iterate_trials,
    open_cohort,
    open_session,
    repeat_groups,
)
from cortexfm.data import npy as npy_module

from .conftest import assert_arrays_equal


def test_real_metadata_tree_opens_with_real_coordinates_tiers_and_lengths(real_tree):
    path, neurons, picked = real_tree
    s = open_session(path)
    assert s.session_id == "sensorium-mouseA" and s.mouse_id == "A"
    assert s.n_neurons == 120 and s.frame_size == (36, 64)
    np.testing.assert_array_equal(
        s.neurons[["x", "y", "z"]].to_numpy(),
        neurons[["coord_x", "coord_y", "coord_z"]].to_numpy(float),
    )
    assert list(s.trials.tier) == picked.trial_type.tolist()
    # trial length = first NaN frame, arrays are padded beyond it
    np.testing.assert_array_equal(s.trial_lengths, picked.valid_frames.to_numpy())
    t = s.trial(0)
    assert t.video.shape == (picked.valid_frames[0], 36, 64)
    assert t.responses.shape == (picked.valid_frames[0], 120)
    assert not np.isnan(t.responses).any()


def test_hidden_test_trials_are_flagged_and_never_scored(real_tree):
    path, _, picked = real_tree
    s = open_session(path)
    hidden = set(np.flatnonzero(picked.trial_type.str.contains("test")))
    assert hidden
    assert {i for i in range(s.n_trials) if not s.has_ground_truth(i)} == hidden
    yielded = {
        t.trial_id for t in iterate_trials(s, ["live_test_main", "final_test_bonus", "oracle"])
    }
    assert not yielded & hidden
    all_trials = list(iterate_trials(s, ["live_test_main"], only_ground_truth=False))
    assert all_trials and not all_trials[0].has_ground_truth


def test_oracle_repeats_are_grouped_by_clip_id(real_tree):
    path, _, picked = real_tree
    s = open_session(path)
    groups = repeat_groups(s, ["oracle"])
    oracle = picked[picked.trial_type == "oracle"]
    assert set(groups) == set(oracle.video_ID)
    for clip, ids in groups.items():
        assert len(ids) == (oracle.video_ID == clip).sum() > 1
        assert [s.repeats[i] for i in ids] == list(range(len(ids)))


def test_round_trip_is_bit_exact(tmp_path: Path):
    rng = np.random.default_rng(0)
    n, trials = 7, []
    for t in (30, 45, 12):
        trials.append(
            dict(
                video=rng.integers(0, 256, size=(t, 9, 16)).astype(np.uint8),
                responses=rng.gamma(1.0, size=(t, n)).astype(np.float32),
                behavior=rng.normal(size=(t, 2)),  # float64 stays float64 on disk
                pupil_center=rng.normal(size=(t, 2)).astype(np.float32),
            )
        )
    with SessionWriter(
        tmp_path / "s",
        session_id="abc",
        unit_ids=np.arange(n) * 3,
        coordinates=rng.normal(size=(n, 3)),
        neuron_extensions={
            "area": ["V1"] * 4 + ["LM"] * 3,
            "cell_type": ["23P"] * n,
            "layer": ["L2/3"] * n,
        },
    ) as w:
        for i, arrays in enumerate(trials):
            w.add_trial(
                **arrays,
                tier=["train", "oracle", "oracle"][i],
                stimulus_type="movie",
                video_id=f"v{i}",
                repeat=0,
            )
    s = open_session(tmp_path / "s")
    for i, arrays in enumerate(trials):
        raw = np.load(tmp_path / "s" / "data" / "videos" / f"{i}.npy")
        assert raw.dtype == np.uint8 and raw.shape == (
            9,
            16,
            arrays["video"].shape[0],
        )  # published layout
        assert_arrays_equal(np.moveaxis(raw, -1, 0), arrays["video"])
        for m, a in arrays.items():
            np.testing.assert_array_equal(s.read(i, m), a.astype(np.float32))
    assert list(s.neurons.area) == ["V1"] * 4 + ["LM"] * 3
    assert (
        list(s.trials.video_id) == ["v0", "v1", "v2"]
        and list(s.trials.stimulus_type) == ["movie"] * 3
    )
    # copy -> reopen -> identical, twice
    copy_session(s, tmp_path / "copy")
    c = open_session(tmp_path / "copy")
    copy_session(c, tmp_path / "copy2")
    for name in ("unit_ids", "cell_motor_coordinates", "area"):
        assert_arrays_equal(
            np.load(tmp_path / "s/meta/neurons" / f"{name}.npy"),
            np.load(tmp_path / "copy2/meta/neurons" / f"{name}.npy"),
        )
    for i in range(3):
        for folder in ("videos", "responses", "pupil_center"):
            assert_arrays_equal(
                np.load(tmp_path / "copy" / "data" / folder / f"{i}.npy"),
                np.load(tmp_path / "copy2" / "data" / folder / f"{i}.npy"),
            )
        for m in ("video", "responses", "behavior", "pupil_center"):
            np.testing.assert_array_equal(c.read(i, m), s.read(i, m))
    assert json.loads((tmp_path / "copy2/meta/session.json").read_text())["session_id"] == "abc"


def test_writer_failure_leaves_nothing_behind(tmp_path: Path):
    with (
        pytest.raises(RuntimeError),
        SessionWriter(
            tmp_path / "s", session_id="x", unit_ids=np.arange(2), coordinates=np.zeros((2, 3))
        ) as w,
    ):
        w.add_trial(
            video=np.zeros((5, 2, 2)),
            responses=np.zeros((5, 2)),
            behavior=np.zeros((5, 2)),
            pupil_center=np.zeros((5, 2)),
            tier="train",
        )
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_session_id_comes_from_metadata_not_folder_name(small_tree: Path, tmp_path: Path):
    moved = tmp_path / "dynamic29156-11-10-Video-renamed"
    shutil.move(small_tree, moved)
    assert open_session(moved).session_id == "small-1"
    (moved / "meta" / "session.json").unlink()
    assert open_session(moved).session_id == moved.name  # fallback only without metadata


def test_opening_a_cohort_reads_no_response_arrays(
    cohort_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    opened: list[Path] = []
    real = npy_module.open_array

    def spy(path, mmap=True):
        opened.append(Path(path))
        return real(path, mmap)

    monkeypatch.setattr("cortexfm.data.session.open_array", spy)
    cohort = open_cohort(cohort_dir)
    assert len(cohort) == 3 and cohort.session_ids == ["mouse-0", "mouse-1", "mouse-2"]
    assert not [p for p in opened if "responses" in p.parts]
    with pytest.raises(KeyError, match="unknown session id 'nope'"):
        cohort.session("nope")


def test_cohort_from_list_and_duplicate_ids(cohort_dir: Path):
    c = open_cohort([cohort_dir / "m2", cohort_dir / "m0"])
    assert c.session_ids == ["mouse-2", "mouse-0"]
    with pytest.raises(DataFormatError, match="already used"):
        open_cohort([cohort_dir / "m0", cohort_dir / "m0"])


def _write_static_tree(path: Path, n_images: int = 6, n_neurons: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    for sub in (
        "data/images",
        "data/responses",
        "data/behavior",
        "data/pupil_center",
        "meta/trials",
        "meta/neurons",
    ):
        (path / sub).mkdir(parents=True)
    images = rng.integers(0, 255, size=(n_images, 1, 12, 20)).astype(np.uint8)
    for i in range(n_images):
        np.save(path / f"data/images/{i}.npy", images[i])
        np.save(path / f"data/responses/{i}.npy", rng.gamma(1, size=n_neurons).astype(np.float32))
        np.save(path / f"data/behavior/{i}.npy", np.array([10.0, 0.1, 3.0], dtype=np.float32))
        np.save(path / f"data/pupil_center/{i}.npy", np.array([1.0, 2.0], dtype=np.float32))
    np.save(
        path / "meta/trials/tiers.npy",
        np.array(["train", "train", "train", "validation", "test", "test"]),
    )
    np.save(path / "meta/trials/frame_image_id.npy", np.array([5, 6, 7, 8, 9, 9]))
    np.save(path / "meta/neurons/unit_ids.npy", np.arange(n_neurons))
    np.save(path / "meta/neurons/cell_motor_coordinates.npy", np.zeros((n_neurons, 3)))
    return images


def test_sensorium2022_static_tree_presents_images_as_clips(tmp_path: Path):
    images = _write_static_tree(tmp_path / "static")
    s = open_session(tmp_path / "static", clip_frames=12)
    assert isinstance(s, StaticSession) and s.frame_size == (12, 20)
    t = s.trial(2)
    assert t.video.shape == (12, 12, 20) and t.responses.shape == (12, 5)
    np.testing.assert_array_equal(t.video[7], images[2, 0])
    np.testing.assert_array_equal(t.behavior[0], [10.0, 3.0])  # [pupil, running]
    assert s.video_ids[4] == s.video_ids[5] == "9" and s.repeats[5] == 1
