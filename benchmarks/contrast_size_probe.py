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

``--tf-sweep`` asks where the drift's modulation is lost: full-field gratings at contrast
0.3 drifting at 0.5, 1, 2 and 4 Hz (three cycles after the burn-in), and per frequency the
truth's and the twin's ``F1/F0`` per cell class at the preferred direction, and inside the
core the ``F1 share`` (the share of each unit's temporal variance at the drift frequency,
median over channels and positions) of the last feed-forward layer and of the ConvLSTM's
output, with their temporal s.d. relative to natural movies. A share that falls from the
feed-forward layer to the ConvLSTM at every frequency says the recurrence discards the phase;
one that falls only at the fast drifts says it low-passes.

``--sf-sweep`` asks how the under-response depends on spatial frequency: full-field gratings at
contrast 0.3 drifting at 2 Hz, at 0.01-0.13 cycles/deg, and per frequency the truth's and the
twin's response s.d. relative to natural movies (``drive``, ``twin``), their ratio (``gain``),
the correlation of the traces (``r``, also per cell class) and inside the core the temporal s.d.
of the last feed-forward layer and of the ConvLSTM's output relative to natural movies (median
over channels at the central half of the map). A twin whose ``gain`` falls with spatial
frequency while its feed-forward layer still follows the grating has the finer structure in its
features but does not read it out. ``r on unit`` / ``r between units`` split ``r`` by where
each neuron's readout position lies on the feature map (the third nearest to a map unit, the
third farthest): bilinear sampling between units averages features whose phase differs at
high spatial frequency.

``--by-class`` adds, per cell class (the generator's ground truth), the grating conditions'
response harmonics at each neuron's preferred direction (the truth's), over the last three
cycles: ``F1/F0`` (modulation at the drift frequency: > 1 for simple and linear
centre-surround cells, < 1 for complex cells) and ``F2/F1`` (frequency doubling: a response
to both contrast polarities) for the truth and the twin, and ``tuning r``, the correlation of
the twin's mean response over the 8 directions with the truth's.

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
from cortexfm.metrics import correlation
from cortexfm.sim.behavior import RESTING_BEHAVIOR
from cortexfm.sim.cohort import load_ground_truth, rebuild_simulator
from cortexfm.stimuli import Monitor, drifting_gabor, natural_movie
from cortexfm.train import load_checkpoint

BURN_IN = 16
TEMPORAL_FREQUENCY = 2.0
CYCLE_FRAMES = 15  # one cycle at 2 Hz and 30 frames/s
FRAMES = BURN_IN + 3 * CYCLE_FRAMES  # three whole cycles after the burn-in
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
                    drifting_gabor(
                        monitor, FRAMES, d, 0.04, TEMPORAL_FREQUENCY, size, centre, contrast
                    ).frames
                    for d in DIRECTIONS
                ]
            )
    return out


