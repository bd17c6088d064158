"""The simulator's response model: spatiotemporal filters -> normalisation -> gain -> noise.

For neuron i with receptive field centre ``(rf_x, rf_y)``, envelope s.d. ``rf_size``,
carrier orientation, spatial frequency and phase:

1. Eye position shifts the image on the retina (bilinear, per frame).
2. Even and odd Gabor filters give E(t), O(t); an unoriented difference-of-Gaussians gives U(t).
3. Two temporal kernels (Adelson-Bergen fast/slow, time scale from the preferred temporal
   frequency, delayed by ``latency`` frames) make space-time oriented filters:
   ``lin = fast*E + s d slow*O``, ``quad = fast*O - s d slow*E`` (``d`` = direction index,
   ``s`` = direction sign). Simple cells: ``sqrt(2) relu(lin)``; complex cells (energy
   model): ``sqrt(lin^2 + quad^2)``. Untuned drive ``|fast*U|`` is mixed in with weight
   ``untuned_fraction``.
4. Divisive normalisation by the local RMS contrast around the receptive field.
5. Rate = ``baseline + amplitude * mean_rate * (drive / reference)^exponent`` times a gain
   ``exp(running_gain * running/10 + pupil_gain * (pupil - 50)/10 + shared latents)``.
6. Poisson spikes, then calcium-like exponential smoothing (deconvolved-activity-like traces).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np
from scipy import ndimage
from scipy.signal import lfilter

from cortexfm.sim.behavior import RESTING_BEHAVIOR
from cortexfm.sim.population import Population
from cortexfm.stimuli import Monitor, natural_movie

KERNEL_FRAMES = 16


@dataclass(frozen=True)
class NoiseConfig:
    """Trial-to-trial variability of the simulated recordings."""

    mean_rate: float = 0.04  # spikes per frame of a typical neuron at its reference drive
    n_latents: int = 2  # shared fluctuations across neurons
    latent_tau_s: float = 1.0
    latent_scale: float = 0.4  # s.d. of neuron loadings on the latents (log-gain)
    calcium_tau_frames: float = 2.0
    normalization_constant: float = 0.15

    def __post_init__(self) -> None:
        if (
            self.mean_rate <= 0
            or self.n_latents < 0
            or self.latent_tau_s <= 0
            or self.calcium_tau_frames < 0
        ):
            raise ValueError(f"invalid noise configuration: {self}")


def _temporal_kernels(
    tf: np.ndarray, latency: np.ndarray, frame_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fast and slow kernels ``[KERNEL_FRAMES, neurons]``, unit L2 norm, causal."""
    t = np.arange(KERNEL_FRAMES, dtype=np.float64)[:, None] - latency[None, :]
    t = np.clip(t, 0, None)
    k = 2 * np.pi * tf[None, :] / frame_rate * 1.6
    kt = k * t

    def kernel(n: int) -> np.ndarray:
        h = kt**n * np.exp(-kt) * (1 / factorial(n) - kt**2 / factorial(n + 2))
        return h / (np.linalg.norm(h, axis=0, keepdims=True) + 1e-12)

    return kernel(3).astype(np.float32), kernel(5).astype(np.float32)


