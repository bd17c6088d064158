"""The foundation model: one shared core, and per session a perspective, a modulation and a
readout (plus that session's normalisation, so a checkpoint predicts from raw data alone).

Data flow for session ``s`` (``B`` windows of ``T`` frames)::

    video [B, T, H, W] --Perspective_s(pupil_center [B, T, 2])--> retina [B, T, h, w]
    behavior [B, T, 2] --Modulation_s--> modulation [B, T, M]
    retina, modulation --Core (shared)--> features [B, T, C, h', w']
    features --Readout_s--> output nonlinearity --> responses [B, T, neurons]
    (with ``readout.gabor``, each neuron's Gabor pathway on the retina adds to the readout's
    drive before the nonlinearity)

Recurrent state (``ModelState``) is passed in and returned, never kept inside modules, so a
video can be streamed in chunks: chunked and whole-sequence predictions agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from cortexfm.data.statistics import Normalizer, to_model_units, to_raw_units
from cortexfm.model.config import ModelConfig
from cortexfm.model.core import Core, CoreState
from cortexfm.model.loss import output_nonlinearity
from cortexfm.model.modulation import Modulation, ModulationState
from cortexfm.model.perspective import Perspective
from cortexfm.model.readout import PositionMap, Readout

#: ``(modulation state, core state, Gabor pathway history)`` of one batch of streams (the
#: history ``[batch, frames - 1, h, w]`` of retina frames, None without the pathway).
ModelState = tuple[ModulationState, CoreState, Tensor | None]


@dataclass
class SessionInfo:
    """What the model needs to know about a session: its neurons and its normalisation."""

    session_id: str
    unit_ids: np.ndarray  # [neurons]
    coordinates: np.ndarray  # [neurons, 3] µm (NaN when unknown)
    normalizer: Normalizer

    @property
    def n_neurons(self) -> int:
        return len(self.unit_ids)


class Normalization(nn.Module):
    """A session's normalisation as buffers (saved with the weights)."""

    def __init__(self, normalizer: Normalizer) -> None:
        super().__init__()

        for name in Normalizer.PARAMETERS:
            value = np.asarray(getattr(normalizer, name))
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))

    def to_normalizer(self) -> Normalizer:
        """The same normalisation as a numpy :class:`Normalizer` (for data loaders)."""
        return Normalizer.from_parameters(
            **{name: getattr(self, name).cpu().double().numpy() for name in Normalizer.PARAMETERS}
        )

    def inputs(self, video: Tensor, behavior: Tensor, pupil_center: Tensor) -> tuple:
        """Raw inputs -> the model's units."""
        return (
            to_model_units(video, self.video_mean, self.video_std),
            self.behavior(behavior),
            to_model_units(pupil_center, self.pupil_mean, self.pupil_std),
        )

    def behavior(self, behavior: Tensor) -> Tensor:
        """Raw behaviour ``[..., channels]`` -> the model's units."""
        return to_model_units(behavior, self.behavior_mean, self.behavior_std)

    def targets(self, responses: Tensor) -> Tensor:
        """Raw recorded responses -> the model's units (what the loss compares with)."""
        return to_model_units(responses, self.response_shift, self.response_scale)

    def responses(self, normalised: Tensor) -> Tensor:
        """Predicted responses in the model's units -> raw units."""
        return to_raw_units(normalised, self.response_shift, self.response_scale)


class SessionModules(nn.Module):
    """Everything specific to one session."""

    def __init__(self, config: ModelConfig, channels: int, info: SessionInfo) -> None:
        super().__init__()
        self.perspective = Perspective(config.perspective)
        self.modulation = Modulation(config.modulation)
        self.readout = Readout(
            config.readout, channels, info.coordinates, config.modulation.features
        )
        self.normalization = Normalization(info.normalizer)
        self.register_buffer("unit_ids", torch.as_tensor(np.asarray(info.unit_ids, dtype=np.int64)))


