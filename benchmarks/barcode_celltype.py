"""Issue 17 (issue 7's gap): how well do a trained twin's barcodes predict cell type, against a
classifier given the simulator's true functional parameters?

For each run folder (``best.safetensors``) and its simulated cohort, runs
``cortexfm.anatomy.run.simulated_anatomy`` (nested cross-validated, class-balanced logistic
regression; balanced accuracy) and prints barcode, true-parameter, classical-tuning and
position-only accuracies and the gap the issue asks to close (barcode within 0.15 of the
true-parameter classifier).

    python benchmarks/barcode_celltype.py RUN=COHORT [RUN=COHORT ...]
    python benchmarks/barcode_celltype.py bench_runs/ood_cpu/gabor-base=bench_data/gabor4x500
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="RUN_FOLDER=COHORT_FOLDER")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from cortexfm.anatomy.run import simulated_anatomy
    from cortexfm.data import open_cohort
    from cortexfm.train import load_checkpoint

    for pair in args.runs:
        run, data = pair.split("=", 1)
        model = load_checkpoint(Path(run) / "best.safetensors").model
        summary = simulated_anatomy(model, open_cohort(data), Path(run) / "anatomy")
        scores = {k: v["balanced_accuracy"] for k, v in summary["classification"].items()}
        gap = scores["true functional parameters"] - scores["barcode"]
        print(
            json.dumps(
                {
                    "run": run,
                    "cell_types": len(summary["cell_types"]),
                    **{k: round(v, 3) for k, v in scores.items()},
                    "barcode_chance": round(summary["classification"]["barcode"]["chance"], 3),
                    "gap_to_true_parameters": round(gap, 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
