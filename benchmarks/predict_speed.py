"""Issue 18's figure: ``cortexfm predict`` on a 10-minute 36x64 video for 8,000 neurons.

Target: >= 3,000 frames/s on the 2-core CPU machine, peak memory < 2 GB. The model is the
``cpu`` preset (untrained weights: speed does not depend on them), saved as a checkpoint; the
video is an H.264 mp4 written with PyAV; the command runs in a child process whose peak
resident memory is read from the OS.

    python benchmarks/predict_speed.py            # 10 minutes, 8,000 neurons
    python benchmarks/predict_speed.py --minutes 1 --format parquet --segments 8

``--breakdown`` also times each stage alone in this process: decoding the movie, the model
on the decoded frames, writing the output's bytes, and a fresh interpreter's imports (torch,
then ``cortexfm predict``'s modules): what the command's own figure is made of.

``--ceiling`` also reports what bounds the figure on this machine: the model's arithmetic per
frame (``torch.utils.flop_counter`` on a 300-frame prediction; the readout's sparse product,
which the counter takes for a dense one, counted by hand), the dense matrix-product rate this CPU sustains with
the same threads, and their ratio, the frames/s that a prediction running every operation at
that rate would reach (an upper bound: small convolutions and the ConvLSTM's per-frame
element-wise work run well below it).

``--check-warmup CKPT --data SESSION`` measures what parallel segments (``--segments N``) cost in
accuracy on a trained twin: the largest difference from one sequential pass over 8 training
trials in a row, per warm-up length, relative to the predictions' s.d.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from cortexfm.data import open_cohort
from cortexfm.data.synthetic import write_synthetic_session
from cortexfm.train import load_run_config
from cortexfm.train.checkpoint import save_checkpoint
from cortexfm.train.trainer import build_model


def write_movie(path: Path, frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.height, stream.width, stream.pix_fmt = 36, 64, "yuv420p"
        stream.time_base = Fraction(1, 30)
        base = rng.normal(size=(9, 16))
        for i in range(frames):
            base = 0.95 * base + 0.3 * rng.normal(size=base.shape)
            image = np.clip(128 + 40 * np.kron(base, np.ones((4, 4))), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="gray")
            frame.pts = i
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def check_warmup(checkpoint: str, data: str) -> None:
    from cortexfm.data import open_session
    from cortexfm.predict.stream import _predict_segments
    from cortexfm.train import load_checkpoint

    model = load_checkpoint(checkpoint).model
    session = open_session(data)
    trials = [session.trial(int(i)) for i in session.trials_in("train")[:8]]
    inputs = [
        np.concatenate([getattr(t, m) for t in trials])
        for m in ("video", "behavior", "pupil_center")
    ]
    whole = model.predict(session.session_id, *inputs)[0].numpy()
    scale = whole.std(0).mean()
    rows = {}
    for warmup in (30, 60, 90, 150, 300):
        parallel = _predict_segments(model, session.session_id, inputs, 0, 300, warmup)
        rows[warmup] = float(np.abs(parallel - whole).max() / scale)
    print(
        json.dumps({"frames": len(whole), "max_abs_difference_over_sd_by_warmup": rows}, indent=2)
    )


def matmul_gflops(size: int = 512, seconds: float = 2.0) -> float:
    """The dense float32 matrix-product rate (GFLOP/s) this CPU sustains with torch's threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        done += 1
    return 2 * size**3 * done / (time.perf_counter() - started) / 1e9


def compute_ceiling(model: torch.nn.Module, session_id: str, height: int, width: int) -> dict:
    """The model's GFLOP per predicted frame and the frames/s bound it sets on this CPU."""
    from torch.utils.flop_counter import FlopCounterMode

    frames = 300
    video = np.full((frames, height, width), 128.0, dtype=np.float32)
    behavior = np.zeros((frames, 2), dtype=np.float32)
    pupil_center = np.zeros((frames, 2), dtype=np.float32)
    with FlopCounterMode(display=False) as counter:
        model.predict(session_id, video, behavior, pupil_center)
    counts = counter.get_flop_counts()
    # the counter has no formula for the readout's embedding_bag: count it by hand (and drop
    # whatever it counted there), one multiply-add per map unit it reads (4 for the bilinear
    # point, 16 for a 3 x 3 mask), channel, neuron and frame
    sparse = sum(sum(ops.values()) for name, ops in counts.items() if name.endswith(".readout"))
    counted = (counter.get_total_flops() - sparse) / frames
    units = 4 if model.config.readout.spatial_kernel == 1 else 16
    readout_flops = 2 * units * model.core.out_channels * model.n_neurons(session_id)
    per_frame = counted + readout_flops
    rate = matmul_gflops()
    return {
        "gflop_per_frame": round(per_frame / 1e9, 4),
        "matmul_gflop_per_s": round(rate, 1),
        "frames_per_s_bound": round(rate * 1e9 / per_frame),
    }


