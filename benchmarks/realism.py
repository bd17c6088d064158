"""Simulated vs real mice, side by side (quantiles 10/25/50/75/90).

- gOSI / gDSI: simulated neurons' 8-direction drifting-grating tuning (noise-free ground truth,
  computed like the real values) vs real mice B, C, E (Sensorium 2023, 8-direction Gabors) and
  MICrONS scan 4-7. Targets: medians within 0.05 of the real Sensorium medians.
- CC_max over 10 repeats of natural clips. Target: median in [0.4, 0.8].
- cell-type proportions (simulated vs MICrONS).

Usage: python benchmarks/realism.py [--neurons 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from cortexfm.data import open_session, repeat_groups
from cortexfm.evaluate import cc_max
from cortexfm.sim import SimulationConfig, load_ground_truth, simulate_mouse
from cortexfm.sim.calibration import real_selectivity, shared_data_dir
from cortexfm.sim.response import KERNEL_FRAMES

Q = [0.1, 0.25, 0.5, 0.75, 0.9]


def row(name: str, values: np.ndarray) -> str:
    q = np.nanquantile(values, Q)
    return f"  {name:<28}" + "".join(f"{v:>8.3f}" for v in q)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--neurons", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    config = SimulationConfig(
        n_neurons=args.neurons,
        train_minutes=0.5,
        oracle_clips=4,
        repeats=10,
        ood_clips=0,
        ood_families=(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = simulate_mouse(Path(tmp) / "mouse", config, seed=args.seed)
        truth, _ = load_ground_truth(path)
        s = open_session(path)
        ceilings = np.stack(
            [
                cc_max(np.stack([s.read(int(i), "responses")[KERNEL_FRAMES:] for i in ids]))
                for ids in repeat_groups(s, ["oracle"]).values()
            ]
        ).mean(0)
    real = real_selectivity() or {}
    print(f"{'quantile':<30}" + "".join(f"{q:>8.2f}" for q in Q))
    print("gOSI (8 directions)")
    print(row("simulated", truth.true_gOSI_8dir))
    for key, name in (
        ("sensorium_osi", "real Sensorium B, C, E"),
        ("microns_gosi", "real MICrONS scan 4-7"),
    ):
        if key in real:
            print(row(name, real[key]))
    print("gDSI (8 directions)")
    print(row("simulated", truth.true_gDSI_8dir))
    for key, name in (
        ("sensorium_dsi", "real Sensorium B, C, E"),
        ("microns_gdsi", "real MICrONS scan 4-7"),
    ):
        if key in real:
            print(row(name, real[key]))
    print("CC_max (10 repeats, natural clips)")
    print(row("simulated", ceilings))
    if "sensorium_osi" in real:
        d_osi = np.median(truth.true_gOSI_8dir) - np.median(real["sensorium_osi"])
        d_dsi = np.median(truth.true_gDSI_8dir) - np.median(real["sensorium_dsi"])
        print(
            f"median differences sim - real: gOSI {d_osi:+.3f}, gDSI {d_dsi:+.3f} (targets |d| <= 0.05)"
        )
    print(f"median CC_max {np.nanmedian(ceilings):.3f} (target 0.4-0.8)")
    sim_types = truth.cell_type.value_counts(normalize=True)
    root = shared_data_dir()
    micro = (
        root / "real/microns/nriedman_cells_no_repeats_excitatory_celltypes.csv" if root else None
    )
    if micro is not None and micro.exists():
        real_types = pd.read_csv(micro, usecols=["cell_type"]).cell_type.value_counts(
            normalize=True
        )
        print("cell-type proportions (simulated vs MICrONS):")
        for t in real_types.index:
            print(f"  {t:<8}{sim_types.get(t, 0):>8.3f}{real_types[t]:>8.3f}")


if __name__ == "__main__":
    main()
