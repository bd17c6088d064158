"""The per-neuron Gabor pathway (``readout.gabor``): starts neutral, streams, is tuned."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cortexfm.data.statistics import Normalizer, Statistics
from cortexfm.model import FoundationModel, SessionInfo, apply_overrides, preset
from cortexfm.model.gabor import GaborBank, GaborPathway, quadrature_pairs, temporal_bases

#: the normalised bank at two frequencies, as a ``_model`` kind
NORMALISED = "bank,readout.gabor_normalization=true,readout.gabor_frequencies=0.05;0.1"


def _model(gabor: str, seed: int = 0) -> FoundationModel:
    n = 12
    values = {
        "video": {"mean": np.array(128.0), "std": np.array(60.0)},
        "responses": {"mean": np.ones(n), "std": np.full(n, 2.0), "min": np.zeros(n)},
        "behavior": {"mean": np.zeros(2), "std": np.ones(2)},
        "pupil_center": {"mean": np.full(2, 120.0), "std": np.full(2, 3.0)},
    }
    info = SessionInfo(
        "a",
        np.arange(n),
        np.random.default_rng(0).normal(size=(n, 3)) * 100,
        Normalizer(Statistics(values, "meta")),
    )
    kind, *more = gabor.split(",")
    config = apply_overrides(preset("tiny"), [f"readout.gabor={kind}", *more])
    torch.manual_seed(seed)
    return FoundationModel(config, [info])


def _inputs(t: int):
    g = torch.Generator().manual_seed(1)
    video = torch.rand(2, t, 36, 64, generator=g) * 255
    behavior = torch.randn(2, t, 2, generator=g) * 0.1
    pupil = 120 + torch.randn(2, t, 2, generator=g) * 0.3
    return video, behavior, pupil


def test_bases_are_causal_unit_sum_bumps():
    bases = temporal_bases(12, 4)
    assert bases.shape == (4, 12)
    torch.testing.assert_close(bases.sum(1), torch.ones(4))
    assert (bases >= 0).all()
    assert bases[0].argmax() == 0 and bases[-1].argmax() == 11  # from now to the oldest tap


@pytest.mark.parametrize("kind", ["fitted", "bank", NORMALISED])
def test_the_pathway_starts_neutral_and_streams_in_chunks(kind: str):
    plain, with_gabor = _model("none"), _model(kind)
    with_gabor.load_state_dict(plain.state_dict(), strict=False)  # same core and readout
    video, behavior, pupil = _inputs(40)
    base, _ = plain.predict("a", video, behavior, pupil)
    start, _ = with_gabor.predict("a", video, behavior, pupil)
    torch.testing.assert_close(start, base)  # zero linear and energy weights: no effect
    pathway = with_gabor.session("a").readout.gabor
    with torch.no_grad():
        pathway.linear.normal_()
        pathway.energy.normal_()
    whole, _ = with_gabor.predict("a", video, behavior, pupil, chunk=1000)
    assert not torch.allclose(whole, base)
    chunked, _ = with_gabor.predict("a", video, behavior, pupil, chunk=7)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
    # causal: frames after t do not change the prediction at t
    later = video.clone()
    later[:, 30:] = 0
    cut, _ = with_gabor.predict("a", later, behavior, pupil)
    torch.testing.assert_close(cut[:, :30], whole[:, :30])


def test_filters_are_zero_mean_unit_norm_quadrature_pairs_tuned_to_their_wave_vector():
    torch.manual_seed(0)
    pathway = GaborPathway(3, frames=1, bases=1)
    with torch.no_grad():
        pathway.wave.copy_(torch.tensor([[0.1, 0.0], [0.0, 0.1], [0.1, 0.0]]))
        pathway.log_sigma.fill_(math.log(4.0))
    centre = torch.zeros(3, 2)
    pair = pathway.filters(centre, 36, 64)
    torch.testing.assert_close(pair.sum(-1), torch.zeros(3, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(pair.norm(dim=-1), torch.ones(3, 2))
    ys, xs = torch.meshgrid(torch.arange(36.0), torch.arange(64.0), indexing="ij")

    def energy(grating_wave, phase):
        image = torch.cos(2 * math.pi * (grating_wave[0] * xs + grating_wave[1] * ys) + phase)
        with torch.no_grad():
            pathway.energy.fill_(1.0)
            drive, _ = pathway(image[None, None], centre, None)
        return drive[0, 0]

    vertical = [energy((0.1, 0.0), p) for p in (0.0, 1.0, 2.0)]
    horizontal = energy((0.0, 0.1), 0.0)
    # neuron 0 prefers the vertical grating at any phase; neuron 1 the horizontal one
    assert all(v[0] > 3 * v[1] for v in vertical)
    assert horizontal[1] > 3 * horizontal[0]
    assert max(v[0] for v in vertical) / min(v[0] for v in vertical) < 1.2  # phase invariant


def test_a_pathway_without_frames_is_refused_by_name():
    with pytest.raises(ValueError, match="readout.gabor_frames"):
        apply_overrides(preset("tiny"), ["readout.gabor=bank", "readout.gabor_frames=0"])
    with pytest.raises(ValueError, match="readout.gabor_frequencies"):
        apply_overrides(preset("tiny"), ["readout.gabor=bank", "readout.gabor_frequencies=0.6"])
    with pytest.raises(ValueError, match="readout.gabor_normalization"):
        apply_overrides(preset("tiny"), ["readout.gabor_normalization=true"])


def _bank_features(bank: GaborBank, image: torch.Tensor) -> torch.Tensor:
    """The bank's energy features ``[features]`` for one still image at the retina's centre
    (one weight at a time set to 1; no linear terms)."""
    centre = torch.zeros(1, 2)
    values = []
    with torch.no_grad():
        for k in range(bank.energy.shape[1]):
            bank.energy.zero_()
            bank.energy[0, k] = 1.0
            drive, _ = bank(image.expand(1, 12, -1, -1), centre, None)
            values.append(drive[0, -1, 0])
    return torch.stack(values)


def test_the_bank_by_fft_equals_each_neurons_own_filters_at_pixel_centres():
    """The bank correlated with the retina by FFT and sampled at a neuron's position gives its
    own filters' responses, the retina seen as grey (zero) beyond its edges: checked against
    the filters placed on a canvas three times as large, where no envelope is cut."""
    bank = GaborBank(3, frames=1, frequencies=(0.05, 0.2))
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(2, 3, 36, 64, generator=g)
    canvas = torch.zeros(2, 3, 108, 192)
    canvas[..., 36:72, 64:128] = frames
    pixels = torch.tensor([[10.0, 5.0], [31.0, 17.0], [60.0, 33.0]])  # x, y: two near edges

    def to_positions(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return torch.stack([xy[:, 0] / (width - 1) * 2 - 1, xy[:, 1] / (height - 1) * 2 - 1], 1)

    on_canvas = to_positions(pixels + torch.tensor([64.0, 36.0]), 108, 192)
    direct = torch.cat(
        [
            quadrature_pairs(
                on_canvas, torch.zeros(3, 2), waves[None], torch.tensor([sigma]), 108, 192
            )
            for waves, sigma in zip(bank.waves, bank.sigmas, strict=True)
        ],
        1,
    )  # [n, pairs, 2, h * w]
    expected = (canvas.flatten(2) @ direct.flatten(0, 2).t()).transpose(1, 2)
    got = bank.responses(frames, to_positions(pixels, 36, 64))
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)  # cut at 4 s.d.


def test_the_normalised_bank_reads_the_share_of_contrast_at_each_orientation_and_frequency():
    ys, xs = torch.meshgrid(torch.arange(36.0), torch.arange(64.0), indexing="ij")
    plain = GaborBank(1, frames=12, frequencies=(0.05, 0.1))
    normalised = GaborBank(1, frames=12, frequencies=(0.05, 0.1), normalize=True)
    with torch.no_grad():
        normalised.log_semisaturation.fill_(math.log(1e-3))

    def grating(frequency: float, contrast: float) -> torch.Tensor:
        return contrast * torch.cos(2 * math.pi * frequency * xs)  # vertical bars

    low, high = grating(0.05, 1.0), grating(0.1, 1.0)
    # features: 4 deviations at 0.05, 4 at 0.1 (orientation 0 first), their 2 means, contrast
    for image, pair in ((low, 0), (high, 4)):
        deviations = _bank_features(normalised, image)[:8]
        assert deviations.argmax() == pair  # the grating's own orientation and frequency
    # divisive normalisation: 4x the contrast leaves the normalised energies, scales the rest
    weak, strong = (_bank_features(normalised, grating(0.1, c)) for c in (0.25, 1.0))
    torch.testing.assert_close(strong[:10], weak[:10], atol=1e-2, rtol=1e-2)
    assert 3.5 < strong[10] / weak[10] < 4.5  # the contrast itself
    weak, strong = (_bank_features(plain, grating(0.1, c)) for c in (0.25, 1.0))
    assert 3.5 < strong[4] / weak[4] < 4.5


@pytest.mark.parametrize("kind", ["fitted", "bank", NORMALISED])
def test_the_pathway_is_learned_from_a_loss(kind: str):
    model = _model(kind)
    model.train()
    video, behavior, pupil = _inputs(20)
    norm = model.session("a").normalization
    out, _ = model("a", *norm.inputs(video, behavior, pupil))
    out.mean().backward()
    pathway = model.session("a").readout.gabor
    assert pathway.linear.grad.abs().sum() > 0
    assert pathway.energy.grad.abs().sum() > 0
    if getattr(pathway, "log_semisaturation", None) is not None:
        # the semi-saturation learns once the energies have weight (they start at zero)
        with torch.no_grad():
            pathway.energy.normal_()
        out, _ = model("a", *norm.inputs(video, behavior, pupil))
        out.mean().backward()
        assert pathway.log_semisaturation.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["none", "bank", NORMALISED])
def test_the_drives_parts_add_up_to_the_prediction(kind: str):
    from cortexfm.model.loss import output_nonlinearity

    model = _model(kind).eval()
    readout = model.session("a").readout
    if readout.gabor is not None:
        with torch.no_grad():  # a pathway that moves the prediction
            readout.gabor.energy.normal_(0, 0.5)
            readout.gabor.linear.normal_(0, 0.5)
    inputs = model.session("a").normalization.inputs(*_inputs(20))
    core, pathway = model.drives("a", *inputs)
    assert (pathway is None) == (kind == "none")
    with torch.no_grad():
        expected, _ = model("a", *inputs)
        modulation, _ = model.session("a").modulation(inputs[1], None)
        log_gain = readout.log_gain(modulation) if readout.gain is not None else None
    drive = core if pathway is None else core + pathway
    got = output_nonlinearity(drive, model.config.readout.output, log_gain)
    torch.testing.assert_close(got, expected)
    if pathway is not None:
        assert pathway.abs().max() > 0.1  # the pathway's part is not empty
