"""Stimulus library: shapes, parameters, and the physics each family claims."""

from __future__ import annotations

import numpy as np
import pytest

from cortexfm.stimuli import (
    OOD_FAMILIES,
    Monitor,
    dead_leaves,
    directional_pink_noise,
    drifting_gabor,
    film,
    gaussian_dots,
    natural_movie,
    ood_clip,
    random_dot_kinematogram,
    sparse_noise,
)

from .conftest import SHARED_DATA

M = Monitor()


def _motion_direction(frames: np.ndarray, monitor: Monitor) -> float:
    """Direction (deg) of rigid image motion, from the peak of the frame-to-frame cross-spectrum."""
    f = frames.astype(np.float64) - frames.mean()
    ky = np.fft.fftfreq(monitor.height, d=monitor.deg_per_pixel)[:, None]
    kx = np.fft.fftfreq(monitor.width, d=monitor.deg_per_pixel)[None, :]
    cross = np.zeros((monitor.height, monitor.width), complex)
    for t in range(len(f) - 1):
        cross += np.fft.fft2(f[t + 1]) * np.conj(np.fft.fft2(f[t]))
    # phase advance -2 pi (kx vx - ky vy): fit the velocity by least squares on strong components
    w = np.abs(cross)
    keep = w > np.quantile(w, 0.98)
    phase = np.angle(cross[keep])
    a = np.stack(
        [
            -2 * np.pi * np.broadcast_to(kx, w.shape)[keep],
            2 * np.pi * np.broadcast_to(ky, w.shape)[keep],
        ],
        1,
    )
    v = np.linalg.lstsq(a * w[keep, None], phase * w[keep], rcond=None)[0]
    return float(np.rad2deg(np.arctan2(v[1], v[0])) % 360)


@pytest.mark.parametrize("direction", [0.0, 90.0, 225.0])
def test_drifting_gabor_moves_in_its_direction(direction: float):
    s = drifting_gabor(
        M, 10, direction, spatial_frequency=0.04, temporal_frequency=2.0, size=np.inf
    )
    assert s.frames.shape == (10, 36, 64) and s.frames.dtype == np.uint8
    assert (s.params.direction == direction).all() and len(s.params) == 10
    # frame t+1 is frame t shifted along the direction by (tf / sf) / frame_rate degrees
    from scipy import ndimage

    step = 2.0 / 0.04 / M.frame_rate / M.deg_per_pixel  # pixels per frame
    th = np.deg2rad(direction)
    f0, f1 = s.frames[0].astype(float), s.frames[1].astype(float)

    def error(sign: float) -> float:
        moved = ndimage.shift(
            f0, (-sign * step * np.sin(th), sign * step * np.cos(th)), order=1, mode="wrap"
        )
        return float(np.abs(moved - f1)[5:-5, 5:-5].mean())

    assert error(+1) < 0.5 * error(-1)


@pytest.mark.parametrize("direction", [45.0, 180.0, 292.5])
def test_pink_noise_drifts_in_its_direction(direction: float):
    s = directional_pink_noise(M, 12, np.random.default_rng(0), direction, speed=30)
    assert abs((_motion_direction(s.frames, M) - direction + 180) % 360 - 180) < 15


@pytest.mark.parametrize("direction", [30.0, 45.0, 120.0, 292.5])
def test_pink_noise_stripes_are_orthogonal_to_its_motion(direction: float):
    """Luminance varies along the motion axis (a grating's convention): the power-weighted
    wave-vector axis, in azimuth/elevation with elevation up, is ``direction`` (mod 180)."""
    ky = np.fft.fftfreq(M.height)[:, None]
    kx = np.fft.fftfreq(M.width)[None, :]
    angle = np.arctan2(-ky, kx)  # row index points down, elevation up
    axes = []
    for seed in range(3):
        s = directional_pink_noise(M, 1, np.random.default_rng(seed), direction)
        frame = s.frames[0].astype(float)
        power = np.abs(np.fft.fft2(frame - frame.mean())) ** 2
        axes.append((power * np.exp(2j * angle)).sum())
    axis = np.rad2deg(np.angle(np.mean(axes))) / 2 % 180
    assert abs((axis - direction % 180 + 90) % 180 - 90) < 8, axis


