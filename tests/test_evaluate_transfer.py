"""`cortexfm evaluate` and `cortexfm transfer` on a small simulated cohort."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cortexfm.cli import main as cli
from cortexfm.data import open_session
from cortexfm.evaluate.run import compare_models
from cortexfm.train import load_checkpoint
from cortexfm.train.transfer import first_minutes
from tests.conftest import TINY_TRAINING

TINY = TINY_TRAINING


@pytest.fixture(scope="module")
def foundation(sim_cohort: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("foundation")
    args = ["train", "--data", str(sim_cohort), "--out", str(out), "--preset", "tiny"]
    assert cli([*args, "--sessions", "sim-mouse0-s0", *TINY]) == 0
    return out / "best.safetensors"


def test_first_minutes_takes_training_trials_in_order(sim_cohort: Path):
    session = open_session(sim_cohort / "mouse1")
    train = session.trials_in("train")
    ids = first_minutes(session, 10 / 60)  # 10 s
    assert np.array_equal(ids, train[: len(ids)])
    assert session.trial_lengths[ids].sum() <= 10 * session.frame_rate or len(ids) == 1
    assert np.array_equal(first_minutes(session, None), train)
    with pytest.raises(ValueError, match="> 0"):
        first_minutes(session, 0)


def test_transfer_freezes_the_core_and_from_scratch_does_not(
    foundation: Path, sim_cohort: Path, tmp_path: Path
):
    new = sim_cohort / "mouse1"
    assert (
        cli(
            [
                "transfer",
                str(foundation),
                "--data",
                str(new),
                "--out",
                str(tmp_path / "fm"),
                "--minutes",
                "0.2",
                "train.max_steps=4",
                "train.steps_per_epoch=2",
                "train.window=24",
                "train.batch_size=2",
            ]
        )
        == 0
    )
    assert (
        cli(
            [
                "transfer",
                str(foundation),
                "--data",
                str(new),
                "--out",
                str(tmp_path / "ind"),
                "--minutes",
                "0.2",
                "--from-scratch",
                "train.max_steps=4",
                "train.steps_per_epoch=2",
                "train.window=24",
                "train.batch_size=2",
            ]
        )
        == 0
    )
    base = load_checkpoint(foundation).model
    adapted = load_checkpoint(tmp_path / "fm" / "last.safetensors").model
    scratch = load_checkpoint(tmp_path / "ind" / "last.safetensors").model
    assert adapted.session_ids == ["sim-mouse0-s0", "sim-mouse1-s0"]
    assert scratch.session_ids == ["sim-mouse1-s0"]
    for (name, a), b in zip(
        base.core.state_dict().items(), adapted.core.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert any(
        not torch.equal(a, b)
        for a, b in zip(
            base.core.state_dict().values(), scratch.core.state_dict().values(), strict=True
        )
    )
    # a mouse the foundation was trained on is not "new"
    assert (
        cli(
            [
                "transfer",
                str(foundation),
                "--data",
                str(sim_cohort / "mouse0"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )


def test_evaluate_writes_per_neuron_scores_summary_and_plots(
    foundation: Path, sim_cohort: Path, tmp_path: Path, capsys
):
    out = tmp_path / "eval"
    assert (
        cli(
            [
                "evaluate",
                str(foundation),
                "--data",
                str(sim_cohort / "mouse0"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = pd.read_csv(out / "neurons.csv")
    session = open_session(sim_cohort / "mouse0")
    natural = table[table.stimulus_type == table.stimulus_type.iloc[0]]
    assert len(natural) == session.n_neurons
    for column in (
        "cc_abs",
        "cc_max",
        "cc_norm",
        "feve",
        "single_trial",
        "sensorium_single_trial",
        "sensorium_to_average",
    ):
        assert column in table and table[column].notna().any(), column
    ok = table.cc_max > 0
    np.testing.assert_allclose(table.cc_norm[ok], (table.cc_abs / table.cc_max)[ok], rtol=1e-9)
    assert table.cc_norm[~ok].isna().all()  # no ceiling, no CC_norm
    summary = json.loads((out / "summary.json").read_text())
    assert {"session_id", "stimulus_type", "cc_norm"} <= set(summary[0])
    # the simulated neuron table has MICrONS-like cell types: a report per type
    by_type = pd.read_csv(out / "summary_by_cell_type.csv")
    assert set(by_type.cell_type) == set(session.neurons.cell_type)
    assert by_type.neurons.sum() == len(table)
    natural_rows = by_type[by_type.stimulus_type == "natural_movie"]
    np.testing.assert_allclose(natural_rows.relative_to_natural.dropna(), 1.0)
    assert (out / "cc_norm.png").stat().st_size > 1000 and (
        out / "traces.png"
    ).stat().st_size > 1000
    assert "cc_norm" in capsys.readouterr().out
    # a session the model does not know gets a clear message
    assert (
        cli(
            [
                "evaluate",
                str(foundation),
                "--data",
                str(sim_cohort / "mouse1"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "cortexfm transfer" in capsys.readouterr().err


def test_data_efficiency_runs_both_models_and_resumes(
    foundation: Path, sim_cohort: Path, tmp_path: Path
):
    out = tmp_path / "eff"
    args = [
        "data-efficiency",
        str(foundation),
        "--data",
        str(sim_cohort / "mouse1"),
        "--out",
        str(out),
        "--minutes",
        "0.1,all",
        "--seeds",
        "0,1",
        "train.max_steps=2",
        "train.steps_per_epoch=2",
        "train.window=24",
        "train.batch_size=2",
    ]
    # seed 0 in two worker processes, then seed 1 in this one: the second call adds only
    # the fits the first one did not do
    seed0 = [a if a != "0,1" else "0" for a in args]
    assert cli([*seed0[:1], "--workers", "2", *seed0[1:]]) == 0
    assert len(pd.read_json(out / "results.jsonl", lines=True)) == 2 * 2
    assert cli(args) == 0
    table = pd.read_json(out / "results.jsonl", lines=True)
    assert len(table) == 2 * 2 * 2
    assert not table.duplicated(["minutes", "seed", "model"]).any()
    assert set(table.model) == {"foundation", "individual"}
    assert table.groupby("minutes").training_minutes.max()["0.1"] <= 0.1 + 1e-9 or (
        table[table.minutes == "0.1"].training_minutes.nunique() == 1
    )
    assert (
        table[table.minutes == "all"].training_minutes.iloc[0]
        > table[table.minutes == "0.1"].training_minutes.iloc[0]
    )
    assert (out / "data_efficiency.png").exists() and (out / "summary.csv").exists()
    mtime = (out / "results.jsonl").stat().st_mtime_ns
    assert cli(args) == 0  # resumes: nothing left to run
    assert len(pd.read_json(out / "results.jsonl", lines=True)) == 8
    assert (out / "results.jsonl").stat().st_mtime_ns == mtime


def test_evaluate_compares_models_per_stimulus_type(
    foundation: Path, sim_cohort: Path, tmp_path: Path
):
    out = tmp_path / "compare"
    args = [
        "evaluate",
        str(foundation),
        str(foundation),
        "--labels",
        "a,b",
        "--data",
        str(sim_cohort / "mouse0"),
        "--out",
        str(out),
    ]
    assert cli(args) == 0
    table = pd.read_csv(out / "comparison.csv", index_col=0)
    assert list(table.columns[:2]) == ["a", "b"] and np.allclose(table.a, table.b, equal_nan=True)
    assert table.index[0] == "natural_movie"
    assert (out / "comparison.png").exists() and (out / "a" / "neurons.csv").exists()


def test_comparison_gives_each_family_relative_to_natural_video(tmp_path: Path):
    def summary(natural: float, gabor: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "session_id": ["all", "all", "s0"],
                "stimulus_type": ["drifting_gabor", "natural_movie", "natural_movie"],
                "cc_norm": [gabor, natural, 0.0],
                "single_trial": [0.1, 0.2, 0.0],
            }
        )

    table = compare_models(
        {"foundation": summary(0.5, 0.4), "individual": summary(0.4, 0.1)}, tmp_path
    ).set_index("stimulus_type")
    assert list(table.index) == ["natural_movie", "drifting_gabor"]  # natural first
    assert table.loc["drifting_gabor", "foundation / natural"] == pytest.approx(0.8)
    assert table.loc["drifting_gabor", "individual / natural"] == pytest.approx(0.25)
    assert table.loc["natural_movie", "individual"] == pytest.approx(0.4)  # not session s0
    assert (tmp_path / "comparison.png").exists()
