"""Loader speed and memory (issue: data layer).

Targets on the 2-core reference machine:
- random 64-frame windows (36x64 frames, 8,000 neurons) at >= 5,000 frames/s, warm page cache;
- opening a cohort reads no response arrays;
- peak memory while iterating a 2-hour, 8,000-neuron session < 1 GB.

Usage: python benchmarks/loader.py [--minutes 120] [--neurons 8000] [--workdir /tmp/cortexfm-bench]
The session tree (about 9 GB for 2 hours) is written once and reused.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cortexfm.data import TrainingWindows, WindowConfig, open_cohort
from cortexfm.data import session as session_module
from cortexfm.data.writer import SessionWriter

TRIAL_FRAMES = 300  # 10 s clips, as in Sensorium 2023


def write_tree(path: Path, minutes: float, n_neurons: int) -> None:
    n_trials = int(round(minutes * 60 * 30 / TRIAL_FRAMES))
    rng = np.random.default_rng(0)
    with SessionWriter(
        path,
        session_id="bench",
        unit_ids=np.arange(n_neurons),
        coordinates=np.zeros((n_neurons, 3)),
    ) as w:
        base = rng.gamma(0.5, 2.0, size=(TRIAL_FRAMES, n_neurons)).astype(np.float32)
        for i in tqdm(range(n_trials), desc="writing benchmark tree"):
            w.add_trial(
                video=rng.integers(0, 255, size=(TRIAL_FRAMES, 36, 64)).astype(np.float32),
                responses=np.roll(base, i, axis=0),
                behavior=rng.normal(size=(TRIAL_FRAMES, 2)).astype(np.float32),
                pupil_center=rng.normal(size=(TRIAL_FRAMES, 2)).astype(np.float32),
                tier="train" if i % 10 else "oracle",
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=120)
    ap.add_argument("--neurons", type=int, default=8000)
    ap.add_argument("--workdir", default="/tmp/cortexfm-bench")
    ap.add_argument("--batches", type=int, default=400)
    args = ap.parse_args()
    path = Path(args.workdir) / f"loader-{args.minutes:g}min-{args.neurons}"
    if not path.exists():
        write_tree(path, args.minutes, args.neurons)

    # 1. opening reads no response array
    opened: list[str] = []
    real_open = session_module.open_array
    session_module.open_array = lambda p, mmap=True: (opened.append(str(p)), real_open(p, mmap))[1]
    t0 = time.perf_counter()
    cohort = open_cohort(path)
    t_open = time.perf_counter() - t0
    session_module.open_array = real_open
    responses_read = sum("/responses/" in p for p in opened)
    print(
        f"open_cohort: {t_open:.2f} s, {cohort[0].n_trials} trials, response arrays read: {responses_read}"
    )

    # 2. throughput and memory over random windows (raw = normalise=False, and normalised)
    session = cohort[0]
    _ = session.trial_lengths
    for normalize in (False, True):
        ds = TrainingWindows(
            cohort,
            WindowConfig(window=64, batch_size=8, batches_per_epoch=args.batches, seed=0),
            normalize=normalize,
        )
        for k in range(20):  # warm the page cache for this access pattern
            ds.batch(k)
        frames, t0 = 0, time.perf_counter()
        for batch in tqdm(ds, total=len(ds), desc=f"windows normalize={normalize}", leave=False):
            frames += batch["responses"].shape[0] * batch["responses"].shape[1]
        dt = time.perf_counter() - t0
        print(
            f"random 64-frame windows, {args.neurons} neurons, normalize={normalize}: {frames / dt:,.0f} frames/s"
        )

    # 3. peak memory of a fresh process (own empty cache: statistics computed from scratch)
    # that opens the cohort and iterates every window of every training trial, normalised
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        peak, total_min = pool.apply(full_pass_peak_rss, (str(path),))
    print(
        f"peak RSS of a full normalised pass over {total_min:.0f} min x {args.neurons} neurons: {peak:.0f} MB"
    )


def full_pass_peak_rss(path: str) -> tuple[float, float]:
    os.environ["CORTEXFM_CACHE_DIR"] = tempfile.mkdtemp()
    cohort = open_cohort(path)
    session = cohort[0]
    ds = TrainingWindows(cohort, WindowConfig(window=64, batch_size=8, batches_per_epoch=1))
    norm = ds.normalizers[session.session_id]
    for trial_id in tqdm(session.trials_in("train"), desc="full pass", leave=False):
        for start in range(0, int(session.trial_lengths[trial_id]) - 64 + 1, 64):
            for modality, x in session.window(int(trial_id), start, 64).items():
                norm.transform(modality, x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak, float(session.trial_lengths.sum() / 30 / 60)


if __name__ == "__main__":
    main()
