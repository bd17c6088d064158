"""How fast can the core + readout learn the simulator's visual drive? (no noise, no behaviour)

Simulates one mouse's noise-free, stimulus-only rates (centred gaze, resting behaviour) to
natural movies, trains only the core and a readout on them (Poisson loss on the rates) for
``--minutes`` of wall-clock time, and prints the median correlation with the true rate on
held-out clips every ``--every`` steps. It separates "can this architecture and optimiser learn
the visual pathway quickly?" from the noise and behaviour of the full benchmark.

    python benchmarks/core_probe.py --minutes 4 core.channels=[32,32] --lr 3e-3

``--gratings`` then compares the probe's orientation and direction tuning (16 directions x 3
spatial frequencies, best frequency per neuron) with the simulator's noise-free tuning.
Measured (2026-11-28, 1 thread each, ``--true-positions --gratings``):
- ``--minutes 8``: r = 0.746 with the true rate on held-out movies after
  502 steps, gOSI r = 0.08 with the truth (median 0.037 vs 0.241); ``core.channels=[32,64]
  core.hidden=64``, 161 steps: r = 0.703, gOSI r = -0.02.
- ``--minutes 6``: 373 steps, r = 0.725, gOSI r = 0.01, gDSI r = 0.08; with every neuron's
  untuned drive at 0: r = 0.645, gOSI r = 0.32, gDSI r = 0.46. A trial simulator (reverted,
  see CHANGELOG) with the unoriented drive at each neuron's spatial frequency: r = 0.629,
  gOSI r = 0.38, gDSI r = 0.33; with ``core.strides=[2,1]`` (18 x 32 feature map, 111 steps)
  r = 0.563, gOSI r = 0.09.
- ``--minutes 6``, two probes at a time (2026-11-28, this simulator): default core 398 steps,
  r = 0.730, gOSI r = 0.04, gDSI r = 0.17; the first layer initialised as a Gabor bank (4
  orientations x even/odd x 0.1 and 0.2 cycles/pixel; tried, not kept) 426 steps, r = 0.735,
  gOSI r = 0.04; Gabor bank + ``core.skip=true`` r = 0.706, gOSI r = 0.09; feed-forward only
  (``core.recurrent=none``) r = 0.495, gOSI r = 0.24, gDSI r = 0.30, and the same with the
  Gabor bank r = 0.485, gOSI r = 0.23. In the 42.9-minute foundation the first layer's spatial
  filters still correlate 0.93 with their initialisation.
- ``--minutes 20`` (default core, alone on 1 thread): 1,364 steps, r = 0.799, gOSI r = 0.27,
  gDSI r = 0.38 (probe median gOSI 0.073 vs true 0.241): orientation is learned, slowly, and
  keeps improving with training time.
- The subunit generator (2026-11-30, ``--generator subunit --images sensorium2022_images
  --minutes 8 --gratings``, two probes at a time, ~500 steps): true positions, noise-free
  r = 0.702 (centre-surround 0.83, simple 0.66, complex 0.63), gOSI r = 0.72, gDSI r = 0.32;
  with ``core.skip=true`` r = 0.725, gOSI r = 0.68, gDSI r = 0.44; positions found by the
  search instead of true (``--search-at 0 100 300``) r = 0.680, gOSI r = 0.67; true positions
  with Poisson noise (``--noise``) r = 0.466 (simple 0.46, complex 0.28), gOSI r = 0.45,
  gDSI r = 0.29. The same core trained by ``cortexfm train`` on the full simulated recordings
  (noise, behaviour and latent gain, eye movements, 4 mice) reaches gOSI r = -0.02
  (``benchmarks/ood_generalisation.py``): what loses orientation lies between the two.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from scipy.signal import lfilter

from cortexfm.model.config import apply_overrides, preset
from cortexfm.model.core import Core
from cortexfm.model.loss import output_nonlinearity
from cortexfm.model.readout import PositionMap, Readout
from cortexfm.sim.population import sample_population
from cortexfm.sim.response import KERNEL_FRAMES
from cortexfm.sim.subunit import make_response_model, subunit_parameters
from cortexfm.stimuli import Monitor, drifting_grating, load_images, natural_movie
from cortexfm.stimuli.tuning import selectivity
from cortexfm.train.positions import best_positions, pool_over_cortex, position_scores


def simulate(
    n_neurons: int,
    train_clips: int,
    test_clips: int,
    seed: int,
    generator: str = "gabor",
    images: str | None = None,
):
    monitor = Monitor()
    rng = np.random.default_rng(seed)
    population = sample_population(n_neurons, rng, monitor)
    if generator == "subunit":
        population = subunit_parameters(population, np.random.default_rng(seed + 1))
    model = make_response_model(generator, population, monitor)
    pictures = load_images(images) if images else None
    clips = [
        natural_movie(monitor, 300, rng, pictures).frames for _ in range(train_clips + test_clips)
    ]
    rest = np.tile([50.0, 0.0], (300, 1))
    rates = [model.rates(c, rest, np.zeros((300, 2))) for c in clips]
    video = np.stack(clips).astype(np.float32)
    mean, sd = float(video.mean()), float(video.std())
    video = (video - mean) / sd
    rates = np.stack(rates).astype(np.float32)
    coords = population.table[["x", "y"]].to_numpy()
    true_xy = np.stack(
        [
            population["rf_x"] / (monitor.width_deg / 2),
            -population["rf_y"] / (monitor.height_deg / 2),
        ],
        axis=1,
    )
    return video, rates, coords, train_clips, true_xy, (model, mean, sd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--neurons", type=int, default=500)
    ap.add_argument("--clips", type=int, default=48, help="10-s training clips")
    ap.add_argument("--minutes", type=float, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--readout-lr", type=float, default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", action="store_true", help="train on noisy responses, not rates")
    ap.add_argument("--true-positions", action="store_true", help="start readouts at true RFs")
    ap.add_argument(
        "--search-at", type=int, nargs="*", default=[], help="steps to search positions"
    )
    ap.add_argument(
        "--gratings",
        action="store_true",
        help="at the end, compare the probe's orientation tuning with the true (noise-free)",
    )
    ap.add_argument("--generator", default="gabor", help="gabor or subunit")
    ap.add_argument("--images", default=None, help="photographs for the natural movies")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    video, rates, coords, n_train, true_xy, truth = simulate(
        args.neurons, args.clips, 4, args.seed, args.generator, args.images
    )
    observed = rates
    if args.noise:  # Poisson spikes, calcium-like smoothing (as the simulator's recordings)
        spikes = np.random.default_rng(args.seed + 1).poisson(rates).astype(np.float32)
        observed = lfilter([1 - np.exp(-0.5)], [1, -np.exp(-0.5)], spikes, axis=1)
        observed = observed.astype(np.float32)
    scale = observed[:n_train].std(axis=(0, 1)) + 1e-6
    targets = torch.from_numpy(observed / scale)
    video_t = torch.from_numpy(video)
    print(f"simulated in {time.perf_counter() - t0:.0f} s")

    config = apply_overrides(preset("cpu"), args.overrides)
    core = Core(config.core, config.modulation.features)
    position_map = PositionMap()
    readout = Readout(config.readout, core.out_channels, coords)
    with torch.no_grad():
        mean = targets[:n_train].mean((0, 1))
        readout.bias.copy_(torch.log(torch.expm1(mean.clamp(min=1e-3))))
        if args.true_positions:
            target = torch.from_numpy(np.clip(true_xy, -0.99, 0.99)).float()
            readout.delta.copy_(torch.atanh(target) - position_map(readout.coords))
    readout_lr = args.readout_lr or args.lr
    optimizer = torch.optim.AdamW(
        [
            {"params": [*core.parameters(), *position_map.parameters()], "lr": args.lr},
            {"params": readout.parameters(), "lr": readout_lr},
        ],
        weight_decay=0.0,
    )
    print(
        f"core {sum(p.numel() for p in core.parameters()):,} params, "
        f"{core.out_channels} channels at {core.output_size(video.shape[-2:])}"
    )
    rng = np.random.default_rng(args.seed)
    modulation = torch.zeros(args.batch, args.window, config.modulation.features)
    test_mod = torch.zeros(1, 300, config.modulation.features)
    step, burn_in, start = 0, 10, time.perf_counter()

    def evaluate(per_class: bool = False) -> float:
        with torch.no_grad():
            scores = []
            for clip in range(n_train, len(video)):
                features, _ = core(video_t[clip : clip + 1], test_mod)
                pred = output_nonlinearity(
                    readout(features, position_map, False), config.readout.output
                )[0, KERNEL_FRAMES:].numpy()
                scores.append(pred)
            pred = np.concatenate(scores)
            true = rates[n_train:, KERNEL_FRAMES:].reshape(-1, rates.shape[-1])
            pz = (pred - pred.mean(0)) / (pred.std(0) + 1e-9)
            tz = (true - true.mean(0)) / (true.std(0) + 1e-9)
            r = (pz * tz).mean(0)
            table = truth[0].population.table
            if per_class and "cell_class" in table:
                for name, group in pd.Series(r).groupby(table["cell_class"].to_numpy()):
                    print(f"  {name}: median r {group.median():.3f}")
            return float(np.median(r))

    def search() -> None:
        """The trainer's position search (ridge evidence pooled over cortex), first 12 clips."""
        with torch.no_grad():
            clips = range(min(n_train, 40))
            feats = torch.cat([core(video_t[c : c + 1], test_mod)[0][0, burn_in:] for c in clips])
            ys = torch.cat([targets[c, burn_in:] for c in clips])
            scores = pool_over_cortex(position_scores(feats, ys), coords, 50.0)
            pos = best_positions(scores)
            err = (pos - torch.from_numpy(true_xy).float()).abs()
            print(f"search: median |error| x {err[:, 0].median():.3f} y {err[:, 1].median():.3f}")
            readout.move_to(pos, position_map)

    while time.perf_counter() - start < args.minutes * 60:
        if step in args.search_at:
            search()
        clip = rng.integers(n_train, size=args.batch)
        offset = rng.integers(300 - args.window, size=args.batch)
        x = torch.stack(
            [video_t[c, o : o + args.window] for c, o in zip(clip, offset, strict=True)]
        )
        y = torch.stack(
            [targets[c, o : o + args.window] for c, o in zip(clip, offset, strict=True)]
        )
        features, _ = core(x, modulation)
        pred = output_nonlinearity(readout(features, position_map, False), config.readout.output)
        p, t = pred[:, burn_in:], y[:, burn_in:]
        loss = (p - t * torch.log(p + 1e-8)).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*core.parameters(), *readout.parameters()], 5.0)
        optimizer.step()
        step += 1
        if step % args.every == 0:
            elapsed = time.perf_counter() - start
            print(f"step {step:5d}  {elapsed:6.0f} s  loss {loss.item():.4f}  r {evaluate():.3f}")
    print(
        f"final: step {step}, median r with the true rate on held-out clips "
        f"{evaluate(per_class=True):.3f}"
    )
    if args.gratings:
        orientation_check(truth, core, readout, position_map, config)