class FoundationModel(nn.Module):
    def __init__(self, config: ModelConfig, sessions: list[SessionInfo]) -> None:
        super().__init__()
        self.config = config
        self.core = Core(config.core, config.modulation.features)
        self.position_map = PositionMap()
        self.sessions = nn.ModuleDict()
        self.session_ids: list[str] = []
        for info in sessions:
            self.add_session(info)

    # -- sessions -----------------------------------------------------------------------------

    def _key(self, session_id: str) -> str:
        try:
            return f"s{self.session_ids.index(session_id)}"
        except ValueError:
            raise KeyError(
                f"unknown session id {session_id!r}; this model has {self.session_ids}"
            ) from None

    def add_session(self, info: SessionInfo) -> None:
        """Give the model a new session (a new mouse) with fresh session modules."""
        if info.session_id in self.session_ids:
            raise ValueError(f"session {info.session_id!r} is already in the model")
        if len(info.coordinates) != info.n_neurons:
            raise ValueError(
                f"session {info.session_id!r}: {len(info.coordinates)} coordinates for "
                f"{info.n_neurons} neurons"
            )
        self.session_ids.append(info.session_id)
        self.sessions[self._key(info.session_id)] = SessionModules(
            self.config, self.core.out_channels, info
        )

    def session(self, session_id: str) -> SessionModules:
        return self.sessions[self._key(session_id)]  # type: ignore[return-value]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The core and the coordinate-to-position map: shared by all mice."""
        return [*self.core.parameters(), *self.position_map.parameters()]

    def session_parameters(self, session_id: str) -> list[nn.Parameter]:
        return list(self.session(session_id).parameters())

    def n_neurons(self, session_id: str) -> int:
        return self.session(session_id).readout.n_neurons

    def resting_inputs(self, session_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The session's training means, raw: ``behavior [2]`` and ``pupil_center [2]``.

        What in-silico experiments and ``cortexfm predict`` hold behaviour and gaze at when
        they are not given (stored with the weights, so no data are needed).
        """
        norm = self.session(session_id).normalization
        return (
            norm.behavior_mean.detach().cpu().numpy().astype(np.float32),
            norm.pupil_mean.detach().cpu().numpy().astype(np.float32),
        )

    # -- forward ------------------------------------------------------------------------------

    def forward(
        self,
        session_id: str,
        video: Tensor,
        behavior: Tensor,
        pupil_center: Tensor,
        state: ModelState | None = None,
        sample: bool | None = None,
    ) -> tuple[Tensor, ModelState]:
        """Normalised inputs -> predicted normalised responses ``[batch, time, neurons]``.

        ``video [batch, time, H, W]``, ``behavior [batch, time, 2]``,
        ``pupil_center [batch, time, 2]``. ``sample`` (default: ``self.training`` and
        ``readout.sample``) draws readout positions from their Gaussians.
        """
        if sample is None:
            sample = self.training and self.config.readout.sample
        readout, pathway, modulation, state = self._drives(
            session_id, video, behavior, pupil_center, state, sample
        )
        x = readout if pathway is None else readout + pathway
        readout_module = self.session(session_id).readout
        log_gain = None if readout_module.gain is None else readout_module.log_gain(modulation)
        return output_nonlinearity(x, self.config.readout.output, log_gain), state

    @torch.no_grad()
    def drives(
        self, session_id: str, video: Tensor, behavior: Tensor, pupil_center: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Normalised inputs (as :meth:`forward`) -> the two parts of the drive before the
        output nonlinearity, each ``[batch, time, neurons]``: the readout's (the core's
        features) and the Gabor pathway's (``readout.gabor``; None without one). Which part
        moves a neuron on a stimulus (``benchmarks/gabor_pathway.py --drive``)."""
        readout, pathway, _, _ = self._drives(
            session_id, video, behavior, pupil_center, None, sample=False
        )
        return readout, pathway

    def _drives(
        self,
        session_id: str,
        video: Tensor,
        behavior: Tensor,
        pupil_center: Tensor,
        state: ModelState | None,
        sample: bool,
    ) -> tuple[Tensor, Tensor | None, Tensor, ModelState]:
        """The readout's drive, the Gabor pathway's (None without one), the modulation and
        the new state."""
        modules = self.session(session_id)
        gabor_history = state[2] if state is not None else None
        features, modulation, retina, state = self._features(
            session_id, video, behavior, pupil_center, state
        )
        readout = modules.readout(features, self.position_map, sample)
        pathway = None
        if modules.readout.gabor is not None:
            positions = modules.readout.positions(self.position_map)
            pathway, gabor_history = modules.readout.gabor(retina, positions, gabor_history)
        return readout, pathway, modulation, (*state[:2], gabor_history)

    def features(
        self,
        session_id: str,
        video: Tensor,
        behavior: Tensor,
        pupil_center: Tensor,
        state: ModelState | None = None,
    ) -> tuple[Tensor, ModelState]:
        """Normalised inputs -> the core's feature map ``[batch, time, C, h, w]`` as this
        session's readout sees it (through its perspective and modulation)."""
        features, _, _, state = self._features(session_id, video, behavior, pupil_center, state)
        return features, state

    def _features(
        self,
        session_id: str,
        video: Tensor,
        behavior: Tensor,
        pupil_center: Tensor,
        state: ModelState | None,
    ) -> tuple[Tensor, Tensor, Tensor, ModelState]:
        """Features, the modulation ``[batch, time, M]``, the retina ``[batch, time, h, w]``
        and the new state (the Gabor pathway's history passed through unchanged)."""
        _check_inputs(video, behavior, pupil_center)
        modules = self.session(session_id)
        modulation_state, core_state, gabor_history = (
            state if state is not None else (None, None, None)
        )
        retina = modules.perspective(video, pupil_center)
        modulation, modulation_state = modules.modulation(behavior, modulation_state)
        features, core_state = self.core(retina, modulation, core_state)
        return features, modulation, retina, (modulation_state, core_state, gabor_history)

    @torch.no_grad()
    def predict(
        self,
        session_id: str,
        video: Tensor | np.ndarray,
        behavior: Tensor | np.ndarray,
        pupil_center: Tensor | np.ndarray,
        state: ModelState | None = None,
        chunk: int = 300,
    ) -> tuple[Tensor, ModelState]:
        """Raw inputs -> predicted raw responses, streamed causally in chunks of frames.

        Inputs may be unbatched (``video [time, H, W]``) or batched over videos
        (``[batch, time, H, W]``); the output matches (``[time, neurons]`` or
        ``[batch, time, neurons]``). Pass the returned state to continue a stream.
        """
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            tensors = [
                torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
                for x in (video, behavior, pupil_center)
            ]
            unbatched = tensors[0].ndim == 3
            if unbatched:
                tensors = [x.unsqueeze(0) for x in tensors]
            video_t, behavior_t, pupil_t = (
                x.to(device=device, dtype=torch.float32) for x in tensors
            )
            _check_inputs(video_t, behavior_t, pupil_t)
            norm = self.session(session_id).normalization
            video_t, behavior_t, pupil_t = norm.inputs(video_t, behavior_t, pupil_t)
            outputs = []
            for start in range(0, video_t.shape[1], chunk):
                stop = start + chunk
                out, state = self(
                    session_id,
                    video_t[:, start:stop],
                    behavior_t[:, start:stop],
                    pupil_t[:, start:stop],
                    state,
                    sample=False,
                )
                outputs.append(norm.responses(out))
            responses = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)
            return (responses[0] if unbatched else responses), state  # type: ignore[return-value]
        finally:
            self.train(was_training)


def _check_inputs(video: Tensor, behavior: Tensor, pupil_center: Tensor) -> None:
    if video.ndim != 4:
        raise ValueError(
            f"video must be [batch, time, height, width], got shape {tuple(video.shape)}"
        )
    b, t = video.shape[:2]
    for name, x in (("behavior", behavior), ("pupil_center", pupil_center)):
        if x.shape != (b, t, 2):
            raise ValueError(
                f"{name} must be [batch, time, 2] = ({b}, {t}, 2) to match the video, "
                f"got {tuple(x.shape)}"
            )
    for name, x in (("video", video), ("behavior", behavior), ("pupil_center", pupil_center)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
