"""Issue 17: does the twin extrapolate from natural movies to new stimulus types, on both
response generators?

For each (generator cohort, model variant): train on the natural-movie ``train`` tier only
(model selection on the natural ``validation`` tier), then score every test family (median
CC_norm, per family and per cell class, and as a fraction of natural movies), measure why
predictions fall short (diagnostics below), and compare in-silico orientation/direction tuning
with the generator's ground truth on reliable neurons (recorded CC_max >= 0.5).
No parametric stimulus enters training, validation or model selection.

Diagnostics per family (first session):
- ``sd_ratio``: s.d. over time of the trial-averaged prediction / of the trial-averaged
  recording (median over reliable neurons): < 1 means the twin under-responds;
- ``input_p99``: 99th percentile of |normalised retina| (the range the core sees);
- ``gate_saturation``: fraction of ConvLSTM gate pre-activations with |x| > 3, and
  ``cell_saturation``: fraction of |tanh(c)| > 0.95;
- ``gaze``: how much of the simulated eye's rotation the twin's perspective undoes
  (:func:`gaze_gain`; 1: all of it).

    python benchmarks/ood_generalisation.py --cohort gabor=bench_data/gabor4x500 \\
        --cohort subunit=bench_data/subunit4x500 --variant base= --minutes 20
    python benchmarks/ood_generalisation.py ... --variant "lcn=model.core.front_end=whiten"

Each run writes ``<out>/<cohort>-<variant>/ood.json``; the last line printed is a table.
``--simulate`` makes missing cohorts (4 mice x 500 neurons x 20 min; the subunit cohort's
natural movies pan over real photographs when ``../shared/data`` has them).
``--jobs N`` runs N (cohort, variant) pairs at once in worker processes (a GPU machine); a
variant may name its preset (``--variant paper=preset=paper,model.core.front_end=whiten``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stimuli"
IMAGES = IMAGES / "sensorium2022_images"


def simulate(
    name: str,
    path: str,
    mouse: int,
    neurons: int,
    minutes: float,
    image_folder: str,
    lgn_c50: float | None = None,
    ood_clips: int = 1,
) -> None:
    """Mouse ``mouse`` of cohort ``name``. The generator is ``subunit`` if the name says so,
    else ``gabor``. Natural movies pan over ``image_folder``'s photographs (when that folder
    exists) for subunit cohorts and for any cohort whose name contains ``photo``; otherwise over
    dead-leaves images. ``lgn_c50``, if given, sets a subunit cohort's LGN contrast gain control.
    ``ood_clips`` test clips per out-of-distribution family (each shown ``repeats`` times; one
    10-s grating clip holds 4 conditions, so one clip scores gratings on 4 conditions only)."""
    from cortexfm.sim import SimulationConfig, simulate_cohort

    generator = "subunit" if "subunit" in name else "gabor"
    photos = generator == "subunit" or "photo" in name
    images = image_folder if photos and Path(image_folder).exists() else None
    config = SimulationConfig(
        n_neurons=neurons,
        train_minutes=minutes,
        image_folder=images,
        generator=generator,
        ood_clips=ood_clips,
    )
    if lgn_c50 is not None and generator == "subunit":
        config = dataclasses.replace(config, lgn_c50=lgn_c50)
    simulate_cohort(path, 1, config, seed=0, first_mouse=mouse, progress=False)


@torch.no_grad()
def saturation(model, session, trial_id: int) -> dict:
    """Input range and ConvLSTM saturation of one trial (first session's modules)."""
    sid = session.session_id
    trial = session.trial(trial_id)
    device = next(model.parameters()).device
    norm = model.session(sid).normalization
    x = [
        torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)[None]
        for a in (trial.video, trial.behavior, trial.pupil_center)
    ]
    video, behavior, pupil = norm.inputs(*x)
    modules = model.session(sid)
    retina = modules.perspective(video, pupil)
    modulation, _ = modules.modulation(behavior)
    core = model.core
    h, _ = core.feedforward(retina)
    out = {"input_p99": float(torch.quantile(retina.abs().flatten()[::7], 0.99))}
    if core.normalization is not None:  # model.core.normalization=divisive
        h = core.normalization(h)
    if core.contrast_gain is not None:  # model.core.normalization=contrast_gain
        h, _ = core.contrast_gain.split(h)
    if core.recurrent is not None:
        lstm = core.recurrent
        gates_x = lstm.input_gates(h, modulation)
        hs = torch.zeros(1, lstm.hidden, *h.shape[-2:], device=device)
        cs = torch.zeros_like(hs)
        sat, cell = [], []
        for step in gates_x.unbind(1):
            hs, cs, gates = lstm.step(step, hs, cs)
            i, f, g, o = gates.chunk(4, dim=1)
            if lstm.cell == "gated_linear":  # only the sigmoid gates can saturate
                gates = torch.cat([i, f, o], dim=1)
            sat.append((gates.abs() > 3).float().mean().item())
            # the share of cell states in tanh's flat range (none with a linear cell)
            saturating = lstm.cell == "lstm"
            cell.append((torch.tanh(cs).abs() > 0.95).float().mean().item() if saturating else 0.0)
        out["gate_saturation"] = float(np.mean(sat[10:]))
        out["cell_saturation"] = float(np.mean(cell[10:]))
    return out


