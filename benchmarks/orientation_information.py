"""How much orientation information the simulator's natural movies carry.

For each neuron, noise-free rates to natural movies (centred gaze, resting behaviour) with its
true parameters are correlated with the rates it would have with one parameter shuffled across
neurons. A median r near 1 means the movies barely constrain that parameter: a model can fit
them well without learning it.

    python benchmarks/orientation_information.py [--neurons 300] [--clips 3] [--images DIR]

Measured (2026-11-28), median r when orientation is shuffled (quartile):
    dead-leaves movies (default)        0.858 (0.680)
    real images (--images sensorium2022_images)  0.898 (0.756)
    dead leaves, --no-untuned           0.511 (0.170)
    a trial simulator (reverted, see CHANGELOG) with the unoriented drive at each neuron's
    spatial frequency and RMS-matched to the oriented drive: 0.864 (0.663), 2 clips
(direction index and sign: >= 0.97 in every case). About a quarter of a neuron's
natural-movie rate variance depends on its orientation; a model has to fit the movies closely
to learn it (see ``core_probe.py --gratings``).
"""

from __future__ import annotations

import argparse

import numpy as np

from cortexfm.sim.population import Population, sample_population
from cortexfm.sim.response import KERNEL_FRAMES, ResponseModel
from cortexfm.stimuli import Monitor, natural_movie
from cortexfm.stimuli.natural import load_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--neurons", type=int, default=300)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", default=None, help="folder of real images (else dead leaves)")
    ap.add_argument(
        "--no-untuned", action="store_true", help="set every untuned_fraction to 0 (diagnostic)"
    )
    args = ap.parse_args()
    monitor = Monitor()
    rng = np.random.default_rng(args.seed)
    population = sample_population(args.neurons, rng, monitor)
    if args.no_untuned:
        population.table["untuned_fraction"] = 0.0
    images = load_images(args.images) if args.images else None
    clips = [natural_movie(monitor, 300, rng, images).frames for _ in range(args.clips)]
    rest = np.tile([50.0, 0.0], (300, 1))
    gaze = np.zeros((300, 2))

    def rates(p: Population) -> np.ndarray:
        model = ResponseModel(p, monitor)
        return np.concatenate([model.rates(c, rest, gaze)[KERNEL_FRAMES:] for c in clips])

    true = rates(population)
    for column in ("orientation", "direction_index", "direction_sign"):
        table = population.table.copy()
        table[column] = rng.permutation(table[column].to_numpy())
        shuffled = rates(Population(table, population.mouse_id))
        r = np.array([np.corrcoef(true[:, i], shuffled[:, i])[0, 1] for i in range(args.neurons)])
        print(
            f"{column:>16} shuffled: median r {np.nanmedian(r):.3f} "
            f"(quartile {np.nanpercentile(r, 25):.3f})"
        )


if __name__ == "__main__":
    main()
