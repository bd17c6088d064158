"""Training: the loop, checkpoints (atomic, validated), bit-exact resume, DDP, ΔF/F handling."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from cortexfm.cli import main as cli
from cortexfm.data import open_cohort
from cortexfm.train import CheckpointError, load_checkpoint, load_run_config, train
from cortexfm.train.trainer import Trainer

TINY_RUN = [
    "train.max_steps=6",
    "train.steps_per_epoch=2",
    "train.warmup_steps=2",
    "train.window=24",
    "train.batch_size=2",
    "train.burn_in=4",
    "train.validation_trials=2",
]


def _config(*extra: str):
    return load_run_config(None, [*TINY_RUN, *extra], preset_name="tiny")


def test_training_runs_logs_and_writes_loadable_checkpoints(sim_cohort: Path, tmp_path: Path):
    cohort = open_cohort(sim_cohort)
    result = train(cohort, _config(), tmp_path / "run", progress=False)
    assert result.steps == 6 and len(result.losses) == 6 and np.isfinite(result.losses).all()
    log = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in log] == [2, 4, 6]
    assert all(np.isfinite(r["validation_correlation"]) for r in log)
    ckpt = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert ckpt.model.session_ids == cohort.session_ids
    assert ckpt.config.train.max_steps == 6 and ckpt.version
    trial = cohort[0].trial(int(cohort[0].trials_in("oracle")[0]))
    out, _ = ckpt.model.predict(
        cohort[0].session_id, trial.video, trial.behavior, trial.pupil_center
    )
    assert out.shape == trial.responses.shape and torch.isfinite(out).all()
    assert not list((tmp_path / "run").glob("*.tmp"))  # atomic writes leave no temporaries
    assert not list((tmp_path / "run").glob("step_*"))  # snapshots only when asked


def test_snapshots_keep_the_weights_of_their_step(sim_cohort: Path, tmp_path: Path):
    cohort = open_cohort(sim_cohort)
    train(cohort, _config("train.snapshot_every=4"), tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run").glob("step_*")) == ["step_00004.safetensors"]
    snapshot = load_checkpoint(tmp_path / "run" / "step_00004.safetensors").model.state_dict()
    last = load_checkpoint(tmp_path / "run" / "last.safetensors").model.state_dict()
    assert any(not torch.equal(snapshot[k], last[k]) for k in last)  # steps 5-6 moved on
    with pytest.raises(ValueError, match="snapshot_every"):
        _config("train.snapshot_every=-1")


def test_resume_continues_bit_exactly(sim_cohort: Path, tmp_path: Path, monkeypatch):
    cohort = open_cohort(sim_cohort)
    # a readout position search at the step where the run is interrupted (and at the start)
    config = _config("train.ema_decay=0.9", "train.position_search_steps=[0,4]")
    straight = train(cohort, config, tmp_path / "straight", progress=False)

    original = Trainer._step
    calls = {"n": 0}

    def crash_on_fifth(self, epoch, step_in_epoch, global_step):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # the machine goes down mid-epoch 3
        return original(self, epoch, step_in_epoch, global_step)

    monkeypatch.setattr(Trainer, "_step", crash_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        train(cohort, config, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(Trainer, "_step", original)
    # a longer wall-clock budget may be given when resuming: it does not change a step
    longer = _config(
        "train.ema_decay=0.9", "train.position_search_steps=[0,4]", "train.max_minutes=60"
    )
    resumed = train(cohort, longer, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.losses == straight.losses  # bit-exact on CPU
    a = load_file(tmp_path / "straight" / "last.safetensors")
    b = load_file(tmp_path / "resumed" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("model/"))
    # a different config cannot silently resume
    with pytest.raises(ValueError, match=r"different config \(train.lr\)"):
        other = _config("train.ema_decay=0.9", "train.position_search_steps=[0,4]", "train.lr=0.5")
        train(cohort, other, tmp_path / "resumed", resume=True, progress=False)


def test_bad_checkpoints_give_clear_errors(sim_cohort: Path, tmp_path: Path):
    cohort = open_cohort(sim_cohort)
    train(cohort, _config("train.max_steps=2"), tmp_path / "run", progress=False)
    good = tmp_path / "run" / "best.safetensors"
    data = good.read_bytes()

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_checkpoint(truncated)
    assert str(truncated) in str(err.value)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=str(garbage)):
        load_checkpoint(garbage)

    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")

    tensors = load_file(good)
    from safetensors import safe_open

    with safe_open(good, "pt") as f:
        metadata = f.metadata()
    key = next(k for k in tensors if k.endswith("readout.weight"))
    tensors[key] = torch.zeros(3, 3)
    mismatched = tmp_path / "mismatched.safetensors"
    save_file(tensors, mismatched, metadata=metadata)
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(mismatched)

    save_file({"x": torch.zeros(2)}, tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="not a cortexfm checkpoint"):
        load_checkpoint(tmp_path / "foreign.safetensors")


def _torchrun_available() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_gloo_available()


@pytest.mark.skipif(not _torchrun_available(), reason="torch.distributed with gloo is unavailable")
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(
    sim_cohort: Path, tmp_path: Path
):
    common = [
        *TINY_RUN,
        "train.max_steps=4",
        "train.batches_per_step=2",
        "model.readout.sample=false",
    ]
    single = tmp_path / "single"
    assert (
        cli(["train", "--data", str(sim_cohort), "--out", str(single), "--preset", "tiny", *common])
        == 0
    )
    ddp = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29517",
            "-m",
            "cortexfm",
            "train",
            "--data",
            str(sim_cohort),
            "--out",
            str(ddp),
            "--preset",
            "tiny",
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    a = load_file(single / "last.safetensors")
    b = load_file(ddp / "last.safetensors")
    worst = max(
        float((a[k] - b[k]).abs().max())
        for k in a
        if k.startswith("model/") and a[k].is_floating_point()
    )
    assert worst < 1e-4, worst
    la = [json.loads(x)["loss"] for x in (single / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (ddp / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(la, lb, rtol=1e-4)


def test_dff_responses_need_an_explicit_choice(sim_cohort: Path, tmp_path: Path, capsys):
    root = tmp_path / "dff"
    shutil.copytree(sim_cohort, root)
    for f in root.glob("*/data/responses/*.npy"):
        r = np.load(f)
        np.save(f, (r - np.nanmean(r, axis=1, keepdims=True)).astype(np.float32))
    args = [
        "train",
        "--data",
        str(root),
        "--out",
        str(tmp_path / "run"),
        "--preset",
        "tiny",
        *TINY_RUN,
    ]
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert "ΔF/F" in err and "--loss gaussian" in err and "data/responses" in err
    assert cli([*args, "--loss", "gaussian"]) == 0
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in log)
    assert cli([*args[:4], str(tmp_path / "run2"), *args[5:], "--response-transform", "shift"]) == 0


def test_optimizer_groups_scale_readout_and_perspective_learning_rates(sim_cohort: Path):
    from cortexfm.train.trainer import build_model, learning_rate_factor, make_optimizer

    cohort = open_cohort(sim_cohort)
    config = _config(
        "train.readout_lr_factor=4",
        "train.perspective_lr_factor=0.25",
        "train.feedforward_lr_factor=6",
    )
    model = build_model(cohort, config)
    optimizer = make_optimizer(model, config)
    ids = {id(p): g["lr_scale"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert len(ids) == len(named)  # every parameter exactly once
    feedforward = [n for n in named if n.startswith("core.layers.")]
    assert feedforward  # the core's convolutions are there to be scaled
    for name, p in named.items():
        expected = (
            4
            if ".readout." in name
            else 0.25
            if ".perspective." in name
            else 6
            if name in feedforward
            else 1
        )
        assert ids[id(p)] == expected, name
    assert learning_rate_factor(0, config) > 0


def _barcode_l1(model, cohort) -> float:
    barcodes = model.session(cohort[0].session_id).readout.weight.detach()
    return float(barcodes.abs().sum(1).mean())


def _first_layer_roughness(model, cohort) -> float:
    from cortexfm.model.loss import smoothness_penalty

    return float(smoothness_penalty(model.core.layers[0].spatial.weight.detach()))


@pytest.mark.parametrize(
    "option, measure, factor",
    [
        ("readout_l1", _barcode_l1, 0.9),
        ("first_layer_smoothness", _first_layer_roughness, 0.8),
    ],
)
def test_a_regulariser_shrinks_what_it_penalises(
    sim_cohort: Path, tmp_path: Path, option, measure, factor
):
    """``train.readout_l1`` shrinks the barcodes' L1 norm; ``train.first_layer_smoothness``
    lowers the first kernels' Laplacian energy from their random start."""
    cohort = open_cohort(sim_cohort)
    values = {}
    for weight in (0.0, 1.0):
        extra = ["train.max_steps=4", f"train.{option}={weight}", "train.lr=0.03"]
        train(cohort, _config(*extra), tmp_path / f"{option}_{weight}", progress=False)
        model = load_checkpoint(tmp_path / f"{option}_{weight}" / "last.safetensors").model
        values[weight] = measure(model, cohort)
    assert values[1.0] < factor * values[0.0]


def test_a_checkpoint_older_than_the_behaviour_gain_loads_with_its_wiring(
    sim_cohort: Path, tmp_path: Path
):
    """Checkpoints from before ``readout.behavior_gain`` / ``core.behavior_input`` /
    ``readout.barcode_init`` existed were trained with behaviour into the core and no gain."""
    from safetensors import safe_open

    cohort = open_cohort(sim_cohort)
    old_wiring = ["model.core.behavior_input=true", "model.readout.behavior_gain=false"]
    train(cohort, _config("train.max_steps=2", *old_wiring), tmp_path / "run", progress=False)
    path = tmp_path / "run" / "best.safetensors"
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    config = json.loads(metadata["config"])
    del config["model"]["core"]["behavior_input"], config["model"]["readout"]["behavior_gain"]
    del config["model"]["readout"]["barcode_init"]
    metadata["config"] = json.dumps(config)
    save_file(load_file(path), tmp_path / "old.safetensors", metadata=metadata)
    loaded = load_checkpoint(tmp_path / "old.safetensors")
    assert loaded.config.model.core.behavior_input and not loaded.config.model.readout.behavior_gain
    assert loaded.config.model.readout.barcode_init == "random"
