"""The model's components: shapes, identity perspective, causality/streaming, scale, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cortexfm.data.statistics import Normalizer, Statistics
from cortexfm.model import FoundationModel, SessionInfo, apply_overrides, preset, response_loss
from cortexfm.model.config import CoreConfig, ModelConfig, from_dict, to_dict
from cortexfm.model.core import Core
from cortexfm.model.perspective import Perspective, rotation_matrix
from cortexfm.train.config import RunConfig, load_run_config


def _normalizer(n: int) -> Normalizer:
    values = {
        "video": {"mean": np.array(128.0), "std": np.array(60.0)},
        "responses": {"mean": np.ones(n), "std": np.full(n, 2.0), "min": np.zeros(n)},
        "behavior": {"mean": np.zeros(2), "std": np.ones(2)},
        "pupil_center": {"mean": np.full(2, 120.0), "std": np.full(2, 3.0)},
    }
    return Normalizer(Statistics(values, "meta"))


def _model(name: str = "tiny", sessions=(("a", 30), ("b", 20)), seed: int = 0) -> FoundationModel:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    infos = [
        SessionInfo(sid, np.arange(n), rng.normal(size=(n, 3)) * 100, _normalizer(n))
        for sid, n in sessions
    ]
    return FoundationModel(preset(name), infos)


def _inputs(b: int, t: int, size=(36, 64), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(b, t, *size, generator=g) * 255
    behavior = torch.randn(b, t, 2, generator=g).cumsum(1) * 0.1
    pupil = 120 + torch.randn(b, t, 2, generator=g).cumsum(1) * 0.3
    return video, behavior, pupil


def test_perspective_is_the_identity_at_initialisation_and_rotation_shifts_the_image():
    config = preset("cpu").perspective
    perspective = Perspective(config)
    video = torch.zeros(1, 1, 36, 64)
    video[..., 20:24, 30:34] = 1.0
    same = perspective(video, torch.randn(1, 1, 2))
    torch.testing.assert_close(same, video, atol=1e-5, rtol=0)
    with torch.no_grad():
        perspective.eye[-1].bias[0] = 0.3  # yaw: the eye turns, the image moves across the retina
    moved = perspective(video, torch.zeros(1, 1, 2))
    columns = moved[0, 0].sum(0)
    assert abs(float(columns.argmax()) - 31.5) > 3
    assert moved.shape == video.shape


def test_sampling_grid_is_the_ray_monitor_intersection_and_a_fixed_gaze_is_computed_once():
    torch.manual_seed(0)
    config = preset("cpu").perspective
    perspective = Perspective(config)
    with torch.no_grad():  # a turned eye and a tilted, shifted monitor
        perspective.eye[-1].weight.normal_(0, 0.2)
        perspective.eye[-1].bias.copy_(torch.tensor([0.2, -0.1, 0.05]))
        perspective.monitor_rotation.copy_(torch.tensor([0.1, 0.05, -0.1]))
        perspective.monitor_translation.copy_(torch.tensor([0.05, -0.02, 0.1]))
    gaze = torch.randn(5, 2)
    grid = perspective.sampling_grid(gaze).double()
    # reference: intersect each rotated ray with the plane explicitly, in float64
    eye = rotation_matrix(perspective.eye_rotation(gaze)).double()
    monitor = rotation_matrix(perspective.monitor_rotation).double()
    centre = monitor[:, 2] + perspective.monitor_translation.double()
    for n in range(5):
        for row, column in [(0, 0), (17, 30), (35, 63), (10, 50)]:
            ray = eye[n] @ perspective.rays[row, column].double()
            s = (centre @ monitor[:, 2]) / (ray @ monitor[:, 2])
            local = monitor.T @ (s * ray - centre)
            expected = local[:2] / torch.tensor(
                [config.monitor_half_width, config.monitor_half_height]
            )
            torch.testing.assert_close(
                grid[n, row, column], expected.double(), atol=1e-5, rtol=1e-5
            )
    video = torch.rand(2, 6, 36, 64)
    fixed = gaze[:1].expand(2, 6, 2)  # one gaze throughout: one grid, shared by every frame
    varying = fixed.clone()
    varying[1, 3] += 0.5  # one frame looks elsewhere: a grid per frame
    once, per_frame = perspective(video, fixed), perspective(video, varying)
    assert not torch.allclose(per_frame[1, 3], once[1, 3])
    keep = torch.ones(2, 6, dtype=torch.bool)
    keep[1, 3] = False
    # the same grid up to float32 rounding of the batched ray algebra (the moved frame differs by ~1)
    torch.testing.assert_close(once[keep], per_frame[keep], atol=3e-5, rtol=0)


@pytest.mark.parametrize("name", ["tiny", "cpu"])
def test_chunked_streaming_equals_whole_sequence(name: str):
    model = _model(name)
    video, behavior, pupil = _inputs(2, 45)
    whole, _ = model.predict("a", video, behavior, pupil, chunk=1000)
    chunked, _ = model.predict("a", video, behavior, pupil, chunk=7)
    assert whole.shape == (2, 45, 30)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
    # explicit state: two calls continue one stream
    first, state = model.predict("a", video[:, :20], behavior[:, :20], pupil[:, :20])
    second, _ = model.predict("a", video[:, 20:], behavior[:, 20:], pupil[:, 20:], state=state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-5, rtol=1e-5)


def test_prediction_is_causal():
    model = _model()
    video, behavior, pupil = _inputs(1, 30)
    base, _ = model.predict("a", video, behavior, pupil)
    video2 = video.clone()
    video2[:, 20:] = 0
    changed, _ = model.predict("a", video2, behavior, pupil)
    torch.testing.assert_close(changed[:, :20], base[:, :20])
    assert not torch.allclose(changed[:, 20:], base[:, 20:])


def test_unbatched_prediction_and_raw_units():
    model = _model()
    video, behavior, pupil = _inputs(1, 12)
    out, _ = model.predict("b", video[0].numpy(), behavior[0].numpy(), pupil[0].numpy())
    assert out.shape == (12, 20)
    assert torch.all(out >= 0)  # exp rates, scaled back by the response scale


def test_bad_inputs_give_clear_errors():
    model = _model()
    video, behavior, pupil = _inputs(1, 10)
    with pytest.raises(KeyError, match="unknown session id 'zzz'"):
        model.predict("zzz", video, behavior, pupil)
    with pytest.raises(ValueError, match=r"behavior must be \[batch, time, 2\]"):
        model.predict("a", video, behavior[:, :5], pupil)
    bad = video.clone()
    bad[0, 3, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="video contains NaN"):
        model.predict("a", bad, behavior, pupil)
    with pytest.raises(ValueError, match="video must be"):
        model.predict("a", video[0, 0], behavior, pupil)


def test_readout_memory_is_linear_and_a_100k_neuron_model_runs():
    small = _model("cpu", sessions=(("a", 1000),))
    large = _model("cpu", sessions=(("a", 2000),))
    per_neuron = (
        sum(p.numel() for p in large.session("a").readout.parameters())
        - sum(p.numel() for p in small.session("a").readout.parameters())
    ) / 1000
    # barcode + 2 position offsets + sigma + bias + the behavioural gain's weights
    assert per_neuron == small.core.out_channels + 4 + preset("cpu").modulation.features
    sizes = [100_000 // 14 + (1 if i < 100_000 % 14 else 0) for i in range(14)]
    model = _model("cpu", sessions=tuple((f"m{i}", n) for i, n in enumerate(sizes)))
    assert sum(model.n_neurons(s) for s in model.session_ids) == 100_000
    video, behavior, pupil = _inputs(1, 3)
    for sid in model.session_ids:
        out, _ = model.predict(sid, video, behavior, pupil)
        assert out.shape == (1, 3, model.n_neurons(sid)) and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ["exp", "softplus", "identity"])
def test_output_nonlinearity_applies_the_behavioural_gain_as_a_capped_factor(kind: str):
    """rates = f(x) * exp(min(log_gain, 10)), f's own cap included (exp: one exponential)."""
    from cortexfm.model.loss import output_nonlinearity

    x = torch.linspace(-5, 25, 61).reshape(1, 61, 1).expand(1, 61, 3)
    log_gain = torch.tensor([-1.0, 0.5, 12.0]).expand(1, 61, 3)
    f = {"exp": lambda v: torch.exp(v.clamp(max=20)), "softplus": torch.nn.functional.softplus}
    expected = f.get(kind, lambda v: v)(x) * torch.exp(log_gain.clamp(max=10))
    torch.testing.assert_close(output_nonlinearity(x, kind, log_gain), expected)
    torch.testing.assert_close(output_nonlinearity(x, kind), f.get(kind, lambda v: v)(x))