@torch.no_grad()
def gaze_gain(model, session, trials: int = 20) -> dict:
    """How much of the simulated eye's rotation the twin's perspective compensates.

    The generator shifts each frame by the gaze (``cortexfm.sim.behavior``); the twin's
    perspective maps the pupil centre to the monitor point its retina's centre sees. Per axis
    (azimuth, elevation): the slope of that point (degrees) on the true gaze (1: the image is
    re-centred exactly; 0: eye movements are ignored) and their correlation, over the first
    ``trials`` training trials.
    """
    from cortexfm.sim.behavior import gaze_from_pupil_center
    from cortexfm.sim.cohort import rebuild_simulator

    monitor = rebuild_simulator(session.path).monitor
    ids = list(session.trials_in("train"))[:trials]
    pupil = np.concatenate([np.asarray(session.trial(int(t)).pupil_center) for t in ids])
    gaze = gaze_from_pupil_center(pupil)
    modules = model.session(session.session_id)
    device = next(model.parameters()).device
    centre = modules.normalization.inputs(
        torch.zeros(1, len(pupil), 1, 1, device=device),
        torch.zeros(1, len(pupil), 2, device=device),
        torch.as_tensor(pupil, dtype=torch.float32, device=device)[None],
    )[2][0]
    grid = modules.perspective.sampling_grid(centre).cpu().numpy()  # [t, h, w, 2] in [-1, 1]
    h, w = grid.shape[1:3]
    seen = grid[:, h // 2, w // 2]
    # monitor coordinates -> degrees (align_corners: +-1 are the edge pixels' centres); rows
    # run downwards, so a gaze upwards moves the seen point to lower row coordinates
    deg = seen * [(monitor.width - 1) / 2, -(monitor.height - 1) / 2] * monitor.deg_per_pixel
    out = {}
    for axis, name in enumerate(("azimuth", "elevation")):
        slope = np.polyfit(gaze[:, axis], deg[:, axis], 1)[0]
        r = np.corrcoef(gaze[:, axis], deg[:, axis])[0, 1]
        out[name] = {"gain": round(float(slope), 3), "r": round(float(r), 3)}
    out["gaze_sd_deg"] = gaze.std(0).round(2).tolist()
    return out


def cell_classes(session) -> np.ndarray | None:
    from cortexfm.sim.cohort import load_ground_truth

    try:
        truth, _ = load_ground_truth(session.path)
    except FileNotFoundError:
        return None
    if "cell_class" in truth:
        return truth.cell_class.to_numpy()
    return np.where(truth["complex"], "complex", "simple")


def score(model, cohort, out: Path, insilico: bool = True, table_name: str = "neurons.csv") -> dict:
    from cortexfm.data.loader import repeat_groups
    from cortexfm.evaluate.repeats import evaluate_session
    from cortexfm.insilico.validation import recorded_cc_max

    tables, diagnostics = [], {}
    for k, session in enumerate(cohort):
        table, predictions = evaluate_session(model, session)
        classes = cell_classes(session)
        if classes is not None:
            table["cell_class"] = np.tile(classes, len(table) // len(classes))
        tables.append(table)
        if k:
            continue
        reliable = recorded_cc_max(session) >= 0.5
        for family in dict.fromkeys(session.stimulus_types[list(predictions)]):
            ids = [t for t in predictions if session.stimulus_types[t] == family]
            clips = [g for g in repeat_groups(session, session.tiers[ids[0]]).values()]
            clips = [[t for t in g if t in ids] for g in clips]
            clips = [g for g in clips if len(g) >= 2]
            if not clips:
                continue
            g = clips[0]
            n = int(min(session.trial_lengths[g]))
            rec = np.mean([session.read(t, "responses", 0, n) for t in g], 0)[10:]
            pred = np.mean([predictions[t][:n] for t in g], 0)[10:]
            ratio = pred.std(0) / np.maximum(rec.std(0), 1e-9)
            diagnostics[str(family)] = {
                "sd_ratio": float(np.median(ratio[reliable])),
                **saturation(model, session, g[0]),
            }
        diagnostics["gaze"] = gaze_gain(model, session)
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(out / table_name, index=False)
    families = table.groupby("stimulus_type").cc_norm.median()
    natural = families.get("natural_movie", np.nan)
    result = {
        "cc_norm": families.round(4).to_dict(),
        "relative_to_natural": (families / natural).round(3).to_dict(),
        "diagnostics": diagnostics,
    }
    if "cell_class" in table:
        per_class = table.groupby(["stimulus_type", "cell_class"]).cc_norm.median().unstack()
        result["cc_norm_per_class"] = per_class.round(3).to_dict()
    if insilico:
        result["insilico"] = insilico_tuning(model, cohort[0])
    return result


def insilico_tuning(model, session) -> dict:
    """In-silico gOSI/gDSI vs the generator's truth on gratings and pink noise."""
    from cortexfm.insilico.experiments import DIRECTIONS, direction_tuning
    from cortexfm.insilico.validation import recorded_cc_max, simulator_tuning_curves
    from cortexfm.sim.cohort import load_ground_truth, rebuild_simulator
    from cortexfm.stimuli.tuning import selectivity

    truth, _ = load_ground_truth(session.path)
    simulator = rebuild_simulator(session.path)
    reliable = recorded_cc_max(session) >= 0.5
    out = {"reliable_neurons": int(reliable.sum())}
    truths = {
        "grating": {
            "gOSI": truth.true_gOSI.to_numpy(),
            "gDSI": truth.true_gDSI.to_numpy(),
            "preferred_direction": truth.true_preferred_direction.to_numpy(),
        },
        "pink_noise": selectivity(simulator_tuning_curves(simulator, "pink_noise"), DIRECTIONS),
    }
    for stimulus, true in truths.items():
        twin = direction_tuning(model, session.session_id, stimulus=stimulus).table
        ds = reliable & (true["gDSI"] >= 0.2)
        error = np.abs(
            (twin.preferred_direction.to_numpy() - true["preferred_direction"] + 180) % 360 - 180
        )
        out[stimulus] = {
            "gOSI_r": float(np.corrcoef(twin.gOSI[reliable], true["gOSI"][reliable])[0, 1]),
            "gDSI_r": float(np.corrcoef(twin.gDSI[reliable], true["gDSI"][reliable])[0, 1]),
            "direction_error_ds": float(np.median(error[ds])) if ds.any() else None,
            "ds_neurons": int(ds.sum()),
            "twin_median_gOSI": float(twin.gOSI[reliable].median()),
            "true_median_gOSI": float(np.median(true["gOSI"][reliable])),
        }
    return out


def run_one(cohort_name: str, data: str, variant: str, overrides: list[str], args_d: dict) -> dict:
    from cortexfm.data import open_cohort
    from cortexfm.train import load_checkpoint, load_run_config, train

    torch.set_num_threads(args_d["threads"])
    out = Path(args_d["out"]) / f"{cohort_name}-{variant}"
    out.mkdir(parents=True, exist_ok=True)
    cohort = open_cohort(data)
    presets = [o.split("=", 1)[1] for o in overrides if o.startswith("preset=")]
    overrides = [o for o in overrides if not o.startswith("preset=")]
    config = load_run_config(
        None,
        [
            f"train.max_minutes={args_d['minutes']}",
            f"train.max_steps={args_d['steps']}",
            "train.early_stopping_patience=0",
            f"train.snapshot_every={args_d['snapshot_every']}",
            *overrides,
        ],
        preset_name=presets[-1] if presets else args_d["preset"],
    )
    t0 = time.perf_counter()
    result = train(cohort, config, out, resume=(out / "last.safetensors").exists(), progress=False)
    minutes = (time.perf_counter() - t0) / 60
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_checkpoint(out / "best.safetensors", device).model
    summary = {
        "cohort": cohort_name,
        "variant": variant,
        "overrides": overrides,
        "steps": result.steps,
        "train_minutes": round(minutes, 1),
        "best_validation_r": round(result.best_score, 4),
        **score(model, cohort, out, insilico=not args_d["no_insilico"]),
    }
    curve = []  # the same figures for the weights kept every --snapshot-every steps
    for snapshot in sorted(out.glob("step_*.safetensors")):
        checkpoint = load_checkpoint(snapshot, device)
        step = checkpoint.trainer["step"]
        insilico = not args_d["no_insilico"]
        scores = score(checkpoint.model, cohort, out, insilico, f"neurons_step{step}.csv")
        curve.append({"step": step, **scores})
    if curve:
        summary["curve"] = curve
    (out / "ood.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cohort", action="append", default=[], help="NAME=PATH")
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME=override,override (or NAME=)"
    )
    parser.add_argument("--out", default="bench_runs/ood")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--minutes", type=float, default=45)
    parser.add_argument("--steps", type=int, default=3000, help="the cosine schedule's length")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument("--simulate", action="store_true")
    parser.add_argument("--mice", type=int, default=4)
    parser.add_argument("--neurons", type=int, default=500)
    parser.add_argument("--sim-minutes", type=float, default=20)
    parser.add_argument(
        "--lgn-c50",
        type=float,
        default=None,
        help="subunit cohorts: LGN contrast semi-saturation (default 0.15; 10: nearly linear)",
    )
    parser.add_argument(
        "--ood-clips",
        type=int,
        default=1,
        help="--simulate: test clips per out-of-distribution family (one grating clip holds 4 "
        "conditions; the cohorts measured so far have 1)",
    )
    parser.add_argument("--no-insilico", action="store_true")
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=0,
        help="also score the weights every N steps (a curve against training time)",
    )
    parser.add_argument(
        "--images",
        default=str(IMAGES),
        help="photographs for the natural movies of subunit and *photo* cohorts",
    )
    parser.add_argument(
        "--collect", action="store_true", help="only tabulate the runs already in --out"
    )
    args = parser.parse_args()
    if args.collect:
        runs = sorted(Path(args.out).glob("*/ood.json"))
        print_table([json.loads(r.read_text()) for r in runs], Path(args.out))
        return
    cohorts = dict(c.split("=", 1) for c in args.cohort)
    variants = {
        v.split("=", 1)[0]: [o for o in v.split("=", 1)[1].split(",") if o] for v in args.variant
    }
    if args.simulate:
        with ProcessPoolExecutor(max(1, args.jobs)) as pool:
            futures = [
                pool.submit(
                    simulate,
                    name,
                    path,
                    m,
                    args.neurons,
                    args.sim_minutes,
                    args.images,
                    args.lgn_c50,
                    args.ood_clips,
                )
                for name, path in cohorts.items()
                for m in range(args.mice)
            ]
            for f in futures:
                f.result()
    args_d = vars(args)
    jobs = [(c, p, v, o) for c, p in cohorts.items() for v, o in variants.items()]
    results = []
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, *job, args_d) for job in jobs]
        for job, future in zip(jobs, futures, strict=True):
            try:
                results.append(future.result())
            except Exception as err:  # one failed run must not hide the others' figures
                print(f"{job[0]}-{job[2]} failed: {type(err).__name__}: {err}")
                results.append({"cohort": job[0], "variant": job[2], "error": repr(err)})
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "all.json").write_text(json.dumps(results, indent=1))
    print_table(results, Path(args.out))


def print_table(results: list[dict], out: Path) -> None:
    """One row per run: steps, natural CC_norm, each family / natural, in-silico r."""
    rows = []
    runs = []  # each run, then its snapshots (--snapshot-every) as VARIANT@STEP
    for r in results:
        runs.append(r)
        for point in r.get("curve", []):
            runs.append(
                {**r, **point, "steps": point["step"], "variant": f"{r['variant']}@{point['step']}"}
            )
    for r in runs:
        row = {"cohort": r["cohort"], "variant": r["variant"], "steps": r.get("steps")}
        if "error" in r:
            rows.append(row)
            continue
        row["natural"] = r["cc_norm"].get("natural_movie")
        row.update(
            {f"{k}/nat": v for k, v in r["relative_to_natural"].items() if k != "natural_movie"}
        )
        if "insilico" in r:
            for s in ("grating", "pink_noise"):
                row[f"{s} gOSI r"] = round(r["insilico"][s]["gOSI_r"], 2)
                row[f"{s} gDSI r"] = round(r["insilico"][s]["gDSI_r"], 2)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "summary.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
