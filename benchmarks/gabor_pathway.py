"""What each neuron's Gabor pathway (``model.readout.gabor``) learned, against the simulator's
ground truth: preferred orientation, spatial frequency and the weight on the energy term by
cell class (simple / complex), per session.

    python benchmarks/gabor_pathway.py RUN --data COHORT [--deg-per-pixel 1.875]

For ``readout.gabor=fitted`` the pathway's orientation is its wave vector's angle (the
direction a grating drifts at its preferred phase advance), compared with ``true_preferred_orientation`` modulo 180 degrees,
with the image's y axis taken both ways (rows grow downwards on the retina); chance is 45.
For ``bank`` it is the circular mean (doubled angles) of the neuron's weights on the
orientations' energy deviations.

``--drive`` instead measures which part of the drive moves each neuron on natural clips
(``oracle`` tier) and on full-field gratings (``final_test_bonus``), first session: the s.d.
over time of the readout's drive (the core's features) and of the pathway's, and the
correlation of each (through the model's exponential) and of their sum with the trial-averaged
recording, median over all neurons and over orientation-tuned ones (true gOSI >= 0.3).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from cortexfm.model.gabor import GaborBank


def orientation_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute difference of orientations in degrees, modulo 180 (0-90)."""
    d = np.abs((a - b) % 180.0)
    return np.minimum(d, 180.0 - d)


def bank_row(bank: GaborBank, session_id: str, truth, tuned: np.ndarray) -> dict:
    """A fixed bank's preferred orientation per neuron: the circular mean (on doubled angles)
    of its weights on the orientations' energy deviations (summed over the bank's
    frequencies), against the truth."""
    frequencies, orientations = bank.waves.shape[:2]
    with torch.no_grad():
        weights = bank.energy[:, : frequencies * orientations].numpy()
        weights = weights.reshape(-1, frequencies, orientations).sum(1)  # [n, orientations]
        waves = bank.waves[0].numpy()
        angles = np.degrees(np.arctan2(waves[:, 1], waves[:, 0]))
    doubled = np.radians(2 * angles)
    vector = weights @ np.stack([np.cos(doubled), np.sin(doubled)], 1)  # [n, 2]
    preferred = np.degrees(np.arctan2(vector[:, 1], vector[:, 0])) / 2 % 180
    selectivity = np.hypot(vector[:, 0], vector[:, 1]) / (np.abs(weights).sum(1) + 1e-12)
    true_orientation = truth.true_preferred_orientation.to_numpy()
    return {
        "session": session_id,
        "tuned_neurons": int(tuned.sum()),
        "orientation_error_deg_y_down": float(
            np.median(orientation_error(preferred, true_orientation)[tuned])
        ),
        "orientation_error_deg_y_up": float(
            np.median(orientation_error((-preferred) % 180, true_orientation)[tuned])
        ),
        "weight_selectivity_r_with_true_gOSI": float(
            np.corrcoef(selectivity, truth.true_gOSI.to_numpy())[0, 1]
        ),
    }


def median_r(prediction: np.ndarray, recorded: np.ndarray, where: np.ndarray) -> float:
    """Median over the neurons ``where`` of the correlation of ``[time, neurons]`` arrays."""
    r = [np.corrcoef(prediction[:, i], recorded[:, i])[0, 1] for i in np.where(where)[0]]
    return float(np.nanmedian(r))


