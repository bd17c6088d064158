"""The core, shared by every mouse: causal (2+1)D convolutions, then a ConvLSTM.

Each feed-forward layer is a spatial convolution (with stride) followed by a causal temporal
convolution: frame t sees input frames t-k+1..t only. The last ``k-1`` input frames of each
temporal convolution are carried in the state, so a video streamed in chunks gives exactly the
output of one call. The ConvLSTM runs at the reduced resolution; with ``behavior_input`` it
also receives the modulation features (behaviour) as a per-channel input to its gates.

With ``normalization="divisive"`` the last feed-forward layer's channels are divisively
normalised before the ConvLSTM (:class:`DivisiveNormalization`); with ``"contrast_gain"`` the
ConvLSTM sees the pattern across channels at unit contrast and its output is scaled back by
a learned response to the local contrast (:class:`ContrastGain`).

``retina [batch, time, H, W]`` + ``modulation [batch, time, M]`` ->
``features [batch, time, C, h, w]`` (the ConvLSTM output, and with ``skip`` the last
feed-forward layer's output concatenated along channels). With ``fine_skip`` the map is the
first feed-forward layer's (finer) one: those features, beside the rest upsampled to it.
With ``linear_channels`` a linear (unrectified) causal filter bank of the retina is
concatenated last, on the first layer's finer map (the rest upsampled to it) or, with
``linear_stride``, on the core's own (its temporal buffer follows the layers' in the state).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cortexfm.model.config import CoreConfig
from cortexfm.model.retina import FrontEnd, gabor

#: ``(temporal buffers, one [batch, C, k-1, h, w] per layer; ConvLSTM h; ConvLSTM c)``
CoreState = tuple[list[Tensor], Tensor | None, Tensor | None]


class CausalConvLayer(nn.Module):
    """Spatial ``k x k`` convolution (stride s), then a causal temporal convolution, both in
    ``groups`` channel groups (1: dense). The spatial kernels start as a Kaiming draw (or a
    Gabor bank) times ``init_gain``. With ``antialias`` the spatial convolution runs at full
    resolution and its rectified output is blurred before it is subsampled (:func:`blur_pool`),
    so the map's size is the same but finer patterns than its spacing are not aliased.

    With ``rotations`` n > 0 the layer is rotation-equivariant (Ecker et al. 2019): it learns
    ``c_out / n`` kernels and applies each at n rotations (every 360 / n degrees; output
    channels orientation-major, block g rotated by g 360 / n), and its temporal convolution is
    one ``c_out / n``-channel filter shared by every rotation (``groups = n``). A kernel that
    one orientation's neurons shape then serves every orientation, so the layer's oriented
    filters learn from all neurons at once, and a rotated pattern gives the same features in
    the rotated block (up to the pixel grid).

    With ``energy`` the layer also computes the quadrature energy of its kernel pairs
    (Adelson & Bergen 1985), a complex cell's phase-invariant response: of each 4 learned
    kernels, ``j`` and ``j + 2`` form a pair (in the Gabor bank, the even and odd phase at one
    orientation and period), and ``sqrt(y_j^2 + y_{j+2}^2)`` of their linear outputs joins the
    rectified ones, before the temporal convolution (per orientation block: its rectified
    outputs, then half as many energies; ``out_channels`` is 1.5x ``c_out``)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        temporal: int,
        gabor: bool = False,
        groups: int = 1,
        init_gain: float = 1.0,
        antialias: bool = False,
        rectify: bool = True,
        rotations: int = 0,
        energy: bool = False,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.rectify = rectify
        self.antialias = antialias and stride > 1
        self.rotations = rotations
        if rotations and (c_out % rotations or groups != 1):
            raise ValueError(
                f"core.rotations={rotations} must divide the first layer's {c_out} channels "
                "and come with groups=1"
            )
        learned = c_out // rotations if rotations else c_out  # kernels with their own weights
        if energy and (learned % 4 or groups != 1 or not rectify):
            raise ValueError(
                f"core.energy needs a multiple of 4 learned first-layer kernels (got {learned}: "
                "core.channels[0] / core.rotations) and core.groups=1"
            )
        self.energy = energy
        # channels into the temporal convolution: the rectified outputs (+ the pairs' energies)
        filtered = learned + learned // 2 if energy else learned
        self.spatial = nn.Conv2d(
            c_in,
            learned,
            kernel,
            stride=1 if self.antialias else stride,
            padding=kernel // 2,
            groups=groups,
        )
        self.temporal = nn.Conv3d(
            filtered, filtered, (temporal, 1, 1), groups=1 if rotations else groups
        )
        self.history = temporal - 1
        for conv in (self.spatial, self.temporal):  # variance-preserving through the GELUs
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        with torch.no_grad():
            if gabor:  # the spatial kernels start as an oriented bank, the same on every input
                bank = gabor_bank(learned, kernel) / np.sqrt(self.spatial.weight.shape[1])
                self.spatial.weight.copy_(bank[:, None].expand_as(self.spatial.weight))
            self.spatial.weight.mul_(init_gain)
        if rotations:
            self.register_buffer("rotation", rotation_matrices(kernel, rotations), persistent=False)

    @property
    def out_channels(self) -> int:
        return self.temporal.out_channels * max(self.rotations, 1)

    def rectified(self, y: Tensor) -> Tensor:
        """The spatial convolution's linear output ``[n, C', h, w]`` -> its rectified form, with
        ``energy`` each block of kernels followed by the quadrature energy of its pairs."""
        if not self.energy:
            return F.gelu(y)
        n, _, h, w = y.shape
        blocks = y.view(n, max(self.rotations, 1), -1, h, w)  # [n, rotations, learned, h, w]
        learned = blocks.shape[2]
        # [n, rotations, kernel group, phase (even, odd), period], as gabor_bank orders them
        pairs = blocks.view(n, blocks.shape[1], learned // 4, 2, 2, h, w)
        energy = (pairs.pow(2).sum(3) + 1e-6).sqrt().flatten(2, 3)  # [n, rot., learned / 2, ..]
        return torch.cat([F.gelu(blocks), energy], dim=2).flatten(1, 2)

    def spatial_kernels(self) -> tuple[Tensor, Tensor]:
        """The spatial convolution's weight ``[C', C_in / groups, k, k]`` and bias ``[C']``:
        with ``rotations`` n, the learned kernels at each of the n rotations (orientation-major)."""
        w, bias = self.spatial.weight, self.spatial.bias
        if not self.rotations:
            return w, bias
        k = w.shape[-1]
        rotated = torch.einsum("gpq,ciq->gcip", self.rotation, w.flatten(2))  # [n, C, C_in, k^2]
        return rotated.flatten(0, 1).unflatten(-1, (k, k)), bias.repeat(self.rotations)

    def forward(self, x: Tensor, buffer: Tensor | None) -> tuple[Tensor, Tensor]:
        """``x [batch, time, C, H, W]`` -> ``[batch, time, C', h, w]`` and the new buffer."""
        b, t = x.shape[:2]
        weight, bias = self.spatial_kernels()
        conv = self.spatial
        y = F.conv2d(x.flatten(0, 1), weight, bias, conv.stride, conv.padding, groups=conv.groups)
        y = self.rectified(y) if self.rectify else y
        if self.antialias:
            y = blur_pool(y, self.stride)
        y = y.unflatten(0, (b, t)).transpose(1, 2)  # [b, C', t, h, w]
        if buffer is None:
            buffer = y.new_zeros(b, y.shape[1], self.history, *y.shape[-2:])
        padded = torch.cat([buffer, y], dim=2)
        weight, bias, groups = self.temporal.weight, self.temporal.bias, self.temporal.groups
        if self.rotations:  # one temporal filter, shared by every rotation
            n = groups = self.rotations
            weight, bias = weight.repeat(n, 1, 1, 1, 1), bias.repeat(n)
        # a (temporal x 1 x 1) kernel is a (temporal x 1) one over (time, pixels): conv2d's
        # kernels are several times faster than conv3d's on CPU
        out = F.conv2d(padded.flatten(3), weight.flatten(3), bias, groups=groups)
        out = out.unflatten(3, padded.shape[-2:])
        out = (F.gelu(out) if self.rectify else out).transpose(1, 2)
        return out, padded[:, :, padded.shape[2] - self.history :]


def rotation_matrices(kernel: int, n: int) -> Tensor:
    """``[n, k^2, k^2]``: matrix ``g`` maps a flattened ``k x k`` kernel to the same kernel
    rotated counter-clockwise by ``g 360 / n`` degrees (bilinear interpolation), inside the
    inscribed disc, so that every rotation has the same support (corners are zero)."""
    c = (kernel - 1) / 2
    y, x = np.meshgrid(np.arange(kernel) - c, np.arange(kernel) - c, indexing="ij")
    inside = (x**2 + y**2 <= (c + 0.5) ** 2).ravel()
    mats = np.zeros((n, kernel * kernel, kernel * kernel))
    for g in range(n):
        a = 2 * np.pi * g / n
        # output pixel p takes the input at the point that the rotation brings onto it
        sx = np.cos(a) * x + np.sin(a) * y + c
        sy = -np.sin(a) * x + np.cos(a) * y + c
        x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
        for dx in (0, 1):
            for dy in (0, 1):
                xi, yi = x0 + dx, y0 + dy
                w = (1 - np.abs(sx - xi)) * (1 - np.abs(sy - yi))
                ok = (xi >= 0) & (xi < kernel) & (yi >= 0) & (yi < kernel) & (w > 0)
                p = np.flatnonzero(ok.ravel() & inside)
                q = (yi * kernel + xi).ravel()[p]
                np.add.at(mats[g], (p, q), w.ravel()[p])
        mats[g][:, ~inside] = 0
    return torch.tensor(mats, dtype=torch.float32)


def blur_pool(x: Tensor, stride: int) -> Tensor:
    """``x [n, C, H, W]`` -> ``[n, C, ceil(H / s), ceil(W / s)]``: each channel blurred with the
    binomial kernel ``[1, 2, 1] / 4`` (outer product; edges replicated), then every ``s``-th
    unit kept (Zhang 2019, "Making convolutional networks shift-invariant again"). Rectifying
    before this pooling keeps the energy of patterns finer than the output's spacing, as a
    complex cell's pooling does, instead of aliasing them to coarser, wrong-direction ones."""
    c = x.shape[1]
    taps = x.new_tensor([1.0, 2.0, 1.0]) / 4
    kernel = (taps[:, None] * taps[None, :]).expand(c, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, stride=stride, groups=c)


def gabor_bank(c_out: int, kernel: int) -> Tensor:
    """Unit-energy, zero-mean Gabor kernels ``[c_out, kernel, kernel]``: channel ``j`` has
    spatial period ``kernel / 2`` or ``0.9 kernel`` pixels (``j % 2``), even or odd phase
    (``j // 2 % 2``) and one of ``max(2, c_out // 4)`` orientations (``j // 4``)
    (:func:`cortexfm.model.retina.gabor`). Scaled to the norm a Kaiming draw has on average
    (sqrt 2)."""
    n_orientations = max(2, c_out // 4)
    bank = []
    for j in range(c_out):
        period = kernel / 2 if j % 2 == 0 else 0.9 * kernel
        phase = 0.0 if (j // 2) % 2 == 0 else np.pi / 2
        theta = np.pi * ((j // 4) % n_orientations) / n_orientations
        g, _ = gabor((kernel - 1) / 2, theta, period, phase)
        g = g - g.mean()
        bank.append(g * np.sqrt(2) / g.norm())
    return torch.stack(bank)


def channel_rms(x: Tensor) -> Tensor:
    """Pooled activity at each position: ``x [b, t, C, h, w]`` -> ``[b, t, 1, h, w]``, >= 1e-3."""
    return x.pow(2).mean(dim=2, keepdim=True).add(1e-6).sqrt()


def _softplus_one(n: int) -> nn.Parameter:
    """``n`` raw parameters whose softplus is 1."""
    return nn.Parameter(torch.full((n,), float(np.log(np.e - 1))))


class DivisiveNormalization(nn.Module):
    """Each channel divided by the pooled activity of all channels at its position
    (Heeger 1992; Carandini & Heeger 2012): ``x_c / (1 + rms(x) / s_c)``, with a learned
    semi-saturation ``s_c`` (softplus; starts at 1).

    Weak input passes almost unchanged; strong input (a full-field, full-contrast grating
    drives every oriented channel at once) is compressed by the same factor in every channel,
    so the pattern across channels, which carries orientation, survives instead of saturating
    the ConvLSTM's gates. ``x [batch, time, C, h, w]`` -> the same shape; per frame, so
    streaming is unchanged.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.raw_semisaturation = _softplus_one(channels)

    def forward(self, x: Tensor) -> Tensor:
        pooled = channel_rms(x)  # [b, t, 1, h, w]
        semisaturation = F.softplus(self.raw_semisaturation)[:, None, None]  # [C, 1, 1]
        return x / (1 + pooled / semisaturation)


class ContrastGain(nn.Module):
    """Split the feed-forward features into a local amplitude and a pattern, and put the
    amplitude back after the ConvLSTM through a learned contrast-response function.

    ``amplitude = rms_c(x)`` at each position and frame, ``pattern = x / amplitude`` (rms <= 1
    whatever the stimulus contrast), and the ConvLSTM's output ``h`` becomes
    ``h * amplitude / (amplitude + s_c)``: a Naka-Rushton contrast response with a learned
    semi-saturation ``s_c`` per hidden channel (softplus, starts at 1). Linear in contrast
    while ``amplitude << s_c``, contrast-invariant once ``amplitude >> s_c``; natural movies,
    whose local contrast varies widely, set where each channel lies between the two. The gates
    only ever see unit-contrast input, so a full-contrast grating cannot saturate them, and
    no weight can undo the division (unlike :class:`DivisiveNormalization`).
    ``x [batch, time, C, h, w]``; per frame, so streaming is unchanged.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.raw_semisaturation = _softplus_one(hidden)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x [b, t, C, h, w]`` -> ``pattern`` (same shape) and ``amplitude [b, t, 1, h, w]``."""
        amplitude = channel_rms(x)
        return x / amplitude, amplitude

    def restore(self, h: Tensor, amplitude: Tensor) -> Tensor:
        """``h [b, t, hidden, h, w]`` times ``amplitude / (amplitude + s_c)``."""
        semisaturation = F.softplus(self.raw_semisaturation)[:, None, None]
        return h * amplitude / (amplitude + semisaturation)


class FeatureBatchNorm(nn.BatchNorm3d):
    """Batch normalisation of features ``[batch, time, C, h, w]``, per channel.

    In training it standardises each channel by the batch's statistics and keeps their running
    averages; at test (``eval()``) it is a fixed affine map per channel, so a stimulus's
    contrast still reaches what follows and a video streams in chunks exactly. A frozen one
    (its weights without gradients: a transferred core) uses its running averages in training
    too, so adapting to a new mouse never changes the shared core.
    """

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        batch_statistics = self.training and self.weight.requires_grad
        y = F.batch_norm(
            x.transpose(1, 2),
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            batch_statistics,
            self.momentum,
            self.eps,
        )
        return y.transpose(1, 2)


class ConvLSTM(nn.Module):
    """A convolutional LSTM; the input convolution runs for all frames at once.

    ``cell="lstm"`` (the default) is Shi et al.'s ConvLSTM: ``c = f c + i tanh(g)``,
    ``h = o tanh(c)``, with ``g`` driven by the input and by ``h``. Its output is bounded: a
    stimulus that drives the core harder than anything in training (a full-field,
    full-contrast grating) saturates it. ``cell="gated_linear"`` keeps the gates (sigmoids of
    input and ``h``) but makes the signal path linear: ``c = f c + i g`` with ``g`` the input
    convolution alone, ``h = o c``. ``f < 1`` bounds ``c`` by the input, so the recurrence is
    stable, and the output grows with the drive instead of clipping.
    """

    def __init__(
        self,
        c_in: int,
        modulation: int,
        hidden: int,
        kernel: int,
        cell: str = "lstm",
        hidden_kernel: int | None = None,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.cell = cell
        # with batch normalisation the norm's shift is the bias (a convolution's would cancel)
        self.input_conv = nn.Conv2d(
            c_in, 4 * hidden, kernel, padding=kernel // 2, bias=not batch_norm
        )
        # behaviour's input to the gates (None: the core does not see behaviour)
        self.modulation = nn.Linear(modulation, 4 * hidden, bias=False) if modulation else None
        # the gated-linear cell's candidate has no recurrent term: only i, f, o see h
        n_recurrent = 4 * hidden if cell == "lstm" else 3 * hidden
        hidden_kernel = kernel if hidden_kernel is None else hidden_kernel
        self.hidden_conv = nn.Conv2d(
            hidden, n_recurrent, hidden_kernel, padding=hidden_kernel // 2, bias=False
        )
        # the visual input reaches the gates at unit scale; behaviour starts with no say (zero
        # weights) and earns it: with PyTorch's default initialisation, the behavioural term
        # outweighed the shrunken visual one and the gates followed the running mouse
        nn.init.kaiming_normal_(self.input_conv.weight, nonlinearity="linear")
        if self.input_conv.bias is not None:
            nn.init.zeros_(self.input_conv.bias)
        if self.modulation is not None:
            nn.init.zeros_(self.modulation.weight)
        # the input's share of the gates, batch-normalised per gate channel (Cooijmans et al.
        # 2016's recurrent batch normalisation, input term): its scale stays where the gates
        # respond however the features feeding it grow or align
        self.input_norm = FeatureBatchNorm(4 * hidden) if batch_norm else None
        bias = self.input_norm.bias if self.input_norm is not None else self.input_conv.bias
        with torch.no_grad():  # forget gate bias 1: remember by default
            bias[hidden : 2 * hidden].fill_(1.0)

    def input_gates(self, x: Tensor, modulation: Tensor) -> Tensor:
        """``x [b, t, C, h, w]`` -> the input's share of the gates ``[b, t, 4 hidden, h, w]``."""
        b, t = x.shape[:2]
        gates_x = self.input_conv(x.flatten(0, 1)).unflatten(0, (b, t))
        if self.input_norm is not None:
            gates_x = self.input_norm(gates_x)
        if self.modulation is not None:
            gates_x = gates_x + self.modulation(modulation)[..., None, None]
        return gates_x

    def step(self, gates_x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One frame: ``gates_x [b, 4 hidden, h, w]`` and the state -> new ``h``, ``c`` and
        the gates' pre-activations ``[b, 4 hidden, h, w]`` (i, f, g, o)."""
        recurrent = self.hidden_conv(h)
        if self.cell == "lstm":
            gates = gates_x + recurrent
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c, gates
        i_x, f_x, g, o_x = gates_x.chunk(4, dim=1)
        i_h, f_h, o_h = recurrent.chunk(3, dim=1)
        i, f, o = i_x + i_h, f_x + f_h, o_x + o_h
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * g
        return torch.sigmoid(o) * c, c, torch.cat([i, f, g, o], dim=1)

    def forward(
        self, x: Tensor, modulation: Tensor, h: Tensor | None, c: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        gates_x = self.input_gates(x, modulation)
        if h is None or c is None:
            h = x.new_zeros(x.shape[0], self.hidden, *x.shape[-2:])
            c = torch.zeros_like(h)
        outputs = []
        for gates_step in gates_x.unbind(1):  # unbind: one gradient buffer, not one per step
            h, c, _ = self.step(gates_step, h, c)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h, c


class Core(nn.Module):
    def __init__(self, config: CoreConfig, modulation_features: int) -> None:
        super().__init__()
        self.config = config
        self.front_end = FrontEnd(config.front_end, config.contrast_pool, config.whiten_sigma)
        layers = []
        c_in = self.front_end.channels
        if c_in % config.groups:
            raise ValueError(
                f"core.groups={config.groups} must divide the front end's {c_in} channels "
                f"(core.front_end={config.front_end!r})"
            )
        for c_out, k, s, kt in zip(
            config.channels,
            config.spatial_kernels,
            config.strides,
            config.temporal_kernels,
            strict=True,
        ):
            first = not layers  # the init options act on the first layer only
            gabor = config.init == "gabor" and first
            gain = config.init_gain if first else 1.0
            # rotation equivariance: the first layer's kernels at every rotation, then one
            # group per rotation (orientations kept apart until the ConvLSTM)
            rotations = config.rotations if first else 0
            groups = config.rotations if config.rotations and not first else config.groups
            layers.append(
                CausalConvLayer(
                    c_in,
                    c_out,
                    k,
                    s,
                    kt,
                    gabor,
                    groups,
                    gain,
                    config.antialias,
                    rotations=rotations,
                    energy=config.energy and first,
                )
            )
            c_in = layers[-1].out_channels
        self.layers = nn.ModuleList(layers)
        self.normalization = (
            DivisiveNormalization(c_in) if config.normalization == "divisive" else None
        )
        self.contrast_gain = (
            ContrastGain(config.hidden) if config.normalization == "contrast_gain" else None
        )
        self.recurrent = (
            ConvLSTM(
                c_in,
                modulation_features if config.behavior_input else 0,
                config.hidden,
                config.recurrent_kernel,
                config.cell,
                config.hidden_kernel,
                config.batch_norm,
            )
            if config.recurrent == "convlstm"
            else None
        )
        if self.recurrent is None:
            self.out_channels = c_in
        else:
            self.out_channels = config.hidden + (c_in if config.skip else 0)
        if config.fine_skip:
            self.out_channels += layers[0].out_channels
        self.linear = None
        if config.linear_channels:  # a signed pathway: no rectification anywhere
            self.linear = CausalConvLayer(
                self.front_end.channels,
                config.linear_channels,
                config.linear_kernel,
                config.linear_stride or config.strides[0],
                config.linear_temporal,
                rectify=False,
            )
            self.out_channels += config.linear_channels

    def output_size(self, retina_size: tuple[int, int]) -> tuple[int, int]:
        h, w = retina_size
        stride = self.front_end.stride
        h, w = (h + stride - 1) // stride, (w + stride - 1) // stride
        retina = h, w
        for layer in self.layers[:1] if self.config.fine_skip else self.layers:
            h, w = _conv_size((h, w), layer.spatial, layer.stride)
        if self.linear is None:
            return h, w
        linear = _conv_size(retina, self.linear.spatial, self.linear.stride)
        return max((h, w), linear)  # the core's map is upsampled to a finer linear one

    def feedforward(
        self, retina: Tensor, buffers: list[Tensor | None] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """``retina [batch, time, H, W]`` -> the last feed-forward layer's features
        ``[batch, time, C, h, w]`` (before any normalisation) and the new temporal buffers."""
        outputs, new_buffers = self._feedforward_layers(self._front(retina), buffers)
        return outputs[-1], new_buffers

    def _front(self, retina: Tensor) -> Tensor:
        """``retina [batch, time, H, W]`` -> the front end's ``[batch, time, C, H', W']``."""
        return self.front_end(retina.unsqueeze(2))

    def _feedforward_layers(
        self, x: Tensor, buffers: list[Tensor | None] | None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """The front end's output ``x`` -> every feed-forward layer's ``[batch, time, C_l, h_l,
        w_l]`` and the buffers."""
        outputs, new_buffers = [], []
        for layer, buffer in zip(self.layers, buffers or [None] * len(self.layers), strict=True):
            x, buffer = layer(x, buffer)
            outputs.append(x)
            new_buffers.append(buffer)
        return outputs, new_buffers

    def forward(
        self, retina: Tensor, modulation: Tensor, state: CoreState | None = None
    ) -> tuple[Tensor, CoreState]:
        buffers, h, c = state if state is not None else (None, None, None)
        n = len(self.layers)  # the linear pathway's buffer, if any, comes after the layers'
        linear_buffer = buffers[n] if buffers is not None and self.linear is not None else None
        front = self._front(retina)
        outputs, new_buffers = self._feedforward_layers(front, buffers[:n] if buffers else None)
        x = outputs[-1]
        if self.normalization is not None:
            x = self.normalization(x)
        if self.recurrent is not None:
            if self.contrast_gain is not None:
                pattern, amplitude = self.contrast_gain.split(x)
                recurrent, h, c = self.recurrent(pattern, modulation, h, c)
                recurrent = self.contrast_gain.restore(recurrent, amplitude)
            else:
                recurrent, h, c = self.recurrent(x, modulation, h, c)
            x = torch.cat([recurrent, x], dim=2) if self.config.skip else recurrent
        if self.config.fine_skip:
            x = torch.cat([upsample_to(x, outputs[0].shape[-2:]), outputs[0]], dim=2)
        if self.linear is not None:
            linear, linear_buffer = self.linear(front, linear_buffer)
            if x.shape[-2:] != linear.shape[-2:]:
                x = upsample_to(x, linear.shape[-2:])
            x = torch.cat([x, linear], dim=2)
            new_buffers = [*new_buffers, linear_buffer]
        return x, (new_buffers, h, c)


def _conv_size(size: tuple[int, int], conv: nn.Conv2d, stride: int) -> tuple[int, int]:
    """A map's ``(h, w)`` after ``conv`` (its kernel and padding) at ``stride``; with
    antialias the blur pool keeps that size."""
    k, p = conv.kernel_size[0], conv.padding[0]
    return tuple((n + 2 * p - k) // stride + 1 for n in size)  # type: ignore[return-value]


def upsample_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``x [b, t, C, h, w]`` -> ``[b, t, C, *size]``, bilinear, for a map ``size`` that a chain
    of stride-2 convolutions reduced to ``h x w``: unit ``i`` of ``x`` lies on unit ``s i`` of
    the finer map (``s = size / (h, w)``, rounded), so both maps stay aligned; beyond the last
    coarse unit the edge value is kept."""
    b, t, c, h, w = x.shape
    rows = torch.arange(size[0], dtype=x.dtype, device=x.device) / round(size[0] / h)
    cols = torch.arange(size[1], dtype=x.dtype, device=x.device) / round(size[1] / w)
    grid_y, grid_x = torch.meshgrid(
        rows / max(h - 1, 1) * 2 - 1, cols / max(w - 1, 1) * 2 - 1, indexing="ij"
    )
    grid = torch.stack([grid_x, grid_y], -1).expand(b * t, -1, -1, -1)
    out = F.grid_sample(x.flatten(0, 1), grid, align_corners=True, padding_mode="border")
    return out.unflatten(0, (b, t))
