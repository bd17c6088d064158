"""Barcodes and anatomy: importers (on the real MICrONS tables), classifiers, controls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cortexfm.anatomy import (
    classify,
    connectivity_scores,
    export_barcodes,
    import_cell_types,
    import_connections,
    import_morphology,
    join,
    pair_table,
    read_table,
    regress,
)
from cortexfm.data import DataFormatError
from tests.conftest import SHARED_DATA

MICRONS = SHARED_DATA / "real" / "microns"


def _microns(name: str) -> Path:
    path = MICRONS / name
    if not path.exists():
        pytest.skip(f"real MICrONS table not found at {path}")
    return path


def test_real_microns_cell_types_and_morphology_join_with_a_report():
    types = import_cell_types(
        _microns("nriedman_cells_no_repeats_excitatory_celltypes.csv"), "pt_root_id"
    )
    assert set(types.cell_type) == {"23P", "4P", "5P-IT", "5P-ET", "5P-NP", "6P-IT", "6P-CT"}
    morphology = import_morphology(_microns("saivoru_proofread_celltype_morphology.csv"), "root_id")
    assert "total_length_um" in morphology and "analysis_ready" not in morphology  # numeric only
    joined, report = join(morphology, types, "id", "id")
    assert report.matched == len(joined) > 0
    assert report.unmatched_left == len(morphology) - report.matched
    assert report.unmatched_right == len(types) - report.matched
    assert str(report.matched) in str(report)
    # the morphology table's label names a cell type from another classifier version: the
    # joined rows must mostly agree with it (61% measured; chance among 7 types is 14%)
    labels = (
        read_table(_microns("saivoru_proofread_celltype_morphology.csv")).set_index("root_id").label
    )
    label_type = labels.loc[joined.id].str.split("_").str[1].to_numpy()
    assert (label_type == joined.cell_type.to_numpy()).mean() > 2 / 7


def test_real_functional_table_imports_as_features():
    functional = import_morphology(
        _microns("lpiovan0_statstable_4_7_functional.csv"), "unit_id", ["gOSI", "gDSI", "sigma_x"]
    )
    assert list(functional.columns) == ["id", "gOSI", "gDSI", "sigma_x"] and len(functional) > 100


def test_table_errors_name_the_file_and_column(tmp_path: Path):
    with pytest.raises(DataFormatError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(DataFormatError, match="bad.parquet.*cannot be read"):
        read_table(bad)
    table = tmp_path / "t.csv"
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(table, index=False)
    with pytest.raises(DataFormatError, match=r"column\(s\) \['cell_type'\] not found"):
        import_cell_types(table, "a")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataFormatError, match="unknown table format"):
        read_table(tmp_path / "t.xlsx")


def test_connections_are_merged_per_pair_from_any_format(tmp_path: Path):
    edges = pd.DataFrame({"pre_id": [1, 1, 2], "post_id": [2, 2, 3], "n": [1, 2, 5]})
    edges.to_feather(tmp_path / "e.feather")
    out = import_connections(tmp_path / "e.feather", "pre_id", "post_id", "n")
    assert out.to_dict("records") == [
        {"pre": 1, "post": 2, "synapse_count": 3},
        {"pre": 2, "post": 3, "synapse_count": 5},
    ]


def test_classifier_finds_structure_and_shuffled_labels_sit_at_chance():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    centres = rng.normal(size=(4, 6)) * 2
    features = centres[labels] + rng.normal(size=(400, 6))
    result = classify(features, labels, permutations=3)
    assert result.balanced_accuracy > 0.8
    assert abs(result.chance - 0.25) < 0.08
    assert result.confusion.shape == (4, 4) and np.allclose(
        result.confusion.to_numpy().sum(axis=1), 1
    )
    noise = classify(rng.normal(size=(400, 6)), labels, permutations=0, kind="random_forest")
    assert abs(noise.balanced_accuracy - 0.25) < 0.1


def test_regression_is_cross_validated():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    targets = pd.DataFrame(
        {"depth": x @ [1, 2, 0, 0, 0] + 0.3 * rng.normal(size=300), "noise": rng.normal(size=300)}
    )
    table = regress(x, targets).set_index("target")
    assert table.loc["depth", "r2"] > 0.9 and table.loc["depth", "pearson_r"] > 0.95
    assert table.loc["noise", "r2"] < 0.05  # held-out predictions, not training fit


def test_like_to_like_connectivity_is_detected_beyond_distance():
    rng = np.random.default_rng(2)
    n = 400
    barcodes = rng.normal(size=(n, 8))
    somas = rng.uniform(0, 300, size=(n, 3))
    b = barcodes / np.linalg.norm(barcodes, axis=1, keepdims=True)
    similarity = b @ b.T
    distance = np.linalg.norm(somas[:, None] - somas[None], axis=-1)
    p = 0.3 * np.exp(-(distance**2) / (2 * 100**2)) / (1 + np.exp(-6 * (similarity - 0.3)))
    np.fill_diagonal(p, 0)
    pre, post = np.nonzero(rng.random(p.shape) < p)
    pairs = pair_table(
        barcodes, rng.normal(size=(n, 2)), somas, pd.DataFrame({"pre": pre, "post": post})
    )
    scores = connectivity_scores(pairs).set_index("model").auc
    assert scores["distance + barcode"] > scores["distance"] + 0.05
    assert scores["barcode within distance bins"] > 0.65
    assert (
        abs(scores["distance + position"] - scores["distance"]) < 0.03
    )  # positions carry nothing here


def test_barcodes_are_unit_vectors_keyed_by_session_and_unit():
    from tests.test_model import _model

    model = _model()
    table = export_barcodes(model)
    columns = [c for c in table.columns if c.startswith("b") and c[1:].isdigit()]
    assert len(columns) == model.core.out_channels
    assert np.allclose(np.linalg.norm(table[columns].to_numpy(), axis=1), 1)
    assert table.groupby("session_id").size().to_dict() == {"a": 30, "b": 20}
    assert table.position_x.between(-1, 1).all()


def test_behavioural_modulation_follows_the_readout_gain(sim_cohort: Path):
    """With a behavioural-gain readout each neuron gets two slopes (running, pupil); zero gain
    weights give zero slopes, and scaling a neuron's weights scales its slopes."""
    import torch

    from cortexfm.anatomy.barcodes import behavioural_modulation
    from cortexfm.data import open_cohort
    from cortexfm.train import load_run_config
    from cortexfm.train.trainer import build_model

    cohort = open_cohort(sim_cohort)
    config = load_run_config(None, ["model.readout.behavior_gain=true"], preset_name="tiny")
    model = build_model(cohort, config)
    session = cohort[0]
    zero = behavioural_modulation(model, session, max_trials=3)
    assert list(zero.columns) == ["unit_id", "running_modulation", "pupil_modulation"]
    assert len(zero) == session.n_neurons and np.allclose(zero.iloc[:, 1:], 0)
    gain = model.session(session.session_id).readout.gain
    with torch.no_grad():
        gain.normal_()
        gain[1] = 3 * gain[0]
    slopes = behavioural_modulation(model, session, max_trials=3).iloc[:, 1:].to_numpy()
    assert np.abs(slopes[0]).sum() > 0
    np.testing.assert_allclose(slopes[1], 3 * slopes[0], rtol=1e-6, atol=1e-9)
    assert (
        behavioural_modulation(
            build_model(
                cohort, load_run_config(None, ["model.readout.behavior_gain=false"], "tiny")
            ),
            session,
        )
        is None
    )