def test_gabor_is_localised_at_its_position():
    s = drifting_gabor(M, 5, 0, size=6, position=(30.0, 10.0))
    az, el = M.grid()
    energy = np.abs(s.frames.astype(float) - 127.5).mean(0)
    peak = np.unravel_index(energy.argmax(), energy.shape)
    assert abs(az[peak] - 30) < 8 and abs(el[peak] - 10) < 8


def test_rdk_coherent_dots_move_in_direction():
    s = random_dot_kinematogram(
        M, 8, np.random.default_rng(1), direction=90, coherence=1.0, speed=30, density=0.05
    )
    assert abs((_motion_direction(s.frames, M) - 90 + 180) % 360 - 180) < 15
    with pytest.raises(ValueError, match="coherence"):
        random_dot_kinematogram(M, 8, np.random.default_rng(1), 0, coherence=1.5)


def test_dots_and_sparse_noise_parameters_match_frames():
    s = gaussian_dots(M, 30, np.random.default_rng(2), dot_frames=10)
    az, el = M.grid()
    for t in (0, 10, 20):
        row = s.params.iloc[t]
        img = s.frames[t].astype(float) - 127.5
        peak = np.unravel_index(np.abs(img).argmax(), img.shape)
        assert abs(az[peak] - row.x) < 3 and abs(el[peak] - row.y) < 3
        assert (img[peak] > 0) == (row.polarity == "on")
    sn = sparse_noise(M, 12, np.random.default_rng(0))
    assert set(sn.params.polarity) <= {"on", "off"} and len(sn.params) == 12


def test_dead_leaves_has_a_natural_spectrum():
    img = dead_leaves(np.random.default_rng(0), (256, 256))
    power = np.abs(np.fft.fftshift(np.fft.fft2(img - img.mean()))) ** 2
    yy, xx = np.indices(power.shape) - 128
    r = np.hypot(yy, xx).astype(int)
    radial = np.bincount(r.ravel(), power.ravel()) / np.bincount(r.ravel())
    freqs = np.arange(4, 60)
    slope = np.polyfit(np.log(freqs), np.log(radial[freqs]), 1)[0]
    assert -3.2 < slope < -1.6  # amplitude ~ 1/f^(0.8..1.6), natural images sit near 1/f


def test_natural_movie_is_deterministic_and_moves():
    a = natural_movie(M, 40, np.random.default_rng(5))
    b = natural_movie(M, 40, np.random.default_rng(5))
    np.testing.assert_array_equal(a.frames, b.frames)
    assert np.abs(np.diff(a.frames.astype(float), axis=0)).mean() > 1
    assert {"center_x", "center_y", "zoom", "saccade"} <= set(a.params.columns)


def test_real_film_frames():
    path = SHARED_DATA / "stimuli" / "bigbuckbunny_gray_36x64.npy"
    if not path.exists():
        pytest.skip(f"real film not found at {path}")
    s = film(np.load(path), Monitor(height=18, width=32))
    assert s.frames.shape == (132, 18, 32)


@pytest.mark.parametrize("family", OOD_FAMILIES)
def test_every_ood_family_makes_a_clip(family: str):
    s = ood_clip(family, M, 45, np.random.default_rng(0))
    assert s.frames.shape == (45, 36, 64) and s.stimulus_type == family and len(s.params) == 45
    assert s.frames.std() > 3


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="unknown stimulus family"):
        ood_clip("plaids", M, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="size must be > 0"):
        drifting_gabor(M, 5, 0, size=0)
    with pytest.raises(ValueError, match="invalid monitor"):
        Monitor(height=0)
