"""Issue 17: can a trained core's features express its neurons' true grating tuning at all?

A diagnostic, never used for training or model selection. For the first session of a
simulated cohort and its trained twin, on the in-silico grating set (16 directions x the
tuning spatial frequencies, 2 s, mouse at rest, eye centred):

- ``learned``: the twin's own tuning (its readout, learned on natural movies);
- ``cv_fit``: the best the core's features allow, by cheating: each reliable neuron's log true
  mean rate fitted (ridge, cross-validated over 4 folds of held-out directions) from the
  time-averaged features at its readout position. If this is far below the truth, no readout
  learned from any data could make the neuron tuned: the features lack orientation;
- ``cv_fit_ff``: the same from the last feed-forward layer's features (what ``core.skip``
  would add to the readout);
- ``channels``: the orientation selectivity (gOSI of the rectified mean response) of each
  feature channel at the central positions, for the last feed-forward layer and the ConvLSTM.

Prints gOSI r with the truth, median gOSI and the median correlation of the 48-condition
tuning curves.

    python benchmarks/tuning_expressivity.py bench_runs/ood_b1/gabor-default \\
        --data bench_data/gabor4x500
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import RidgeCV
from torch import Tensor

from cortexfm.data import open_cohort
from cortexfm.insilico.experiments import BURN_IN, DIRECTIONS, tuning_curves, tuning_stimuli
from cortexfm.insilico.validation import recorded_cc_max
from cortexfm.sim.behavior import RESTING_BEHAVIOR
from cortexfm.sim.cohort import rebuild_simulator
from cortexfm.stimuli import Monitor
from cortexfm.stimuli.tuning import selectivity
from cortexfm.train import load_checkpoint

FRAMES = 60


def gosi(mean_responses: np.ndarray) -> np.ndarray:
    """``[conditions, neurons]`` of the grating set -> gOSI per neuron."""
    curves, _ = tuning_curves(mean_responses, "grating")
    return selectivity(curves, DIRECTIONS)["gOSI"]


def at_positions(features: Tensor, positions: Tensor) -> Tensor:
    """``features [b, t, C, h, w]`` at each neuron's readout position -> ``[b, t, C, N]``."""
    b, t, c, height, width = features.shape
    grid = positions.expand(b * t, 1, -1, -1)
    sampled = F.grid_sample(features.reshape(b * t, c, height, width), grid, align_corners=True)
    return sampled.reshape(b, t, c, -1)


@torch.no_grad()
def twin_features(model, session_id: str, videos: np.ndarray) -> dict[str, np.ndarray]:
    """Time-averaged features at each neuron's position ``[conditions, C, N]``, the twin's
    mean responses ``[conditions, N]`` and channel gOSI inputs (central feature maps)."""
    modules = model.session(session_id)
    sampled, responses, feedforward, recurrent, sampled_feedforward = [], [], [], [], []
    for start in range(0, len(videos), 8):
        chunk = videos[start : start + 8]
        behavior, pupil = (
            np.tile(x, (len(chunk), FRAMES, 1)) for x in model.resting_inputs(session_id)
        )
        inputs = [torch.as_tensor(a, dtype=torch.float32) for a in (chunk, behavior, pupil)]
        video, behavior_t, pupil_t = modules.normalization.inputs(*inputs)
        features, _ = model.features(session_id, video, behavior_t, pupil_t)
        retina = modules.perspective(video, pupil_t)
        h, _ = model.core.feedforward(retina)
        feedforward.append(h[:, BURN_IN:].mean(1))
        features = features[:, BURN_IN:]
        recurrent.append(features.mean(1))
        positions = modules.readout.positions(model.position_map)
        at = at_positions(features, positions)
        drive = (at * modules.readout.barcodes().t()).sum(2) + modules.readout.bias
        sampled.append(at.mean(1))
        sampled_feedforward.append(at_positions(h[:, BURN_IN:], positions).mean(1))
        responses.append(torch.exp(drive).mean(1))  # the exp output at rest, gain aside
    return {
        "sampled": torch.cat(sampled).numpy(),
        "sampled_feedforward": torch.cat(sampled_feedforward).numpy(),
        "learned": torch.cat(responses).numpy(),
        "feedforward": torch.cat(feedforward).numpy(),
        "recurrent": torch.cat(recurrent).numpy(),
    }


def channel_gosi(maps: np.ndarray) -> float:
    """``[conditions, C, h, w]`` -> median gOSI over channels x central positions."""
    central = maps[:, :, 2:-2, 3:-3]
    units = central.transpose(1, 2, 3, 0).reshape(-1, central.shape[0])  # [units, conditions]
    units = units - units.min(1, keepdims=True)
    return float(np.median(gosi(units.T)))


def cross_validated_fit(
    features: np.ndarray, true: np.ndarray, reliable: np.ndarray, direction: np.ndarray
) -> np.ndarray:
    """Each reliable neuron's log true mean rate from ``features [conditions, C, N]`` (ridge),
    predicted for 4 folds of held-out directions in turn -> ``[conditions, N]``."""
    fitted = np.zeros_like(true)
    for n in np.flatnonzero(reliable):
        x, y = features[:, :, n], np.log(true[:, n] + 1e-4)
        for fold in range(4):
            test = direction % 4 == fold
            ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x[~test], y[~test])
            fitted[test, n] = np.exp(ridge.predict(x[test]))
    return fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run")
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoint", default="best.safetensors")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_checkpoint(Path(args.run) / args.checkpoint, "cpu").model
    session = open_cohort(args.data)[0]
    simulator = rebuild_simulator(session.path)
    reliable = recorded_cc_max(session) >= 0.5
    videos = tuning_stimuli("grating", Monitor(), FRAMES).astype(np.float32)
    twin = twin_features(model, session.session_id, videos)
    frames = videos.reshape(-1, *videos.shape[2:])
    rest = np.tile(RESTING_BEHAVIOR, (len(frames), 1))
    rates = simulator.rates(frames, rest, np.zeros((len(frames), 2)))
    true = rates.reshape(len(videos), FRAMES, -1)[:, BURN_IN:].mean(1)  # [conditions, N]

    direction = np.tile(np.arange(len(DIRECTIONS)), len(videos) // len(DIRECTIONS))
    fits = {
        name: cross_validated_fit(twin[key], true, reliable, direction)
        for name, key in (("cv_fit", "sampled"), ("cv_fit_ff", "sampled_feedforward"))
    }

    true_gosi = gosi(true)[reliable]
    print(
        f"{args.run}: {int(reliable.sum())} reliable neurons, true median gOSI "
        f"{np.median(true_gosi):.3f}"
    )
    for name, responses in (("learned", twin["learned"]), *fits.items()):
        g = gosi(responses)[reliable]
        curve_r = [np.corrcoef(responses[:, n], true[:, n])[0, 1] for n in np.flatnonzero(reliable)]
        print(
            f"{name:8s} gOSI r {np.corrcoef(g, true_gosi)[0, 1]:.3f}, median gOSI "
            f"{np.median(g):.3f}, tuning-curve r {np.nanmedian(curve_r):.3f}"
        )
    print(
        f"channels: median gOSI feed-forward {channel_gosi(twin['feedforward']):.3f}, "
        f"ConvLSTM {channel_gosi(twin['recurrent']):.3f}"
    )


if __name__ == "__main__":
    main()
