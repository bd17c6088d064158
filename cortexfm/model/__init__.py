"""The foundation model: perspective, modulation, shared core, per-neuron readout."""

from cortexfm.model.config import (
    PRESETS,
    CoreConfig,
    ModelConfig,
    ModulationConfig,
    PerspectiveConfig,
    ReadoutConfig,
    apply_overrides,
    preset,
)
from cortexfm.model.loss import LOSSES, response_loss
from cortexfm.model.network import FoundationModel, ModelState, SessionInfo

__all__ = [
    "LOSSES",
    "PRESETS",
    "CoreConfig",
    "FoundationModel",
    "ModelConfig",
    "ModelState",
    "ModulationConfig",
    "PerspectiveConfig",
    "ReadoutConfig",
    "SessionInfo",
    "apply_overrides",
    "preset",
    "response_loss",
]
