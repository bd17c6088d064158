"""Issue 17: on natural movies, has the twin learned its neurons' *oriented* drive at all?

The Gabor-energy generator (``cortexfm.sim.response``) mixes an oriented drive (even/odd
Gabor filters, simple or complex) with an unoriented centre-surround transient, weighted by
each neuron's ``untuned_fraction``. On the held-out natural test clips (each distinct clip
once, with its recorded behaviour and gaze), the generator is re-run with the fraction set to
0 (oriented only) and to 1 (unoriented only). Per reliable neuron (recorded CC_max >= 0.5):

- ``r with truth``: the twin's prediction against the generator's full noise-free rate;
- ``partial r``: the twin's prediction against the oriented-only rate, both with the
  unoriented-only rate regressed out (what of the oriented drive the unoriented one does not
  carry). The full rate scores about 1 here; a twin that fits the unoriented transient only,
  about 0. This is the in-distribution root of extrapolation to gratings.

Only the Gabor-energy generator has this decomposition.

    python benchmarks/oriented_drive.py bench_runs/ood_e2/gabor-mask3 --data bench_data/gabor4x500
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from cortexfm.data import open_cohort
from cortexfm.insilico.validation import recorded_cc_max
from cortexfm.metrics import correlation
from cortexfm.sim.behavior import gaze_from_pupil_center
from cortexfm.sim.cohort import load_ground_truth, rebuild_simulator
from cortexfm.train import load_checkpoint

BURN_IN = 20


def residual(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per column, ``y`` less its least-squares fit on ``x`` (both ``[time, neurons]``)."""
    x, y = x - x.mean(0), y - y.mean(0)
    return y - x * (x * y).sum(0) / ((x * x).sum(0) + 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run folder with best.safetensors")
    parser.add_argument("--data", required=True, help="the Gabor-energy cohort it was trained on")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_checkpoint(f"{args.run}/best.safetensors").model.eval()
    session = open_cohort(args.data)[0]
    simulator = rebuild_simulator(session.path)
    if simulator.generator != "gabor":
        raise SystemExit(f"{args.data}: generator {simulator.generator!r}; needs 'gabor'")
    truth, _ = load_ground_truth(session.path)
    table = simulator.population.table
    original = table["untuned_fraction"].copy()

    def rates(fraction: float | None, *inputs) -> np.ndarray:
        table["untuned_fraction"] = original if fraction is None else fraction
        try:
            return simulator.rates(*inputs)[BURN_IN:]
        finally:
            table["untuned_fraction"] = original

    seen, full, oriented, unoriented, twin = set(), [], [], [], []
    for t in range(len(session.stimulus_types)):
        if session.stimulus_types[t] != "natural_movie" or session.tiers[t] == "train":
            continue
        trial = session.trial(t)
        key = trial.video[::7, ::5, ::5].tobytes()  # each distinct clip once
        if key in seen:
            continue
        seen.add(key)
        inputs = (
            trial.video,
            np.asarray(trial.behavior),
            gaze_from_pupil_center(trial.pupil_center),
        )
        full.append(rates(None, *inputs))
        oriented.append(rates(0.0, *inputs))
        unoriented.append(rates(1.0, *inputs))
        with torch.no_grad():
            prediction, _ = model.predict(
                session.session_id, trial.video, trial.behavior, trial.pupil_center
            )
        twin.append(prediction.numpy()[BURN_IN:])
    full, oriented, unoriented, twin = map(np.concatenate, (full, oriented, unoriented, twin))
    target = residual(oriented, unoriented)
    r_truth = correlation(twin, full)
    partial_twin = correlation(residual(twin, unoriented), target)
    partial_full = correlation(residual(full, unoriented), target)
    reliable = recorded_cc_max(session) >= 0.5
    classes = np.where(truth["complex"], "complex", "simple")
    result = {"run": args.run, "clips": len(seen), "frames": len(full)}
    for cls in ("simple", "complex"):
        m = reliable & (classes == cls)
        result[cls] = {
            "neurons": int(m.sum()),
            "r_with_truth": round(float(np.nanmedian(r_truth[m])), 3),
            "partial_r_oriented_twin": round(float(np.nanmedian(partial_twin[m])), 3),
            "partial_r_oriented_truth": round(float(np.nanmedian(partial_full[m])), 3),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
