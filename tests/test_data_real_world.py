"""Real recordings as users hold them: no clip ids, no statistics, read-only, ΔF/F, fnn layout.

Trees are built from the real Sensorium 2023 metadata (coordinates, tiers, clip ids, frame
counts of mouse A); the arrays are synthetic.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cortexfm
from cortexfm.data import (
    DataFormatError,
    FnnSession,
    Normalizer,
    check_response_sign,
    open_cohort,
    open_session,
    repeat_groups,
    session_statistics,
    validate_tree,
)
from cortexfm.data.cache import session_cache_dir
from cortexfm.data.clips import clip_signature, group_clips, same_clip
from cortexfm.metrics import cc_max


def _strip_clip_ids(path: Path) -> None:
    for name in ("video_id.npy", "repeat.npy"):
        (path / "meta" / "trials" / name).unlink(missing_ok=True)


def _partition(labels) -> set[frozenset[int]]:
    groups: dict[str, set[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(str(label), set()).add(i)
    return {frozenset(g) for g in groups.values()}


# -- 1. repeats without ids ---------------------------------------------------------------------


def test_repeats_are_recognised_from_frames_despite_dtype_noise_and_nan_tails(real_tree):
    path, _, picked = real_tree
    _strip_clip_ids(path)
    videos = path / "data" / "videos"
    oracle = np.flatnonzero(picked.trial_type.to_numpy() == "oracle")
    rng = np.random.default_rng(0)
    for k, i in enumerate(oracle):
        file = videos / f"{i}.npy"
        video = np.load(file)  # (H, W, T), NaN-padded
        valid = ~np.isnan(video[0, 0])
        video[:4, :4, valid] = 8.0  # a patch right at an old rounding boundary (8 = 16 / 2)
        if k % 4 == 0:  # stored as uint8 (no NaN padding possible: every modality cropped)
            video = video[:, :, valid].astype(np.uint8)
            for folder in ("responses", "behavior", "pupil_center"):
                other = path / "data" / folder / f"{i}.npy"
                np.save(other, np.load(other)[:, valid])
        elif k % 4 == 1:  # tiny float differences, some straddling rounding boundaries
            noise = rng.uniform(-0.4, 0.4, size=video.shape).astype(np.float32)
            video = video + noise
            video[:4, :4, valid] = 8.0 + (0.01 if k % 8 == 1 else -0.01)  # either side of it
        elif k % 4 == 2:  # a NaN tail in the responses only
            responses = np.load(path / "data" / "responses" / f"{i}.npy")
            responses[:, int(valid.sum()) - 20 :] = np.nan
            np.save(path / "data" / "responses" / f"{i}.npy", responses)
        else:  # the video itself cut short by 3% (NaN tail)
            last = int(valid.sum())
            video[:, :, last - last // 33 :] = np.nan
        np.save(file, video)

    session = open_session(path)
    assert _partition(session.video_ids) == _partition(picked.video_ID.to_numpy())
    groups = list(repeat_groups(session, "oracle").values())
    assert sorted(len(g) for g in groups) == sorted(
        picked[picked.trial_type == "oracle"].groupby("video_ID").size().tolist()
    )
    # the recognised ids are cached outside the tree and reused
    assert (session_cache_dir(path) / "video_ids.json").exists()
    assert list(open_session(path).video_ids) == list(session.video_ids)
    # and the noise ceiling works on them
    first = groups[0]
    n = min(session.trial_lengths[first])
    responses = np.stack([session.read(int(i), "responses", 0, n) for i in first])
    assert np.isfinite(cc_max(responses)).any()


def test_different_clips_are_not_merged_and_boundaries_do_not_split():
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 255, size=(60, 36, 64)).astype(np.float32)
    near = base.copy()
    near[:, :8, :8] += 12.0  # a different clip that differs in one corner only
    sig = [clip_signature(v) for v in (base, base.astype(np.uint8), near, base + 0.49)]
    assert same_clip(sig[0], sig[3]) and not same_clip(sig[0], sig[2])
    labels = group_clips(sig)
    assert labels[0] == labels[3] and labels[2] != labels[0]
    # uint8 truncation changes values by < 1 grey level: still the same clip
    assert labels[1] == labels[0]


def test_validate_reports_unique_clips_and_repeats_per_tier(real_tree, capsys):
    path, _, picked = real_tree
    _strip_clip_ids(path)
    (report,) = validate_tree(path)
    assert not report.problems
    oracle = report.summary["tiers"]["oracle"]
    expected = picked[picked.trial_type == "oracle"].groupby("video_ID").size()
    assert oracle["unique_clips"] == len(expected)
    assert oracle["repeated_clips"] == int((expected > 1).sum())
    assert oracle["max_repeats"] == int(expected.max())


# -- 2. missing statistics ----------------------------------------------------------------------


def test_missing_statistics_are_computed_from_training_trials(real_tree):
    path, _, picked = real_tree
    assert not (path / "meta" / "statistics").exists()
    session = open_session(path)
    stats = session_statistics(session, progress=False)
    assert stats.source == "computed"
    train = np.flatnonzero(picked.trial_type.to_numpy() == "train")
    responses = np.concatenate([session.read(int(i), "responses") for i in train])
    np.testing.assert_allclose(stats["responses"]["mean"], responses.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["responses"]["std"], responses.std(0), rtol=1e-4)


# -- 3. read-only data --------------------------------------------------------------------------

_READ_PATH = """
import sys
from pathlib import Path
import numpy as np
from cortexfm.data import (TrainingWindows, WindowConfig, iterate_trials, open_cohort,
                           repeat_groups, session_statistics, validate_tree, Normalizer)
