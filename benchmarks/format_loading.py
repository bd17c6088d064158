"""Issue 20: loading throughput and memory of NWB files and experanto folders vs a Sensorium tree.

Makes one recording on its own clocks (``cortexfm.data.synthetic.make_timed_recording``:
10-s clips at 30 Hz with grey gaps, two-photon traces at 6.3 Hz in 8 imaging fields with their
own clock offsets, eye camera 20 Hz, treadmill 100 Hz), writes it as an NWB file (pynwb) and an
experanto folder, and as the Sensorium tree cortexfm reads from the NWB file (the same
session). Then, each in a fresh process: open the session and read ``--windows`` random
training windows (64 frames of every modality, as the training loader does), reporting
windows/s and the process's peak memory.

    python benchmarks/format_loading.py [--minutes 120] [--neurons 8000] [--windows 400]

Figures (issue 20): throughput within 2x of the tree; peak memory < 1 GB for a 2-hour,
8,000-neuron session.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def build(root: Path, minutes: float, neurons: int) -> dict[str, Path]:
    from cortexfm.data import open_session
    from cortexfm.data.synthetic import (
        make_timed_recording,
        write_timed_experanto,
        write_timed_nwb,
    )
    from cortexfm.data.timed import repeat_tiers
    from cortexfm.data.writer import copy_session

    paths = {"nwb": root / "scan.nwb", "experanto": root / "experanto", "tree": root / "tree"}
    if all(p.exists() for p in paths.values()):
        return paths
    root.mkdir(parents=True, exist_ok=True)
    n_trials = int(minutes * 60 / 10.5)
    hashes = [f"clip{k}" for k in range(n_trials)]
    for k in range(0, n_trials, 10):  # every tenth trial repeats a test clip
        hashes[k] = f"test{(k // 10) % 6}"
    t0 = time.time()
    rec = make_timed_recording(
        [300] * n_trials,
        hashes,
        fields=[neurons // 8] * 8,
        field_offsets=list(np.arange(8) * 0.02),
        frame_size=(36, 64),
    )
    print(f"made {minutes} min x {neurons} neurons in {time.time() - t0:.0f} s", flush=True)
    write_timed_nwb(rec, paths["nwb"])
    write_timed_experanto(rec, paths["experanto"], repeat_tiers(hashes, [True] * n_trials))
    del rec
    print(f"wrote NWB and experanto in {time.time() - t0:.0f} s", flush=True)
    copy_session(open_session(paths["nwb"]), paths["tree"])
    print(f"wrote the tree in {time.time() - t0:.0f} s", flush=True)
    return paths


def measure(path: str, windows: int) -> dict:
    """In this process: open, then read random 64-frame windows of every modality."""
    from cortexfm.data import open_session

    t0 = time.perf_counter()
    session = open_session(path)
    opened = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    lengths = session.trial_lengths
    trials = rng.integers(0, session.n_trials, size=windows)
    starts = [int(rng.integers(0, lengths[t] - 64 + 1)) for t in trials]
    passes = []
    for _ in range(2):  # first pass: files mapped and read for the first time; then steady
        t0 = time.perf_counter()
        for t, s in zip(trials, starts, strict=True):
            session.window(int(t), s, 64)
        passes.append(time.perf_counter() - t0)
    return {
        "layout": session.layout,
        "neurons": session.n_neurons,
        "trials": session.n_trials,
        "open_s": round(opened, 2),
        "first_pass_windows_per_s": round(windows / passes[0], 1),
        "windows_per_s": round(windows / passes[1], 1),
        "frames_per_s": round(64 * windows / passes[1]),
        "peak_mb": peak_memory_mb(),
    }


def peak_memory_mb() -> int:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    parent that forked it, which held the whole recording while writing it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=120)
    parser.add_argument("--neurons", type=int, default=8000)
    parser.add_argument("--windows", type=int, default=400)
    parser.add_argument("--out", default="bench_data/formats")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the worker process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.windows)))
        return
    root = Path(args.out) / f"{args.minutes:g}min_{args.neurons}"
    paths = build(root, args.minutes, args.neurons)
    results = {}
    for name, path in paths.items():
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(path), "--windows", str(args.windows)],
            check=True,
            capture_output=True,
            text=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    tree = results["tree"]["windows_per_s"]
    for name in ("nwb", "experanto"):
        r = results[name]
        first = results["tree"]["first_pass_windows_per_s"]
        print(
            f"{name}: {r['windows_per_s']} windows/s = {r['windows_per_s'] / tree:.2f}x the tree "
            f"({tree}); first pass {r['first_pass_windows_per_s'] / first:.2f}x; opens in "
            f"{r['open_s']} s; peak {r['peak_mb']} MB"
        )


if __name__ == "__main__":
    main()
