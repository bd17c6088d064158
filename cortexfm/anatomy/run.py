"""``cortexfm anatomy``: barcodes of a trained model against anatomy, with baselines.

Anatomy comes from the simulated cohort's ground truth (``meta/ground_truth``) or from user
tables (MICrONS-style: cell types, morphology features, connections) keyed by unit id.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cortexfm.anatomy.analysis import (
    ClassificationResult,
    classify,
    connectivity_scores,
    pair_table,
    probability_by_decile,
    regress,
)
from cortexfm.anatomy.barcodes import barcode_columns, behavioural_modulation, export_barcodes
from cortexfm.data.cohort import Cohort
from cortexfm.model.network import FoundationModel
from cortexfm.sim.cohort import load_ground_truth

#: The simulator's functional parameters (the upper-bound comparison for cell types).
TRUE_FUNCTION = (
    "rf_size",
    "spatial_frequency",
    "temporal_frequency",
    "complex",
    "direction_index",
    "untuned_fraction",
    "latency",
    "running_gain",
    "pupil_gain",
    "amplitude",
    "baseline",
    "exponent",
    "true_gOSI",
    "true_gDSI",
)
#: Figures written in the output folder.
FIGURES = {
    "confusion": "confusion_barcode.png",
    "connection_probability": "connection_probability.png",
}
CLASSICAL_TUNING = ("true_gOSI", "true_gDSI", "rf_size")
POSITION = ("x", "y", "z")


def plot_confusion(result: ClassificationResult, path: Path) -> Path:
    fig = Figure(figsize=(4.6, 4))
    ax = fig.subplots()
    image = ax.imshow(result.confusion.to_numpy(), vmin=0, vmax=1, cmap="viridis")
    labels = list(result.confusion.index)
    ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"{result.name}: balanced accuracy {result.balanced_accuracy:.2f} "
        f"(chance {result.chance:.2f})",
        fontsize=8,
    )
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_connection_probability(deciles: dict[str, pd.DataFrame], path: Path) -> Path:
    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.subplots()
    for (name, table), color in zip(deciles.items(), ("C3", "C0"), strict=False):
        ax.plot(table.decile, table.connection_probability, marker="o", color=color, label=name)
    ax.set_xlabel("similarity decile")
    ax.set_ylabel("connection probability (sampled pairs)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def simulated_anatomy(
    model: FoundationModel,
    cohort: Cohort,
    out_dir: str | Path,
    *,
    permutations: int = 5,
    seed: int = 0,
) -> dict:
    """Run every analysis against the simulator's ground truth; write tables, plots, JSON."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    barcodes = export_barcodes(model, [s.session_id for s in cohort])
    barcodes.to_csv(out / "barcodes.csv", index=False)
    joined, pair_tables = [], []
    for session in cohort:
        truth, connections = load_ground_truth(session.path)
        mine = barcodes[barcodes.session_id == session.session_id]
        modulation = behavioural_modulation(model, session)
        if modulation is not None:
            mine = mine.merge(modulation, on="unit_id", how="left")
        table = mine.merge(truth, on="unit_id", how="inner")
        if len(table) != len(mine):
            raise ValueError(
                f"{session.path}: {len(mine) - len(table)} neurons have no ground truth"
            )
        joined.append(table)
        index_of = {u: i for i, u in enumerate(table.unit_id)}
        edges = pd.DataFrame(
            {
                "pre": [index_of[u] for u in truth.unit_id.to_numpy()[connections.pre]],
                "post": [index_of[u] for u in truth.unit_id.to_numpy()[connections.post]],
            }
        )
        pairs = pair_table(
            table[barcode_columns(table)].to_numpy(),
            table[["position_x", "position_y"]].to_numpy(),
            table[list(POSITION)].to_numpy(dtype=np.float64),
            edges,
            seed=seed,
        )
        pairs.insert(0, "session_id", session.session_id)
        pair_tables.append(pairs)
    table = pd.concat(joined, ignore_index=True)
    labels = table.cell_type.to_numpy()
    features = {
        "barcode": table[barcode_columns(table)].to_numpy(),
        "true functional parameters": table[list(TRUE_FUNCTION)].to_numpy(dtype=np.float64),
        "classical tuning (OSI, DSI, RF size)": table[list(CLASSICAL_TUNING)].to_numpy(
            dtype=np.float64
        ),
        "position and depth": table[list(POSITION)].to_numpy(dtype=np.float64),
    }
    if "running_modulation" in table:  # a readout with a behavioural gain
        features["barcode + behavioural modulation"] = np.column_stack(
            [features["barcode"], table[["running_modulation", "pupil_modulation"]].to_numpy()]
        )
    results = {
        name: classify(
            x, labels, name=name, permutations=permutations if name == "barcode" else 0, seed=seed
        )
        for name, x in features.items()
    }
    results["barcode (random forest)"] = classify(
        features["barcode"],
        labels,
        name="barcode (random forest)",
        kind="random_forest",
        permutations=0,
        seed=seed,
    )
    plot_confusion(results["barcode"], out / FIGURES["confusion"])
    regression = regress(
        features["barcode"],
        table[["z", "rf_size", "spatial_frequency", "temporal_frequency"]],
        seed=seed,
    )
    regression.to_csv(out / "regression.csv", index=False)
    pairs = pd.concat(pair_tables, ignore_index=True)
    connectivity = connectivity_scores(pairs, seed=seed)
    connectivity.to_csv(out / "connectivity.csv", index=False)
    deciles = {
        "barcode similarity": probability_by_decile(pairs, "barcode_similarity"),
        "readout-position similarity": probability_by_decile(pairs, "position_similarity"),
    }
    plot_connection_probability(deciles, out / FIGURES["connection_probability"])
    summary = {
        "neurons": len(table),
        "cell_types": sorted(set(labels)),
        "chance_uniform": 1 / len(set(labels)),
        "classification": {
            name: {k: v for k, v in asdict(r).items() if k != "confusion"}
            for name, r in results.items()
        },
        "regression": regression.to_dict(orient="records"),
        "connectivity": connectivity.to_dict(orient="records"),
    }
    (out / "anatomy.json").write_text(json.dumps(summary, indent=2))
    return summary


