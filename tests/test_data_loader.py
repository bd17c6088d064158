"""Statistics, normalisation and the multi-session window loader."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from cortexfm.data import (
    Normalizer,
    TrainingWindows,
    WindowConfig,
    make_loader,
    open_cohort,
    open_session,
    session_statistics,
)
from cortexfm.data.cache import session_cache_dir
from cortexfm.data.writer import SessionWriter


def _all_frames(session, modality, tier="train"):
    return np.concatenate([session.read(int(i), modality) for i in session.trials_in(tier)])


def test_statistics_use_training_trials_only_and_are_cached(small_tree: Path):
    s = open_session(small_tree)
    stats = session_statistics(s, progress=False)
    assert stats.source == "computed"
    r = _all_frames(s, "responses").astype(np.float64)
    np.testing.assert_allclose(stats["responses"]["mean"], r.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["responses"]["std"], r.std(0), rtol=1e-5)
    np.testing.assert_allclose(stats["behavior"]["max"], _all_frames(s, "behavior").max(0))
    np.testing.assert_allclose(
        float(stats["video"]["mean"]), _all_frames(s, "video").mean(), rtol=1e-6
    )
    # oracle trials do not enter: the statistics differ from those over all trials
    everything = np.concatenate([r, _all_frames(s, "responses", "oracle")])
    assert not np.allclose(stats["responses"]["mean"], everything.mean(0))
    cache = session_cache_dir(s.path) / "statistics.npz"
    assert cache.exists() and not (s.path / "meta" / "statistics").exists()
    again = session_statistics(open_session(small_tree), progress=False)
    np.testing.assert_array_equal(again["responses"]["std"], stats["responses"]["std"])


def test_published_statistics_are_used_when_present(tmp_path: Path):
    n = 3
    w = SessionWriter(
        tmp_path / "s", session_id="s", unit_ids=np.arange(n), coordinates=np.zeros((n, 3))
    )
    with w:
        w.add_trial(
            video=np.ones((10, 4, 4)),
            responses=np.ones((10, n)),
            behavior=np.ones((10, 2)),
            pupil_center=np.ones((10, 2)),
            tier="train",
        )
        w.write_statistics(
            {
                "video": {"mean": np.array(7.0), "std": np.array(2.0)},
                "responses": {"mean": np.ones(n), "std": np.array([1.0, 2.0, 0.0])},
                "behavior": {"mean": np.zeros(2), "std": np.ones(2)},
                "pupil_center": {"mean": np.zeros(2), "std": np.ones(2)},
            }
        )
    stats = session_statistics(open_session(tmp_path / "s"))
    assert stats.source == "meta" and float(stats["video"]["mean"]) == 7.0
    norm = Normalizer(stats)
    # zero std is floored at 1% of the mean std, never divides by zero
    np.testing.assert_allclose(norm.response_scale, [1.0, 2.0, 0.01])


def test_normalisation_is_invertible(small_tree: Path):
    s = open_session(small_tree)
    norm = Normalizer(session_statistics(s, progress=False))
    for modality in ("video", "responses", "behavior", "pupil_center"):
        x = s.read(0, modality)
        z = norm.transform(modality, x)
        assert z.dtype == np.float32
        np.testing.assert_allclose(norm.inverse(modality, z), x, rtol=1e-6, atol=1e-4)
    z = norm.transform("behavior", _all_frames(s, "behavior"))
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
    assert (norm.transform("responses", s.read(0, "responses")) >= 0).all()


def _as_numpy(batch: dict) -> dict:
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def test_batches_are_deterministic_one_session_each_and_correct(cohort_dir: Path):
    cohort = open_cohort(cohort_dir)
    cfg = WindowConfig(window=16, batch_size=4, batches_per_epoch=12, seed=7)
    a = [_as_numpy(b) for b in TrainingWindows(cohort, cfg)]
    b = [_as_numpy(b) for b in TrainingWindows(cohort, cfg)]
    c = [
        _as_numpy(b)
        for b in TrainingWindows(
            cohort, WindowConfig(window=16, batch_size=4, batches_per_epoch=12, seed=8)
        )
    ]
    assert len(a) == 12
    for x, y in zip(a, b, strict=True):
        assert x["session_id"] == y["session_id"]
        np.testing.assert_array_equal(x["responses"], y["responses"])
    assert any(
        not np.array_equal(x["trial_id"], y["trial_id"]) or x["session_id"] != y["session_id"]
        for x, y in zip(a, c, strict=True)
    )
    raw = TrainingWindows(cohort, cfg, normalize=False)
    for k in range(5):
        batch = raw.batch(k)
        s = cohort.session(batch["session_id"])
        assert batch["responses"].shape == (4, 16, s.n_neurons)
        assert batch["video"].shape == (4, 16, 18, 32)
        for j in range(4):
            t, start = int(batch["trial_id"][j]), int(batch["start"][j])
            assert s.tiers[t] == "train"
            np.testing.assert_array_equal(
                batch["responses"][j].numpy(), s.read(t, "responses", start, start + 16)
            )


def test_epochs_differ(cohort_dir: Path):
    ds = TrainingWindows(
        open_cohort(cohort_dir), WindowConfig(window=16, batch_size=4, batches_per_epoch=4)
    )
    first = [b["start"].tolist() for b in ds]
    ds.set_epoch(1)
    assert first != [b["start"].tolist() for b in ds]


def test_workers_give_the_same_stream(cohort_dir: Path):
    cohort = open_cohort(cohort_dir)
    cfg = WindowConfig(window=16, batch_size=2, batches_per_epoch=9, seed=1)
    serial = [
        b["start"].tolist() + b["trial_id"].tolist()
        for b in make_loader(TrainingWindows(cohort, cfg))
    ]
    parallel = [
        b["start"].tolist() + b["trial_id"].tolist()
        for b in make_loader(TrainingWindows(cohort, cfg), num_workers=2)
    ]
    assert serial == parallel


def test_ranks_shard_one_global_stream(cohort_dir: Path):
    cohort = open_cohort(cohort_dir)
    cfg = WindowConfig(window=16, batch_size=2, batches_per_epoch=12, seed=3)
    single = [(b["session_id"], b["start"].tolist()) for b in TrainingWindows(cohort, cfg)]
    shards = [
        [
            (b["session_id"], b["start"].tolist())
            for b in TrainingWindows(cohort, cfg, rank=r, world_size=3)
        ]
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [4, 4, 4]
    interleaved = [shards[k % 3][k // 3] for k in range(12)]
    assert interleaved == single
    with pytest.raises(ValueError, match="rank 3 outside"):
        TrainingWindows(cohort, cfg, rank=3, world_size=3)


def test_proportional_and_uniform_session_sampling(cohort_dir: Path):
    cohort = open_cohort(cohort_dir)  # 4, 8 and 12 training trials of equal length
    counts = {}
    for mode in ("proportional", "uniform"):
        ds = TrainingWindows(
            cohort,
            WindowConfig(window=16, batch_size=1, batches_per_epoch=600, sampling=mode, seed=0),
            normalize=False,
        )
        counts[mode] = Counter(cohort[ds.plan(k)[0]].session_id for k in range(600))
    p = counts["proportional"]
    assert p["mouse-0"] < p["mouse-1"] < p["mouse-2"]
    assert abs(p["mouse-2"] / 600 - 0.5) < 0.06
    u = counts["uniform"]
    assert all(abs(u[f"mouse-{m}"] / 600 - 1 / 3) < 0.06 for m in range(3))


def test_read_only_tree_is_never_written(small_tree: Path):
    for root, dirs, files in os.walk(small_tree):
        for name in files + dirs:
            os.chmod(Path(root) / name, 0o555 if name in dirs else 0o444)
    os.chmod(small_tree, 0o555)
    before = sorted(str(p) for p in small_tree.rglob("*"))
    try:
        ds = TrainingWindows(
            open_cohort(small_tree), WindowConfig(window=16, batch_size=2, batches_per_epoch=3)
        )
        assert len(list(ds)) == 3
    finally:
        for root, dirs, _ in os.walk(small_tree):
            for name in dirs:
                os.chmod(Path(root) / name, 0o755)
        os.chmod(small_tree, 0o755)
    assert sorted(str(p) for p in small_tree.rglob("*")) == before


def test_bad_window_config():
    with pytest.raises(ValueError, match="sampling"):
        WindowConfig(sampling="random")
    with pytest.raises(ValueError, match=">= 1"):
        WindowConfig(window=0)
