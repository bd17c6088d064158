"""Issue 18: validation when a tree has no validation tier (as the Sensorium 2023 release)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cortexfm.cli import main as cli
from cortexfm.data import open_cohort
from cortexfm.sim import SimulationConfig, simulate_cohort
from cortexfm.train import load_run_config, train
from cortexfm.train.validation import plan_validation
from tests.conftest import TINY_TRAINING

RUN = [*TINY_TRAINING, "train.position_search_steps=[]"]


@pytest.fixture(scope="module")
def bare_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiers train and oracle only (no validation tier), 20 neurons, 6 training clips."""
    config = SimulationConfig(
        n_neurons=20,
        train_minutes=1.0,
        validation_fraction=0.0,
        oracle_clips=1,
        repeats=2,
        ood_clips=0,
    )
    root = tmp_path_factory.mktemp("bare")
    simulate_cohort(root, 1, config, seed=2, progress=False)
    return root


def test_without_a_validation_tier_whole_training_clips_are_held_out(bare_cohort: Path):
    session = open_cohort(bare_cohort)[0]
    assert "validation" not in set(session.tiers)
    plan = plan_validation(open_cohort(bare_cohort), "auto", fraction=0.3, seed=0)
    held = plan.held_out[session.session_id]
    assert len(held) == 2  # round(0.3 * 6) whole clips
    assert set(session.tiers[held]) == {"train"}
    again = plan_validation(open_cohort(bare_cohort), "auto", fraction=0.3, seed=0)
    np.testing.assert_array_equal(again.held_out[session.session_id], held)
    other = plan_validation(open_cohort(bare_cohort), "auto", fraction=0.3, seed=5)
    assert len(other.held_out[session.session_id]) == 2
    kept = plan.training_trials(session.session_id, session.trials_in("train"))
    assert not set(kept) & set(held) and len(kept) + len(held) == 6
    assert "no 'validation' tier" in plan.messages[0]


def test_training_on_a_bare_tree_says_its_rule_and_scores(bare_cohort: Path, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(bare_cohort), "--preset", "tiny", "--out", str(out), *RUN]
    assert cli(args) == 0
    text = capsys.readouterr().out
    assert "validation:" in text and "held-out training trials" in text
    assert "-inf" not in text and "step -1" not in text
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["validation_correlation"]) for r in records)
    assert "best validation correlation" in text


def test_no_validation_keeps_the_last_weights_and_says_so(bare_cohort: Path, tmp_path, capsys):
    config = load_run_config(None, [*RUN, "train.validation=none"], preset_name="tiny")
    result = train(open_cohort(bare_cohort), config, tmp_path / "run", progress=False)
    assert result.best_step == result.steps == 4 and np.isnan(result.best_score)
    assert (tmp_path / "run" / "best.safetensors").exists()
    assert "no validation score" in result.describe() and "-inf" not in result.describe()
    assert "no early stopping" in capsys.readouterr().out


def test_a_scored_tier_can_validate_with_a_warning(bare_cohort: Path, tmp_path, capsys):
    config = load_run_config(None, [*RUN, "train.validation=tier:oracle"], preset_name="tiny")
    result = train(open_cohort(bare_cohort), config, tmp_path / "run", progress=False)
    assert np.isfinite(result.best_score)
    assert "optimistic" in capsys.readouterr().out


def test_bad_validation_rules_are_refused_clearly(bare_cohort: Path):
    with pytest.raises(ValueError, match="not a validation rule"):
        load_run_config(None, ["train.validation=oracle"], preset_name="tiny")
    with pytest.raises(ValueError, match="validation_fraction"):
        load_run_config(None, ["train.validation_fraction=1.5"], preset_name="tiny")
    with pytest.raises(ValueError, match="has no tier 'validation'"):
        plan_validation(open_cohort(bare_cohort), "tier:validation")