def table_anatomy(
    model: FoundationModel,
    session,
    out_dir: str | Path,
    *,
    cell_types: pd.DataFrame | None = None,
    morphology: pd.DataFrame | None = None,
    connections: pd.DataFrame | None = None,
    permutations: int = 5,
    seed: int = 0,
) -> dict:
    """The same analyses against user tables keyed by the session's unit ids (column ``id``;
    connections use unit ids in ``pre``/``post``). Join reports are part of the output."""
    from cortexfm.anatomy.tables import join

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    barcodes = export_barcodes(model, [session.session_id])
    coords = session.neurons[["unit_id", "x", "y", "z"]]
    barcodes = barcodes.merge(coords, on="unit_id", how="left")
    barcodes.to_csv(out / "barcodes.csv", index=False)
    columns = barcode_columns(barcodes)
    summary: dict = {"session_id": session.session_id, "neurons": len(barcodes)}
    if cell_types is not None:
        joined, report = join(barcodes, cell_types, "unit_id", "id")
        summary["cell_types_join"] = str(report)
        result = classify(
            joined[columns].to_numpy(),
            joined.cell_type.to_numpy(),
            permutations=permutations,
            seed=seed,
        )
        baseline = classify(
            joined[list(POSITION)].to_numpy(dtype=np.float64),
            joined.cell_type.to_numpy(),
            name="position and depth",
            permutations=0,
            seed=seed,
        )
        plot_confusion(result, out / FIGURES["confusion"])
        summary["classification"] = {
            r.name: {k: v for k, v in asdict(r).items() if k != "confusion"}
            for r in (result, baseline)
        }
    if morphology is not None:
        joined, report = join(barcodes, morphology, "unit_id", "id")
        summary["morphology_join"] = str(report)
        targets = joined[[c for c in morphology.columns if c != "id"]]
        regression = regress(joined[columns].to_numpy(), targets, seed=seed)
        regression.to_csv(out / "regression.csv", index=False)
        summary["regression"] = regression.to_dict(orient="records")
    if connections is not None:
        index_of = {u: i for i, u in enumerate(barcodes.unit_id)}
        known = connections.pre.isin(index_of) & connections.post.isin(index_of)
        summary["connections_join"] = (
            f"{int(known.sum())} of {len(connections)} connections between known units"
        )
        edges = pd.DataFrame(
            {
                "pre": connections.pre[known].map(index_of),
                "post": connections.post[known].map(index_of),
            }
        )
        pairs = pair_table(
            barcodes[columns].to_numpy(),
            barcodes[["position_x", "position_y"]].to_numpy(),
            barcodes[list(POSITION)].to_numpy(dtype=np.float64),
            edges,
            seed=seed,
        )
        connectivity = connectivity_scores(pairs, seed=seed)
        connectivity.to_csv(out / "connectivity.csv", index=False)
        plot_connection_probability(
            {"barcode similarity": probability_by_decile(pairs)},
            out / FIGURES["connection_probability"],
        )
        summary["connectivity"] = connectivity.to_dict(orient="records")
    (out / "anatomy.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def run_anatomy(
    model: FoundationModel,
    cohort: Cohort,
    out_dir: str | Path,
    *,
    cell_types: str | Path | None = None,
    morphology: str | Path | None = None,
    connections: str | Path | None = None,
    id_column: str = "unit_id",
    type_column: str = "cell_type",
    permutations: int = 5,
) -> dict:
    """``cortexfm anatomy``: against the user's tables when any is given (``cohort`` must
    then be one session, the tables keyed by its unit ids), else against the simulator's
    ground truth."""
    from cortexfm.anatomy.tables import import_cell_types, import_connections, import_morphology

    if not (cell_types or morphology or connections):
        return simulated_anatomy(model, cohort, out_dir, permutations=permutations)
    if len(cohort) != 1:
        raise ValueError(
            "with user tables, --data must be one session (tables are keyed by its unit ids)"
        )
    return table_anatomy(
        model,
        cohort[0],
        out_dir,
        cell_types=import_cell_types(cell_types, id_column, type_column) if cell_types else None,
        morphology=import_morphology(morphology, id_column) if morphology else None,
        connections=import_connections(connections) if connections else None,
        permutations=permutations,
    )


def describe_anatomy(summary: dict) -> list[str]:
    """The lines ``cortexfm anatomy`` prints: accuracies and AUCs, or what joined."""
    lines = [
        f"cell type from {name:<40} balanced accuracy {r['balanced_accuracy']:.3f} "
        f"(chance {r['chance']:.3f})"
        for name, r in summary.get("classification", {}).items()
    ]
    lines += [
        f"connection from {r['model']:<40} AUC {r['auc']:.3f}"
        for r in summary.get("connectivity", [])
    ]
    for key in ("cell_types_join", "morphology_join", "connections_join"):
        if key in summary:
            lines.append(f"{key}: {summary[key]}")
    return lines
