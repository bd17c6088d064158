"""Simulator speed: 10 minutes of 1,000 neurons at 36x64 (target <= 90 s on 2 cores).

Usage: python benchmarks/simulate.py [--neurons 1000] [--minutes 10]
Times one mouse with only training clips (no repeats or OOD blocks), written to disk.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from cortexfm.sim import SimulationConfig, simulate_mouse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--neurons", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    config = SimulationConfig(
        n_neurons=args.neurons,
        train_minutes=args.minutes,
        validation_fraction=0.0,
        oracle_clips=0,
        ood_clips=0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        simulate_mouse(Path(tmp) / "mouse", config, seed=0)
        dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"simulated {args.minutes:g} min x {args.neurons} neurons in {dt:.1f} s (target <= 90 s); peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
