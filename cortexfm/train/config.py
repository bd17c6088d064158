"""Training configuration; a run's config is the model config plus this, saved in checkpoints.

A config file (``--config FILE``, JSON or TOML) holds ``preset``, and optionally ``model`` and
``train`` sections overriding the preset; command-line ``key=value`` overrides come last, e.g.
``train.max_steps=2000 model.core.hidden=48``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cortexfm.model.config import (
    ModelConfig,
    apply_overrides,
    describe_fields,
    from_dict,
    preset,
    to_dict,
)
from cortexfm.train.validation import check_rule


@dataclass
class TrainConfig:
    # "gaussian" (real-valued responses) also makes the readout's output linear
    # (model.readout.output=identity) unless the config sets that output itself
    loss: Literal["poisson", "gaussian"] = "poisson"
    response_transform: Literal["scale", "shift"] = "scale"  # "shift" for ΔF/F with poisson
    window: int = 64  # frames per training window
    batch_size: int = 8  # windows per batch (one session per batch)
    burn_in: int = 10  # first frames of each window excluded from the loss
    # share of the loss with each neuron's gain fitted per window (0: off; model/loss.py):
    # slow gain changes (running, arousal) then drop out of that share's gradient
    window_gain: float = 0.0
    # L1 penalty on the barcodes, train.readout_l1 x (mean over neurons of sum_c |w_nc|), added
    # to the loss: each neuron reads few core channels (Lurz et al. 2021's feature regulariser)
    readout_l1: float = 0.0
    # smoothness prior on the core's first spatial kernels: this x their Laplacian's energy
    # relative to their own (cortexfm.model.loss.smoothness_penalty; Lurz et al. 2021's
    # gamma_input), added to the loss once per step; 0: off
    first_layer_smoothness: float = 0.0
    batches_per_step: int = 1  # global batches per optimizer step (split across DDP ranks)
    steps_per_epoch: int = 100  # validation, checkpoint and early-stopping interval
    max_steps: int = 2000
    # also keep the validated weights every this many steps as step_NNNNN.safetensors (at an
    # epoch boundary; 0: off), for accuracy against training time
    snapshot_every: int = 0
    max_minutes: float = 0.0  # wall-clock budget (0: none); stops at an epoch boundary
    optimizer: Literal["adamw", "sgd"] = "adamw"  # sgd uses adaptive gradient clipping
    lr: float = 3e-3
    readout_lr_factor: float = 3.0  # readouts (positions, barcodes, biases) learn at lr x this
    # perspectives (eye and monitor pose) learn at lr x this: at full lr, Adam's steps made the
    # retinal image drift under the readouts and the visual pathway never settled
    perspective_lr_factor: float = 0.1
    # the core's feed-forward convolutions (its first layers) learn at lr x this. Under Adam a
    # layer's relative change per step is lr / its weights' scale, and the first layer (fan-in
    # 49) has weights ~5x larger than the ConvLSTM's (fan-in 288): at factor 1 it barely moves
    # from its random start (cosine 0.98 after 1,000 steps) while the layers after it adapt to
    # it (the input layer of muP-style parametrisations learns faster for the same reason)
    feedforward_lr_factor: float = 1.0
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    agc_clip: float = 0.05  # sgd only: adaptive gradient clipping factor
    warmup_steps: int = 100
    min_lr_fraction: float = 0.05  # the cosine schedule ends at lr * this
    grad_clip: float = 5.0  # global gradient-norm clip (0: off)
    ema_decay: float = 0.0  # exponential moving average of weights (0: off)
    early_stopping_patience: int = 5  # epochs without validation improvement (0: never stop)
    # which trials validate (early stopping, best checkpoint): "auto" (the validation tier,
    # else held-out training clips), "holdout", "tier:NAME" or "none"; see train/validation.py
    validation: str = "auto"
    validation_fraction: float = 0.1  # of whole training clips, for "holdout"
    validation_trials: int = 16  # per session, scored at each validation
    # readout position search (cortexfm.train.positions) before these steps; () turns it off
    position_search_steps: tuple[int, ...] = (0, 100, 300)
    position_search_frames: int = 12000  # per session
    position_search_pooling_um: float = 50.0  # cortical smoothing of the search's evidence
    sampling: Literal["proportional", "uniform"] = "proportional"
    freeze_core: bool = False  # transfer: train only the session modules
    amp: bool = True  # bfloat16 autocast on GPU (ignored on CPU)
    tensorboard: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_rule(self.validation)
        if self.snapshot_every < 0:
            raise ValueError(f"train.snapshot_every must be >= 0, got {self.snapshot_every}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"train.validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )


@dataclass
class RunConfig:
    preset: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        base = preset(str(data.get("preset", "cpu")))
        model = from_dict(ModelConfig, _merge(to_dict(base), data.get("model", {})), "model.")
        train = from_dict(TrainConfig, data.get("train", {}), "train.")
        unknown = set(data) - {"preset", "model", "train"}
        if unknown:
            raise ValueError(
                f"unknown config section(s) {sorted(unknown)}: use preset, model, train"
            )
        return cls(preset=str(data.get("preset", "cpu")), model=model, train=train)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merge(base[key], value)
        else:
            out[key] = value
    return out


def load_run_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    preset_name: str | None = None,
) -> RunConfig:
    """Preset, then the config file, then ``key=value`` overrides (``model.*`` / ``train.*``)."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: config file does not exist")
        text = path.read_text()
        import tomllib  # here: loading a checkpoint's config does not need it (~0.1 s)

        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
            raise ValueError(
                f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({err})"
            ) from None
    if preset_name is not None:
        data["preset"] = preset_name
    config = with_overrides(RunConfig.from_dict(data), overrides or [])
    output_chosen = "output" in data.get("model", {}).get("readout", {}) or any(
        o.startswith("model.readout.output=") for o in overrides or []
    )
    if config.train.loss == "gaussian" and not output_chosen:
        # real-valued targets (ΔF/F, z-scores) go below zero: no positive output nonlinearity
        config.model.readout.output = "identity"
    return config


def with_overrides(
    config: RunConfig, overrides: list[str], sections: tuple[str, ...] = ("model", "train")
) -> RunConfig:
    """A copy of ``config`` with dotted ``model.*`` / ``train.*`` overrides, the same names in
    every command (``train.max_steps=300``); ``sections`` limits which may change."""
    bad = [o for o in overrides if not o.startswith(tuple(f"{s}." for s in sections))]
    if bad:
        allowed = " or ".join(f"{s}." for s in sections)
        raise ValueError(f"override(s) {bad} must start with {allowed} (e.g. train.lr=1e-3)")
    model = [o[len("model.") :] for o in overrides if o.startswith("model.")]
    train = [o[len("train.") :] for o in overrides if o.startswith("train.")]
    return RunConfig(
        preset=config.preset,
        model=apply_overrides(config.model, model, "model."),
        train=apply_overrides(config.train, train, "train."),
    )


def config_reference(preset_name: str = "cpu") -> str:
    """Every ``key=value`` a run takes, with its value in ``preset_name`` (for ``--help``)."""
    config = load_run_config(None, [], preset_name=preset_name)
    lines = [f"configuration (key=value overrides; values of the {preset_name!r} preset):"]
    lines += describe_fields(config.model, "model.") + describe_fields(config.train, "train.")
    return "\n".join(lines)