def test_losses_skip_burn_in_frames():
    target = torch.rand(2, 10, 3)
    pred = torch.rand(2, 10, 3) + 0.1
    garbage = pred.clone()
    garbage[:, :4] = 100.0
    assert response_loss(garbage, target, "poisson", burn_in=4) == response_loss(
        pred, target, "poisson", burn_in=4
    )
    expected = (pred - target * torch.log(pred + 1e-8)).mean()
    torch.testing.assert_close(response_loss(pred, target, "poisson"), expected)
    torch.testing.assert_close(
        response_loss(pred, target, "gaussian"), ((pred - target) ** 2).mean()
    )
    with pytest.raises(ValueError, match="burn_in"):
        response_loss(pred, target, "poisson", burn_in=10)
    with pytest.raises(ValueError, match="unknown loss"):
        response_loss(pred, target, "laplace")


@pytest.mark.parametrize("loss", ["poisson", "gaussian"])
def test_window_gain_ignores_each_windows_scale(loss):
    """With the whole loss gain-fitted, scaling a neuron's prediction within one window changes
    nothing; the share 0 is the plain loss; the detached factor gives the exact gradient."""
    torch.manual_seed(0)
    target = torch.rand(3, 20, 4) * 2
    target[0, 5, 1] = float("nan")
    pred = torch.rand(3, 20, 4) + 0.2
    scale = torch.rand(3, 1, 4) * 5 + 0.2
    full = response_loss(pred, target, loss, burn_in=2, window_gain=1.0)
    scaled = response_loss(pred * scale, target, loss, burn_in=2, window_gain=1.0)
    torch.testing.assert_close(full, scaled)
    assert response_loss(pred * scale, target, loss, burn_in=2) != response_loss(
        pred, target, loss, burn_in=2
    )
    torch.testing.assert_close(
        response_loss(pred, target, loss, window_gain=0.0), response_loss(pred, target, loss)
    )
    # the gradient with respect to a per-window scale vanishes when the gain is fitted
    s = torch.ones(3, 1, 4, requires_grad=True)
    response_loss(pred * s, target, loss, burn_in=2, window_gain=1.0).backward()
    assert s.grad.abs().max() < 1e-5
    # envelope theorem: differentiating through the fitted factor adds nothing
    from cortexfm.model.loss import _pointwise, _window_gain

    p = pred.clone().requires_grad_(True)
    response_loss(p, target, loss, window_gain=1.0).backward()
    q = pred.clone().requires_grad_(True)
    valid = torch.isfinite(target)
    y = torch.nan_to_num(target)
    gain = _window_gain(q, y, valid, loss)  # not detached
    ((_pointwise(gain * q, y, loss) * valid).sum() / valid.sum()).backward()
    torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="window_gain"):
        response_loss(pred, target, loss, window_gain=1.5)


def test_presets_and_the_paper_core_size():
    paper = FoundationModel(preset("paper"), [])
    n = sum(p.numel() for p in paper.core.parameters())
    assert 3.5e6 < n < 5.5e6, n
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")


