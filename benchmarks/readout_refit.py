"""Is a twin's tuning limited by its barcodes or by its core? Refit the readouts, core frozen.

For one simulated session of a trained run, each neuron's barcode and bias are refitted with
everything else frozen (full-batch L-BFGS on the Poisson loss, the neuron's learned position
and behavioural gain kept), on the first 80 % of ``--frames`` training frames, and the model
is scored with them: held-out correlation on the remaining 20 %, CC_norm per stimulus family
on the test clips, and in-silico gOSI / gDSI against the generator's truth
(``ood_generalisation.insilico_tuning``).

- ``--target responses``: refit to the recorded (noisy) responses: are the learned barcodes
  what the data determine?
- ``--target rates``: refit to the simulator's noise-free rates for the same frames (its
  behaviour and gaze): the best any linear readout of this core can do. If the twin's neurons
  are still untuned on gratings, the core is the limit, not the barcodes.
- ``--features feedforward|both``: read the last feed-forward layer (what ``core.skip`` adds)
  instead of, or beside, the ConvLSTM.
- ``--spatial-kernel K``: refit a readout with a K x K spatial mask around each neuron's
  position (``model.readout.spatial_kernel``, starting as the point) beside the barcode: can
  this core's features at neighbouring positions express what one point cannot? Holds
  ``frames x C x neurons x K^2`` features in memory: use ``--frames 4000`` for K = 3.

    python benchmarks/readout_refit.py bench_runs/ood_cpu/gabor-gouniform \
        --data bench_data/gabor4x500 --target rates
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))


def collect(model, session, target: str, frames: int, kernel: int = 1, burn_in: int = 10):
    """Features at each neuron's position and its ``kernel x kernel`` neighbours
    ``[t, C, n, kernel^2]``, log gains ``[t, n]``, targets."""
    from cortexfm.sim.behavior import gaze_from_pupil_center
    from cortexfm.sim.cohort import rebuild_simulator

    sid = session.session_id
    readout = model.session(sid).readout
    norm = model.session(sid).normalization
    simulator = rebuild_simulator(session.path) if target == "rates" else None
    features, gains, targets, total = [], [], [], 0
    positions = readout.positions(model.position_map)  # [n, 2]
    spacing = torch.arange(kernel, dtype=torch.float32) - kernel // 2
    dy, dx = torch.meshgrid(spacing, spacing, indexing="ij")
    for trial_id in session.trials_in("train"):
        if total >= frames:
            break
        trial = session.trial(int(trial_id))
        inputs = [
            torch.as_tensor(getattr(trial, m))[None] for m in ("video", "behavior", "pupil_center")
        ]
        f, modulation, _, _ = model._features(sid, *norm.inputs(*inputs), None)
        f = f[0, burn_in:]
        h, w = f.shape[-2:]
        offsets = torch.stack([dx.flatten() * 2 / (w - 1), dy.flatten() * 2 / (h - 1)], -1)
        grid = (positions[:, None] + offsets).expand(len(f), -1, -1, -1)  # [t, n, k^2, 2]
        features.append(F.grid_sample(f, grid, align_corners=True))
        gains.append(readout.log_gain(modulation)[0, burn_in:])
        if simulator is not None:
            gaze = gaze_from_pupil_center(trial.pupil_center)
            y = simulator.rates(trial.video, trial.behavior, gaze)[burn_in:]
        else:
            y = trial.responses[burn_in:]
        targets.append(norm.targets(torch.as_tensor(y, dtype=torch.float32)))
        total += len(f)
    return torch.cat(features), torch.cat(gains), torch.cat(targets)


def say(message: str) -> None:
    """Progress on stderr (the result is the JSON on stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run folder with best.safetensors")
    parser.add_argument("--data", required=True, help="the simulated cohort it was trained on")
    parser.add_argument("--target", choices=["responses", "rates"], default="rates")
    parser.add_argument(
        "--features", choices=["recurrent", "feedforward", "both"], default="recurrent"
    )
    parser.add_argument("--frames", type=int, default=15000)
    parser.add_argument("--spatial-kernel", type=int, default=1, help="odd; 1: the point")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from ood_generalisation import insilico_tuning

    from cortexfm.data import open_cohort
    from cortexfm.evaluate.repeats import evaluate_session
    from cortexfm.model.loss import output_nonlinearity
    from cortexfm.train import load_checkpoint

    torch.set_num_threads(args.threads)
    model = load_checkpoint(Path(args.run) / "best.safetensors").model.eval()
    output = model.config.readout.output
    session = open_cohort(args.data)[0]
    readout = model.session(session.session_id).readout
    hidden = model.core.config.hidden
    if args.features != "recurrent":  # read the ConvLSTM and the last feed-forward layer
        model.core.config = dataclasses.replace(model.core.config, skip=True)
        model.core.out_channels = hidden + model.core.layers[-1].temporal.out_channels
    t0 = time.perf_counter()
    with torch.no_grad():
        x, log_gain, y = collect(model, session, args.target, args.frames, args.spatial_kernel)
    say(f"features {tuple(x.shape)} collected in {(time.perf_counter() - t0) / 60:.1f} min")
    centre = args.spatial_kernel**2 // 2
    channels = x.shape[1]
    mask = torch.zeros(channels)
    mask[:hidden] = args.features in ("recurrent", "both")
    mask[hidden:] = args.features in ("feedforward", "both")
    n_fit = int(0.8 * len(x))
    fit, held = slice(0, n_fit), slice(n_fit, None)

    def predict(w, b, part, m=None):
        if m is None:  # the point readout: the centre of the neighbourhood
            drive = torch.einsum("tcn,nc->tn", x[part, :, :, centre], w) + b
        else:
            drive = torch.einsum("tcnk,nc,nk->tn", x[part], w, m) + b
        return output_nonlinearity(drive, output, log_gain[part])

    def held_out_r(w, b, m=None) -> float:
        p, t = predict(w, b, held, m), y[held]
        p, t = p - p.mean(0), t - t.mean(0)
        return float(((p * t).sum(0) / (p.norm(dim=0) * t.norm(dim=0) + 1e-9)).median())

    learned = torch.zeros(readout.weight.shape[0], channels)
    learned[:, :hidden] = readout.barcodes().detach()
    bias = readout.bias.detach().clone()
    learned_mask = None  # the run's own spatial mask, if it has one and the neighbours are read
    if readout.mask is not None and readout.mask.shape[1] == args.spatial_kernel**2:
        learned_mask = readout.mask.detach().clone()
    w, b = learned.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    spatial = None
    if args.spatial_kernel > 1:  # the mask starts as the point readout
        spatial = torch.zeros(len(b), args.spatial_kernel**2)
        spatial[:, centre] = 1.0
        spatial.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [w, b] + ([spatial] if spatial is not None else []),
        lr=1,
        max_iter=300,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    evaluations = 0

    def closure():
        nonlocal evaluations
        optimizer.zero_grad()
        p = predict(w * mask, b, fit, spatial)
        loss = (p - y[fit] * torch.log(p + 1e-8)).mean()
        loss.backward()
        evaluations += 1
        if evaluations % 25 == 0:
            say(f"L-BFGS evaluation {evaluations}: loss {float(loss):.5f}")
        return loss

    optimizer.step(closure)
    say(f"fitted ({evaluations} evaluations); scoring the test clips and in-silico tuning")
    w, b = (w * mask).detach(), b.detach()
    spatial = spatial.detach() if spatial is not None else None
    result = {
        "run": args.run,
        "target": args.target,
        "features": args.features,
        "spatial_kernel": args.spatial_kernel,
        "frames": len(x),
        "held_out_r": {
            "learned": held_out_r(learned, bias, learned_mask),
            "refit": held_out_r(w, b, spatial),
        },
        "cosine_refit_learned": float(
            F.cosine_similarity(w[:, :hidden], learned[:, :hidden], dim=1).median()
        ),
    }
    with torch.no_grad():
        readout.weight = torch.nn.Parameter(w)
        readout.barcode_gain = None  # w is the applied barcode
        readout.bias.copy_(b)
        if spatial is not None:
            readout.config = dataclasses.replace(readout.config, spatial_kernel=args.spatial_kernel)
            readout.mask = torch.nn.Parameter(spatial)
    table, _ = evaluate_session(model, session)
    result["cc_norm"] = table.groupby("stimulus_type").cc_norm.median().round(3).to_dict()
    result["insilico"] = insilico_tuning(model, session)
    result["minutes"] = round((time.perf_counter() - t0) / 60, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