@torch.no_grad()
def resting_retina(model, session_id: str, videos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``videos [clips, time, H, W]`` (grey levels) seen at rest with the eye centred -> the
    retina ``[clips, time, h, w]`` and the modulation features ``[clips, time, M]``."""
    modules = model.session(session_id)
    behavior, pupil = (
        np.tile(x, (len(videos), videos.shape[1], 1)) for x in model.resting_inputs(session_id)
    )
    x = [torch.as_tensor(a, dtype=torch.float32) for a in (videos, behavior, pupil)]
    video, behavior_t, pupil_t = modules.normalization.inputs(*x)
    modulation, _ = modules.modulation(behavior_t)
    return modules.perspective(video, pupil_t), modulation


@torch.no_grad()
def inside_core(model, session_id: str, videos: np.ndarray) -> dict:
    """Feed-forward rms, ConvLSTM output s.d. over time and cell saturation."""
    retina, modulation = resting_retina(model, session_id, videos)
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


def harmonics(
    traces: np.ndarray, cycle_frames: int = CYCLE_FRAMES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F0, F1 and F2 amplitudes of ``traces [..., time]`` over their last three cycles."""
    x = traces[..., -3 * cycle_frames :]
    t = np.arange(x.shape[-1]) / cycle_frames
    amplitude = [np.abs((x * np.exp(-2j * np.pi * k * t)).mean(-1)) * 2 for k in (1, 2)]
    return x.mean(-1), amplitude[0], amplitude[1]


def cell_classes(truth: pd.DataFrame) -> np.ndarray:
    if "cell_class" in truth:  # the subunit generator
        return truth.cell_class.astype(str).to_numpy()
    return np.where(truth["complex"], "complex", "simple")


def by_class(
    name: str,
    true: np.ndarray,
    twin: np.ndarray,
    classes: np.ndarray,
    near,
    cycle_frames: int = CYCLE_FRAMES,
) -> list:
    """Per cell class: harmonics at the truth's preferred direction, tuning r.

    ``true``, ``twin``: ``[directions, time, neurons]`` after burn-in."""
    rows = []
    f0, f1, f2 = harmonics(np.moveaxis(true, 1, -1), cycle_frames)  # [directions, neurons]
    g0, g1, g2 = harmonics(np.moveaxis(twin, 1, -1), cycle_frames)
    best = f0.argmax(0)
    pick = np.arange(true.shape[-1])
    mean_true, mean_twin = true.mean(1), twin.mean(1)  # [directions, neurons]
    tc, wc = mean_true - mean_true.mean(0), mean_twin - mean_twin.mean(0)
    tuning_r = (tc * wc).sum(0) / np.sqrt((tc**2).sum(0) * (wc**2).sum(0) + 1e-12)
    eps = 1e-9
    for cls in np.unique(classes):
        m = (classes == cls) & near
        if not m.any():
            continue
        b, k = best[m], pick[m]
        rows.append(
            {
                "condition": name,
                "class": cls,
                "neurons": int(m.sum()),
                "F1/F0 true": float(np.median(f1[b, k] / (f0[b, k] + eps))),
                "F1/F0 twin": float(np.median(g1[b, k] / (g0[b, k] + eps))),
                "F2/F1 true": float(np.median(f2[b, k] / (f1[b, k] + eps))),
                "F2/F1 twin": float(np.median(g2[b, k] / (g1[b, k] + eps))),
                "tuning r": float(np.median(tuning_r[m])),
            }
        )
    return rows


@torch.no_grad()
def core_traces(model, session_id: str, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The last feed-forward layer's and the ConvLSTM's outputs ``[clips, C, h, w, time]``."""
    retina, modulation = resting_retina(model, session_id, videos)
    core = model.core
    ff, _ = core.feedforward(retina)
    features, _ = core(retina, modulation)
    return (
        ff.movedim(1, -1)[..., BURN_IN:].numpy(),
        features[:, :, : core.config.hidden].movedim(1, -1)[..., BURN_IN:].numpy(),
    )


def f1_share(traces: np.ndarray, cycle_frames: int) -> float:
    """Median over units of the share of the temporal variance at the drift frequency;
    ``traces [clips, ..., time]``, each clip one direction."""
    _, f1, _ = harmonics(traces, cycle_frames)
    variance = traces[..., -3 * cycle_frames :].var(-1)
    share = (f1**2 / 2) / np.maximum(variance, 1e-12)
    return float(np.median(share[variance > 1e-8]))


def tf_sweep(model, sid: str, simulator, centre, classes, near) -> tuple[list, list]:
    """Full-field gratings at contrast 0.3 and 0.5-4 Hz: harmonics and the core's F1 share."""
    monitor = simulator.monitor
    rng = np.random.default_rng(0)
    natural = np.stack([natural_movie(monitor, FRAMES, rng).frames for _ in range(8)])
    ff_nat, lstm_nat = core_traces(model, sid, natural)
    sd_ff_nat, sd_lstm_nat = ff_nat.std(-1).mean(), lstm_nat.std(-1).mean()
    rows, class_rows = [], []
    for frequency in (0.5, 1.0, 2.0, 4.0):
        cycle = int(round(monitor.frame_rate / frequency))
        n_frames = BURN_IN + 3 * cycle
        clips = np.stack(
            [
                drifting_gabor(monitor, n_frames, d, 0.04, frequency, np.inf, centre, 0.3).frames
                for d in DIRECTIONS
            ]
        )
        frames = clips.reshape(-1, *clips.shape[2:])
        rest = np.tile(RESTING_BEHAVIOR, (len(frames), 1))
        true = simulator.rates(frames, rest, np.zeros((len(frames), 2)))
        true = true.reshape(len(clips), n_frames, -1)[:, BURN_IN:]
        behavior, pupil = (np.tile(x, (len(clips), n_frames, 1)) for x in model.resting_inputs(sid))
        twin, _ = model.predict(sid, clips.astype(np.float32), behavior, pupil)
        twin = twin[:, BURN_IN:].numpy()
        name = f"{frequency:g} Hz"
        class_rows += by_class(name, true, twin, classes, near, cycle)
        ff, lstm = core_traces(model, sid, clips)
        rows.append(
            {
                "drift": name,
                "F1 share feed-forward": f1_share(ff, cycle),
                "F1 share ConvLSTM": f1_share(lstm, cycle),
                "sd feed-forward / natural": float(ff.std(-1).mean() / sd_ff_nat),
                "sd ConvLSTM / natural": float(lstm.std(-1).mean() / sd_lstm_nat),
            }
        )
    return rows, class_rows


def true_and_twin(model, sid: str, simulator, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``clips [stimuli, FRAMES, H, W]`` (grey levels) seen at rest with the eye centred ->
    the simulator's noise-free rates and the twin's prediction, each ``[stimuli x time,
    neurons]`` after the burn-in."""
    frames = clips.reshape(-1, *clips.shape[2:])
    rest = np.tile(RESTING_BEHAVIOR, (len(frames), 1))
    true = simulator.rates(frames, rest, np.zeros((len(frames), 2)))
    true = true.reshape(len(clips), FRAMES, -1)[:, BURN_IN:].reshape(-1, true.shape[-1])
    behavior, pupil = (np.tile(x, (len(clips), FRAMES, 1)) for x in model.resting_inputs(sid))
    twin, _ = model.predict(sid, clips.astype(np.float32), behavior, pupil)
    return true, twin[:, BURN_IN:].reshape(-1, twin.shape[-1]).numpy()


@torch.no_grad()
def off_unit(model, sid: str) -> np.ndarray:
    """Each neuron's readout distance from the nearest feature-map unit, in map units (0: on a
    unit; 0.71: in the middle of four)."""
    h, w = model.core.output_size(model.config.perspective.retina_size)
    mu = model.session(sid).readout.positions(model.position_map).numpy()
    x, y = (mu[:, 0] + 1) / 2 * (w - 1), (mu[:, 1] + 1) / 2 * (h - 1)
    return np.hypot(x - np.round(x), y - np.round(y))


def sf_sweep(model, sid: str, simulator, centre, classes, near) -> list:
    """Full-field gratings at contrast 0.3 and 2 Hz over spatial frequency (see the docstring)."""
    monitor = simulator.monitor
    distance = off_unit(model, sid)
    on_unit = near & (distance <= np.quantile(distance[near], 1 / 3))
    between = near & (distance >= np.quantile(distance[near], 2 / 3))
    rng = np.random.default_rng(0)

    def run(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        true, twin = true_and_twin(model, sid, simulator, clips)
        ff, lstm = core_traces(model, sid, clips)  # [clips, C, h, w, time]
        h, w = ff.shape[2:4]
        centre_sd = [
            x[:, :, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].std(-1).mean((0, 2, 3))
            for x in (ff, lstm)
        ]
        return true, twin, *centre_sd

    natural = np.stack([natural_movie(monitor, FRAMES, rng).frames for _ in range(8)])
    true0, twin0, ff0, lstm0 = run(natural)
    sd_true0, sd_twin0 = true0.std(0), twin0.std(0)
    rows = []
    for frequency in (0.01, 0.02, 0.04, 0.06, 0.09, 0.13):
        clips = np.stack(
            [
                drifting_gabor(
                    monitor, FRAMES, d, frequency, TEMPORAL_FREQUENCY, np.inf, centre, 0.3
                ).frames
                for d in DIRECTIONS
            ]
        )
        true, twin, ff, lstm = run(clips)
        drive, response = true.std(0) / sd_true0, twin.std(0) / sd_twin0
        r = correlation(twin, true)
        row = {
            "cycles/deg": frequency,
            "drive": float(np.median(drive[near])),
            "twin": float(np.median(response[near])),
            "gain": float(np.median((response / np.maximum(drive, 1e-9))[near])),
            "r": float(np.nanmedian(r[near])),
        }
        for cls in np.unique(classes):
            m = near & (classes == cls)
            if m.any():
                row[f"r {cls}"] = float(np.nanmedian(r[m]))
        row["r on unit"] = float(np.nanmedian(r[on_unit]))
        row["r between units"] = float(np.nanmedian(r[between]))
        row["feed-forward sd / natural"] = float(np.median(ff / np.maximum(ff0, 1e-9)))
        row["ConvLSTM sd / natural"] = float(np.median(lstm / np.maximum(lstm0, 1e-9)))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", help="a training run folder (best.safetensors)")
    parser.add_argument("--data", required=True, help="its simulated cohort")
    parser.add_argument("--session", type=int, default=0)
    parser.add_argument("--checkpoint", default="best.safetensors")
    parser.add_argument("--radius", type=float, default=12, help="degrees around the centre")
    parser.add_argument("--by-class", action="store_true", help="harmonics per cell class")
    parser.add_argument("--tf-sweep", action="store_true", help="only the drift-frequency sweep")
    parser.add_argument("--sf-sweep", action="store_true", help="only the spatial-frequency sweep")
    args = parser.parse_args()
    torch.set_num_threads(1)
    session = open_cohort(args.data)[args.session]
    sid = session.session_id
    model = load_checkpoint(Path(args.run) / args.checkpoint, "cpu").model
    truth, _ = load_ground_truth(session.path)
    simulator = rebuild_simulator(session.path)
    centre = (float(truth.rf_x.median()), float(truth.rf_y.median()))
    near = np.hypot(truth.rf_x - centre[0], truth.rf_y - centre[1]).to_numpy() <= args.radius
    classes = cell_classes(truth)
    if args.sf_sweep:
        rows = sf_sweep(model, sid, simulator, centre, classes, near)
        print(pd.DataFrame(rows).round(3).to_string(index=False))
        print(json.dumps({"run": args.run, "sf_sweep": rows}))
        return
    if args.tf_sweep:
        rows, class_rows = tf_sweep(model, sid, simulator, centre, classes, near)
        print(pd.DataFrame(rows).round(3).to_string(index=False))
        print(pd.DataFrame(class_rows).round(3).to_string(index=False))
        print(json.dumps({"run": args.run, "tf_sweep": rows, "by_class": class_rows}))
        return
    videos = conditions(simulator.monitor, centre)
    rows, reference, class_rows = [], {}, []
    for name, clips in videos.items():
        true, twin = true_and_twin(model, sid, simulator, clips)
        if args.by_class and name != "natural":
            shape = (len(clips), FRAMES - BURN_IN, -1)
            class_rows += by_class(name, true.reshape(shape), twin.reshape(shape), classes, near)
        sd_true, sd_twin = true.std(0), twin.std(0)
        r = correlation(twin, true)
        core = inside_core(model, sid, clips)
        if name == "natural":
            reference = {"sd_true": sd_true, "ratio": sd_twin / np.maximum(sd_true, 1e-9), **core}
        ratio = sd_twin / np.maximum(sd_true, 1e-9)
        rows.append(
            {
                "condition": name,
                "r": float(np.nanmedian(r[near])),
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
    if class_rows:
        by_cls = pd.DataFrame(class_rows).round(3)
        by_cls.to_csv(Path(args.run) / "contrast_size_probe_by_class.csv", index=False)
        print(by_cls.to_string(index=False))
    print(json.dumps({"run": args.run, "rows": rows, "by_class": class_rows}))


if __name__ == "__main__":
    main()
