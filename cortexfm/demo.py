"""``cortexfm demo``: the paper's pipeline end to end on the built-in simulated cohort.

Stages (each writes ``stages/<name>.json`` when done, so an interrupted demo resumes):

1. ``simulate``: a cohort of simulated mice; the last ``held_out`` mice are never shown to
   the foundation model;
2. ``foundation``: train the foundation model on the other mice;
3. ``efficiency``: on the held-out mice, foundation transfer vs individual models trained from
   scratch, by minutes of data;
4. ``evaluate``: the foundation model on its mice (natural and out-of-distribution stimuli),
   and foundation vs individual (all data) on a held-out mouse, per stimulus family;
5. ``insilico``: tuning, receptive fields and most exciting inputs vs ground truth;
6. ``anatomy``: barcodes vs cell types and connectivity;
7. ``report``: one self-contained HTML file, ``report.html``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cortexfm.anatomy.run import FIGURES as ANATOMY_FIGURES
from cortexfm.anatomy.run import simulated_anatomy
from cortexfm.data import open_cohort
from cortexfm.data.validate import summarize_session
from cortexfm.evaluate.efficiency import FIGURE as EFFICIENCY_FIGURE
from cortexfm.evaluate.efficiency import data_efficiency, summarize_efficiency
from cortexfm.evaluate.run import FIGURES as EVALUATE_FIGURES
from cortexfm.evaluate.run import compare_models, evaluate_cohort
from cortexfm.insilico.plots import FIGURES as INSILICO_FIGURES
from cortexfm.insilico.validation import validate_against_truth
from cortexfm.report import html
from cortexfm.sim import SimulationConfig, simulate_cohort
from cortexfm.train import load_checkpoint, load_run_config, train


@dataclass
class DemoConfig:
    mice: int = 6
    held_out: int = 2
    simulation: SimulationConfig = field(
        default_factory=lambda: SimulationConfig(
            n_neurons=300, train_minutes=6, oracle_clips=3, repeats=8
        )
    )
    preset: str = "cpu"
    foundation: tuple[str, ...] = (
        "train.max_minutes=5",
        "train.max_steps=500",
        "train.steps_per_epoch=50",
    )
    efficiency_minutes: tuple[float | None, ...] = (2.0, None)
    efficiency_seeds: tuple[int, ...] = (0,)
    efficiency: tuple[str, ...] = (
        "train.max_steps=80",
        "train.steps_per_epoch=40",
        "train.warmup_steps=10",
        "train.position_search_steps=[0, 40]",
    )
    efficiency_workers: int = 2  # fits at once (each with cpu_count // workers threads)
    meis: int = 10
    mei_steps: int = 100
    stimulus_frames: int = 60
    permutations: int = 3


def quick_config() -> DemoConfig:
    return DemoConfig(
        mice=3,
        held_out=1,
        simulation=SimulationConfig(
            n_neurons=40, train_minutes=0.5, oracle_clips=1, repeats=3, ood_clips=1
        ),
        preset="tiny",
        foundation=(
            "train.max_steps=20",
            "train.steps_per_epoch=10",
            "train.window=32",
            "train.batch_size=4",
        ),
        efficiency_minutes=(0.2, None),
        efficiency=(
            "train.max_steps=6",
            "train.steps_per_epoch=3",
            "train.window=32",
            "train.batch_size=4",
            "train.warmup_steps=2",
        ),
        efficiency_workers=1,  # fits of seconds: no worker processes to start
        meis=3,
        mei_steps=20,
        stimulus_frames=30,
        permutations=1,
    )


class Stages:
    def __init__(self, out: Path) -> None:
        self.folder = out / "stages"
        self.folder.mkdir(parents=True, exist_ok=True)

    def done(self, name: str) -> dict | None:
        path = self.folder / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def finish(self, name: str, result: dict, started: float) -> dict:
        result = {**result, "seconds": round(time.perf_counter() - started, 1)}
        (self.folder / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        print(f"[demo] {name} done in {result['seconds']} s")
        return result


def run_demo(out: str | Path, config: DemoConfig, seed: int = 0) -> Path:
    out = Path(out)
    stages = Stages(out)
    cohort_dir = out / "cohort"
    t0 = time.perf_counter()
    simulate_cohort(cohort_dir, config.mice, config.simulation, seed=seed)  # resumable per mouse
    everyone = open_cohort(cohort_dir)
    train_ids = everyone.session_ids[: config.mice - config.held_out]
    held_ids = everyone.session_ids[config.mice - config.held_out :]
    foundation_mice, held_out = everyone.subset(train_ids), everyone.subset(held_ids)
    if not stages.done("simulate"):
        stages.finish("simulate", {"sessions": [summarize_session(s) for s in everyone]}, t0)

    foundation_dir = out / "foundation"
    if not stages.done("foundation"):
        t0 = time.perf_counter()
        run_config = load_run_config(
            None, [*config.foundation, f"train.seed={seed}"], preset_name=config.preset
        )
        result = train(foundation_mice, run_config, foundation_dir, resume=True)
        stages.finish(
            "foundation",
            {
                "steps": result.steps,
                "best_validation_correlation": result.best_score,
                "config": run_config.to_dict(),
            },
            t0,
        )
    checkpoint = foundation_dir / "best.safetensors"

    if not stages.done("efficiency"):
        t0 = time.perf_counter()
        table = data_efficiency(
            checkpoint,
            held_out,
            out / "efficiency",
            minutes=config.efficiency_minutes,
            seeds=config.efficiency_seeds,
            overrides=config.efficiency,
            workers=config.efficiency_workers,
        )
        stages.finish(
            "efficiency", {"summary": summarize_efficiency(table).to_dict(orient="records")}, t0
        )

    if not stages.done("evaluate"):
        t0 = time.perf_counter()
        model = load_checkpoint(checkpoint).model
        _, summary = evaluate_cohort(model, foundation_mice, out / "evaluate" / "foundation")
        held = held_out[0]
        runs = out / "efficiency" / "runs"
        summaries = {}
        for label in ("foundation", "individual"):
            fitted = load_checkpoint(
                runs
                / f"{held.session_id}_allmin_seed{config.efficiency_seeds[0]}_{label}"
                / "best.safetensors"
            ).model
            _, summaries[label] = evaluate_cohort(
                fitted, held_out.subset([held.session_id]), out / "evaluate" / label
            )
        comparison = compare_models(summaries, out / "evaluate")
        stages.finish(
            "evaluate",
            {
                "foundation_mice": summary.to_dict(orient="records"),
                "held_out_comparison": comparison.to_dict(orient="records"),
            },
            t0,
        )

    if not stages.done("insilico"):
        t0 = time.perf_counter()
        model = load_checkpoint(checkpoint).model
        result = validate_against_truth(
            model,
            foundation_mice[0],
            out / "insilico",
            n_meis=config.meis,
            mei_steps=config.mei_steps,
            n_frames=config.stimulus_frames,
        )
        stages.finish("insilico", result, t0)

    if not stages.done("anatomy"):
        t0 = time.perf_counter()
        model = load_checkpoint(checkpoint).model
        result = simulated_anatomy(
            model, foundation_mice, out / "anatomy", permutations=config.permutations, seed=seed
        )
        stages.finish("anatomy", result, t0)

    return write_demo_report(out, config)


def write_demo_report(out: Path, config: DemoConfig) -> Path:
    stages = Stages(out)
    s = {
        name: stages.done(name) or {}
        for name in ("simulate", "foundation", "efficiency", "evaluate", "insilico", "anatomy")
    }
    data_rows = []
    for session in s["simulate"].get("sessions", []):
        for tier, t in session["tiers"].items():
            data_rows.append(
                {"session": session["session_id"], "neurons": session["neurons"], "tier": tier, **t}
            )
    evaluation = pd.DataFrame(s["evaluate"].get("foundation_mice", []))
    comparison = pd.DataFrame(s["evaluate"].get("held_out_comparison", []))
    efficiency = pd.DataFrame(s["efficiency"].get("summary", []))
    anatomy = s["anatomy"]
    classification = pd.DataFrame(
        [
            {"features": k, **{m: v[m] for m in ("balanced_accuracy", "chance", "n")}}
            for k, v in anatomy.get("classification", {}).items()
        ]
    )
    sections = [
        (
            "Run configuration",
            [
                html.preformatted(
                    {
                        "demo": {k: str(v) for k, v in config.__dict__.items()},
                        "foundation": s["foundation"].get("config", {}),
                    }
                )
            ],
        ),
        (
            "Data",
            [
                html.paragraph(
                    "Simulated mice (Sensorium 2023 trees with ground truth); the last mice are held out from the foundation model."
                ),
                html.table(pd.DataFrame(data_rows)),
            ],
        ),
        (
            "Foundation model: accuracy on its mice",
            [
                html.paragraph(
                    f"Trained {s['foundation'].get('steps')} steps; best validation correlation "
                    f"{s['foundation'].get('best_validation_correlation', float('nan')):.3f}. Scores on test trials (never used for training or model selection)."
                ),
                html.table(
                    evaluation[
                        [
                            c
                            for c in (
                                "session_id",
                                "stimulus_type",
                                "neurons",
                                "cc_norm",
                                "cc_abs",
                                "cc_max",
                                "single_trial",
                            )
                            if c in evaluation
                        ]
                    ]
                    if len(evaluation)
                    else evaluation
                ),
                html.figure(
                    out / "evaluate" / "foundation" / EVALUATE_FIGURES["cc_norm"],
                    "CC_norm distribution per stimulus type",
                ),
                html.figure(
                    out / "evaluate" / "foundation" / EVALUATE_FIGURES["traces"],
                    "Recorded vs predicted (trial-averaged) responses of example neurons",
                ),
            ],
        ),
        (
            "Data efficiency: a new mouse",
            [
                html.paragraph(
                    "Held-out mice: foundation transfer (frozen core) vs individual models trained from scratch on the same first minutes of data; median CC_norm on the repeated test clips (mean ± s.e.m. over mice and seeds)."
                ),
                html.table(efficiency),
                html.figure(
                    out / "efficiency" / EFFICIENCY_FIGURE,
                    "CC_norm against minutes of training data",
                ),
            ],
        ),
        (
            "Out-of-distribution stimuli",
            [
                html.paragraph(
                    "Held-out mouse, models fitted on all its natural-movie data; median CC_norm per stimulus family (none of these families was in any training set)."
                ),
                html.table(comparison),
                html.figure(
                    out / "evaluate" / EVALUATE_FIGURES["comparison"],
                    "Median CC_norm per stimulus family",
                ),
            ],
        ),
        (
            "In-silico experiments vs ground truth",
            [
                html.preformatted(s["insilico"]),
                html.figure(
                    out / "insilico" / INSILICO_FIGURES["insilico_vs_true"],
                    "In silico vs true tuning and receptive-field centres (responsive neurons)",
                ),
                html.figure(
                    out / "insilico" / INSILICO_FIGURES["invivo_vs_true"],
                    "The same gratings and pink noise 'in vivo' (simulated recording) vs true",
                ),
                html.figure(
                    out / "insilico" / INSILICO_FIGURES["tuning_curves"],
                    "Tuning curves: in silico (red) and in vivo (grey)",
                ),
                html.figure(
                    out / "insilico" / INSILICO_FIGURES["receptive_fields"],
                    "Receptive-field maps (cyan: true centre)",
                ),
                html.figure(
                    out / "insilico" / INSILICO_FIGURES["most_exciting_inputs"],
                    "Most exciting inputs",
                ),
            ],
        ),
        (
            "Barcodes and anatomy",
            [
                html.table(classification),
                html.figure(
                    out / "anatomy" / ANATOMY_FIGURES["confusion"],
                    "Cell type from barcode: confusion matrix (nested CV)",
                ),
                html.table(pd.DataFrame(anatomy.get("connectivity", []))),
                html.figure(
                    out / "anatomy" / ANATOMY_FIGURES["connection_probability"],
                    "Connection probability by similarity decile",
                ),
            ],
        ),
    ]
    return html.write_report(
        out / "report.html",
        "cortexfm demo: a foundation model of simulated mouse visual cortex",
        sections,
    )
