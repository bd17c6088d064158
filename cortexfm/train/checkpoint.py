"""Checkpoints: one safetensors file, written atomically, never a pickle.

Tensors: ``model/<name>`` (weights and per-session buffers: normalisation, unit ids,
coordinates), and for resumable checkpoints ``optimizer/<param>/<name>``, ``ema/<name>`` and
``rng/torch``. Metadata (strings): ``format``, ``cortexfm_version``, ``config`` (the resolved
run config, JSON), ``sessions`` (ids and neuron counts, JSON) and ``trainer`` (step, epoch,
best score, optimizer hyper-parameters, JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

import cortexfm
from cortexfm.atomic import write_bytes_atomic
from cortexfm.data.statistics import Normalizer
from cortexfm.model.network import FoundationModel, SessionInfo
from cortexfm.train.config import RunConfig

FORMAT = "cortexfm-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")


@dataclass
class Checkpoint:
    model: FoundationModel
    config: RunConfig
    version: str
    trainer: dict = field(default_factory=dict)
    optimizer: dict[str, torch.Tensor] = field(default_factory=dict)
    ema: dict[str, torch.Tensor] = field(default_factory=dict)
    rng: torch.Tensor | None = None


def save_checkpoint(
    path: str | Path,
    model: FoundationModel,
    config: RunConfig,
    *,
    trainer: dict | None = None,
    optimizer: dict[str, torch.Tensor] | None = None,
    ema: dict[str, torch.Tensor] | None = None,
    rng: torch.Tensor | None = None,
) -> Path:
    """Write atomically: into a temporary file in the same folder, then renamed into place."""
    path = Path(path)
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for k, v in (optimizer or {}).items():
        tensors[f"optimizer/{k}"] = v.detach().cpu().contiguous()
    for k, v in (ema or {}).items():
        tensors[f"ema/{k}"] = v.detach().cpu().contiguous()
    if rng is not None:
        tensors["rng/torch"] = rng.cpu()
    metadata = {
        "format": FORMAT,
        "cortexfm_version": cortexfm.__version__,
        "config": config.to_json(),
        "sessions": json.dumps(
            [{"session_id": s, "n_neurons": model.n_neurons(s)} for s in model.session_ids]
        ),
        "trainer": json.dumps(trainer or {}),
    }
    data = save_bytes(tensors, metadata=metadata)
    write_bytes_atomic(path, data, durable=True)
    return path


def _read_metadata(path: Path, data: bytes) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then a JSON header
    if len(data) < 8:
        raise CheckpointError(path, f"file is {len(data)} bytes: truncated or not a checkpoint")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise CheckpointError(path, "header runs past the end of the file: truncated")
    try:
        header = json.loads(data[8 : 8 + n])
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(path, "not a safetensors file (unreadable header)") from None
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            path, f"not a cortexfm checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})"
        )
    return meta


def _placeholder(session_id: str, n_neurons: int) -> SessionInfo:
    """Right-sized session info whose buffers the checkpoint then overwrites."""
    normalizer = Normalizer.from_parameters(
        video_mean=0.0,
        video_std=1.0,
        response_scale=np.ones(n_neurons),
        response_shift=np.zeros(n_neurons),
        behavior_mean=np.zeros(2),
        behavior_std=np.ones(2),
        pupil_mean=np.zeros(2),
        pupil_std=np.ones(2),
    )
    return SessionInfo(session_id, np.arange(n_neurons), np.zeros((n_neurons, 3)), normalizer)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint; a missing, corrupt, truncated or mismatched file gives a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file does not exist")
    data = path.read_bytes()
    meta = _read_metadata(path, data)
    try:
        tensors = load_bytes(data)
    except (SafetensorError, RuntimeError, ValueError) as err:
        raise CheckpointError(path, f"corrupt or truncated tensor data ({err})") from None
    try:
        config = RunConfig.from_dict(_with_former_defaults(json.loads(meta["config"])))
        sessions = json.loads(meta["sessions"])
        trainer = json.loads(meta.get("trainer", "{}"))
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(path, f"metadata field is missing or invalid ({err})") from None
    model = FoundationModel(
        config.model, [_placeholder(s["session_id"], int(s["n_neurons"])) for s in sessions]
    )
    state = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            path,
            f"weights do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}",
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(
                path,
                f"tensor model/{k} has shape {tuple(v.shape)}, config implies {tuple(expected[k].shape)}",
            )
    model.load_state_dict(state)
    model.to(map_location)
    return Checkpoint(
        model=model,
        config=config,
        version=meta.get("cortexfm_version", "?"),
        trainer=trainer,
        optimizer={
            k[len("optimizer/") :]: v for k, v in tensors.items() if k.startswith("optimizer/")
        },
        ema={k[len("ema/") :]: v for k, v in tensors.items() if k.startswith("ema/")},
        rng=tensors.get("rng/torch"),
    )


#: Model settings whose default changed, with the value a checkpoint that predates the field
#: was trained with (its config then lacks the key).
FORMER_DEFAULTS = {
    "core": {"behavior_input": True},
    "readout": {"behavior_gain": False, "barcode_init": "random"},
}


def _with_former_defaults(config: dict) -> dict:
    model = config.get("model", {})
    for part, values in FORMER_DEFAULTS.items():
        if isinstance(model.get(part), dict):
            for key, value in values.items():
                model[part].setdefault(key, value)
    return config


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state into tensors (for safetensors) and JSON-able values."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict = {"param_groups": state["param_groups"], "scalars": {}}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{name}"] = value
            else:
                scalars["scalars"][f"{index}/{name}"] = value
    return tensors, scalars


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], scalars: dict
) -> None:
    state: dict = {}
    for key, value in tensors.items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    for key, value in scalars.get("scalars", {}).items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
