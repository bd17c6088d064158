"""NWB and experanto sessions equal the same session written as a Sensorium tree.

One continuous "recording" is made up: trials of frames displayed at ~30 Hz (with timestamp
jitter and grey gaps between trials), two-photon traces at 6.3 Hz whose imaging fields (NWB) or
neurons (experanto) have their own clock offsets, pupil and eye camera at 20 Hz, treadmill at
100 Hz, NaN gaps in some traces. It is written with pynwb (the MICrONS layout) and as an
experanto folder; the expected Sensorium tree holds each signal interpolated at the frame
times with ``np.interp`` (the documented method), computed independently of the readers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cortexfm.data import open_cohort, open_session
from cortexfm.data.errors import DataFormatError
from cortexfm.data.synthetic import (
    TimedRecording,
    make_timed_recording,
    write_timed_experanto,
    write_timed_nwb,
)
from cortexfm.data.writer import SessionWriter

pynwb = pytest.importorskip("pynwb", reason="pynwb (the nwb extra) is not installed")

RATE = 30.0  # cortexfm's frame rate
LENGTHS = [45, 60, 50, 45, 45, 45, 45]
HASHES = ["c0", "c1", "c2", "r0", "r1", "r0", "r1"]  # r0 and r1 repeat: oracle
FIELDS = [3, 4]  # neurons per imaging field
FIELD_OFFSETS = [0.0, 0.071]  # scan phase of each field (NWB); experanto: one per neuron
SIZE = (9, 16)


def recording(seed: int = 0) -> TimedRecording:
    rec = make_timed_recording(
        LENGTHS, HASHES, fields=FIELDS, field_offsets=FIELD_OFFSETS, frame_size=SIZE, seed=seed
    )
    rec.traces[1][40, 2] = np.nan  # a motion-corrupted sample: a NaN gap
    return rec


def expected_tree(rec: TimedRecording, path: Path, tiers: list[str], stimulus_type: str) -> Path:
    """The Sensorium tree cortexfm should see (``np.interp`` at the frame grid)."""
    writer = SessionWriter(
        path, session_id=path.name, unit_ids=rec.unit_ids, coordinates=rec.coords
    )
    offset = 0
    with writer:
        for k, n in enumerate(rec.lengths):
            grid = rec.starts[k] + np.arange(n) / RATE
            video = rec.frames[offset : offset + n].astype(np.float32)
            offset += n
            responses = np.concatenate(
                [
                    np.stack([np.interp(grid, tt, tr[:, j]) for j in range(tr.shape[1])], axis=1)
                    for tt, tr in zip(rec.trace_times, rec.traces, strict=True)
                ],
                axis=1,
            )
            behavior = np.stack(
                [
                    np.interp(grid, rec.eye_times, rec.radius),
                    np.interp(grid, rec.tread_times, rec.velocity),
                ],
                axis=1,
            )
            center = np.stack(
                [np.interp(grid, rec.eye_times, rec.eye_xy[:, j]) for j in range(2)],
                axis=1,
            )
            writer.add_trial(
                video=video,
                responses=responses.astype(np.float32),
                behavior=behavior.astype(np.float32),
                pupil_center=center.astype(np.float32),
                tier=tiers[k],
                video_id=rec.hashes[k],
                stimulus_type=stimulus_type,
            )
    return path


def assert_same_session(session, tree) -> None:
    assert session.n_trials == tree.n_trials
    np.testing.assert_array_equal(session.trial_lengths, tree.trial_lengths)
    np.testing.assert_array_equal(session.tiers, tree.tiers)
    np.testing.assert_array_equal(session.video_ids, tree.video_ids)
    np.testing.assert_array_equal(session.repeats, tree.repeats)
    np.testing.assert_array_equal(session.unit_ids, tree.unit_ids)
    np.testing.assert_allclose(session.coordinates, tree.coordinates)
    assert session.frame_size == tree.frame_size
    for k in range(tree.n_trials):
        for modality in ("video", "responses", "behavior", "pupil_center"):
            np.testing.assert_allclose(
                session.read(k, modality),
                tree.read(k, modality),
                rtol=1e-6,
                atol=1e-6,
                err_msg=f"trial {k} {modality}",
            )
        window = session.window(k, 7, 20)
        np.testing.assert_allclose(
            window["responses"], tree.window(k, 7, 20)["responses"], rtol=1e-6, atol=1e-6
        )


NWB_TIERS = ["train", "train", "train", "oracle", "oracle", "oracle", "oracle"]


def test_nwb_session_equals_its_sensorium_tree(tmp_path):
    rec = recording()
    nwb = open_session(write_timed_nwb(rec, tmp_path / "scan.nwb"))
    tree = open_session(expected_tree(rec, tmp_path / "tree", NWB_TIERS, "stimulus.Clip"))
    assert nwb.layout == "nwb" and nwb.session_id == "scan"
    assert_same_session(nwb, tree)
    assert any(np.isnan(nwb.read(k, "responses")).any() for k in range(nwb.n_trials)), (
        "the NaN sample must stay a gap in the responses"
    )
    assert set(nwb.stimulus_types) == {"stimulus.Clip"}
    cohort = open_cohort(tmp_path)  # a folder holding an .nwb file and a tree
    assert sorted(s.layout for s in cohort) == ["nwb", "sensorium2023"]


def test_nwb_positions_from_the_roi_masks(tmp_path):
    """Without x, y, z columns a unit sits at its mask's centroid, in µm on the imaging plane
    (grid spacing 2 µm, origin (100, 200, 300 x field) µm)."""
    session = open_session(write_timed_nwb(recording(), tmp_path / "s.nwb", positions=False))
    j = np.concatenate([np.arange(k) for k in FIELDS])
    field = np.repeat([1, 2], FIELDS)
    expected = np.column_stack([100 + 2.0 * (j + 1), 200 + 2.0 * j, 300.0 * field])
    np.testing.assert_allclose(session.coordinates, expected)


def test_nwb_truncated_recording_names_file_and_field(tmp_path):
    path = write_timed_nwb(recording(), tmp_path / "cut.nwb", truncate_traces=True)
    with pytest.raises(DataFormatError, match=r"cut\.nwb.*RoiResponseSeries2.*truncated"):
        open_session(path)


def test_nwb_not_an_nwb_file(tmp_path):
    bad = tmp_path / "broken.nwb"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(DataFormatError, match="broken.nwb.*not a readable NWB file"):
        open_session(bad)


def test_experanto_session_equals_its_sensorium_tree(tmp_path):
    rec = recording(seed=1)
    exp = open_session(write_timed_experanto(rec, tmp_path / "exp", NWB_TIERS))
    tree = open_session(expected_tree(rec, tmp_path / "tree", NWB_TIERS, "natural_movie"))
    assert exp.layout == "experanto"
    assert_same_session(exp, tree)
    assert not any((tmp_path / "exp").rglob("combined_meta.json")), "nothing written there"


def test_caches_follow_changes_of_the_source(tmp_path):
    """Derived values are cached outside the data, under a key that changes with the source."""
    import os

    from cortexfm.data.cache import session_cache_dir

    nwb = write_timed_nwb(recording(), tmp_path / "s.nwb")
    exp = write_timed_experanto(recording(), tmp_path / "exp", NWB_TIERS)
    before = session_cache_dir(nwb), session_cache_dir(exp)
    for path in (nwb, exp / "responses" / "data.mem"):
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = session_cache_dir(nwb), session_cache_dir(exp)
    assert before[0] != after[0] and before[1] != after[1]
    assert not str(after[0]).startswith(str(tmp_path))


def test_experanto_truncated_memmap_names_file_and_field(tmp_path):
    path = write_timed_experanto(recording(), tmp_path / "exp", NWB_TIERS)
    data = path / "responses" / "data.mem"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(DataFormatError, match=r"data\.mem.*n_timestamps.*truncated"):
        open_session(path)


def test_experanto_unknown_tier_names_the_trial_file(tmp_path):
    path = write_timed_experanto(recording(), tmp_path / "exp", ["practice"] + NWB_TIERS[1:])
    with pytest.raises(DataFormatError, match=r"00000\.yml.*tier 'practice'"):
        open_session(path)


def test_every_command_reads_both_formats(tmp_path, capsys):
    """validate names each format; train, evaluate and predict run on a folder holding an NWB
    file and an experanto folder, as they do on Sensorium trees."""
    from cortexfm.cli import main
    from tests.conftest import TINY_TRAINING

    cohort = tmp_path / "cohort"
    cohort.mkdir()
    write_timed_nwb(recording(), cohort / "scan.nwb")
    rec = make_timed_recording(LENGTHS, HASHES, fields=[10, 12], frame_size=SIZE, seed=1)
    write_timed_experanto(rec, cohort / "exp", NWB_TIERS)
    assert main(["validate", str(cohort)]) == 0
    text = capsys.readouterr().out
    assert "(NWB file)" in text and "(experanto folder)" in text and "2/2 session(s) valid" in text
    assert "responses from /processing/ophys/Fluorescence" in text
    run = tmp_path / "run"
    args = ["train", "--data", str(cohort), "--preset", "tiny", "--out", str(run)]
    assert main([*args, *TINY_TRAINING, "train.position_search_steps=[]"]) == 0
    checkpoint = run / "best.safetensors"
    assert (
        main(["evaluate", str(checkpoint), "--data", str(cohort), "--out", str(tmp_path / "e")])
        == 0
    )
    out = tmp_path / "p.npy"
    movie = tmp_path / "movie.npy"
    np.save(movie, np.random.default_rng(0).uniform(0, 255, size=(40, *SIZE)).astype(np.float32))
    assert (
        main(["predict", str(checkpoint), str(movie), "--session", "scan", "--out", str(out)]) == 0
    )
    assert np.load(out).shape == (40, sum(FIELDS))
    few = tmp_path / "few.csv"
    pd.DataFrame({"unit_id": rec.unit_ids[:6], "cell_type": ["23P", "4P"] * 3}).to_csv(few)
    # a new mouse held as experanto, on the core trained from the NWB scan alone
    nwb_run = tmp_path / "nwb_run"
    args = ["train", "--data", str(cohort / "scan.nwb"), "--preset", "tiny", "--out", str(nwb_run)]
    assert main([*args, *TINY_TRAINING, "train.position_search_steps=[]"]) == 0
    transferred = tmp_path / "transfer"
    args = ["transfer", str(nwb_run / "best.safetensors"), "--data", str(cohort / "exp")]
    assert main([*args, "--out", str(transferred), *TINY_TRAINING]) == 0
    ckpt = str(transferred / "best.safetensors")
    args = ["insilico", ckpt, "--data", str(cohort / "exp"), "--out", str(tmp_path / "ins")]
    assert main([*args, "--meis", "1", "--mei-steps", "2", "--frames", "30"]) == 0
    types = tmp_path / "types.csv"
    cell_types = ["23P", "4P"] * 11
    pd.DataFrame({"unit_id": rec.unit_ids, "cell_type": cell_types}).to_csv(types, index=False)
    args = ["anatomy", ckpt, "--data", str(cohort / "exp"), "--out", str(tmp_path / "anat")]
    assert main([*args, "--cell-types", str(types), "--permutations", "1"]) == 0
    assert main([*args, "--cell-types", str(few), "--permutations", "1"]) == 2
    assert "needs at least 2 types with >= 5 neurons" in capsys.readouterr().err
    assert not any(
        p.name.startswith(".") or p.suffix == ".json" for p in (cohort / "exp").rglob("*")
    )


@pytest.mark.parametrize("regular", [True, False])
@pytest.mark.parametrize("offsets", [None, "per_column"])
def test_timed_signal_interpolates_like_np_interp(regular, offsets):
    """Every path of TimedSignal.sample (regular or searched samples, one clock or one per
    column, a column subset) equals np.interp per column."""
    from cortexfm.data.timed import TimedSignal

    rng = np.random.default_rng(3)
    n, width = 400, 6
    times = 2.0 + np.arange(n) / 6.3
    if not regular:
        times = times + rng.uniform(0, 0.05, size=n)
    data = rng.normal(size=(n, width)).astype(np.float32)
    shift = None if offsets is None else rng.uniform(0, 0.15, size=width)
    columns = [5, 0, 3]
    signal = TimedSignal(
        data,
        times,
        Path("x"),
        "f",
        columns=columns,
        offsets=shift,
        rate=6.3 if regular else None,
    )
    query = 10.0 + np.arange(64) / 30.0
    expected = np.stack(
        [np.interp(query, times + (0 if shift is None else shift[c]), data[:, c]) for c in columns],
        axis=1,
    )
    np.testing.assert_allclose(signal.sample(query), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(DataFormatError, match="x: f: recorded from"):
        signal.check_covers(0.0, 5.0, "trial 0")
