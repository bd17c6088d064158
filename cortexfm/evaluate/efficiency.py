"""The data-efficiency experiment: foundation transfer vs individual models, by minutes of data.

For every held-out mouse, amount of training data (its first M minutes, or all) and seed, two
models are fitted on exactly the same trials: the foundation model with its core frozen
(``transfer``) and an individual model trained from scratch. Both are scored on the mouse's
repeated test clips (the ``oracle`` tier, never used for fitting or early stopping) by the
median CC_norm over neurons. Results are appended to ``results.jsonl`` as each run finishes,
so an interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from cortexfm.data.cohort import Cohort
from cortexfm.data.session import Session
from cortexfm.evaluate.repeats import repeat_scores
from cortexfm.train.checkpoint import load_checkpoint
from cortexfm.train.transfer import first_minutes, transfer

#: The figure data_efficiency writes in its output folder.
FIGURE = "data_efficiency.png"

MODELS = ("foundation", "individual")


def _label(minutes: float | None) -> str:
    return "all" if minutes is None else f"{minutes:g}"


def data_efficiency(
    foundation_checkpoint: str | Path,
    held_out: Cohort,
    out_dir: str | Path,
    *,
    minutes: Sequence[float | None] = (2, 4, 8, 16, None),
    seeds: Sequence[int] = (0, 1, 2),
    overrides: Sequence[str] = (),
    workers: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Run (or resume) the experiment; returns one row per (mouse, minutes, seed, model).

    ``workers`` > 1 runs that many fits at once, each in its own process with
    ``cpu_count // workers`` torch threads (for machines with more cores than one fit uses).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = set()
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["session_id"], r["minutes"], r["seed"], r["model"]))
    runs = [
        _Fit(str(foundation_checkpoint), session, m, seed, model, out, tuple(overrides))
        for session in held_out
        for m in minutes
        for seed in seeds
        for model in MODELS
        if (session.session_id, _label(m), seed, model) not in done
    ]
    bar = tqdm(total=len(runs), desc="data efficiency", disable=not progress)
    if workers <= 1:
        results = map(_fit_and_score, runs)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=torch.set_num_threads,
            initargs=(threads,),
        )
        results = (f.result() for f in as_completed([pool.submit(_fit_and_score, r) for r in runs]))
    try:
        for row in results:
            with results_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            bar.update()
    finally:
        bar.close()
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    table = pd.DataFrame([json.loads(x) for x in results_path.read_text().splitlines()])
    summarize_efficiency(table).to_csv(out / "summary.csv", index=False)
    plot_efficiency(table, out / FIGURE)
    return table


@dataclass(frozen=True)
class _Fit:
    """One fit of the experiment (picklable, for worker processes)."""

    checkpoint: str
    session: Session
    minutes: float | None
    seed: int
    model: str
    out: Path
    overrides: tuple[str, ...]


def _fit_and_score(fit: _Fit) -> dict:
    """Fit one model on the first ``minutes`` of the mouse's data; score it on its test clips."""
    session = fit.session
    run_dir = (
        fit.out
        / "runs"
        / f"{session.session_id}_{_label(fit.minutes)}min_seed{fit.seed}_{fit.model}"
    )
    result = transfer(
        fit.checkpoint,
        Cohort([session]),
        run_dir,
        minutes=fit.minutes,
        from_scratch=fit.model == "individual",
        overrides=[*fit.overrides, f"train.seed={fit.seed}"],
        resume=True,
        progress=False,
    )
    fitted = load_checkpoint(run_dir / "best.safetensors").model
    scores = repeat_scores(fitted, session, "oracle")
    training_frames = session.trial_lengths[first_minutes(session, fit.minutes)].sum()
    return {
        "session_id": session.session_id,
        "minutes": _label(fit.minutes),
        "training_minutes": float(training_frames / session.frame_rate / 60),
        "seed": fit.seed,
        "model": fit.model,
        "steps": result.steps,
        "best_step": result.best_step,
        "median_cc_norm": float(np.nanmedian(scores.cc_norm)),
        "median_cc_abs": float(np.nanmedian(scores.cc_abs)),
    }


def summarize_efficiency(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and s.e.m. of the median CC_norm over mice x seeds, per model and amount."""
    grouped = table.groupby(["model", "minutes"])
    summary = grouped.median_cc_norm.agg(["mean", "sem", "count"]).reset_index()
    summary["training_minutes"] = grouped.training_minutes.mean().to_numpy()
    return summary.sort_values(["model", "training_minutes"])


def plot_efficiency(table: pd.DataFrame, path: Path) -> Path:
    summary = summarize_efficiency(table)
    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.subplots()
    for model, color in zip(MODELS, ("C3", "0.4"), strict=True):
        s = summary[summary.model == model]
        ax.errorbar(
            s.training_minutes,
            s["mean"],
            yerr=s["sem"].fillna(0),
            marker="o",
            color=color,
            label=model,
            capsize=3,
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("minutes of training data (new mouse)")
    ax.set_ylabel("median CC_norm (test clips)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
