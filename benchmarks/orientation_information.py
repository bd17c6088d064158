"""How much orientation information the simulator's natural movies carry.

For each neuron, noise-free rates to natural movies (centred gaze, resting behaviour) with its
true parameters are correlated with the rates it would have with one parameter shuffled across
neurons. A median r near 1 means the movies barely constrain that parameter: a model can fit
them well without learning it.

    python benchmarks/orientation_information.py [--neurons 300] [--clips 3] [--images DIR]
        [--generator gabor|subunit]

Measured (2026-11-28), median r when orientation is shuffled (quartile):
    dead-leaves movies (default)        0.858 (0.680)
    real images (--images sensorium2022_images)  0.898 (0.756)
    dead leaves, --no-untuned           0.511 (0.170)
    a trial simulator (reverted, see CHANGELOG) with the unoriented drive at each neuron's
    spatial frequency and RMS-matched to the oriented drive: 0.864 (0.663), 2 clips
(direction index and sign: >= 0.97 in every case).
The subunit generator (2026-11-30, ``--generator subunit --images sensorium2022_images``):
orientation shuffled 0.620 (quartile 0.155): simple cells 0.315, complex 0.388,
centre-surround 1.000; direction index 0.990. Its natural movies constrain an oriented
cell's orientation strongly, so a twin that fails to learn orientation there fails for
want of fitting, not for want of information. About a quarter of a neuron's
natural-movie rate variance depends on its orientation; a model has to fit the movies closely
to learn it (see ``core_probe.py --gratings``).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from cortexfm.sim.population import Population, sample_population
from cortexfm.sim.response import KERNEL_FRAMES
from cortexfm.sim.subunit import make_response_model, subunit_parameters
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
    ap.add_argument("--generator", default="gabor", help="gabor or subunit")
    args = ap.parse_args()
    monitor = Monitor()
    rng = np.random.default_rng(args.seed)
    population = sample_population(args.neurons, rng, monitor)
    if args.no_untuned:
        population.table["untuned_fraction"] = 0.0
    if args.generator == "subunit":
        population = subunit_parameters(population, np.random.default_rng(args.seed + 1))
    images = load_images(args.images) if args.images else None
    clips = [natural_movie(monitor, 300, rng, images).frames for _ in range(args.clips)]
    rest = np.tile([50.0, 0.0], (300, 1))
    gaze = np.zeros((300, 2))

    def rates(p: Population) -> np.ndarray:
        model = make_response_model(args.generator, p, monitor)
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
        if "cell_class" in population.table:
            for name, group in pd.Series(r).groupby(population["cell_class"]):
                print(f"{'':>16} {name}: median r {group.median():.3f}")


if __name__ == "__main__":
    main()