def drive_rows(model, session, truth) -> list[dict]:
    """Per stimulus family: the readout's and the pathway's drive, their s.d. and their
    correlation with the trial-averaged recording (see ``--drive``)."""
    from cortexfm.data.loader import repeat_groups

    norm = model.session(session.session_id).normalization
    tuned = truth.true_gOSI.to_numpy() >= 0.3
    rows = []
    for family, tier in (("natural_movie", "oracle"), ("drifting_grating", "final_test_bonus")):
        parts: dict[str, list[np.ndarray]] = {"core": [], "pathway": [], "recorded": []}
        for trials in repeat_groups(session, tier).values():
            if session.stimulus_types[trials[0]] != family:
                continue
            drive = []
            for t in trials:
                trial = session.trial(int(t))
                inputs = [
                    torch.as_tensor(getattr(trial, m)[None], dtype=torch.float32)
                    for m in ("video", "behavior", "pupil_center")
                ]
                core, pathway = model.drives(session.session_id, *norm.inputs(*inputs))
                drive.append((core[0].numpy(), pathway[0].numpy(), trial.responses))
            for k, name in enumerate(parts):
                parts[name].append(np.mean([d[k] for d in drive], 0))
        core, pathway, recorded = (np.concatenate(parts[k]) for k in parts)

        everyone = np.ones(len(tuned), bool)
        rows.append(
            {
                "session": session.session_id,
                "family": family,
                "frames": len(recorded),
                "drive_sd_core_pathway": [
                    float(np.median(core.std(0))),
                    float(np.median(pathway.std(0))),
                ],
                **{
                    f"r_{name}_all_tuned": [
                        median_r(np.exp(x), recorded, everyone),
                        median_r(np.exp(x), recorded, tuned),
                    ]
                    for name, x in (("core", core), ("pathway", pathway), ("sum", core + pathway))
                },
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--data", required=True)
    parser.add_argument("--deg-per-pixel", type=float, default=1.875)
    parser.add_argument("--min-gosi", type=float, default=0.2)
    parser.add_argument(
        "--drive", action="store_true", help="which part of the drive moves neurons"
    )
    args = parser.parse_args()
    from cortexfm.data import open_cohort
    from cortexfm.sim.cohort import load_ground_truth
    from cortexfm.train import load_checkpoint

    model = load_checkpoint(Path(args.run) / "best.safetensors").model.eval()
    for session in open_cohort(args.data):
        readout = model.session(session.session_id).readout
        if readout.gabor is None:
            raise SystemExit(f"{args.run}: this model has no Gabor pathway (readout.gabor)")
        truth, _ = load_ground_truth(session.path)
        truth = truth.set_index("unit_id").loc[session.unit_ids]
        if args.drive:
            for row in drive_rows(model, session, truth):
                print(json.dumps(row), flush=True)
            return
        tuned = truth.true_gOSI.to_numpy() >= args.min_gosi
        true_orientation = truth.true_preferred_orientation.to_numpy()
        complex_cell = truth.complex.to_numpy().astype(bool)
        if isinstance(readout.gabor, GaborBank):
            print(json.dumps(bank_row(readout.gabor, session.session_id, truth, tuned)))
            continue
        with torch.no_grad():
            wave = readout.gabor.wave.numpy()
            energy = readout.gabor.energy.numpy()
            linear = readout.gabor.linear.abs().sum((1, 2)).numpy()
            sigma = readout.gabor.log_sigma.exp().numpy() * args.deg_per_pixel
        angle = np.degrees(np.arctan2(wave[:, 1], wave[:, 0])) % 180
        flipped = (-angle) % 180
        frequency = np.hypot(wave[:, 0], wave[:, 1]) / args.deg_per_pixel
        row = {
            "session": session.session_id,
            "tuned_neurons": int(tuned.sum()),
            "orientation_error_deg_y_down": float(
                np.median(orientation_error(angle, true_orientation)[tuned])
            ),
            "orientation_error_deg_y_up": float(
                np.median(orientation_error(flipped, true_orientation)[tuned])
            ),
            "spatial_frequency_cpd_median": float(np.median(frequency)),
            "spatial_frequency_r": float(
                np.corrcoef(frequency[tuned], truth.spatial_frequency.to_numpy()[tuned])[0, 1]
            ),
            "envelope_sd_deg_median": float(np.median(sigma)),
            "energy_weight_simple_complex": [
                float(np.median(energy[~complex_cell])),
                float(np.median(energy[complex_cell])),
            ],
            "linear_weight_simple_complex": [
                float(np.median(linear[~complex_cell])),
                float(np.median(linear[complex_cell])),
            ],
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
