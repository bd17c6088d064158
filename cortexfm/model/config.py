"""Typed configuration of the model, with the ``tiny``, ``cpu`` and ``paper`` presets.

Swapping a component is a config change: e.g. ``core.recurrent = "none"`` drops the ConvLSTM,
``readout.sample = False`` reads out at the mean position during training too.
A config round-trips through JSON (``to_dict`` / ``from_dict``); ``apply_overrides`` takes
dotted ``key=value`` strings such as ``core.hidden=48``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

import numpy as np

#: what the retina does before the core's convolutions (cortexfm.model.retina)
FrontEndKind = Literal["none", "contrast", "whiten", "whiten_contrast", "gabor_pyramid"]


@dataclass
class PerspectiveConfig:
    """Eye position -> eye rotation -> rays from a retina grid onto the monitor plane."""

    retina_size: tuple[int, int] = (36, 64)  # [height, width] of the sampled retinal image
    hidden: int = 16  # MLP width (pupil centre -> rotation)
    monitor_half_width: float = 1.732  # tan(60 deg): a 120-degree-wide monitor at distance 1
    monitor_half_height: float = 0.668  # tan(33.75 deg)


@dataclass
class ModulationConfig:
    """Behaviour (pupil, running and their temporal derivatives) -> MLP -> LSTM."""

    hidden: int = 16
    features: int = 8  # LSTM units fed into the recurrent core


@dataclass
class CoreConfig:
    """Causal (2+1)D feed-forward convolutions, then a ConvLSTM at reduced resolution."""

    channels: tuple[int, ...] = (16, 32)  # per feed-forward layer
    spatial_kernels: tuple[int, ...] = (7, 3)
    strides: tuple[int, ...] = (2, 2)
    temporal_kernels: tuple[int, ...] = (5, 3)  # causal: frame t sees frames t-k+1..t
    recurrent: Literal["convlstm", "none"] = "convlstm"
    # the first layer's spatial kernels start as "kaiming" (random) or "gabor": an oriented
    # bank (cortexfm.model.core.gabor_bank; orientations x even/odd phase x two periods), the
    # V1 prior, still learned
    init: Literal["kaiming", "gabor"] = "kaiming"
    # the first layer's spatial kernels start at this fraction of that scale. Below 1 what
    # training learns outweighs the random start sooner (a kernel moves |dW|/|W0| ~ 0.2 in
    # 1,000 steps at 1, so a random 7x7 draw otherwise stays the filter)
    init_gain: float = 1.0
    skip: bool = False  # readouts also see the feed-forward features beside the ConvLSTM's
    # readouts also see the first feed-forward layer's output at its own, finer resolution,
    # beside the core's output upsampled to it (cortexfm.model.core.Core.forward): a neuron
    # between two units of the coarse map then reads features at its own position instead of
    # the average of its neighbours', which cancels gratings finer than the map's spacing
    fine_skip: bool = False
    # a linear pathway beside the core: this many causal spatiotemporal filters of the retina
    # with no rectification (``linear_kernel`` pixels square, ``linear_temporal`` frames), at the
    # first layer's resolution; readouts read them beside the core's output (upsampled to that
    # map), so each neuron's log-rate can hold a signed, phase-sensitive linear term, as a simple
    # cell's does (cortexfm.model.core.Core). 0: off
    linear_channels: int = 0
    linear_kernel: int = 9
    linear_temporal: int = 7
    # the linear pathway's stride on the retina: 0, the first feed-forward layer's (its finer
    # map); the product of core.strides puts it on the core's own map (9 x 16 on the cpu
    # retina), where it costs nothing and nothing is upsampled
    linear_stride: int = 0
    # each strided feed-forward layer convolves at full resolution, rectifies, then blurs and
    # subsamples (cortexfm.model.core.blur_pool): drifting patterns finer than the map's spacing
    # give a smooth, phase-invariant drive instead of an aliased one. Costs ~25 % more work
    antialias: bool = False
    hidden: int = 32  # ConvLSTM channels (the feature map the readouts sample)
    # behaviour (the modulation features) enters the ConvLSTM's gates, as in Wang et al. 2025;
    # false (the default): the core sees the stimulus only and behaviour acts through
    # readout.behavior_gain. Measured on both simulator generators (CHANGELOG, issue 17):
    # behaviour in the core lowered natural accuracy, full-field gratings and tuning
    behavior_input: bool = False
    recurrent_kernel: int = 3  # the ConvLSTM's input (features -> gates) convolution
    # its recurrent (h -> gates) convolution; 1 makes the recurrence local to each position,
    # so ``hidden`` can grow at little cost (the recurrent convolution is half the core's work)
    hidden_kernel: int = 3
    # the ConvLSTM's cell (cortexfm.model.core.ConvLSTM): "lstm" (bounded output, tanh) or
    # "gated_linear" (sigmoid gates, linear signal path: the output grows with the drive)
    cell: Literal["lstm", "gated_linear"] = "lstm"
    # "divisive": the last feed-forward layer's channels are divided by their pooled activity
    # before the ConvLSTM (cortexfm.model.core.DivisiveNormalization), so full-contrast,
    # full-field stimuli keep their pattern across channels instead of saturating the gates;
    # "contrast_gain": the ConvLSTM sees the channels' pattern at unit contrast and its output is
    # scaled by a learned contrast response (cortexfm.model.core.ContrastGain), so how
    # much the gates saturate cannot depend on contrast
    normalization: Literal["none", "divisive", "contrast_gain"] = "none"
    # batch normalisation (per channel; cortexfm.model.core.FeatureBatchNorm) of the input's
    # share of the ConvLSTM's gates (Cooijmans et al. 2016): batch statistics while the core
    # learns, their running averages at test. For the `paper` preset, whose deep, wide
    # feed-forward layers learn to drive the gates into saturation (99.96 % of gate
    # pre-activations beyond +-3 after 700 steps on four mice, and training stalls); whether
    # it lifts that stall is not yet measured on a GPU (docs/training.md)
    batch_norm: bool = False
    # what the retina does first (cortexfm.model.retina): "none", "contrast" (gain control),
    # "whiten" (luminance + centre-surround residual channels), "whiten_contrast" (both) or
    # "gabor_pyramid" (a fixed oriented quadrature bank at 3 octaves and the local luminance,
    # 56 channels at half resolution; pair it with strides (2, 1) to keep the map's size)
    front_end: FrontEndKind = "none"
    # the feed-forward convolutions in this many channel groups (1: dense). With the
    # gabor_pyramid front end, 8 (its orientations) keeps each orientation's channels apart
    # until the ConvLSTM, and with ``skip`` the readouts see them apart
    groups: int = 1
    # rotation equivariance (Ecker et al. 2019; cortexfm.model.core.CausalConvLayer): the first
    # layer learns channels[0] / rotations kernels, each applied at this many rotations over
    # 360 deg, and the later feed-forward layers run in that many groups, so each orientation's
    # channels stay apart until the ConvLSTM. 0: off
    rotations: int = 0
    # the first layer also outputs the quadrature energy of each pair of its kernels (Adelson &
    # Bergen 1985; cortexfm.model.core.CausalConvLayer), a phase-invariant, complex-cell-like
    # channel beside the rectified ones; with init "gabor" the pairs start as even and odd
    # Gabors. Needs a multiple of 4 learned kernels (channels[0] / max(rotations, 1))
    energy: bool = False
    contrast_pool: float = 3.0  # s.d. (retina pixels) of the local contrast pool
    whiten_sigma: float = 2.0  # s.d. (retina pixels) of the surround removed by whitening


@dataclass
class ReadoutConfig:
    """Per neuron: a Gaussian position on the feature map, a feature-weight vector, a bias."""

    # sample positions from the Gaussian while training (mean at test). Off by default: on the
    # simulated cohort sampling slowed learning (validation r 0.218 vs 0.259 after 500 steps)
    sample: bool = False
    init_sigma: float = 0.1  # initial position spread, in feature-map units ([-1, 1])
    # the Poisson rate's nonlinearity, as in cajal/fnn: exp (the default since 2026-12-01:
    # more accurate than softplus on natural movies on both simulator generators, CHANGELOG),
    # softplus, or identity (with the Gaussian loss)
    output: Literal["softplus", "exp", "identity"] = "exp"
    # the barcodes' starting point: "random" (N(0, 1/C) per weight) or "uniform" (every weight
    # 1/C, as in Lurz et al. 2021). Random barcodes of unit norm barely move in training: the
    # core adapts to them instead (after 1,000 steps two models started from the same draw
    # share barcodes at cosine 0.74-0.997), and each neuron then reads a random mixture of
    # oriented channels. Uniform barcodes carry nothing until the data write them.
    barcode_init: Literal["random", "uniform"] = "uniform"
    # the barcode as Wang et al. 2025 (cajal/fnn's Norm feature) parametrise it:
    # gain_n x (v_n - mean(v_n)) / |v_n - mean(v_n)|, a zero-mean unit-norm direction over the
    # core's channels and a separate gain. A zero-mean barcode cannot read what all channels
    # share (on natural movies, mostly local luminance and contrast), only what tells them
    # apart, and its direction learns at a rate set by the learning rate, not by its size.
    # With barcode_init "uniform", v starts at zero, as in fnn: the data set the direction.
    barcode_norm: bool = False
    # a per-neuron multiplicative gain from behaviour: response * exp(g_n . modulation_t), g_n
    # learned from zero. Running and arousal scale visual responses neuron by neuron; through
    # the core alone, behaviour can only shift the features that every neuron shares.
    behavior_gain: bool = True
    # the side, in feature-map units, of each neuron's spatial mask around its position: 1 reads
    # one point (as in cajal/fnn); 3 reads a 3 x 3 neighbourhood, weighted by a learned mask
    # (starts as the point) times the barcode, so a neuron can combine the same channels at
    # neighbouring positions (a receptive field's sub-fields, its spatial phase) on a coarse map
    spatial_kernel: int = 1
    # a per-neuron Gabor pathway on the retina beside the readout (cortexfm/model/gabor.py):
    # each neuron's own orientation, spatial frequency, envelope, linear (any phase, direction
    # selective) and energy terms, over gabor_frames frames of causal temporal bases
    # "fitted": one quadrature pair per neuron whose wave vector and envelope are learned;
    # "bank": a fixed bank (4 orientations, 0.1 cycles per retina pixel) read by per-neuron weights, the
    # energies as their mean over orientations and each orientation's deviation from it
    gabor: Literal["none", "fitted", "bank"] = "none"
    gabor_frames: int = 12
    # the bank's spatial frequencies, cycles per retina pixel (~2 deg at the centre of the
    # default 64-pixel, 120-deg retina), each with the same bandwidth in octaves
    gabor_frequencies: tuple[float, ...] = (0.1,)
    # the bank's energies divided by a learned semi-saturation plus the local contrast (their
    # mean over the bank): divisive normalisation, cortexfm.model.gabor.GaborBank
    gabor_normalization: bool = False


@dataclass
class ModelConfig:
    perspective: PerspectiveConfig = field(default_factory=PerspectiveConfig)
    modulation: ModulationConfig = field(default_factory=ModulationConfig)
    core: CoreConfig = field(default_factory=CoreConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)

    def __post_init__(self) -> None:
        c = self.core
        n = len(c.channels)
        if not (len(c.spatial_kernels) == len(c.strides) == len(c.temporal_kernels) == n):
            raise ValueError(
                "core.channels, core.spatial_kernels, core.strides and core.temporal_kernels "
                f"must have the same length, got {n}, {len(c.spatial_kernels)}, "
                f"{len(c.strides)}, {len(c.temporal_kernels)}"
            )
        front_ends = ("none", "contrast", "whiten", "whiten_contrast", "gabor_pyramid")
        if c.front_end not in front_ends:
            raise ValueError(f"core.front_end must be one of {front_ends}, got {c.front_end!r}")
        if c.rotations < 0 or (
            c.rotations and (c.groups != 1 or any(ch % c.rotations for ch in c.channels))
        ):
            raise ValueError(
                f"core.rotations={c.rotations} must be >= 0, divide every core.channels "
                f"{c.channels} and come with core.groups=1 (it sets the groups itself)"
            )
        if c.energy and (c.groups != 1 or (c.channels[0] // max(c.rotations, 1)) % 4):
            raise ValueError(
                f"core.energy needs core.groups=1 and core.channels[0] / core.rotations a "
                f"multiple of 4 (its kernels pair up), got {c.channels[0]} / {c.rotations}"
            )
        if c.groups < 1 or any(ch % c.groups for ch in c.channels):
            raise ValueError(
                f"core.groups={c.groups} must be >= 1 and divide every core.channels {c.channels}"
            )
        if c.linear_channels < 0 or c.linear_temporal < 1:
            raise ValueError(
                "core.linear_channels must be >= 0 and core.linear_temporal >= 1, got "
                f"{c.linear_channels}, {c.linear_temporal}"
            )
        # the linear map must be the first layer's or the core's own, so the maps stay aligned
        strides = {0, c.strides[0]} | (set() if c.fine_skip else {int(np.prod(c.strides))})
        if c.linear_stride not in strides:
            raise ValueError(
                f"core.linear_stride={c.linear_stride} must be one of {sorted(strides)}: 0 or "
                "the first layer's stride (its map), or the product of core.strides (the core's)"
            )
        for name in ("recurrent_kernel", "hidden_kernel", "linear_kernel"):
            k = getattr(c, name)
            if k < 1 or k % 2 == 0:
                raise ValueError(f"core.{name} must be an odd number >= 1, got {k}")
        if c.recurrent not in ("convlstm", "none"):
            raise ValueError(f"core.recurrent must be 'convlstm' or 'none', got {c.recurrent!r}")
        if c.cell not in ("lstm", "gated_linear"):
            raise ValueError(f"core.cell must be 'lstm' or 'gated_linear', got {c.cell!r}")
        if c.normalization not in ("none", "divisive", "contrast_gain"):
            raise ValueError(
                f"core.normalization must be none, divisive or contrast_gain, got {c.normalization!r}"
            )
        if c.normalization == "contrast_gain" and c.recurrent != "convlstm":
            raise ValueError("core.normalization=contrast_gain needs core.recurrent=convlstm")
        if c.batch_norm and c.recurrent != "convlstm":
            raise ValueError(
                "core.batch_norm normalises the ConvLSTM's gates: it needs core.recurrent=convlstm"
            )
        r = self.readout
        if r.gabor_frames < 1:
            raise ValueError(f"readout.gabor_frames must be >= 1, got {r.gabor_frames}")
        if not r.gabor_frequencies or not all(0 < f < 0.5 for f in r.gabor_frequencies):
            raise ValueError(
                "readout.gabor_frequencies must be one or more cycles per pixel in (0, 0.5), "
                f"got {r.gabor_frequencies}"
            )
        if r.gabor_normalization and r.gabor != "bank":
            raise ValueError("readout.gabor_normalization needs readout.gabor=bank")
        k = self.readout.spatial_kernel
        if k < 1 or k % 2 == 0:
            raise ValueError(f"readout.spatial_kernel must be an odd number >= 1, got {k}")
        if self.readout.output not in ("softplus", "exp", "identity"):
            raise ValueError(
                f"readout.output must be softplus, exp or identity, got {self.readout.output!r}"
            )


def preset(name: str) -> ModelConfig:
    """``tiny`` (tests), ``cpu`` (the default; 36x64 input) or ``paper`` (144x256, ~4.5M core)."""
    if name == "tiny":
        return ModelConfig(
            perspective=PerspectiveConfig(retina_size=(18, 32), hidden=8),
            modulation=ModulationConfig(hidden=8, features=4),
            core=CoreConfig(
                channels=(8,),
                spatial_kernels=(5,),
                strides=(2,),
                temporal_kernels=(3,),
                hidden=8,
            ),
        )
    if name == "cpu":
        return ModelConfig()
    if name == "paper":
        return ModelConfig(
            perspective=PerspectiveConfig(retina_size=(144, 256), hidden=32),
            modulation=ModulationConfig(hidden=32, features=16),
            core=CoreConfig(
                channels=(64, 128, 128, 128),
                spatial_kernels=(11, 5, 5, 3),
                strides=(2, 2, 1, 2),
                temporal_kernels=(7, 5, 3, 3),
                hidden=256,
                recurrent_kernel=3,
            ),
        )
    raise ValueError(f"unknown preset {name!r}; choose tiny, cpu or paper")


PRESETS = ("tiny", "cpu", "paper")


# -- (de)serialisation shared by every config dataclass ----------------------------------------


def to_dict(config: Any) -> dict:
    return json.loads(json.dumps(asdict(config)))


def from_dict(cls: type, data: dict, path: str = "") -> Any:
    """Build a (nested) config dataclass from a dict; unknown keys, and values outside a
    ``Literal`` field's choices, are errors naming the dotted key."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} field(s) {sorted(path + k for k in unknown)}; "
            f"known: {sorted(known)}"
        )
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name) if _has_defaults(cls) else None
        if is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = from_dict(type(default), value, f"{path}{name}.")
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
        if get_origin(hints.get(name)) is Literal and kwargs[name] not in get_args(hints[name]):
            raise ValueError(
                f"{path}{name}={kwargs[name]!r}: choose one of {list(get_args(hints[name]))}"
            )
    return cls(**kwargs)


