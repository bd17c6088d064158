"""Issue 17: what a linear-nonlinear (LN) model identifies from natural movies alone, and how it
extrapolates to full-field drifting gratings, beside a trained twin.

For one simulated mouse, the generator's own noise-free rates (behaviour and gaze held at the
means of the recording's first trial) to natural clips drawn as the cohort's are (dead leaves,
or photographs with ``--images``) are fitted neuron by neuron with ridge regression on every
retina pixel (``--pool``-ed) x ``--bases`` raised-cosine temporal bases spanning ``--lags``
frames (a linear spatiotemporal filter; with an exponential output, the same filter is the log-rate's linear
term). The ridge penalty is chosen per neuron on held-out natural clips, then the filter is
scored (Pearson r with the true rates) on other held-out natural clips and on full-field
drifting gratings (8 directions x 2 s, at each spatial frequency and contrast). With ``--run``
the twin's predictions of the same stimuli are scored against the same truth.

    python benchmarks/ln_ceiling.py bench_data/gabor4x500 --run bench_runs/noisefree

The question it answers: is a filter identified from natural movies one that extrapolates?
If the LN model keeps on gratings the accuracy it has on natural clips while the twin loses
most of its own, the twin's natural-movie accuracy comes from features that are not the
neuron's linear filter, and gratings need that filter. Only for measurement: noise-free rates
do not exist for real recordings. Medians are per cell class of the ground truth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cortexfm.data import open_cohort
from cortexfm.sim.behavior import gaze_from_pupil_center
from cortexfm.sim.cohort import load_ground_truth, rebuild_simulator
from cortexfm.stimuli import Monitor, natural_movie
from cortexfm.stimuli.natural import load_images
from cortexfm.stimuli.parametric import drifting_grating


def raised_cosine_bases(n_bases: int, lags: int) -> np.ndarray:
    """``[n_bases, lags]`` raised cosines on a log-stretched time axis (Pillow et al. 2008):
    narrow near lag 0, wider at long lags; together they tile ``0 .. lags - 1``."""
    t = np.log1p(np.arange(lags, dtype=np.float64))
    centres = np.linspace(0, t[-1], n_bases)
    width = centres[1] - centres[0] if n_bases > 1 else t[-1] + 1
    d = np.clip((t[None] - centres[:, None]) * np.pi / (2 * width), -np.pi, np.pi)
    return (np.cos(d) + 1) / 2


def design(frames: np.ndarray, bases: np.ndarray, pool: int) -> np.ndarray:
    """``frames [time, H, W]`` (grey levels) -> ``[time, bases * (H / pool) * (W / pool)]``:
    each pooled pixel's contrast (grey 128 = 0) filtered causally by each temporal basis."""
    t, h, w = frames.shape
    x = frames[:, : h - h % pool, : w - w % pool].astype(np.float32)
    x = x.reshape(t, h // pool, pool, w // pool, pool).mean((2, 4))
    x = (x.reshape(t, -1) - 128.0) / 128.0
    out = np.zeros((len(frames), bases.shape[0], x.shape[1]), np.float32)
    for lag in range(bases.shape[1]):
        shifted = x[: len(x) - lag]
        out[lag:] += bases[:, lag][None, :, None].astype(np.float32) * shifted[:, None]
    return out.reshape(len(frames), -1)


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column ``[time, n]`` x ``[time, n]`` -> ``[n]`` (0 where either is constant)."""
    a, b = a - a.mean(0), b - b.mean(0)
    den = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    return np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cohort", help="a simulated cohort (cortexfm simulate)")
    parser.add_argument("--session", type=int, default=0, help="which mouse of the cohort")
    parser.add_argument("--run", default=None, help="a trained twin's run folder (or checkpoint)")
    parser.add_argument("--train-clips", type=int, default=40)
    parser.add_argument("--frames", type=int, default=300, help="per natural clip")
    parser.add_argument("--images", default=None, help="photographs (else dead leaves)")
    parser.add_argument("--bases", type=int, default=5)
    parser.add_argument("--lags", type=int, default=16)
    parser.add_argument(
        "--pool",
        type=int,
        default=2,
        help="average pixels in pool x pool blocks first (2: 18 x 32 on a 36 x 64 retina, "
        "3.75 deg per pixel, finer than the gratings' 12.5-deg period)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the per-neuron table (.csv)")
    args = parser.parse_args()

    session = open_cohort(args.cohort)[args.session]
    simulator = rebuild_simulator(session.path)
    truth_table, _ = load_ground_truth(session.path)
    if "cell_class" in truth_table:  # the subunit generator's classes
        classes = truth_table["cell_class"].to_numpy()
    else:  # the gabor generator: every neuron oriented, simple or complex
        classes = np.where(truth_table["complex"], "complex", "simple")
    monitor = Monitor(height=session.frame_size[0], width=session.frame_size[1])
    first = session.trial(0)  # behaviour and gaze held at this recorded trial's means
    mean_pupil = np.nanmean(np.asarray(first.pupil_center), axis=0)
    mean_behavior = np.nanmean(np.asarray(first.behavior), axis=0)

    def held(value: np.ndarray, n: int) -> np.ndarray:
        return np.repeat(value[None], n, 0).astype(np.float32)

    def truth(frames: np.ndarray) -> np.ndarray:
        n = len(frames)
        return simulator.rates(
            frames, held(mean_behavior, n), gaze_from_pupil_center(held(mean_pupil, n))
        )

    rng = np.random.default_rng(args.seed)
    images = load_images(args.images) if args.images else None
    n_val, n_test = 5, 10
    clips = [
        natural_movie(monitor, args.frames, rng, images).frames
        for _ in tqdm(range(args.train_clips + n_val + n_test), desc="natural clips")
    ]
    bases = raised_cosine_bases(args.bases, args.lags)
    burn = args.lags  # frames whose filter reaches before the clip: left out everywhere

    def stack(frames_list: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for frames in frames_list:
            xs.append(design(frames, bases, args.pool)[burn:])
            ys.append(truth(frames)[burn:])
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = stack(clips[: args.train_clips])
    x_val, y_val = stack(clips[args.train_clips : args.train_clips + n_val])
    mean_x, mean_y = x_train.mean(0), y_train.mean(0)
    x_train -= mean_x
    print(f"ridge on {x_train.shape[1]} features x {x_train.shape[0]} frames")
    xt = torch.from_numpy(x_train).double()  # [frames, features]
    gram = xt.T @ xt
    evals, evecs = torch.linalg.eigh(gram)
    xty = xt.T @ torch.from_numpy(y_train - mean_y).double()
    projected = evecs.T @ xty
    scale = float(evals.mean())
    lambdas = scale * np.logspace(-3, 2, 11)
    best_r = np.full(y_train.shape[1], -np.inf)
    weights = np.zeros((x_train.shape[1], y_train.shape[1]))
    for lam in lambdas:
        w = (evecs @ (projected / (evals + lam)[:, None])).numpy()
        r = pearson((x_val - mean_x) @ w, y_val)
        better = r > best_r
        best_r[better], weights[:, better] = r[better], w[:, better]

    def ln_predict(frames: np.ndarray) -> np.ndarray:
        return (design(frames, bases, args.pool) - mean_x) @ weights

    twin = None
    if args.run:
        from cortexfm.train import load_checkpoint

        ckpt = Path(args.run)
        twin = load_checkpoint(ckpt / "best.safetensors" if ckpt.is_dir() else ckpt).model

    def twin_predict(frames: np.ndarray) -> np.ndarray:
        n = len(frames)
        with torch.no_grad():
            pred, _ = twin.predict(
                session.session_id, frames, held(mean_behavior, n), held(mean_pupil, n)
            )
        return pred.numpy()

    tests = {"natural": clips[args.train_clips + n_val :]}
    for sf in (0.04, 0.08):
        for contrast in (1.0, 0.3):
            tests[f"grating sf{sf} c{contrast}"] = [
                np.concatenate(
                    [
                        drifting_grating(monitor, 60, d, sf, 2.0, contrast).frames
                        for d in np.arange(0, 360, 45)
                    ]
                )
            ]
    rows = []
    for family, frames_list in tests.items():
        r = {"LN": [], "twin": []}
        for frames in frames_list:
            y = truth(frames)[burn:]
            r["LN"].append(pearson(ln_predict(frames)[burn:], y))
            if twin is not None:
                r["twin"].append(pearson(twin_predict(frames)[burn:], y))
        for model, values in r.items():
            if values:
                rows.append(
                    pd.DataFrame(
                        {
                            "family": family,
                            "model": model,
                            "neuron": np.arange(y_train.shape[1]),
                            "cell_class": classes,
                            "r": np.mean(values, axis=0),
                        }
                    )
                )
    table = pd.concat(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    summary = table.pivot_table(
        index="family", columns=["cell_class", "model"], values="r", aggfunc="median"
    )
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(summary.round(3).to_string())
    print(json.dumps({"median validation r of the chosen ridge": float(np.median(best_r))}))


if __name__ == "__main__":
    main()
