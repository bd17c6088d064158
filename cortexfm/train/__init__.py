"""Training: the multi-mouse loop, checkpoints, distributed data parallel."""

from cortexfm.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cortexfm.train.config import RunConfig, TrainConfig, load_run_config
from cortexfm.train.trainer import TrainResult, build_model, train

__all__ = [
    "CheckpointError",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "load_checkpoint",
    "load_run_config",
    "save_checkpoint",
    "train",
]