def describe_fields(config: Any, prefix: str = "") -> list[str]:
    """One line per (nested) field: ``dotted.key = default  (choices)``, for ``--help``."""
    lines = []
    hints = get_type_hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            lines += describe_fields(value, f"{prefix}{f.name}.")
            continue
        hint = hints.get(f.name)
        choices = (
            f"  (one of {', '.join(map(str, get_args(hint)))})"
            if get_origin(hint) is Literal
            else ""
        )
        shown = json.dumps(list(value) if isinstance(value, tuple) else value)
        lines.append(f"  {prefix}{f.name} = {shown}{choices}")
    return lines


def _has_defaults(cls: type) -> bool:
    try:
        cls()
    except TypeError:
        return False
    return True


def _parse_value(text: str, current: Any) -> Any:
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true/false, got {text!r}")
    if isinstance(current, tuple):
        # commas, semicolons or spaces: "core.channels=32;64" survives a comma-separated list
        items = [s for s in re.split(r"[,;\s]+", text.strip("()[] ")) if s]
        kind = type(current[0]) if current else int
        return tuple(kind(s.strip()) for s in items)
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if current is None:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def apply_overrides(config: Any, overrides: list[str], prefix: str = "") -> Any:
    """Return a copy of ``config`` with dotted ``key=value`` overrides applied (``prefix``:
    the section's dotted name, for messages)."""
    data = to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. core.hidden=48)")
        key, text = item.split("=", 1)
        node, obj = data, config
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"unknown config section {part!r} in override {item!r}")
            node, obj = node[part], getattr(obj, part)
        last = parts[-1]
        if last not in node:
            raise ValueError(f"unknown config field {prefix + key!r}; known here: {sorted(node)}")
        try:
            node[last] = _parse_value(text.strip(), getattr(obj, last))
        except ValueError as err:
            raise ValueError(f"override {prefix + item!r}: {err}") from None
        if isinstance(node[last], tuple):
            node[last] = list(node[last])
    return from_dict(type(config), data, prefix)
