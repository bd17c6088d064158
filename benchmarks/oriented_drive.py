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
- ``partial r, orientation``: the same with the neuron's oriented-only rate at the
  *orthogonal* orientation (carrier rotated by 90 deg) regressed out as well: what depends on
  the preferred orientation itself, not on oriented contrast energy at any orientation. A twin
  that has learned local energy but no orientation scores about 0 here.

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


def residual(y: np.ndarray, *xs: np.ndarray) -> np.ndarray:
    """Per column, ``y`` less its least-squares fit on the columns of ``xs`` (each
    ``[time, neurons]``; neuron ``n``'s regressors are column ``n`` of each)."""
    y = y - y.mean(0)
    x = np.stack([v - v.mean(0) for v in xs], -1)  # [time, neurons, k]
    gram = np.einsum("tnk,tnj->nkj", x, x) + 1e-9 * np.eye(len(xs))
    beta = np.linalg.solve(gram, np.einsum("tnk,tn->nk", x, y)[..., None])[..., 0]
    return y - np.einsum("tnk,nk->tn", x, beta)


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
    orientation = table["orientation"].copy()

    def rates(fraction: float | None, *inputs, rotate: float = 0.0) -> np.ndarray:
        table["untuned_fraction"] = original if fraction is None else fraction
        if rotate:
            table["orientation"] = (orientation + rotate) % 180
            simulator.build_filters()
        try:
            return simulator.rates(*inputs)[BURN_IN:]
        finally:
            table["untuned_fraction"] = original
            if rotate:
                table["orientation"] = orientation
                simulator.build_filters()

    seen, full, oriented, unoriented, orthogonal, twin = set(), [], [], [], [], []
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
        orthogonal.append(rates(0.0, *inputs, rotate=90.0))
        with torch.no_grad():
            prediction, _ = model.predict(
                session.session_id, trial.video, trial.behavior, trial.pupil_center
            )
        twin.append(prediction.numpy()[BURN_IN:])
    full, oriented, unoriented, orthogonal, twin = map(
        np.concatenate, (full, oriented, unoriented, orthogonal, twin)
    )
    target = residual(oriented, unoriented)
    r_truth = correlation(twin, full)
    partial_twin = correlation(residual(twin, unoriented), target)
    partial_full = correlation(residual(full, unoriented), target)
    specific = residual(oriented, unoriented, orthogonal)
    specific_twin = correlation(residual(twin, unoriented, orthogonal), specific)
    specific_full = correlation(residual(full, unoriented, orthogonal), specific)
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
            "partial_r_orientation_twin": round(float(np.nanmedian(specific_twin[m])), 3),
            "partial_r_orientation_truth": round(float(np.nanmedian(specific_full[m])), 3),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
