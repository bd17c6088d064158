"""A second, structurally different response generator: an LGN subunit cascade.

Where the Gabor energy generator (:mod:`cortexfm.sim.response`) filters the image with linear
Gabors and normalises afterwards, this one builds cortex from a rectifying front end, as in
Hubel and Wiesel's scheme and its modern fits (LN cascades with contrast gain control):

1. **Retina / LGN.** The image (shifted against the gaze) is filtered by centre-surround
   difference-of-Gaussians units at three scales (centre s.d. 1.5, 3 and 6 deg, surround 3x,
   surround weight 0.8: a little luminance passes). Each unit has a *sustained* (monophasic),
   *transient* (biphasic) or *lagged* (delayed, slower) temporal kernel.
2. **Contrast gain control.** Each unit's linear response is divided by ``c50 + c(t, x)``,
   the local RMS contrast pooled over ~8 deg and ~100 ms; then split into half-wave rectified
   ON and OFF channels.
3. **Cortex.** Three classes of neurons read the ON/OFF maps:
   - *centre-surround* cells: one ON or OFF unit at the receptive-field centre;
   - *simple* cells: ON subunits under the positive lobes of an oriented Gabor layout and OFF
     subunits under the negative lobes, with push-pull inhibition from the opposite polarity;
     direction selectivity from a quadrature layout fed by *lagged* units (a space-time slant
     built from subunits, not from a linear filter);
   - *complex* cells: the rectified outputs of four such simple subunits in spatial quadrature,
     pooled as ``sqrt(sum relu(s_k)^2)``.
4. **Adaptation.** Each neuron's drive is divided by ``1 + a * (its own drive low-passed with
   a ~1 s time constant)``.
5. Gain (running, pupil, shared latents), Poisson spikes and calcium smoothing as in the Gabor
   energy generator (:class:`cortexfm.sim.response.ResponseModel`).

The neuron table gains ``cell_class``, ``polarity``, ``transient``, ``push_pull``,
``adaptation`` and ``subunit_scale`` (see :func:`subunit_parameters`); everything else
(receptive-field centre, orientation, spatial frequency, direction index...) keeps the meaning
it has in the neuron table of the Gabor generator.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.signal import lfilter

from cortexfm.sim.population import Population
from cortexfm.sim.response import ResponseModel, _causal_filter

#: Centre s.d. of the LGN units, degrees.
SUBUNIT_SCALES_DEG = (1.5, 3.0, 6.0)
SURROUND_RATIO = 3.0
SURROUND_WEIGHT = 0.8
CONTRAST_POOL_DEG = 8.0
LGN_C50 = 0.15
ADAPTATION_TAU_S = 1.0
ELONGATION = 2.0  # s.d. along the bars / across them
CELL_CLASSES = ("centre_surround", "simple", "complex")


def subunit_parameters(
    population: Population, rng: np.random.Generator, lgn_c50: float = LGN_C50
) -> Population:
    """The population with the subunit generator's extra ground-truth columns.

    ``lgn_c50`` is the semi-saturation of the LGN's contrast gain control (the same for the
    whole mouse): 0.15 saturates strongly (full-contrast gratings drive cortex little more than
    natural movies do); a large value (e.g. 10) makes the front end nearly linear in contrast,
    so full-contrast gratings drive cortex far harder than any natural movie.

    A quarter of the neurons are centre-surround cells; the others are complex where the
    population says ``complex`` and simple otherwise. The subunit scale is the one closest to
    a quarter period of the neuron's spatial frequency (the width of one Gabor lobe).
    """
    n = population.n_neurons
    table = population.table.copy()
    centre_surround = rng.random(n) < 0.25
    table["cell_class"] = np.where(
        centre_surround, "centre_surround", np.where(table["complex"], "complex", "simple")
    )
    table["polarity"] = rng.choice([-1.0, 1.0], n)  # OFF / ON (centre-surround cells)
    table["transient"] = rng.random(n) < 0.5
    table["push_pull"] = rng.uniform(0.85, 1.0, n)
    table["adaptation"] = rng.uniform(0.0, 1.5, n)
    table["lgn_c50"] = float(lgn_c50)
    lobe = 1 / (4 * table["spatial_frequency"].to_numpy())
    wanted = np.where(centre_surround, table["rf_size"].to_numpy() / 2, lobe / 1.5)
    table["subunit_scale"] = np.abs(
        np.log(wanted[:, None]) - np.log(np.array(SUBUNIT_SCALES_DEG))[None]
    ).argmin(1)
    return Population(table, population.mouse_id)


def _gamma_kernel(tau: float, n: int, length: int, delay: int = 0) -> np.ndarray:
    """A causal gamma kernel of order ``n`` (time constant ``tau`` frames), unit sum."""
    t = np.clip(np.arange(length, dtype=np.float64) - delay, 0, None)
    k = (t / tau) ** n * np.exp(-t / tau)
    return k / k.sum()


def lgn_kernels(frame_rate: float) -> dict[str, np.ndarray]:
    """Temporal kernels of the LGN units (16 frames): sustained, transient and lagged.

    The lagged kernel is delayed (2 frames) and slower: about 80 deg behind the sustained one
    at 2 Hz, near the temporal quadrature that a space-time slant (direction selectivity)
    needs; it is scaled to the sustained kernel's gain at 2 Hz.
    """
    scale = frame_rate / 30.0
    sustained = _gamma_kernel(0.8 * scale, 3, 16)
    transient = sustained - _gamma_kernel(1.6 * scale, 3, 16)  # biphasic, integrates to zero
    lagged = _gamma_kernel(1.2 * scale, 3, 16, delay=int(round(2 * scale)))

    def gain(k: np.ndarray) -> float:
        return float(np.abs((k * np.exp(-2j * np.pi * 2.0 * np.arange(16) / frame_rate)).sum()))

    return {
        "sustained": sustained,
        "transient": transient * gain(sustained) / gain(transient),
        "lagged": lagged * gain(sustained) / gain(lagged),
    }


class SubunitResponseModel(ResponseModel):
    """Rates and responses from the LGN subunit cascade (see the module docstring)."""

    generator = "subunit"

    def build_filters(self) -> None:
        p, monitor = self.population, self.monitor
        for column in ("cell_class", "polarity", "transient", "push_pull", "adaptation"):
            if column not in p.table:
                raise ValueError(
                    f"population of {p.mouse_id!r} has no {column!r} column: draw it with "
                    "cortexfm.sim.subunit.subunit_parameters"
                )
        az, el = monitor.grid()
        az, el = az.reshape(-1, 1), el.reshape(-1, 1)
        dx, dy = az - p["rf_x"][None], el - p["rf_y"][None]
        sigma = p["rf_size"][None]
        theta = np.deg2rad(p["orientation"])[None]
        across = dx * np.cos(theta) + dy * np.sin(theta)
        along = -dx * np.sin(theta) + dy * np.cos(theta)
        # subregions elongated along the bars, as simple-cell fields are
        envelope = np.exp(
            -(across**2) / (2 * sigma**2) - along**2 / (2 * (ELONGATION * sigma) ** 2)
        )
        carrier = 2 * np.pi * p["spatial_frequency"][None] * across + p["phase"][None]
        even, odd = envelope * np.cos(carrier), envelope * np.sin(carrier)
        norm = np.abs(even).sum(0, keepdims=True) + 1e-12
        # per layout: the signed weights (ON subunits under positive lobes minus OFF subunits
        # under negative ones) and the unsigned ones (all subunits), [pixels, neurons]
        self.weights = {
            "even": even / norm,
            "even_abs": np.abs(even) / norm,
            "odd": odd / norm,
            "odd_abs": np.abs(odd) / norm,
        }
        self.weights = {k: v.astype(np.float32) for k, v in self.weights.items()}
        # centre-surround cells: a small Gaussian pool (1 pixel) at the receptive-field centre
        point = np.exp(-(dx**2 + dy**2) / (2 * monitor.deg_per_pixel**2))
        self.point = (point / point.sum(0, keepdims=True)).astype(np.float32)
        self.kernels = lgn_kernels(monitor.frame_rate)
        self.cell_class = p["cell_class"].astype(str)
        self.scale_index = p["subunit_scale"].astype(int)

    def lgn(self, lum: np.ndarray) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
        """ON and OFF maps ``[time, pixels]`` per (scale index, temporal kind)."""
        t, h, w = lum.shape
        dpp = self.monitor.deg_per_pixel
        pool = CONTRAST_POOL_DEG / dpp
        mean = ndimage.gaussian_filter(lum, (0, pool, pool), mode="nearest")
        power = ndimage.gaussian_filter(lum * lum, (0, pool, pool), mode="nearest")
        contrast = np.sqrt(np.clip(power - mean**2, 0, None))
        contrast = ndimage.uniform_filter1d(contrast, 3, axis=0, origin=1, mode="nearest")
        c50 = (
            float(self.population["lgn_c50"][0]) if "lgn_c50" in self.population.table else LGN_C50
        )
        gain = 1.0 / (c50 + contrast)
        maps = {}
        for s in np.unique(self.scale_index):
            centre_px = SUBUNIT_SCALES_DEG[s] / dpp
            centre = ndimage.gaussian_filter(lum, (0, centre_px, centre_px), mode="nearest")
            surround = ndimage.gaussian_filter(
                lum, (0, SURROUND_RATIO * centre_px, SURROUND_RATIO * centre_px), mode="nearest"
            )
            dog = (centre - SURROUND_WEIGHT * surround).reshape(t, -1).astype(np.float32)
            for kind, kernel in self.kernels.items():
                linear = _causal_filter(dog, np.repeat(kernel[:, None], dog.shape[1], 1))
                linear = linear * gain.reshape(t, -1)
                linear = linear.astype(np.float32)
                maps[(int(s), kind)] = (np.maximum(linear, 0), np.maximum(-linear, 0))
        return maps

    def drive(self, frames: np.ndarray, gaze: np.ndarray) -> np.ndarray:
        p = self.population
        n = p.n_neurons
        lum = self.retinal_frames(frames, gaze)
        maps = self.lgn(lum)
        out = np.zeros((len(frames), n), dtype=np.float32)
        transient = p["transient"].astype(bool)
        k = p["push_pull"].astype(np.float32)
        d = (p["direction_index"] * p["direction_sign"]).astype(np.float32)
        for s in np.unique(self.scale_index):
            for is_transient in (False, True):
                cols = np.flatnonzero((self.scale_index == s) & (transient == is_transient))
                if not len(cols):
                    continue
                on, off = maps[(int(s), "transient" if is_transient else "sustained")]
                on_lag, off_lag = maps[(int(s), "lagged")]
                out[:, cols] = self._cortex(cols, on, off, on_lag, off_lag, k[cols], d[cols])
        adaptation = p["adaptation"][None].astype(np.float32)
        a = np.exp(-1.0 / (ADAPTATION_TAU_S * self.monitor.frame_rate))
        history = lfilter([1 - a], [1.0, -a], out, axis=0)
        out = out / (1.0 + adaptation * history / self._adaptation_scale(out))
        return out / self.reference[None]

    def _adaptation_scale(self, drive: np.ndarray) -> np.ndarray:
        """Typical drive per neuron on the reference movie (fixed after the first call)."""
        if not hasattr(self, "_typical_drive"):
            self._typical_drive = np.maximum(drive[16:].mean(0, keepdims=True), 1e-6)
        return self._typical_drive

    def _cortex(self, cols, on, off, on_lag, off_lag, k, d) -> np.ndarray:
        """Drive ``[time, len(cols)]`` of the neurons ``cols`` from their ON/OFF maps.

        A layout's subunits with push-pull inhibition ``k``, ``w_on (ON - k OFF) + w_off (OFF -
        k ON)``, equal ``(1 + k)/2 G lin + (1 - k)/2 |G| (ON + OFF)`` with ``G = w_on - w_off``
        and ``lin = ON - OFF``; the opposite phase flips the sign of the first term.
        """
        w = {name: weight[:, cols] for name, weight in self.weights.items()}
        signed, unsigned = (1 + k) / 2, (1 - k) / 2

        def push_pull(layout: str, on_map: np.ndarray, off_map: np.ndarray) -> tuple:
            """Subunit responses of a layout at its phase and at the opposite phase."""
            linear = signed * ((on_map - off_map) @ w[layout])
            rectified = unsigned * ((on_map + off_map) @ w[f"{layout}_abs"])
            return rectified + linear, rectified - linear

        even0, even180 = push_pull("even", on, off)
        odd0, odd180 = push_pull("odd", on, off)
        lag_even0, lag_even180 = push_pull("even", on_lag, off_lag)
        lag_odd0, lag_odd180 = push_pull("odd", on_lag, off_lag)
        phases = (
            even0 + d * lag_odd0,
            even180 + d * lag_odd180,
            odd0 - d * lag_even0,
            odd180 - d * lag_even180,
        )
        simple = np.sqrt(2) * np.maximum(phases[0], 0)
        complex_ = np.sqrt(sum(np.maximum(x, 0) ** 2 for x in phases))
        polarity = self.population["polarity"][cols]
        point = on @ self.point[:, cols], off @ self.point[:, cols]
        centre_surround = np.where(polarity[None] > 0, point[0], point[1]) * 3.0
        cell_class = self.cell_class[cols][None]
        return np.where(
            cell_class == "centre_surround",
            centre_surround,
            np.where(cell_class == "complex", complex_, simple),
        )


GENERATORS: dict[str, type[ResponseModel]] = {
    "gabor": ResponseModel,
    "subunit": SubunitResponseModel,
}


def make_response_model(
    generator: str, population: Population, monitor, noise=None
) -> ResponseModel:
    """The response model of ``generator`` (``"gabor"`` or ``"subunit"``)."""
    if generator not in GENERATORS:
        raise ValueError(f"unknown response generator {generator!r}; known: {sorted(GENERATORS)}")
    return GENERATORS[generator](population, monitor, noise)
