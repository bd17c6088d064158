"""Issue 5's data-efficiency figure: foundation transfer vs individual models on new mice.

Simulates held-out mice (mouse indices after the foundation cohort's, same simulation settings
and seed, so the same "species" but animals the foundation never saw), then runs
``cortexfm data-efficiency`` over --minutes x --seeds with both models given the same step
budget, two fits at a time on a 2-core machine.

    python benchmarks/train_accuracy.py --minutes 44          # the foundation (mice 0-3)
    python benchmarks/data_efficiency.py                      # mice 4 and 5

The foundation checkpoint defaults to the one train_accuracy.py writes.

Measured (2026-11-28, 2 CPU cores, foundation = the 42.9-minute model of train_accuracy.py;
48 fits of 100 steps each in 72 min; mean +/- s.e.m. over 2 mice x 3 seeds of the median
CC_norm on the held-out mice's repeated test clips):

    minutes      2              4              8              all (20)
    foundation   0.508 +/- .014 0.571 +/- .011 0.594 +/- .022 0.601 +/- .016
    individual   0.139 +/- .023 0.283 +/- .029 0.340 +/- .032 0.295 +/- .033

Both models get the same 100 steps: the individual model is far from converged at that
budget (its validation correlation still rises at step 100), so the gap overstates what a
fully trained individual model would show.
"""

from __future__ import annotations

import argparse
import time

from cortexfm.data import open_cohort
from cortexfm.evaluate.efficiency import data_efficiency, summarize_efficiency
from cortexfm.sim import SimulationConfig, simulate_cohort


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--foundation", default="bench_runs/train_accuracy/best.safetensors")
    parser.add_argument("--data", default="bench_data/heldout2x1000x20")
    parser.add_argument("--out", default="bench_runs/data_efficiency")
    parser.add_argument("--first-mouse", type=int, default=4, help="index after the foundation's")
    parser.add_argument("--mice", type=int, default=2)
    parser.add_argument("--neurons", type=int, default=1000)
    parser.add_argument("--sim-minutes", type=float, default=20)
    parser.add_argument("--minutes", default="2,4,8,all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[
            "train.max_steps=100",
            "train.steps_per_epoch=50",
            "train.warmup_steps=20",
            "train.position_search_steps=[0, 50]",
        ],
        help="train.* overrides for every fit",
    )
    args = parser.parse_args()

    config = SimulationConfig(n_neurons=args.neurons, train_minutes=args.sim_minutes)
    simulate_cohort(args.data, args.mice, config, seed=0, first_mouse=args.first_mouse)
    t0 = time.perf_counter()
    table = data_efficiency(
        args.foundation,
        open_cohort(args.data),
        args.out,
        minutes=[None if m == "all" else float(m) for m in args.minutes.split(",")],
        seeds=[int(s) for s in args.seeds.split(",")],
        overrides=args.overrides,
        workers=args.workers,
    )
    print(f"{len(table)} fits in {(time.perf_counter() - t0) / 60:.1f} min (this call)")
    print(summarize_efficiency(table).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    pivot = table.pivot_table(
        index=["session_id", "seed"], columns=["model", "minutes"], values="median_cc_norm"
    )
    print(pivot.round(3).to_string())


if __name__ == "__main__":
    main()