def test_anatomy_command_on_simulated_truth_and_on_user_tables(
    sim_cohort: Path, tmp_path: Path, tiny_checkpoint: Path
):
    import json

    from cortexfm.cli import main as cli
    from cortexfm.sim.cohort import load_ground_truth

    ckpt = str(tiny_checkpoint)
    out = tmp_path / "sim"
    assert (
        cli(["anatomy", ckpt, "--data", str(sim_cohort), "--out", str(out), "--permutations", "1"])
        == 0
    )
    summary = json.loads((out / "anatomy.json").read_text())
    assert {"barcode", "true functional parameters", "position and depth"} <= set(
        summary["classification"]
    )
    assert (out / "confusion_barcode.png").exists() and (
        out / "connection_probability.png"
    ).exists()

    truth, connections = load_ground_truth(sim_cohort / "mouse0")
    truth[["unit_id", "cell_type"]].to_csv(tmp_path / "types.csv", index=False)
    truth[["unit_id", "z", "rf_size"]].to_parquet(tmp_path / "morph.parquet")
    ids = truth.unit_id.to_numpy()
    pd.DataFrame(
        {
            "pre": ids[connections.pre],
            "post": ids[connections.post],
            "synapse_count": connections.synapse_count,
        }
    ).to_csv(tmp_path / "syn.csv", index=False)
    out2 = tmp_path / "tables"
    assert (
        cli(
            [
                "anatomy",
                ckpt,
                "--data",
                str(sim_cohort / "mouse0"),
                "--out",
                str(out2),
                "--permutations",
                "0",
                "--cell-types",
                str(tmp_path / "types.csv"),
                "--morphology",
                str(tmp_path / "morph.parquet"),
                "--connections",
                str(tmp_path / "syn.csv"),
            ]
        )
        == 0
    )
    summary = json.loads((out2 / "anatomy.json").read_text())
    assert summary["cell_types_join"].startswith(f"matched {len(truth)} rows")
    assert {r["target"] for r in summary["regression"]} == {"z", "rf_size"}
    assert summary["connections_join"].startswith(f"{len(connections)} of {len(connections)}")