def orientation_check(truth, core, readout, position_map, config) -> None:
    """gOSI / gDSI of the trained probe vs the simulator's, on the same drifting gratings."""
    response_model, mean, sd = truth
    monitor = Monitor()
    directions = np.arange(16) * 22.5
    videos = [
        drifting_grating(monitor, 60, d, sf, 2.0).frames
        for sf in (0.03, 0.06, 0.12)
        for d in directions
    ]
    rest, gaze = np.tile([50.0, 0.0], (60, 1)), np.zeros((60, 2))
    true = np.stack([response_model.rates(v, rest, gaze)[KERNEL_FRAMES:].mean(0) for v in videos])
    with torch.no_grad():
        x = torch.from_numpy((np.stack(videos).astype(np.float32) - mean) / sd)
        features, _ = core(x, torch.zeros(len(videos), 60, config.modulation.features))
        pred = output_nonlinearity(readout(features, position_map, False), config.readout.output)
        probe = pred[:, KERNEL_FRAMES:].mean(1).numpy()

    def tuning(responses: np.ndarray) -> dict[str, np.ndarray]:
        """Selectivity at each neuron's best spatial frequency (as cortexfm.insilico does)."""
        r = responses.reshape(3, 16, -1)
        best = r.max(1).argmax(0)
        return selectivity(r[best, :, np.arange(r.shape[2])], directions)

    reference, found = tuning(true), tuning(probe)
    for key in ("gOSI", "gDSI"):
        rr = np.corrcoef(found[key], reference[key])[0, 1]
        print(
            f"{key}: probe median {np.median(found[key]):.3f} vs true "
            f"{np.median(reference[key]):.3f}; r = {rr:.2f}"
        )


if __name__ == "__main__":
    main()
