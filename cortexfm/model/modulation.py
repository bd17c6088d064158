"""Modulation: behaviour sets the state of the cortex (arousal, locomotion).

``behavior [batch, time, 2]`` (pupil size, running speed; normalised) and their temporal
derivatives -> MLP -> LSTM -> ``[batch, time, features]``, fed into the recurrent core.
The derivative at frame t is ``behavior[t] - behavior[t-1]``, with the previous frame carried in
the state, so streaming in chunks gives the same result as one call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cortexfm.model.config import ModulationConfig

#: ``(previous behaviour [batch, 2] (NaN: none yet), LSTM h [1, batch, F], LSTM c [1, batch, F])``
ModulationState = tuple[Tensor, Tensor, Tensor]


class Modulation(nn.Module):
    def __init__(self, config: ModulationConfig) -> None:
        super().__init__()
        self.config = config
        self.mlp = nn.Sequential(nn.Linear(4, config.hidden), nn.GELU())
        self.lstm = nn.LSTM(config.hidden, config.features, batch_first=True)

    def initial_state(self, batch: int, device: torch.device) -> ModulationState:
        zeros = torch.zeros(1, batch, self.config.features, device=device)
        no_previous = torch.full((batch, 2), float("nan"), device=device)
        return no_previous, zeros, zeros.clone()

    def forward(
        self, behavior: Tensor, state: ModulationState | None = None
    ) -> tuple[Tensor, ModulationState]:
        b = behavior.shape[0]
        if state is None:
            state = self.initial_state(b, behavior.device)
        previous, h, c = state
        # the first frame of a sequence (previous = NaN) gets a zero derivative
        previous = torch.where(torch.isnan(previous), behavior[:, 0], previous)
        shifted = torch.cat([previous.unsqueeze(1), behavior[:, :-1]], dim=1)
        derivative = behavior - shifted
        x = self.mlp(torch.cat([behavior, derivative], dim=-1))
        out, (h, c) = self.lstm(x, (h, c))
        return out, (behavior[:, -1], h, c)