def stage_times(
    model: torch.nn.Module, session_id: str, movie: Path, precision: str, chunk: int
) -> dict:
    """Where a prediction's time goes, each stage alone in this process (``--breakdown``):
    decoding the movie, the model on the decoded frames (state carried from chunk to chunk),
    writing a ``.npy`` of the output's size, and the start-up of a fresh interpreter that
    imports torch and ``cortexfm predict``'s modules."""
    from cortexfm.data.movies import FrameFormat, Movie
    from cortexfm.predict.stream import _NpyStream

    started = time.perf_counter()
    video = np.concatenate(list(Movie(movie).chunks(FrameFormat(36, 64, 30.0), chunk)))
    decode = time.perf_counter() - started
    rest_behavior, rest_pupil = model.resting_inputs(session_id)
    behavior = np.tile(rest_behavior, (chunk, 1))
    pupil = np.tile(rest_pupil, (chunk, 1))
    state, neurons = None, model.n_neurons(session_id)
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        for start in range(0, len(video), chunk):
            frames = video[start : start + chunk]
            n = len(frames)
            _, state = model.predict(session_id, frames, behavior[:n], pupil[:n], state, chunk)
    model_s = time.perf_counter() - started
    block = np.zeros((chunk, neurons), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        writer = _NpyStream(Path(tmp) / "out.npy", neurons)
        started = time.perf_counter()
        for start in range(0, len(video), chunk):
            writer.write(block[: min(chunk, len(video) - start)])
        writer.close()
        write = time.perf_counter() - started
    imports = {}
    for name, code in (
        ("import_torch_s", "import torch"),
        ("import_predict_s", "import cortexfm.cli, cortexfm.predict.run"),
    ):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        imports[name] = round(time.perf_counter() - started, 2)
    return {
        "decode_s": round(decode, 2),
        "model_s": round(model_s, 2),
        "model_frames_per_s": round(len(video) / model_s),
        "write_s": round(write, 2),
        **imports,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--neurons", type=int, default=8000)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--format", choices=["npy", "parquet"], default="npy")
    parser.add_argument("--chunk", type=int, default=600)
    parser.add_argument("--segments", type=int, default=1)
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--ceiling", action="store_true", help="also the compute bound")
    parser.add_argument(
        "--breakdown", action="store_true", help="also each stage's time, alone in-process"
    )
    parser.add_argument("--check-warmup", default=None, metavar="CKPT")
    parser.add_argument("--data", default=None, help="a session of the checkpoint")
    args = parser.parse_args()
    if args.check_warmup:
        check_warmup(args.check_warmup, args.data)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic_session(
            root / "mouse",
            n_neurons=args.neurons,
            tiers=("train",) * 2,
            trial_lengths=40,
            session_id="mouse",
            seed=0,
        )
        config = load_run_config(None, [], preset_name=args.preset)
        model = build_model(open_cohort(root / "mouse"), config)
        ceiling = compute_ceiling(model, "mouse", 36, 64) if args.ceiling else None
        save_checkpoint(root / "model.safetensors", model, config)
        frames = int(args.minutes * 60 * 30)
        write_movie(root / "movie.mp4", frames)
        out = root / f"predictions.{args.format}"
        command = [
            sys.executable,
            "-m",
            "cortexfm",
            "predict",
            str(root / "model.safetensors"),
            str(root / "movie.mp4"),
            "--session",
            "mouse",
            "--out",
            str(out),
            "--chunk",
            str(args.chunk),
            "--segments",
            str(args.segments),
            "--precision",
            args.precision,
        ]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode:
            sys.exit(done.stderr)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        result = {
            "frames": frames,
            "neurons": args.neurons,
            "preset": args.preset,
            "format": args.format,
            "precision": args.precision,
            "segments": args.segments,
            "wall_s_including_start_up": round(seconds, 1),
            "frames_per_s": round(frames / seconds, 1),
            "peak_memory_mb": round(peak_mb),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "output_mb": round(out.stat().st_size / 2**20),
            "reported": done.stdout.strip().splitlines()[-1],
        }
        if ceiling is not None:
            result["compute_bound"] = ceiling
        if args.breakdown:
            result["stages"] = stage_times(
                model, "mouse", root / "movie.mp4", args.precision, args.chunk
            )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
