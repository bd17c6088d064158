"""Issue 4's accuracy figure: the ``cpu`` preset on a simulated cohort, time-limited.

Simulates 4 mice x 1,000 neurons x 20 minutes of natural video (kept in --data), trains the
``cpu`` preset for at most --minutes of wall-clock time, and scores the best checkpoint
(chosen on the validation tier) on the repeated natural test clips (the ``oracle`` tier, never
used in training or model selection): median CC_norm over all neurons of the training mice.

    python benchmarks/train_accuracy.py --minutes 44

Measured (2026-11-27, 2 CPU cores): 3,000 steps in 42.9 min, median CC_norm 0.812
(CC_abs 0.529, CC_max 0.681; per mouse 0.820, 0.776, 0.797, 0.847).
Longer (2026-11-28, after the pink-noise fix re-drew the test clips' noise):
``--minutes 72 --out bench_runs/train72 train.max_steps=5000``: 5,000 steps in 71.7 min,
median CC_norm 0.845 (per mouse 0.849, 0.817, 0.849, 0.858); the 3,000-step model scores 0.820
on the same re-simulated test clips.
With behaviour as a per-neuron gain (2026-12-01): random barcodes, 3,000 steps in 43.9 min,
0.845; uniform barcodes (the defaults since), 3,000 steps in 40.0 min, 0.831 (per mouse 0.831,
0.823, 0.845, 0.820).
Exponential output (``model.readout.output=exp``, the default since, 2026-12-01): 2,800 steps in
44.6 min (this machine ran slower that day: 621 frames/s), median CC_norm 0.837 (CC_abs 0.544,
CC_max 0.673; per mouse 0.840, 0.833, 0.852, 0.823).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cortexfm.data import open_cohort
from cortexfm.evaluate.repeats import repeat_scores
from cortexfm.sim import SimulationConfig, simulate_cohort
from cortexfm.train import load_checkpoint, load_run_config, train


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="bench_data/sim4x1000x20")
    parser.add_argument("--out", default="bench_runs/train_accuracy")
    parser.add_argument("--mice", type=int, default=4)
    parser.add_argument("--neurons", type=int, default=1000)
    parser.add_argument("--sim-minutes", type=float, default=20)
    parser.add_argument("--minutes", type=float, default=45, help="training wall-clock budget")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    t0 = time.perf_counter()
    simulate_cohort(
        args.data,
        args.mice,
        SimulationConfig(n_neurons=args.neurons, train_minutes=args.sim_minutes),
        seed=0,
    )
    print(f"simulation ready in {time.perf_counter() - t0:.0f} s")
    cohort = open_cohort(args.data)
    config = load_run_config(
        None,
        [
            f"train.max_minutes={args.minutes}",
            "train.max_steps=3000",  # the cosine schedule's length (~43 min at ~700 frames/s)
            "train.early_stopping_patience=0",
            *args.overrides,
        ],
        preset_name="cpu",
    )
    t0 = time.perf_counter()
    result = train(cohort, config, args.out, resume=args.resume)
    train_minutes = (time.perf_counter() - t0) / 60
    model = load_checkpoint(Path(args.out) / "best.safetensors").model
    scores = pd.concat([repeat_scores(model, s) for s in cohort])
    scores.to_csv(Path(args.out) / "oracle_scores.csv", index=False)
    log = [json.loads(line) for line in (Path(args.out) / "metrics.jsonl").read_text().splitlines()]
    summary = {
        "steps": result.steps,
        "train_minutes_this_call": round(train_minutes, 1),
        "best_step": result.best_step,
        "best_validation_correlation": round(result.best_score, 4),
        "median_frames_per_s": round(float(np.median([r["frames_per_s"] for r in log])), 1),
        "median_cc_norm": round(float(np.nanmedian(scores.cc_norm)), 4),
        "median_cc_abs": round(float(np.nanmedian(scores.cc_abs)), 4),
        "median_cc_max": round(float(np.nanmedian(scores.cc_max)), 4),
        "median_cc_norm_by_session": scores.groupby("session_id")
        .cc_norm.median()
        .round(4)
        .to_dict(),
    }
    print(json.dumps(summary, indent=2))
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