def test_config_overrides_files_and_round_trip(tmp_path):
    config = apply_overrides(
        preset("cpu"),
        ["core.hidden=48", "readout.sample=false", "core.channels=8,16", "core.strides=1;2"],
    )
    assert (
        config.core.hidden == 48
        and config.readout.sample is False
        and config.core.channels == (8, 16)
        and config.core.strides == (1, 2)
    )
    assert from_dict(ModelConfig, json.loads(json.dumps(to_dict(config)))) == config
    with pytest.raises(ValueError, match="unknown config field"):
        apply_overrides(config, ["core.hiden=3"])
    with pytest.raises(ValueError, match="same length"):
        apply_overrides(config, ["core.strides=2"])
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "tiny"\n[train]\nlr = 0.01\n[model.core]\nhidden = 6\n')
    run = load_run_config(toml, ["train.max_steps=7"])
    assert (run.preset, run.train.lr, run.model.core.hidden, run.train.max_steps) == (
        "tiny",
        0.01,
        6,
        7,
    )
    assert run.model.core.channels == preset("tiny").core.channels
    with pytest.raises(ValueError, match="must start with model. or train."):
        load_run_config(None, ["lr=3"])
    # a value outside a field's choices names the dotted key; so does an unknown nested key
    with pytest.raises(ValueError, match=r"train\.loss='laplace': choose one of"):
        load_run_config(None, ["train.loss=laplace"])
    with pytest.raises(ValueError, match=r"'model\.core\.hiden'"):
        load_run_config(None, ["model.core.hiden=3"])
    with pytest.raises(ValueError, match=r"model\.readout\.output='relu'"):
        RunConfig.from_dict({"model": {"readout": {"output": "relu"}}})


def test_every_config_key_is_in_the_help(capsys):
    from cortexfm.cli import main

    with pytest.raises(SystemExit):
        main(["transfer", "--help"])
    text = capsys.readouterr().out
    assert "  train.lr = 0.003" in text
    assert "  model.core.hidden = " in text and "(one of poisson, gaussian)" in text


@pytest.mark.parametrize("front_end", ["contrast", "whiten", "whiten_contrast"])
def test_retina_front_ends_compress_contrast_and_stream(front_end: str):
    """The optional front ends: with gain control, doubling the contrast less than doubles
    what the core receives (whitening alone is linear); streaming in chunks equals one call."""
    from cortexfm.model.retina import FrontEnd

    front = FrontEnd(front_end, contrast_pool=3.0, whiten_sigma=2.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 1, 36, 64, generator=g)
    with torch.no_grad():
        fine = -1  # the (last) channel that carries the image's structure
        gain = float(front(2 * x)[:, :, fine].abs().mean() / front(x)[:, :, fine].abs().mean())
    if front_end.endswith("contrast"):
        assert 1.0 < gain < 1.6
    else:
        assert gain == pytest.approx(2.0, rel=1e-5)
    config = apply_overrides(preset("tiny"), [f"core.front_end={front_end}"])
    torch.manual_seed(0)
    info = SessionInfo(
        "a", np.arange(30), np.random.default_rng(0).normal(size=(30, 3)), _normalizer(30)
    )
    model = FoundationModel(config, [info])
    video, behavior, pupil = _inputs(1, 30)
    whole, _ = model.predict("a", video, behavior, pupil, chunk=1000)
    chunked, _ = model.predict("a", video, behavior, pupil, chunk=7)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="front_end"):
        apply_overrides(preset("tiny"), ["core.front_end=retina"])


def test_whitening_front_end_flattens_the_spectrum():
    """The residual channel passes a 0.08 cycles/deg grating ~2.3x better than a 0.02 one,
    relative to the raw image: fine structure is no longer dwarfed by low frequencies."""
    from cortexfm.model.retina import FrontEnd
    from cortexfm.stimuli import Monitor, drifting_grating

    front = FrontEnd("whiten", contrast_pool=3.0, whiten_sigma=2.0)
    amplitude = {}
    for sf in (0.02, 0.08):
        frames = drifting_grating(Monitor(), 1, 0, sf).frames.astype(np.float32)
        x = torch.as_tensor((frames - 127.5) / 127.5)[None, :, None]
        amplitude[sf] = float(front(x)[0, 0, 1, 6:-6, 6:-6].std())
    assert front(torch.zeros(1, 1, 1, 36, 64)).shape == (1, 1, 2, 36, 64)
    assert amplitude[0.08] > 2.3 * amplitude[0.02]


@pytest.mark.parametrize("spatial_kernel", [1, 3])
def test_sparse_inference_readout_equals_grid_sample(spatial_kernel: int):
    """The inference readout (a sparse product) is the training one (grid_sample), with a
    point readout and with a spatial mask whose neighbours fall off the map's edges."""
    from cortexfm.model.config import ReadoutConfig
    from cortexfm.model.readout import PositionMap, Readout

    torch.manual_seed(0)
    coordinates = np.random.default_rng(0).normal(size=(300, 3))
    readout = Readout(ReadoutConfig(spatial_kernel=spatial_kernel), 6, coordinates)
    with torch.no_grad():  # spread positions everywhere, up to the edges of the map
        readout.delta.copy_(torch.randn(300, 2) * 2)
        if readout.mask is not None:
            readout.mask.copy_(torch.randn_like(readout.mask))
    position_map = PositionMap()
    features = torch.randn(2, 5, 6, 7, 11)
    training = readout(features, position_map, sample=False)  # grad enabled: grid_sample
    with torch.no_grad():
        inference = readout(features, position_map, sample=False)
    torch.testing.assert_close(inference, training.detach(), atol=1e-5, rtol=1e-5)


def test_a_spatial_mask_starts_as_the_point_readout_and_reads_the_neighbours():
    from cortexfm.model.config import ReadoutConfig
    from cortexfm.model.readout import PositionMap, Readout

    coordinates = np.random.default_rng(0).normal(size=(40, 3))
    point = Readout(ReadoutConfig(), 4, coordinates)
    masked = Readout(ReadoutConfig(spatial_kernel=3), 4, coordinates)
    position_map = PositionMap()
    features = torch.randn(2, 3, 4, 9, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            masked(features, position_map, False), point(features, position_map, False)
        )
        # all weight on the right-hand neighbour: the point readout one map unit to the right
        masked.mask.zero_()
        masked.mask[:, 5] = 1.0
        shifted = torch.cat([features[..., 1:], torch.zeros_like(features[..., :1])], -1)
        torch.testing.assert_close(
            masked(features, position_map, False),
            point(shifted, position_map, False),
            atol=1e-5,
            rtol=1e-5,
        )
    with pytest.raises(ValueError, match="spatial_kernel"):
        apply_overrides(ModelConfig(), ["readout.spatial_kernel=2"])


