"""Issue 17: is the twin's under-response to full-field gratings about contrast or about size?

Shows a trained twin (mouse at rest, eye centred) and its simulator's noise-free rates the
same drifting gratings (8 directions, 0.04 cycles/deg, 2 Hz, 2 s each) under Gaussian
apertures of s.d. 8 and 20 degrees and full field, at contrasts 0.1, 0.3 and 1, centred on
the population's median receptive-field centre, and dead-leaves natural movies as the
reference. For neurons whose receptive field lies within ``--radius`` (12) degrees of the aperture
centre:

- ``r``: correlation of the twin's trace with the true rate (all directions, after burn-in);
- ``gain``: s.d. of the twin's trace / the truth's, relative to the same ratio on natural
  movies (1: the twin's response grows with this stimulus as the neuron's does; < 1: it
  under-responds);
- ``drive``: the truth's s.d. on this condition / on natural movies (how hard it is driven);
- inside the core: the rms of the last feed-forward layer (relative to natural movies), the
  s.d. over time of the ConvLSTM output, and the share of saturated cell states.

Only for measurement: no parametric stimulus enters training or model selection.

    python benchmarks/contrast_size_probe.py bench_runs/ood_curve/gabor-default \\
        --data bench_data/gabor4x500
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cortexfm.data import open_cohort
from cortexfm.sim.behavior import RESTING_BEHAVIOR
from cortexfm.sim.cohort import load_ground_truth, rebuild_simulator
from cortexfm.stimuli import Monitor, drifting_gabor, natural_movie
from cortexfm.train import load_checkpoint

FRAMES = 60
BURN_IN = 16
DIRECTIONS = np.arange(0, 360, 45.0)


def conditions(monitor: Monitor, centre: tuple[float, float]) -> dict[str, np.ndarray]:
    """Name -> videos ``[stimuli, time, H, W]`` (grey levels)."""
    rng = np.random.default_rng(0)
    out = {"natural": np.stack([natural_movie(monitor, FRAMES, rng).frames for _ in range(8)])}
    for size in (8.0, 20.0, np.inf):
        for contrast in (0.1, 0.3, 1.0):
            name = f"size {'full' if np.isinf(size) else int(size)} contrast {contrast}"
            out[name] = np.stack(
                [
                    drifting_gabor(monitor, FRAMES, d, 0.04, 2.0, size, centre, contrast).frames
                    for d in DIRECTIONS
                ]
            )
    return out


@torch.no_grad()
def inside_core(model, session_id: str, videos: np.ndarray) -> dict:
    """Feed-forward rms, ConvLSTM output s.d. over time and cell saturation."""
    modules = model.session(session_id)
    behavior, pupil = (
        np.tile(x, (len(videos), videos.shape[1], 1)) for x in model.resting_inputs(session_id)
    )
    x = [torch.as_tensor(a, dtype=torch.float32) for a in (videos, behavior, pupil)]
    video, behavior_t, pupil_t = modules.normalization.inputs(*x)
    retina = modules.perspective(video, pupil_t)
    modulation, _ = modules.modulation(behavior_t)
    core = model.core
    h, _ = core.feedforward(retina)
    out = {"ff_rms": float(h[:, BURN_IN:].pow(2).mean().sqrt())}
    if core.recurrent is not None:
        ff = core.normalization(h) if core.normalization is not None else h
        lstm = core.recurrent
        gates_x = lstm.input_gates(ff, modulation)
        hs = torch.zeros(len(videos), lstm.hidden, *ff.shape[-2:])
        cs = torch.zeros_like(hs)
        outputs, saturated = [], []
        for t, step in enumerate(gates_x.unbind(1)):
            hs, cs, _ = lstm.step(step, hs, cs)
            if t >= BURN_IN:
                outputs.append(hs)
                saturated.append((torch.tanh(cs).abs() > 0.95).float().mean().item())
        hs = torch.stack(outputs, 1)  # [b, t, C, h, w]
        out["lstm_sd_time"] = float(hs.std(1).mean())
        out["lstm_rms"] = float(hs.pow(2).mean().sqrt())
        out["cell_saturation"] = float(np.mean(saturated))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", help="a training run folder (best.safetensors)")
    parser.add_argument("--data", required=True, help="its simulated cohort")
    parser.add_argument("--session", type=int, default=0)
    parser.add_argument("--checkpoint", default="best.safetensors")
    parser.add_argument("--radius", type=float, default=12, help="degrees around the centre")
    args = parser.parse_args()
    torch.set_num_threads(2)
    session = open_cohort(args.data)[args.session]
    sid = session.session_id
    model = load_checkpoint(Path(args.run) / args.checkpoint, "cpu").model
    truth, _ = load_ground_truth(session.path)
    simulator = rebuild_simulator(session.path)
    centre = (float(truth.rf_x.median()), float(truth.rf_y.median()))
    near = np.hypot(truth.rf_x - centre[0], truth.rf_y - centre[1]).to_numpy() <= args.radius
    videos = conditions(simulator.monitor, centre)
    rows, reference = [], {}
    for name, clips in videos.items():
        frames = clips.reshape(-1, *clips.shape[2:])
        rest = np.tile(RESTING_BEHAVIOR, (len(frames), 1))
        true = simulator.rates(frames, rest, np.zeros((len(frames), 2)))
        true = true.reshape(len(clips), FRAMES, -1)[:, BURN_IN:].reshape(-1, true.shape[-1])
        behavior, pupil = (np.tile(x, (len(clips), FRAMES, 1)) for x in model.resting_inputs(sid))
        twin, _ = model.predict(sid, clips.astype(np.float32), behavior, pupil)
        twin = twin[:, BURN_IN:].reshape(-1, twin.shape[-1]).numpy()
        sd_true, sd_twin = true.std(0), twin.std(0)
        tc, wc = true - true.mean(0), twin - twin.mean(0)
        r = (tc * wc).sum(0) / np.sqrt((tc**2).sum(0) * (wc**2).sum(0) + 1e-12)
        core = inside_core(model, sid, clips)
        if name == "natural":
            reference = {"sd_true": sd_true, "ratio": sd_twin / np.maximum(sd_true, 1e-9), **core}
        ratio = sd_twin / np.maximum(sd_true, 1e-9)
        rows.append(
            {
                "condition": name,
                "r": float(np.median(r[near])),
                "gain": float(np.median((ratio / reference["ratio"])[near])),
                "drive": float(np.median((sd_true / reference["sd_true"])[near])),
                "ff_rms": core["ff_rms"] / reference["ff_rms"],
                "lstm_sd_time": core.get("lstm_sd_time", np.nan),
                "cell_saturation": core.get("cell_saturation", np.nan),
            }
        )
    table = pd.DataFrame(rows).round(3)
    table.to_csv(Path(args.run) / "contrast_size_probe.csv", index=False)
    print(f"{int(near.sum())} neurons within {args.radius:g} deg of {np.round(centre, 1)}")
    print(table.to_string(index=False))
    print(json.dumps({"run": args.run, "rows": rows}))


if __name__ == "__main__":
    main()