root = Path(sys.argv[1])
try:
    (root / "probe").write_text("x")
    sys.exit("the tree is writable: the test would prove nothing")
except OSError:
    pass
(report,) = validate_tree(root)
assert not report.problems, report.problems
cohort = open_cohort(root)
session = cohort[0]
norm = Normalizer(session_statistics(session, progress=False))
ids = session.video_ids  # recognised from the frames, cached outside the tree
assert len(repeat_groups(session, "oracle")) >= 1
batches = list(TrainingWindows(cohort, WindowConfig(window=16, batch_size=2, batches_per_epoch=3)))
assert len(batches) == 3
n = sum(1 for _ in iterate_trials(session, tiers=("oracle",)))
assert n >= 2
print("READ-ONLY OK", len(set(ids)))
"""


def _unshare_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount --bind / /mnt 2>/dev/null || mount -t tmpfs x /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


def test_whole_read_path_on_a_truly_read_only_tree(real_tree, tmp_path):
    """The tree is bind-mounted read-only (in a private mount namespace), so any write fails."""
    if not _unshare_available():
        pytest.skip("unshare -rm (user + mount namespaces) is not permitted on this machine")
    path, _, _ = real_tree
    _strip_clip_ids(path)
    before = {p: p.stat().st_mtime_ns for p in path.rglob("*")}
    script = tmp_path / "read_path.py"
    script.write_text(textwrap.dedent(_READ_PATH))
    command = (
        f'mount --bind "{path}" "{path}" && mount -o remount,bind,ro "{path}" '
        f'&& exec "{sys.executable}" "{script}" "{path}"'
    )
    env = {**os.environ, "PYTHONPATH": str(Path(cortexfm.__file__).parents[1])}
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "READ-ONLY OK" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*")} == before


# -- 4. responses that are not counts -----------------------------------------------------------


def _to_dff(path: Path) -> Path:
    """Turn a tree's responses into ΔF/F-like traces (mean-subtracted per neuron and trial)."""
    for f in (path / "data" / "responses").glob("*.npy"):
        r = np.load(f)
        np.save(f, (r - np.nanmean(r, axis=1, keepdims=True)).astype(np.float32))  # ΔF/F-like
    return path


def test_negative_responses_get_a_clear_choice_not_a_nan_loss(real_tree):
    session = open_session(_to_dff(real_tree[0]))
    stats = session_statistics(session, progress=False)
    with pytest.raises(DataFormatError) as err:
        check_response_sign(session, stats, loss="poisson")
    message = str(err.value)
    assert "data/responses" in message and "ΔF/F" in message
    assert "--loss gaussian" in message and "--response-transform shift" in message
    check_response_sign(session, stats, loss="gaussian")  # real-valued loss: accepted
    check_response_sign(session, stats, loss="poisson", response_transform="shift")
    norm = Normalizer(stats, response_transform="shift")
    train = session.trials_in("train")
    shifted = np.concatenate(
        [norm.transform("responses", session.read(int(i), "responses")) for i in train]
    )
    assert shifted.min() >= -1e-6
    raw = session.read(int(train[0]), "responses")
    np.testing.assert_allclose(
        norm.inverse("responses", norm.transform("responses", raw)), raw, atol=1e-5
    )