def test_behavior_gain_starts_neutral_and_scales_each_neuron():
    config = preset("tiny")
    config.readout.behavior_gain = False
    gained = preset("tiny")
    gained.readout.behavior_gain = True
    rng = np.random.default_rng(0)
    infos = [SessionInfo("a", np.arange(12), rng.normal(size=(12, 3)), _normalizer(12))]
    torch.manual_seed(0)
    plain = FoundationModel(config, infos).eval()
    torch.manual_seed(0)
    model = FoundationModel(gained, infos).eval()
    video, behavior, pupil = _inputs(2, 20)
    with torch.no_grad():
        torch.testing.assert_close(
            model("a", video, behavior, pupil)[0], plain("a", video, behavior, pupil)[0]
        )
        model.session("a").readout.gain[3] = 0.5  # neuron 3 now follows the modulation
        out, _ = model("a", video, behavior, pupil)
        ref, _ = plain("a", video, behavior, pupil)
        changed = ~torch.isclose(out, ref).all(dim=(0, 1))
    assert changed[3] and changed.sum() == 1


def test_uniform_barcodes_start_equal_and_the_data_tell_them_apart():
    from cortexfm.model.config import ReadoutConfig
    from cortexfm.model.readout import PositionMap, Readout

    torch.manual_seed(0)
    coordinates = np.random.default_rng(0).normal(size=(20, 3))
    readout = Readout(ReadoutConfig(barcode_init="uniform"), 6, coordinates)
    torch.testing.assert_close(readout.weight, torch.full((20, 6), 1 / 6))
    features = torch.randn(2, 5, 6, 7, 11)
    target = torch.randn(2, 5, 20)
    loss = (readout(features, PositionMap(), sample=False) - target).square().mean()
    loss.backward()
    assert readout.weight.grad.std(0).min() > 0  # each neuron's barcode moves its own way
    random = Readout(ReadoutConfig(barcode_init="random"), 6, coordinates)
    assert random.weight.std() > 0.2  # N(0, 1/C)


def test_normalised_barcodes_are_zero_mean_unit_direction_times_a_gain():
    """``readout.barcode_norm`` (cajal/fnn's Norm feature): what is applied is gain x a
    zero-mean unit-norm direction, in training and in the sparse inference readout; from a
    zero direction (uniform start) the first gradient is finite and sets it."""
    from cortexfm.model.config import ReadoutConfig
    from cortexfm.model.readout import PositionMap, Readout

    torch.manual_seed(0)
    coordinates = np.random.default_rng(0).normal(size=(40, 3))
    readout = Readout(ReadoutConfig(barcode_norm=True, barcode_init="uniform"), 6, coordinates)
    assert readout.barcodes().abs().max() < 1e-6  # uniform minus its mean: no direction yet
    features = torch.randn(2, 5, 6, 7, 11)
    loss = (readout(features, PositionMap(), sample=False) - torch.randn(2, 5, 40)).square()
    loss.mean().backward()
    assert torch.isfinite(readout.weight.grad).all() and readout.weight.grad.abs().max() > 0
    with torch.no_grad():
        readout.weight.copy_(torch.randn(40, 6) * 3 + 5)
        readout.barcode_gain.copy_(torch.rand(40) + 0.5)
        readout.delta.copy_(torch.randn(40, 2))
    barcodes = readout.barcodes().detach()
    torch.testing.assert_close(barcodes.mean(1), torch.zeros(40), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        barcodes.norm(dim=1), readout.barcode_gain.detach(), atol=1e-5, rtol=1e-5
    )
    scaled = Readout(ReadoutConfig(barcode_norm=True), 6, coordinates)
    scaled.load_state_dict(readout.state_dict())
    with torch.no_grad():
        scaled.weight.mul_(7.0)  # only the direction of v matters
        torch.testing.assert_close(scaled.barcodes(), barcodes, atol=1e-5, rtol=1e-5)
    position_map = PositionMap()
    training = readout(features, position_map, sample=False)
    with torch.no_grad():
        inference = readout(features, position_map, sample=False)
    torch.testing.assert_close(inference, training.detach(), atol=1e-5, rtol=1e-5)


def test_divisive_normalization_keeps_the_channel_pattern_and_bounds_strong_input():
    """``core.normalization=divisive``: weak input passes almost unchanged, strong input is
    compressed by one factor across channels (the pattern survives) and stays bounded."""
    from cortexfm.model.core import DivisiveNormalization

    torch.manual_seed(0)
    norm = DivisiveNormalization(16)
    x = torch.randn(2, 3, 16, 5, 7)
    weak = 1e-3 * x
    torch.testing.assert_close(norm(weak), weak, atol=0, rtol=2e-3)
    strong = norm(100 * x)
    ratio = strong / (100 * x)
    assert torch.allclose(ratio, ratio[:, :, :1], rtol=1e-5)  # one factor per position
    assert strong.pow(2).mean(2).sqrt().max() < 1.0 + 1e-4  # rms <= semi-saturation (1)
    assert (strong.abs() > norm(10 * x).abs()).float().mean() > 0.99  # still monotonic


@pytest.mark.parametrize(
    "override",
    [
        ("normalization", "divisive"),
        ("normalization", "contrast_gain"),
        ("cell", "gated_linear"),
        ("init", "gabor"),
        ("hidden_kernel", 1),
        ("front_end", "gabor_pyramid"),
        ("fine_skip", True),
        ("linear_channels", 3),
        ("batch_norm", True),
    ],
)
def test_a_core_variant_streams_in_chunks(override: tuple[str, str]):
    config = preset("tiny")
    setattr(config.core, *override)
    rng = np.random.default_rng(0)
    infos = [SessionInfo("a", np.arange(30), rng.normal(size=(30, 3)), _normalizer(30))]
    torch.manual_seed(0)
    model = FoundationModel(config, infos).eval()
    video, behavior, pupil = _inputs(2, 30)
    whole, _ = model.predict("a", video, behavior, pupil, chunk=1000)
    chunked, _ = model.predict("a", video, behavior, pupil, chunk=7)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)


