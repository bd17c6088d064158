"""The per-neuron Gabor pathway (``readout.gabor``): starts neutral, streams, is tuned."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cortexfm.data.statistics import Normalizer, Statistics
from cortexfm.model import FoundationModel, SessionInfo, apply_overrides, preset
from cortexfm.model.gabor import GaborPathway, temporal_bases


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
    config = apply_overrides(preset("tiny"), [f"readout.gabor={gabor}"])
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


@pytest.mark.parametrize("kind", ["fitted", "bank"])
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


@pytest.mark.parametrize("kind", ["fitted", "bank"])
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


@pytest.mark.parametrize("kind", ["none", "bank"])
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
