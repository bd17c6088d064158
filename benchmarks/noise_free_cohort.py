"""Issue 17: a copy of a simulated cohort whose training responses are the generator's own
noise-free rates, to tell what response noise costs a twin from what its design costs.

Every file is hard-linked from ``SOURCE`` except the response files of the chosen tiers
(``train`` and ``validation`` by default), which are rewritten (never in place: the link is
replaced) with the generator's expected spikes per frame for the same clip, behaviour and
gaze, without shared latent fluctuations, Poisson noise or calcium smoothing. The test tiers
keep their noisy repeats, so CC_norm and CC_max are scored as on the source cohort.

    python benchmarks/noise_free_cohort.py bench_data/gabor4x500 bench_data/gabor4x500_noisefree
    cortexfm train --data bench_data/gabor4x500_noisefree --out bench_runs/noisefree \\
        --preset cpu --max-steps 800 --max-minutes 11

Only for measurement: such targets do not exist for real recordings.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cortexfm.atomic import save_npy_atomic
from cortexfm.data import open_cohort
from cortexfm.sim.behavior import gaze_from_pupil_center
from cortexfm.sim.cohort import rebuild_simulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="a simulated cohort (cortexfm simulate)")
    parser.add_argument("out", help="the new cohort folder (must not exist)")
    parser.add_argument("--tiers", default="train,validation", help="comma-separated")
    args = parser.parse_args()
    out, tiers = Path(args.out), set(args.tiers.split(","))
    if out.exists():
        raise SystemExit(f"{out}: already exists; choose a new folder")
    shutil.copytree(args.source, out, copy_function=lambda src, dst: Path(dst).hardlink_to(src))
    for session in open_cohort(out):
        simulator = rebuild_simulator(session.path)
        ids = [t for t in range(len(session.tiers)) if session.tiers[t] in tiers]
        for t in tqdm(ids, desc=session.session_id):
            trial = session.trial(t)
            gaze = gaze_from_pupil_center(trial.pupil_center)
            rates = simulator.rates(trial.video, np.asarray(trial.behavior), gaze)
            path = Path(session._source(t, "responses"))  # the trial's own response file
            responses = np.load(path)  # [neurons, frames], padded beyond the valid length
            responses[:, : len(rates)] = rates.T
            path.unlink()  # the hard link, not the source's file
            save_npy_atomic(path, responses.astype(np.float32))


if __name__ == "__main__":
    main()
