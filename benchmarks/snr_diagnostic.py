"""Does the visual pathway learn when the data are clean? A diagnostic for issue 4.

Simulates 2 mice x 300 neurons x 6 min with 25x the default firing rate and no shared latent
noise, trains the ``cpu`` preset for 5 minutes, and scores the oracle clips. Compare with the
default-noise cohort of ``benchmarks/train_accuracy.py``.

    python benchmarks/snr_diagnostic.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cortexfm.data import open_cohort
from cortexfm.evaluate.repeats import repeat_scores
from cortexfm.sim import SimulationConfig, simulate_cohort
from cortexfm.sim.response import NoiseConfig
from cortexfm.train import load_checkpoint, load_run_config, train


def main(data: str = "bench_data/snr_clean", out: str = "bench_runs/snr_clean") -> None:
    config = SimulationConfig(
        n_neurons=300,
        train_minutes=6,
        oracle_clips=2,
        repeats=6,
        ood_clips=0,
        noise=NoiseConfig(mean_rate=1.0, latent_scale=0.0),
    )
    simulate_cohort(data, 2, config, seed=0, progress=False)
    cohort = open_cohort(data)
    run = load_run_config(
        None,
        ["train.max_minutes=5", "train.max_steps=450", "train.steps_per_epoch=50"],
        preset_name="cpu",
    )
    result = train(cohort, run, out, progress=False)
    model = load_checkpoint(f"{out}/best.safetensors").model
    scores = pd.concat([repeat_scores(model, s) for s in cohort])
    print(
        f"steps {result.steps}, best validation r {result.best_score:.3f}, median CC_norm "
        f"{np.nanmedian(scores.cc_norm):.3f}, CC_abs {np.nanmedian(scores.cc_abs):.3f}, "
        f"CC_max {np.nanmedian(scores.cc_max):.3f}"
    )


if __name__ == "__main__":
    main()
