"""``cortexfm evaluate``: score a checkpoint on a cohort; per-neuron CSV, summary, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from cortexfm.data.cohort import Cohort
from cortexfm.evaluate.repeats import TEST_TIERS, evaluate_session
from cortexfm.model.network import FoundationModel

#: Figures written by evaluate_cohort and compare_models (file names in their folders).
FIGURES = {"cc_norm": "cc_norm.png", "traces": "traces.png", "comparison": "comparison.png"}

SUMMARY_COLUMNS = (
    "cc_norm",
    "cc_abs",
    "cc_max",
    "feve",
    "single_trial",
    "sensorium_single_trial",
    "sensorium_to_average",
)


def summarize_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Medians per session and stimulus type (and over all sessions)."""
    columns = [c for c in SUMMARY_COLUMNS if c in table]
    per_session = table.groupby(["session_id", "stimulus_type"])[columns].median()
    per_session["neurons"] = table.groupby(["session_id", "stimulus_type"]).size()
    overall = table.groupby("stimulus_type")[columns].median()
    overall["neurons"] = table.groupby("stimulus_type").size()
    overall.index = pd.MultiIndex.from_product(
        [["all"], overall.index], names=per_session.index.names
    )
    return pd.concat([per_session, overall]).reset_index()


def summarize_by_cell_type(table: pd.DataFrame) -> pd.DataFrame:
    """Median CC_norm per stimulus type and cell type (all sessions), with neuron counts and
    each family's median relative to natural movies within the cell type."""
    grouped = table.groupby(["cell_type", "stimulus_type"]).cc_norm
    result = pd.DataFrame({"cc_norm": grouped.median(), "neurons": grouped.size()}).reset_index()
    natural = result[result.stimulus_type == "natural_movie"].set_index("cell_type").cc_norm
    result["relative_to_natural"] = result.cc_norm / result.cell_type.map(natural)
    return result


def plot_cc_norm(table: pd.DataFrame, path: Path) -> Path:
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    for stimulus_type, group in table.groupby("stimulus_type"):
        values = group["cc_norm"].dropna() if "cc_norm" in group else pd.Series(dtype=float)
        if len(values):
            ax.hist(
                values.clip(-0.2, 1.2),
                bins=40,
                range=(-0.2, 1.2),
                histtype="step",
                label=f"{stimulus_type} (median {values.median():.2f})",
            )
    ax.set_xlabel("CC_norm")
    ax.set_ylabel("neurons")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_traces(
    recorded: np.ndarray,
    predicted: np.ndarray,
    unit_ids: np.ndarray,
    path: Path,
    frame_rate: float = 30.0,
) -> Path:
    """Trial-averaged recorded vs predicted traces ``[time, k]`` of example neurons."""
    k = recorded.shape[1]
    fig = Figure(figsize=(7, 1.3 * k))
    axes = fig.subplots(k, 1, sharex=True, squeeze=False)
    t = np.arange(recorded.shape[0]) / frame_rate
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(t, recorded[:, i], color="0.3", lw=1, label="recorded (mean of repeats)")
        ax.plot(t, predicted[:, i], color="C3", lw=1, label="predicted")
        ax.set_ylabel(f"unit {unit_ids[i]}", fontsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def evaluate_cohort(
    model: FoundationModel,
    cohort: Cohort,
    out_dir: str | Path,
    tiers: tuple[str, ...] = TEST_TIERS,
    burn_in: int = 10,
    n_examples: int = 4,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = []
    example = None
    for session in tqdm(cohort, desc="evaluating sessions"):
        if session.session_id not in model.session_ids:
            raise KeyError(
                f"session {session.session_id!r} is not in the model ({model.session_ids}); "
                "adapt the model to it first with `cortexfm transfer`"
            )
        table, predictions = evaluate_session(model, session, tiers, burn_in)
        tables.append(table)
        if example is None and "cc_norm" in table:
            example = (session, table, predictions)
    table = pd.concat(tables, ignore_index=True)
    summary = summarize_scores(table)
    table.to_csv(out / "neurons.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    if "cell_type" in table and "cc_norm" in table:
        summarize_by_cell_type(table).to_csv(out / "summary_by_cell_type.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary.to_dict(orient="records"), indent=2))
    if "cc_norm" in table:
        plot_cc_norm(table, out / FIGURES["cc_norm"])
    if example is not None:
        session, stable, predictions = example
        natural = stable.dropna(subset=["cc_norm"])
        best = natural.sort_values("cc_max", ascending=False).head(n_examples)
        columns = [int(np.flatnonzero(np.asarray(session.unit_ids) == u)[0]) for u in best.unit_id]
        clip_type = natural.stimulus_type.iloc[0]
        ids = [t for t in predictions if session.stimulus_types[t] == clip_type]
        clip = session.video_ids[ids[0]]
        same = [t for t in ids if session.video_ids[t] == clip]
        n = int(min(session.trial_lengths[same]))
        recorded = np.mean([session.read(t, "responses", 0, n) for t in same], axis=0)[:, columns]
        predicted = np.mean([predictions[t][:n] for t in same], axis=0)[:, columns]
        plot_traces(
            recorded,
            predicted,
            best.unit_id.to_numpy(),
            out / FIGURES["traces"],
            session.frame_rate,
        )
    return table, summary


def format_summary(summary: pd.DataFrame) -> str:
    columns = [
        "session_id",
        "stimulus_type",
        "neurons",
        *[c for c in SUMMARY_COLUMNS if c in summary],
    ]
    return summary[columns].to_string(index=False, float_format=lambda x: f"{x:.3f}")


def compare_models(summaries: dict[str, pd.DataFrame], out_dir: str | Path) -> pd.DataFrame:
    """Median CC_norm per stimulus type (all sessions) for several models: a table
    (``comparison.csv``; with natural movies, also each model's CC_norm as a fraction of its
    natural-movie CC_norm, ``"<label> / natural"``) and grouped bars (``comparison.png``),
    natural movies first."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, summary in summaries.items():
        overall = summary[summary.session_id == "all"]
        for _, r in overall.iterrows():
            rows.append(
                {
                    "model": label,
                    "stimulus_type": r.stimulus_type,
                    "cc_norm": r.get("cc_norm", np.nan),
                    "single_trial": r.single_trial,
                }
            )
    table = pd.DataFrame(rows)
    wide = table.pivot(index="stimulus_type", columns="model", values="cc_norm")
    order = sorted(wide.index, key=lambda s: (s != "natural_movie", s))
    wide = wide.loc[order, list(summaries)]
    bars = wide.copy()
    if "natural_movie" in wide.index:  # out-of-distribution families relative to natural video
        for label in summaries:
            wide[f"{label} / natural"] = wide[label] / wide.loc["natural_movie", label]
    wide.to_csv(out / "comparison.csv")
    fig = Figure(figsize=(1.2 + 1.1 * len(bars), 3.2))
    ax = fig.subplots()
    width = 0.8 / len(bars.columns)
    for i, label in enumerate(bars.columns):
        ax.bar(np.arange(len(bars)) + i * width, bars[label], width, label=label)
    ax.set_xticks(
        np.arange(len(bars)) + 0.4 - width / 2,
        [s.replace("_", "\n") for s in bars.index],
        fontsize=7,
    )
    ax.set_ylabel("median CC_norm")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / FIGURES["comparison"], dpi=120)
    return wide.reset_index()