def test_count_responses_pass_the_sign_check(small_tree: Path):
    session = open_session(small_tree)
    check_response_sign(session, session_statistics(session, progress=False), loss="poisson")


# -- 5. the cajal/fnn layout --------------------------------------------------------------------


def _write_fnn(source: Path, root: Path, suffix: str = "27203_4_7") -> Path:
    """Export a Sensorium tree to the fnn layout (train/validation + evaluation repeats)."""
    session = open_session(source)
    training = root / f"training_data_{suffix}"
    evaluation = root / f"evaluation_data_{suffix}"
    for folder in ("training", "samples", "stimuli", "perspectives", "modulations", "units"):
        (training / folder).mkdir(parents=True)
    clip_repeat: dict[str, int] = {}
    for i in range(session.n_trials):
        tier = session.tiers[i]
        trial = session.trial(i)
        arrays = {
            "stimuli": np.clip(trial.video, 0, 255).astype(np.uint8)[..., None],
            "perspectives": trial.pupil_center,
            "modulations": trial.behavior,
            "units": trial.responses,
        }
        if tier == "oracle":
            r = clip_repeat.setdefault(trial.video_id, 0)
            clip_repeat[trial.video_id] = r + 1
            for folder, array in arrays.items():
                (evaluation / folder / f"video{trial.video_id}").mkdir(parents=True, exist_ok=True)
                np.save(evaluation / folder / f"video{trial.video_id}" / f"repeat{r}.npy", array)
        elif tier == "train":
            name = f"trial{i}"
            np.save(training / "training" / f"{name}.npy", np.array(i % 4 != 3))
            np.save(training / "samples" / f"{name}.npy", np.array(trial.n_frames))
            for folder, array in arrays.items():
                np.save(training / folder / f"{name}.npy", array)
    return root


def test_fnn_layout_is_read_in_place(real_tree, tmp_path: Path):
    path, _, picked = real_tree
    root = _write_fnn(path, tmp_path / "fnn")
    session = open_session(root)
    assert isinstance(session, FnnSession)
    assert session.session_id == "27203_4_7" and session.layout == "fnn"
    original = open_session(path)
    n_train = int((picked.trial_type == "train").sum())
    assert list(session.tiers[:n_train]) == ["train", "train", "train", "validation", "train"]
    assert session.n_neurons == original.n_neurons
    assert session.frame_size == original.frame_size
    # trial 10 sorts after trial 2 (natural order), arrays come back time first
    first = session.trial(0)
    np.testing.assert_array_equal(first.responses, original.read(0, "responses"))
    np.testing.assert_array_equal(
        first.video, np.clip(original.read(0, "video"), 0, 255).astype(np.uint8)
    )
    # evaluation repeats become the oracle tier with the video folder as clip id
    groups = list(repeat_groups(session, "oracle").values())
    expected = picked[picked.trial_type == "oracle"].groupby("video_ID").size()
    assert sorted(len(g) for g in groups) == sorted(expected.tolist())
    # the training_data folder itself opens too, and a cohort can mix layouts
    assert open_session(root / "training_data_27203_4_7").n_trials == session.n_trials
    cohort = open_cohort([root, path])
    assert cohort.session_ids == ["27203_4_7", "sensorium-mouseA"]
    (report,) = validate_tree(root)
    assert not report.problems and report.summary["layout"] == "fnn"


def test_fnn_missing_values_become_zero_and_bad_files_are_named(real_tree, tmp_path: Path):
    path, _, _ = real_tree
    root = _write_fnn(path, tmp_path / "fnn")
    training = root / "training_data_27203_4_7"
    p = np.load(training / "perspectives" / "trial0.npy")
    p[5:9] = np.nan
    np.save(training / "perspectives" / "trial0.npy", p)
    assert np.isfinite(open_session(root).read(0, "pupil_center")).all()

    np.save(training / "samples" / "trial1.npy", np.array(7))
    with pytest.raises(DataFormatError, match=r"samples/trial1.npy.*7 frames"):
        open_session(root)
    np.save(
        training / "samples" / "trial1.npy",
        np.array(np.load(training / "units" / "trial1.npy").shape[0]),
    )
    (training / "units" / "trial2.npy").unlink()
    with pytest.raises(DataFormatError, match=r"units/trial2.npy.*missing"):
        open_session(root)
