"""Issue 4's speed figures on this machine.

- training throughput of the ``cpu`` preset (36x64 input, 64-frame windows, batch 8, 1,000
  neurons), through the real trainer step (loader, loss, backward, AdamW);
- batched streaming prediction for 1,000 neurons (8 videos of 300 frames, 60-frame chunks).

    python benchmarks/model_speed.py
    python benchmarks/model_speed.py --threads 1 --override model.core.recurrent=none
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from cortexfm.data import open_cohort
from cortexfm.data.synthetic import write_synthetic_session
from cortexfm.train import load_run_config
from cortexfm.train.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--neurons", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument(
        "--override", action="append", default=[], help="a config override, e.g. core.hidden=48"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cohort"
        for m in range(2):
            write_synthetic_session(
                root / f"m{m}",
                n_neurons=args.neurons,
                tiers=("train",) * 20 + ("validation",) * 2,
                trial_lengths=300,
                session_id=f"m{m}",
                seed=m,
            )
        cohort = open_cohort(root)
        config = load_run_config(None, ["train.max_steps=1000", *args.override], preset_name="cpu")
        trainer = Trainer(cohort, config, Path(tmp) / "run", progress=False)
        trainer._prepare(None)
        for i in range(2):  # warm-up
            trainer._step(0, i, i)
        t0 = time.perf_counter()
        for i in range(args.steps):
            trainer._step(0, i + 2, i + 2)
        seconds = time.perf_counter() - t0
        t = config.train
        train_fps = args.steps * t.window * t.batch_size / seconds

        model = trainer.model
        assert model is not None
        session = cohort[0]
        trials = [session.trial(i) for i in range(8)]
        video = torch.stack([torch.from_numpy(x.video) for x in trials])
        behavior = torch.stack([torch.from_numpy(x.behavior) for x in trials])
        pupil = torch.stack([torch.from_numpy(x.pupil_center) for x in trials])
        model.predict(session.session_id, video[:, :60], behavior[:, :60], pupil[:, :60])
        t0 = time.perf_counter()
        out, _ = model.predict(session.session_id, video, behavior, pupil, chunk=60)
        seconds = time.perf_counter() - t0
        predict_fps = out.shape[0] * out.shape[1] / seconds
    result = {
        "torch_threads": torch.get_num_threads(),
        "train_frames_per_s_cpu_preset": round(train_fps, 1),
        "predict_frames_per_s_1000_neurons_batched": round(predict_fps, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