def test_batch_norm_standardises_in_training_and_a_frozen_core_keeps_its_statistics():
    """``core.batch_norm``: batch statistics while the core learns, running averages at test
    and whenever the core is frozen (transfer), so adapting a new mouse never moves the core."""
    from cortexfm.model.core import FeatureBatchNorm

    torch.manual_seed(0)
    norm = FeatureBatchNorm(4)
    x = torch.randn(3, 10, 4, 5, 6) * torch.tensor([1.0, 5.0, 0.2, 30.0])[:, None, None] + 7
    y = norm(x)  # training: each channel standardised over batch, time and space
    per_channel = y.transpose(0, 2).flatten(1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(1, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    assert not torch.allclose(norm.running_mean, torch.zeros(4))  # the averages moved
    # frozen (no gradients), still in training mode: running averages used, and kept
    for p in norm.parameters():
        p.requires_grad_(False)
    before = norm.running_mean.clone(), norm.running_var.clone()
    frozen = norm(x)
    torch.testing.assert_close(norm.running_mean, before[0])
    torch.testing.assert_close(norm.running_var, before[1])
    torch.testing.assert_close(frozen, norm.eval()(x))
    # at test the map is affine per channel: twice the contrast, twice the deviation
    centred = x - x.mean(dim=(0, 1, 3, 4), keepdim=True)
    torch.testing.assert_close(
        norm(centred * 2) - norm(centred * 0), 2 * (norm(centred) - norm(centred * 0))
    )


def test_a_batch_norm_core_survives_a_checkpoint(tmp_path):
    from cortexfm.train.checkpoint import load_checkpoint, save_checkpoint

    config = preset("tiny")
    config.core.batch_norm = True
    rng = np.random.default_rng(0)
    infos = [SessionInfo("a", np.arange(30), rng.normal(size=(30, 3)), _normalizer(30))]
    model = FoundationModel(config, infos)
    video, behavior, pupil = _inputs(2, 20)
    norm = model.session("a").normalization
    model("a", *norm.inputs(video, behavior, pupil))  # training mode: statistics move
    assert model.core.recurrent.input_norm.running_mean.abs().sum() > 0
    save_checkpoint(tmp_path / "m.safetensors", model, RunConfig(model=config))
    loaded = load_checkpoint(tmp_path / "m.safetensors", "cpu").model
    torch.testing.assert_close(
        loaded.core.recurrent.input_norm.running_var, model.core.recurrent.input_norm.running_var
    )
    a, _ = model.predict("a", video, behavior, pupil)
    b, _ = loaded.predict("a", video, behavior, pupil)
    torch.testing.assert_close(a, b)


def test_contrast_gain_gives_the_convlstm_unit_contrast_and_scales_its_output_back():
    """``core.normalization=contrast_gain``: the pattern is the same at any contrast, its rms
    is at most 1, and the restored output grows in proportion to a weak input's amplitude
    and stays bounded by the ConvLSTM's output for a strong one."""
    from cortexfm.model.core import ContrastGain

    torch.manual_seed(0)
    contrast_gain = ContrastGain(4)
    x = torch.randn(2, 3, 16, 5, 7)
    pattern, amplitude = contrast_gain.split(x)
    strong_pattern, strong_amplitude = contrast_gain.split(10 * x)
    torch.testing.assert_close(strong_pattern, pattern, atol=1e-4, rtol=1e-4)
    assert pattern.pow(2).mean(2).sqrt().max() <= 1.0 + 1e-5
    h = torch.rand(2, 3, 4, 5, 7)
    torch.testing.assert_close(
        contrast_gain.restore(h, 1e-3 * strong_amplitude),
        10 * contrast_gain.restore(h, 1e-3 * amplitude),
        atol=1e-5,
        rtol=2e-2,
    )
    restored = contrast_gain.restore(h, 1e3 * amplitude)
    assert (restored.abs() <= h.abs()).all() and (restored > 0.99 * h).all()
    assert torch.isfinite(contrast_gain.split(torch.zeros_like(x))[0]).all()


def test_a_contrast_gain_core_does_not_saturate_with_contrast():
    config = preset("tiny")
    config.core.normalization = "contrast_gain"
    torch.manual_seed(0)
    core = Core(config.core, config.modulation.features)
    retina = torch.randn(1, 12, 18, 32)
    modulation = torch.zeros(1, 12, config.modulation.features)
    weak, _ = core(retina, modulation)
    strong, _ = core(4 * retina, modulation)
    assert strong.abs().mean() > 2 * weak.abs().mean()  # no saturation with contrast


def test_a_gated_linear_cell_grows_with_its_drive_and_stays_stable():
    """``core.cell=gated_linear``: the state is linear in a drive that leaves the gates
    unchanged, where the LSTM's is bounded by 1; a constant drive gives a bounded state."""
    from cortexfm.model.core import ConvLSTM

    torch.manual_seed(0)
    cells = {kind: ConvLSTM(4, 0, 3, 3, cell=kind) for kind in ("lstm", "gated_linear")}
    gates = torch.randn(1, 200, 12, 5, 7).mul(0.5)
    gates[:, 1:] = gates[:, :1]  # a constant drive for 200 frames
    for kind, cell in cells.items():
        h = c = torch.zeros(1, 3, 5, 7)
        outs = {}
        for gain in (1.0, 50.0):
            scaled = gates.clone()
            scaled[:, :, 6:9] *= gain  # the candidate (g) only
            h = c = torch.zeros(1, 3, 5, 7)
            for step in scaled.unbind(1):
                h, c, _ = cell.step(step, h, c)
            outs[gain] = h
        assert torch.isfinite(outs[50.0]).all()
        if kind == "lstm":
            assert outs[50.0].abs().max() <= 1.0
        else:
            assert outs[50.0].abs().max() > 5.0
            assert outs[1.0].abs().max() < 20.0  # f < 1: the state stays bounded


def test_contrast_gain_normalization_needs_a_recurrent_core():
    with pytest.raises(ValueError, match="contrast_gain needs core.recurrent=convlstm"):
        ModelConfig(core=CoreConfig(recurrent="none", normalization="contrast_gain"))
    with pytest.raises(ValueError, match="core.normalization must be"):
        ModelConfig(core=CoreConfig(normalization="layer"))
    with pytest.raises(ValueError, match="core.cell must be"):
        ModelConfig(core=CoreConfig(cell="gru"))
    with pytest.raises(ValueError, match="batch_norm .* needs core.recurrent=convlstm"):
        ModelConfig(core=CoreConfig(recurrent="none", batch_norm=True))
    with pytest.raises(ValueError, match=r"core.linear_stride=8 .* \[0, 2, 4\]"):
        ModelConfig(core=CoreConfig(linear_channels=4, linear_stride=8))
    with pytest.raises(ValueError, match=r"core.linear_stride=4 .* \[0, 2\]"):
        ModelConfig(core=CoreConfig(linear_channels=4, linear_stride=4, fine_skip=True))


def test_gabor_initialisation_makes_the_first_layer_orientation_selective():
    """``core.init=gabor``: each first-layer kernel answers a grating at its own orientation
    far more than the orthogonal one; Kaiming draws do not; later layers are unchanged."""

    def orientation_index(core: Core) -> np.ndarray:
        w = core.layers[0].spatial.weight.detach()[:, 0]  # [C, k, k]
        k = w.shape[-1]
        y, x = torch.meshgrid(torch.arange(k) - k // 2, torch.arange(k) - k // 2, indexing="ij")
        power = []
        for theta in np.linspace(0, np.pi, 8, endpoint=False):
            along = x * np.cos(theta) + y * np.sin(theta)
            best = 0
            for period in np.linspace(2.5, 1.2 * k, 12):
                wave = torch.exp(2j * np.pi * along / period)  # any phase
                best = np.maximum(best, (w * wave).sum((1, 2)).abs().numpy())
            power.append(best)
        power = np.stack(power, 1)  # [C, orientations]
        return (power.max(1) - power.min(1)) / (power.max(1) + power.min(1))

    torch.manual_seed(0)
    gabor = Core(CoreConfig(init="gabor", spatial_kernels=(11, 3)), 4)
    torch.manual_seed(0)
    kaiming = Core(CoreConfig(spatial_kernels=(11, 3)), 4)
    assert np.median(orientation_index(gabor)) > 0.8
    assert np.median(orientation_index(kaiming)) < 0.6
    torch.testing.assert_close(gabor.layers[1].spatial.weight, kaiming.layers[1].spatial.weight)
    # the bank's size matches the average Kaiming draw's, so the activations' scale is kept
    norms = gabor.layers[0].spatial.weight.flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, np.sqrt(2)), rtol=1e-4)
    # init_gain scales the first layer's start only: the same draw, smaller
    torch.manual_seed(0)
    small = Core(CoreConfig(spatial_kernels=(11, 3), init_gain=0.1), 4)
    torch.testing.assert_close(
        small.layers[0].spatial.weight, 0.1 * kaiming.layers[0].spatial.weight
    )
    torch.testing.assert_close(small.layers[1].spatial.weight, kaiming.layers[1].spatial.weight)


def test_the_gabor_pyramid_answers_each_grating_in_its_own_orientation_and_scale():
    """``core.front_end=gabor_pyramid``: a grating of orientation o and period 4 x 2^s pixels
    puts most of its quadrature energy in channel group (o, s); uniform luminance gives
    nothing; the output has half the retina's resolution (rounded up)."""
    from cortexfm.model.retina import PYRAMID_ORIENTATIONS, PYRAMID_SCALES, FrontEnd

    front = FrontEnd("gabor_pyramid", contrast_pool=3.0, whiten_sigma=2.0)
    n_o, n_s = PYRAMID_ORIENTATIONS, PYRAMID_SCALES
    y, x = torch.meshgrid(torch.arange(36.0), torch.arange(64.0), indexing="ij")
    for scale in range(n_s):
        for o in range(0, n_o, 3):
            theta = np.pi * o / n_o
            grating = torch.cos(2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / 4 / 2**scale)
            with torch.no_grad():
                out = front(grating[None, None, None])[0, 0]  # [C, 18, 32]
            per_group = out[:, 4:-4, 6:-6].pow(2).mean((1, 2)).view(n_o, 2 * n_s + 1)
            energy = per_group[:, :-1].reshape(n_o, n_s, 2).sum(-1)  # the last: luminance
            assert divmod(int(energy.argmax()), n_s) == (o, scale)
            assert energy[o].sum() > 0.4 * energy.sum()  # of 8 orientations
    flat = front(torch.full((1, 1, 1, 37, 63), 0.7))[0, 0].view(n_o, 2 * n_s + 1, 19, 32)
    assert flat[:, :-1, 4:-4, 4:-4].abs().max() < 1e-4  # the Gabors ignore uniform luminance
    torch.testing.assert_close(flat[:, -1], torch.full((n_o, 19, 32), 0.7))  # which is passed


def test_a_pyramid_core_keeps_orientations_apart_and_checks_its_groups():
    """With ``core.groups=8`` each feed-forward channel sees one orientation's inputs only;
    the feature map keeps the default size with strides (2, 1); groups that do not divide
    the channels are refused with the field's name."""
    config = ModelConfig(
        core=CoreConfig(
            front_end="gabor_pyramid", groups=8, channels=(16, 16), strides=(2, 1), skip=True
        )
    )
    core = Core(config.core, 4)
    assert core.output_size((36, 64)) == Core(CoreConfig(), 4).output_size((36, 64)) == (9, 16)
    assert core.layers[0].spatial.weight.shape[1] == 56 // 8
    retina = torch.randn(1, 4, 36, 64, generator=torch.Generator().manual_seed(0))
    x, _ = core.feedforward(retina)
    assert x.shape == (1, 4, 16, 9, 16)
    # the last layer's channel 0 (orientation group 0) is fed by first-layer channels 0-1 only
    grad = torch.autograd.grad(x[0, -1, 0, 4, 8], core.layers[0].spatial.weight)[0]
    assert grad[:2].abs().sum() > 0 and grad[2:].abs().sum() == 0
    with pytest.raises(ValueError, match="core.groups"):
        ModelConfig(core=CoreConfig(groups=3))
    with pytest.raises(ValueError, match="core.groups"):
        Core(CoreConfig(front_end="whiten", groups=4, channels=(16, 32)), 4)


def test_fine_skip_reads_the_first_layer_beside_the_aligned_upsampled_core():
    """``core.fine_skip``: the map is the first feed-forward layer's (18 x 32 on the cpu
    retina), its channels the core's output plus that layer's; the coarse map's unit ``i``
    lands on the fine map's unit ``2 i`` (aligned, not stretched)."""
    from cortexfm.model.core import upsample_to

    core = Core(CoreConfig(fine_skip=True), 4)
    assert core.output_size((36, 64)) == (18, 32)
    assert core.out_channels == CoreConfig().hidden + CoreConfig().channels[0]
    retina = torch.randn(1, 3, 36, 64, generator=torch.Generator().manual_seed(0))
    features, _ = core(retina, torch.zeros(1, 3, 4))
    assert features.shape == (1, 3, core.out_channels, 18, 32)
    first, _ = core._feedforward_layers(core._front(retina), None)
    torch.testing.assert_close(features[:, :, CoreConfig().hidden :], first[0])
    coarse = torch.randn(2, 3, 5, 9, 16)
    fine = upsample_to(coarse, (18, 32))
    torch.testing.assert_close(fine[..., ::2, ::2], coarse)
    torch.testing.assert_close(
        fine[..., 1:17:2, ::2], (coarse[..., :-1, :] + coarse[..., 1:, :]) / 2
    )


@pytest.mark.parametrize("stride, size", [(0, (18, 32)), (4, (9, 16))])
def test_the_linear_pathway_is_signed_and_linear_in_the_retina(stride: int, size: tuple):
    """``core.linear_channels``: the last channels of the map (the first layer's, 18 x 32 on the
    cpu retina, or with ``linear_stride=4`` the core's own 9 x 16) are a linear function of the
    retina: doubling the input doubles them (minus the bias), and a contrast-reversed input
    flips their sign around the bias; the core's own channels, rectified, do not."""
    core = Core(CoreConfig(linear_channels=4, linear_stride=stride), 4).eval()
    assert core.output_size((36, 64)) == size
    assert core.out_channels == CoreConfig().hidden + 4
    retina = torch.randn(1, 9, 36, 64, generator=torch.Generator().manual_seed(0))
    modulation = torch.zeros(1, 9, 4)
    with torch.no_grad():
        features, _ = core(retina, modulation)
        zero, _ = core(torch.zeros_like(retina), modulation)
        double, _ = core(2 * retina, modulation)
        flipped, _ = core(-retina, modulation)
    assert features.shape == (1, 9, core.out_channels, *size)
    linear, bias = features[:, :, -4:], zero[:, :, -4:]
    torch.testing.assert_close(double[:, :, -4:] - bias, 2 * (linear - bias), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(flipped[:, :, -4:] - bias, -(linear - bias), atol=1e-4, rtol=1e-4)
    rectified = features[:, :, :-4] - zero[:, :, :-4]
    assert not torch.allclose(flipped[:, :, :-4] - zero[:, :, :-4], -rectified, atol=1e-3)


def test_antialiased_layers_answer_a_fine_grating_the_same_at_every_phase():
    """``core.antialias``: a grating finer than a strided layer's output spacing (period 3
    pixels, stride 2) gives each unit a drive that varies little with the grating's phase;
    without the blur pool the subsampled, aliased drive changes from phase to phase. The map's
    size is unchanged."""
    from cortexfm.model.core import CausalConvLayer

    y, x = torch.meshgrid(torch.arange(36.0), torch.arange(64.0), indexing="ij")
    variation = {}
    for antialias in (False, True):
        torch.manual_seed(0)
        layer = CausalConvLayer(1, 16, 7, 2, 1, antialias=antialias)
        outputs = []
        for phase in np.linspace(0, 2 * np.pi, 8, endpoint=False):
            grating = torch.cos(2 * np.pi * x / 3 + phase)[None, None, None]
            with torch.no_grad():
                out, _ = layer(grating, None)
            assert out.shape[-2:] == (18, 32)
            outputs.append(out[0, 0, :, 4:-4, 4:-4])
        o = torch.stack(outputs)  # [phase, C, h, w]
        variation[antialias] = float((o.std(0) / o.mean(0).abs().clamp(min=1e-6)).median())
    assert variation[True] < 0.4 * variation[False]
    core = Core(CoreConfig(antialias=True), 4)
    assert core.output_size((36, 64)) == Core(CoreConfig(), 4).output_size((36, 64)) == (9, 16)


def _features_and_turned(layer) -> tuple[torch.Tensor, torch.Tensor]:
    """A rotation-equivariant layer's features of a random 17 x 17 image and of the image turned
    by 90 degrees, each ``[1, time, 8 blocks, channels per block, 17, 17]``."""
    x = torch.randn(1, 3, 1, 17, 17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y, turned = (layer(v, None)[0] for v in (x, torch.rot90(x, 1, (-2, -1))))
    return y.unflatten(2, (8, -1)), turned.unflatten(2, (8, -1))


def test_a_rotation_equivariant_first_layer_turns_with_the_image():
    """``core.rotations=8``: the first layer learns channels / 8 kernels, used at 8 rotations;
    an image turned by 90 degrees gives the same features turned by 90 degrees, two orientation
    blocks along (exact on the pixel grid); later layers keep the orientation blocks apart;
    rotations that do not divide the channels are refused with the field's name."""
    from cortexfm.model.core import CausalConvLayer

    torch.manual_seed(0)
    layer = CausalConvLayer(1, 16, 7, 1, 3, rotations=8)
    assert layer.spatial.weight.shape == (2, 1, 7, 7) and layer.out_channels == 16
    y, turned = _features_and_turned(layer)
    expected = torch.roll(torch.rot90(y, 1, (-2, -1)), -2, dims=2)
    torch.testing.assert_close(turned, expected, atol=1e-5, rtol=1e-5)
    assert (torch.roll(torch.rot90(y, 1, (-2, -1)), -1, dims=2) - turned).abs().max() > 0.1
    # turns by 90 degrees keep the kernels exactly; 45-degree ones lose what bilinear
    # interpolation smooths away (most for white-noise kernels such as the random start)
    weight, _ = layer.spatial_kernels()
    norms = weight.flatten(1).norm(dim=1).view(8, 2)
    assert torch.allclose(norms[::2], norms[:1].expand(4, 2), rtol=1e-5)
    assert ((norms[1::2] / norms[:1]) > 0.5).all()

    core = Core(CoreConfig(rotations=8, channels=(16, 32)), 4)
    retina = torch.randn(1, 4, 36, 64, generator=torch.Generator().manual_seed(0))
    out, _ = core.feedforward(retina)
    assert out.shape == (1, 4, 32, 9, 16)
    # the last layer's channels 0-3 (orientation block 0) see first-layer block 0 only: the
    # learned kernels reach them only through rotation 0's copies
    first, _ = core.layers[0](core._front(retina), None)
    grad = torch.autograd.grad(core.layers[1](first, None)[0][0, -1, :4].sum(), first)[0]
    assert grad[:, :, :2].abs().sum() > 0 and grad[:, :, 2:].abs().sum() == 0
    with pytest.raises(ValueError, match="core.rotations"):
        ModelConfig(core=CoreConfig(rotations=3))
    with pytest.raises(ValueError, match="core.rotations"):
        ModelConfig(core=CoreConfig(rotations=8, groups=8))


def test_quadrature_energy_channels_are_phase_invariant_and_turn_with_the_image():
    """``core.energy``: each block of 4 Gabor-initialised kernels gains the energies of its
    even/odd pairs; on a grating at the pair's orientation and period the energy barely moves
    with the grating's phase while the rectified even channel swings; the layer stays
    rotation-equivariant; a core with it streams in chunks as in one pass; kernel counts that
    do not pair up are refused with the field's name."""
    from cortexfm.model.core import CausalConvLayer

    layer = CausalConvLayer(1, 32, 9, 1, 1, gabor=True, rotations=8, energy=True)
    assert layer.out_channels == 48  # 8 blocks x (4 rectified + 2 energies)
    yy, xx = torch.meshgrid(torch.arange(21.0), torch.arange(21.0), indexing="ij")
    weight, bias = layer.spatial_kernels()
    phases = torch.linspace(0, 2 * np.pi, 9)[:-1]
    # kernel 0: orientation 0, period 4.5 pixels, even phase (cortexfm.model.core.gabor_bank)
    gratings = torch.stack([torch.cos(2 * np.pi * xx / 4.5 + p) for p in phases])[:, None]
    with torch.no_grad():
        out = layer.rectified(torch.nn.functional.conv2d(gratings, weight, bias, padding=4))
    centre = out[:, :, 10, 10]  # [phase, channel]
    energy, even = centre[:, 4], centre[:, 0]  # block 0: energy of kernels 0 and 2; kernel 0
    assert energy.std() / energy.mean() < 0.1
    assert even.std() / even.abs().mean() > 0.5

    y, turned = _features_and_turned(layer)
    expected = torch.roll(torch.rot90(y, 1, (-2, -1)), -2, dims=2)
    torch.testing.assert_close(turned, expected, atol=1e-4, rtol=1e-4)

    config = CoreConfig(rotations=8, channels=(32, 32), spatial_kernels=(9, 3), energy=True)
    core = Core(config, 4)
    retina = torch.randn(1, 12, 36, 64, generator=torch.Generator().manual_seed(0))
    modulation = torch.zeros(1, 12, 4)
    with torch.no_grad():
        whole, _ = core(retina, modulation)
        first, state = core(retina[:, :5], modulation[:, :5])
        rest, _ = core(retina[:, 5:], modulation[:, 5:], state)
    assert core.layers[1].spatial.in_channels == 48
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="core.energy"):
        ModelConfig(core=CoreConfig(channels=(16, 32), rotations=8, energy=True))
    with pytest.raises(ValueError, match="core.energy"):
        ModelConfig(core=CoreConfig(channels=(16, 32), groups=2, energy=True))


@pytest.mark.parametrize("groups", [1, 2])
def test_the_temporal_convolution_is_a_causal_filter_over_frames(groups: int):
    """The layer's temporal step (run as a conv2d over time x pixels) equals the (T x 1 x 1)
    conv3d its weights are stored as, and each output frame sees only frames up to it."""
    import torch.nn.functional as F

    from cortexfm.model.core import CausalConvLayer

    torch.manual_seed(0)
    layer = CausalConvLayer(4, 8, 3, 1, 4, groups=groups, rectify=False)
    x = torch.randn(2, 10, 4, 6, 7)
    with torch.no_grad():
        out, buffer = layer(x, None)
        y = layer.spatial(x.flatten(0, 1)).unflatten(0, (2, 10)).transpose(1, 2)
        padded = torch.cat([y.new_zeros(2, 8, 3, 6, 7), y], 2)
        reference = F.conv3d(padded, layer.temporal.weight, layer.temporal.bias, groups=groups)
        torch.testing.assert_close(out, reference.transpose(1, 2), atol=1e-5, rtol=1e-5)
        assert buffer.shape == (2, 8, 3, 6, 7)
        changed = x.clone()
        changed[:, 6:] += 1.0  # the future does not reach the past
        torch.testing.assert_close(layer(changed, None)[0][:, :6], out[:, :6])
