"""Issue 8's targets: ``cortexfm demo`` in <= 20 minutes (``--quick`` in <= 3) on 2 CPU cores.

Runs the demo as the README does, in a fresh folder, and prints its wall time, each stage's
time (from ``stages/<name>.json``) and the peak memory of the run.

    python benchmarks/demo_time.py            # the full demo
    python benchmarks/demo_time.py --quick

Measured (2026-11-28, 2 CPU cores): full 16.6 min, 1.96 GB peak (simulate 41 s, foundation
303 s, efficiency 475 s, evaluate 52 s, insilico 91 s, anatomy 27 s); --quick 0.6 min, 1.75 GB.
With the pink-noise validation in the in-silico stage: full 17.5 min, 1.97 GB (simulate 42 s,
foundation 320 s, efficiency 481 s, evaluate 50 s, insilico 125 s, anatomy 28 s).
With the exponential output as the default (2026-12-01): full 17.1 min, 1.92 GB (simulate 44 s,
foundation 311 s, efficiency 447 s, evaluate 65 s, insilico 128 s, anatomy 27 s).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        command = ["cortexfm", "demo", "--out", str(out)] + (["--quick"] if args.quick else [])
        t0 = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - t0
        stages = {
            p.stem: json.loads(p.read_text()).get("seconds")
            for p in sorted((out / "stages").glob("*.json"))
        }
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # KB on Linux
    target = 3 if args.quick else 20
    print(f"demo{' --quick' if args.quick else ''}: {seconds / 60:.1f} min (target <= {target})")
    print(f"peak memory {peak_gb:.2f} GB; stages (s): {stages}")


if __name__ == "__main__":
    main()
