"""In-silico experiments checked against the simulator's ground truth, beside the same
experiments run "in vivo" (on the simulator with its noise, as an experimenter would).

Responsive neurons: a noise ceiling (CC_max on the recorded repeated natural clips) of at
least ``min_cc_max``; this uses recordings only, never the ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cortexfm.data.loader import repeat_groups
from cortexfm.data.session import Session
from cortexfm.insilico.experiments import (
    BURN_IN,
    DIRECTIONS,
    MEI_PRESENT_FRAMES,
    direction_tuning,
    fit_von_mises,
    most_exciting_inputs,
    receptive_fields,
    tuning_curves,
    tuning_stimuli,
)
from cortexfm.insilico.plots import (
    FIGURES,
    plot_meis,
    plot_receptive_fields,
    plot_scatter,
    plot_tuning_curves,
)
from cortexfm.metrics import cc_max
from cortexfm.model.network import FoundationModel
from cortexfm.sim.behavior import RESTING_BEHAVIOR
from cortexfm.sim.cohort import load_ground_truth, rebuild_simulator
from cortexfm.stimuli.tuning import selectivity


def recorded_cc_max(session: Session, tier: str = "oracle") -> np.ndarray:
    groups = [g for g in repeat_groups(session, tier).values() if len(g) >= 2]
    n = min(len(g) for g in groups)
    arrays = []
    for g in groups:
        length = int(min(session.trial_lengths[g[:n]]))
        arrays.append(np.stack([session.read(int(t), "responses", 0, length) for t in g[:n]]))
    return cc_max(np.concatenate(arrays, axis=1))


def simulator_tuning_curves(
    simulator, stimulus: str, repeats: int = 0, n_frames: int = 60, seed: int = 0
) -> np.ndarray:
    """The in-silico tuning set shown to the simulator (eye centred, mouse at rest): curves
    ``[neurons, 16]`` of its noise-free rates (``repeats=0``, the ground truth for that
    stimulus) or of noisy responses averaged over ``repeats`` trials ("in vivo")."""
    rng = np.random.default_rng(seed)
    videos = tuning_stimuli(stimulus, simulator.monitor, n_frames)
    frames = videos.reshape(-1, *videos.shape[2:])
    behavior = np.tile(RESTING_BEHAVIOR, (len(frames), 1))
    gaze = np.zeros((len(frames), 2))
    if repeats == 0:
        traces = simulator.rates(frames, behavior, gaze)
    else:
        trials = [simulator.responses(frames, behavior, gaze, rng)[0] for _ in range(repeats)]
        traces = np.mean(trials, axis=0)
    means = traces.reshape(len(videos), n_frames, -1)[:, BURN_IN:].mean(1)
    return tuning_curves(means, stimulus)[0]


def _direction_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a - b + 180) % 360 - 180)


def validate_against_truth(
    model: FoundationModel,
    session: Session,
    out_dir: str | Path,
    *,
    min_cc_max: float = 0.5,
    n_meis: int = 20,
    mei_steps: int = 150,
    mei_frames: int = 8,
    mei_present_frames: int = MEI_PRESENT_FRAMES,
    n_frames: int = 60,
) -> dict:
    """Run the in-silico experiments on ``session`` and compare them with the simulator's
    ground truth and with the same analysis of noisy simulated recordings ("in vivo").

    Most exciting inputs are ``mei_frames``-frame videos (1: static images) looped for
    ``mei_present_frames`` frames, both in the optimisation and when shown to the simulator:
    the simulator's temporal kernels integrate to zero, so a static image drives a neuron only
    for its first few hundred milliseconds.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth, _ = load_ground_truth(session.path)
    simulator = rebuild_simulator(session.path)
    sid = session.session_id
    ceiling = recorded_cc_max(session)
    responsive = ceiling >= min_cc_max

    true_direction = truth.true_preferred_direction.to_numpy()
    true_gratings = {"gOSI": truth.true_gOSI.to_numpy(), "gDSI": truth.true_gDSI.to_numpy()}
    ds = responsive & (true_gratings["gDSI"] >= 0.2)
    tuning = direction_tuning(model, sid, n_frames=n_frames)
    vivo_curves = simulator_tuning_curves(simulator, "grating", repeats=5, n_frames=n_frames)
    vivo, vivo_fit = selectivity(vivo_curves, DIRECTIONS), fit_von_mises(vivo_curves, DIRECTIONS)
    t = tuning.table
    # directional pink noise: the truth is the simulator's noise-free tuning to the same videos
    pink = direction_tuning(model, sid, stimulus="pink_noise", n_frames=n_frames)
    pink_true_curves = simulator_tuning_curves(simulator, "pink_noise", n_frames=n_frames)
    pink_true = selectivity(pink_true_curves, DIRECTIONS)
    pink_vivo_curves = simulator_tuning_curves(
        simulator, "pink_noise", repeats=5, n_frames=n_frames
    )
    pink_vivo = selectivity(pink_vivo_curves, DIRECTIONS)
    comparisons = {
        "": (t, vivo, vivo_fit, true_gratings, true_direction),
        "pink_noise_": (
            pink.table,
            pink_vivo,
            fit_von_mises(pink_vivo_curves, DIRECTIONS),
            pink_true,
            pink_true["preferred_direction"],
        ),
    }
    r = lambda a, b, m: float(np.corrcoef(a[m], b[m])[0, 1])  # noqa: E731
    rf = receptive_fields(model, sid)
    rf_error = np.hypot(rf.table.rf_x - truth.rf_x, rf.table.rf_y - truth.rf_y).to_numpy()

    # closing the loop: the simulator's response to each neuron's MEI vs to every natural test clip
    order = np.argsort(-np.where(responsive, ceiling, -np.inf))[:n_meis]
    meis = most_exciting_inputs(
        model,
        sid,
        order,
        steps=mei_steps,
        frames=mei_frames,
        present_frames=mei_present_frames,
    )
    present = mei_present_frames
    rest, centred = np.tile([50.0, 0.0], (present, 1)), np.zeros((present, 2))
    mei_rates = []
    for i, neuron in enumerate(order):
        frames = np.tile(meis[i], (-(-present // len(meis[i])), 1, 1))[:present]
        rates = simulator.rates(frames, rest, centred)
        mei_rates.append(rates[BURN_IN:, neuron].mean())
    clip_rates = []
    for ids in repeat_groups(session, "oracle").values():
        frames = session.read(int(ids[0]), "video")
        rates = simulator.rates(
            frames, np.tile([50.0, 0.0], (len(frames), 1)), np.zeros((len(frames), 2))
        )
        clip_rates.append(rates[BURN_IN:, order].mean(0))
    beats_all = np.array(mei_rates) > np.max(clip_rates, axis=0)

    summary = {
        "session_id": sid,
        "neurons": int(session.n_neurons),
        "responsive": int(responsive.sum()),
        "direction_selective_neurons": int(ds.sum()),
        "median_rf_centre_error_deg": float(np.nanmedian(rf_error[responsive])),
        "mei_neurons": len(order),
        "mei_beats_every_natural_clip_fraction": float(beats_all.mean()),
    }
    for prefix, (silico, vivo_s, vivo_direction, true_s, true_dir) in comparisons.items():
        for key in ("gOSI", "gDSI"):
            summary[f"{prefix}{key}_r_in_silico_vs_true"] = r(
                silico[key].to_numpy(), true_s[key], responsive
            )
            summary[f"{prefix}{key}_r_in_vivo_vs_true"] = r(vivo_s[key], true_s[key], responsive)
        for source, found in (
            ("in_silico", silico.preferred_direction_fit.to_numpy()),
            ("in_vivo", vivo_direction),
        ):
            summary[f"{prefix}median_direction_error_{source}_deg"] = float(
                np.median(_direction_error(found, true_dir)[ds])
            )
    table = t.rename(columns=lambda c: c if c == "unit_id" else f"in_silico_{c}")
    table["in_vivo_gOSI"], table["in_vivo_gDSI"], table["in_vivo_preferred_direction"] = (
        vivo["gOSI"],
        vivo["gDSI"],
        vivo_fit,
    )
    for key in ("gOSI", "gDSI"):
        table[f"in_silico_pink_noise_{key}"] = pink.table[key].to_numpy()
        table[f"in_vivo_pink_noise_{key}"] = pink_vivo[key]
        table[f"true_pink_noise_{key}"] = pink_true[key]
    table = table.join(rf.table.drop(columns="unit_id").add_prefix("in_silico_"))
    table["recorded_cc_max"] = ceiling
    table = table.merge(
        truth[
            [
                "unit_id",
                "true_gOSI",
                "true_gDSI",
                "true_preferred_direction",
                "rf_x",
                "rf_y",
                "rf_size",
            ]
        ],
        on="unit_id",
    )
    table.to_csv(out / "insilico_vs_truth.csv", index=False)
    examples = order[:5]
    plot_tuning_curves(
        tuning.curves[examples],
        DIRECTIONS,
        t.unit_id.to_numpy()[examples],
        out / FIGURES["tuning_curves"],
        reference=vivo_curves[examples],
    )
    plot_receptive_fields(
        rf.maps[examples],
        rf.azimuth,
        rf.elevation,
        t.unit_id.to_numpy()[examples],
        out / FIGURES["receptive_fields"],
        truth=truth[["rf_x", "rf_y"]].to_numpy()[examples],
    )
    plot_meis(meis[:5], t.unit_id.to_numpy()[order[:5]], out / FIGURES["most_exciting_inputs"])
    m = responsive
    plot_scatter(
        {
            "gOSI": (truth.true_gOSI.to_numpy()[m], t.gOSI.to_numpy()[m]),
            "gDSI": (truth.true_gDSI.to_numpy()[m], t.gDSI.to_numpy()[m]),
            "gOSI, pink noise": (pink_true["gOSI"][m], pink.table.gOSI.to_numpy()[m]),
            "gDSI, pink noise": (pink_true["gDSI"][m], pink.table.gDSI.to_numpy()[m]),
            "RF azimuth (deg)": (truth.rf_x.to_numpy()[m], rf.table.rf_x.to_numpy()[m]),
            "RF elevation (deg)": (truth.rf_y.to_numpy()[m], rf.table.rf_y.to_numpy()[m]),
        },
        out / FIGURES["insilico_vs_true"],
    )
    plot_scatter(
        {
            "gOSI": (truth.true_gOSI.to_numpy()[m], vivo["gOSI"][m]),
            "gDSI": (truth.true_gDSI.to_numpy()[m], vivo["gDSI"][m]),
            "gOSI, pink noise": (pink_true["gOSI"][m], pink_vivo["gOSI"][m]),
            "gDSI, pink noise": (pink_true["gDSI"][m], pink_vivo["gDSI"][m]),
        },
        out / FIGURES["invivo_vs_true"],
        ylabel="in vivo (simulated recording)",
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