def _causal_filter(x: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Per-neuron causal convolution: ``x [time, neurons]``, ``kernels [K, neurons]``."""
    out = np.zeros_like(x)
    for lag in range(kernels.shape[0]):
        if lag == 0:
            out += kernels[0] * x
        else:
            out[lag:] += kernels[lag] * x[:-lag]
    return out


class ResponseModel:
    """Noise-free rates and noisy responses of one population to frames and behaviour.

    The stimulus drive (steps 1-4 above) is this generator's, the *Gabor energy* generator;
    :class:`cortexfm.sim.subunit.SubunitResponseModel` replaces it with an LGN subunit cascade.
    Gain, noise and calcium (steps 5-6) are shared by every generator.
    """

    #: name used in ``SimulationConfig.generator`` and ``simulation.json``
    generator = "gabor"

    def __init__(
        self, population: Population, monitor: Monitor, noise: NoiseConfig | None = None
    ) -> None:
        self.population, self.monitor = population, monitor
        self.noise = noise or NoiseConfig()
        self.build_filters()
        p = population
        self.reference = np.ones(p.n_neurons)
        ref_clip = natural_movie(monitor, 300, np.random.default_rng(12345)).frames
        drive = self.drive(ref_clip, np.zeros((300, 2)))
        self.reference = np.maximum(
            np.mean(drive[KERNEL_FRAMES:] ** p["exponent"][None], axis=0) ** (1 / p["exponent"]),
            1e-6,
        )

    def build_filters(self) -> None:
        """Spatial filters ``[pixels, 4 * neurons]`` and temporal kernels of every neuron."""
        p, monitor = self.population, self.monitor
        az, el = monitor.grid()
        az, el = az.reshape(-1, 1), el.reshape(-1, 1)
        dx, dy = az - p["rf_x"][None], el - p["rf_y"][None]
        sigma = p["rf_size"][None]
        envelope = np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
        theta = np.deg2rad(p["orientation"])[None]
        carrier = (
            2 * np.pi * p["spatial_frequency"][None] * (dx * np.cos(theta) + dy * np.sin(theta))
            + p["phase"][None]
        )
        even, odd = envelope * np.cos(carrier), envelope * np.sin(carrier)
        surround = np.exp(-(dx**2 + dy**2) / (2 * (2 * sigma) ** 2))
        dog = envelope / envelope.sum(0) - surround / surround.sum(0)
        local = surround / surround.sum(0)
        unit = lambda f: f / (np.linalg.norm(f, axis=0, keepdims=True) + 1e-12)  # noqa: E731
        # one matrix: [pixels, 4 * neurons] = even | odd | dog | local-mean weights
        self.filters = np.concatenate([unit(even), unit(odd), unit(dog), local], axis=1).astype(
            np.float32
        )
        self.fast, self.slow = _temporal_kernels(
            p["temporal_frequency"], p["latency"].astype(float), monitor.frame_rate
        )

    def retinal_frames(self, frames: np.ndarray, gaze: np.ndarray) -> np.ndarray:
        """Luminance in [-1, 1] as seen by the retina: frames shifted against the gaze."""
        lum = (frames.astype(np.float32) - 127.5) / 127.5
        dpp = self.monitor.deg_per_pixel
        out = np.empty_like(lum)
        for t in range(len(lum)):
            gx, gy = gaze[t]
            if abs(gx) < 1e-3 and abs(gy) < 1e-3:
                out[t] = lum[t]
            else:
                out[t] = ndimage.shift(lum[t], (gy / dpp, -gx / dpp), order=1, mode="nearest")
        return out

    def drive(self, frames: np.ndarray, gaze: np.ndarray) -> np.ndarray:
        """Normalised stimulus drive ``[time, neurons]`` (before gain and noise)."""
        p = self.population
        n = p.n_neurons
        lum = self.retinal_frames(frames, gaze).reshape(len(frames), -1)
        lin = lum @ self.filters  # [time, 4N]
        even, odd, dog, local_mean = (
            lin[:, :n],
            lin[:, n : 2 * n],
            lin[:, 2 * n : 3 * n],
            lin[:, 3 * n :],
        )
        local_power = (lum * lum) @ self.filters[:, 3 * n :]
        contrast = np.sqrt(np.clip(local_power - local_mean**2, 0, None))
        contrast = lfilter([1 / 3] * 3, [1.0], contrast, axis=0)  # ~100 ms pooling
        ef, es = _causal_filter(even, self.fast), _causal_filter(even, self.slow)
        of, os_ = _causal_filter(odd, self.fast), _causal_filter(odd, self.slow)
        d = (p["direction_index"] * p["direction_sign"])[None].astype(np.float32)
        lin_out = ef + d * os_
        quad_out = of - d * es
        tuned = np.where(
            p["complex"][None],
            np.sqrt(lin_out**2 + quad_out**2),
            np.sqrt(2) * np.maximum(lin_out, 0),
        )
        untuned = np.abs(_causal_filter(dog, self.fast)) * 2.0
        m = p["untuned_fraction"][None]
        drive = (1 - m) * tuned + m * untuned
        return drive / (self.noise.normalization_constant + contrast) / self.reference[None]

    def rates(
        self,
        frames: np.ndarray,
        behavior: np.ndarray,
        gaze: np.ndarray,
        latents: np.ndarray | None = None,
    ) -> np.ndarray:
        """Expected spikes per frame ``[time, neurons]``. ``latents`` ``[time, n_latents]``."""
        p = self.population
        drive = self.drive(frames, gaze)
        log_gain = (
            p["running_gain"][None] * behavior[:, 1:2] / 10
            + p["pupil_gain"][None] * (behavior[:, 0:1] - RESTING_BEHAVIOR[0]) / 10
        )
        if latents is not None and latents.shape[1]:
            log_gain = log_gain + latents @ self.loadings
        rate = (
            p["baseline"][None]
            + p["amplitude"][None] * self.noise.mean_rate * drive ** p["exponent"][None]
        )
        return rate * np.exp(log_gain)

    @property
    def loadings(self) -> np.ndarray:
        """Loadings ``[n_latents, neurons]`` of the shared fluctuations (fixed per population)."""
        if not hasattr(self, "_loadings"):
            rng = np.random.default_rng(int(self.population["unit_id"].sum()) + 7)
            self._loadings = rng.normal(
                0, self.noise.latent_scale, (self.noise.n_latents, self.population.n_neurons)
            )
        return self._loadings

    def sample_latents(self, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        a = np.exp(-1 / (self.noise.latent_tau_s * self.monitor.frame_rate))
        noise = rng.normal(0, np.sqrt(1 - a * a), (n_frames, self.noise.n_latents))
        return lfilter(
            [1.0], [1.0, -a], noise, axis=0, zi=a * rng.normal(size=(1, self.noise.n_latents))
        )[0]

    def responses(
        self, frames: np.ndarray, behavior: np.ndarray, gaze: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noisy responses and their noise-free rates, both ``[time, neurons]`` float32."""
        rate = self.rates(frames, behavior, gaze, self.sample_latents(len(frames), rng))
        spikes = rng.poisson(rate).astype(np.float32)
        tau = self.noise.calcium_tau_frames
        if tau > 0:
            a = np.exp(-1 / tau)
            spikes = lfilter([1 - a], [1, -a], spikes, axis=0).astype(np.float32)
        return spikes, rate.astype(np.float32)
