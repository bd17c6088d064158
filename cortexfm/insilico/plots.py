"""Figures of in-silico experiments: tuning curves, receptive-field maps, most exciting inputs,
and in-silico vs true (or in-vivo) property scatter plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

#: Figures written in a session's output folder (the last two by ``validate_against_truth``).
FIGURES = {
    "tuning_curves": "tuning_curves.png",
    "receptive_fields": "receptive_fields.png",
    "most_exciting_inputs": "most_exciting_inputs.png",
    "insilico_vs_true": "insilico_vs_true.png",
    "invivo_vs_true": "invivo_vs_true.png",
}


def plot_tuning_curves(
    curves: np.ndarray,
    directions: np.ndarray,
    unit_ids,
    path: Path,
    reference: np.ndarray | None = None,
) -> Path:
    k = len(curves)
    fig = Figure(figsize=(2.2 * k, 2))
    axes = fig.subplots(1, k, squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.plot(directions, curves[i], "o-", color="C3", ms=3, label="in silico")
        if reference is not None:
            ax2 = ax.twinx()
            ax2.plot(directions, reference[i], "s--", color="0.4", ms=2, label="reference")
            ax2.set_yticks([])
        ax.set_title(f"unit {unit_ids[i]}", fontsize=8)
        ax.set_xticks([0, 90, 180, 270])
        ax.tick_params(labelsize=7)
    axes[0, 0].set_xlabel("direction (deg)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_receptive_fields(
    maps: np.ndarray, azimuth, elevation, unit_ids, path: Path, truth: np.ndarray | None = None
) -> Path:
    k = len(maps)
    fig = Figure(figsize=(2.4 * k, 1.6))
    axes = fig.subplots(1, k, squeeze=False)
    extent = (azimuth[0], azimuth[-1], elevation[0], elevation[-1])
    for i, ax in enumerate(axes[0]):
        ax.imshow(maps[i], origin="lower", extent=extent, cmap="magma", aspect="auto")
        if truth is not None:
            ax.plot(truth[i, 0], truth[i, 1], "c+", ms=8, mew=2)
        ax.set_title(f"unit {unit_ids[i]}", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_meis(meis: np.ndarray, unit_ids, path: Path, max_frames: int = 4) -> Path:
    """``meis [neurons, frames, H, W]``: one row per neuron, up to ``max_frames`` frames."""
    k, shown = len(meis), min(meis.shape[1], max_frames)
    step = max(1, meis.shape[1] // shown)
    fig = Figure(figsize=(2.2 * shown, 1.4 * k))
    axes = fig.subplots(k, shown, squeeze=False)
    for i in range(k):
        for j in range(shown):
            ax = axes[i, j]
            ax.imshow(meis[i, j * step], cmap="gray", vmin=0, vmax=255)
            ax.set_title(
                f"unit {unit_ids[i]}" + (f", frame {j * step}" if shown > 1 else ""), fontsize=7
            )
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_scatter(
    pairs: dict[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    xlabel: str = "true",
    ylabel: str = "in silico",
) -> Path:
    k = len(pairs)
    fig = Figure(figsize=(2.8 * k, 2.7))
    axes = fig.subplots(1, k, squeeze=False)
    for ax, (name, (x, y)) in zip(axes[0], pairs.items(), strict=True):
        ok = np.isfinite(x) & np.isfinite(y)
        ax.scatter(x[ok], y[ok], s=3, alpha=0.4)
        lo, hi = np.nanmin([x[ok].min(), y[ok].min()]), np.nanmax([x[ok].max(), y[ok].max()])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        r = np.corrcoef(x[ok], y[ok])[0, 1] if ok.sum() > 2 else np.nan
        ax.set_title(f"{name} (r = {r:.2f})", fontsize=8)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
