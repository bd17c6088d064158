"""The ``cortexfm`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXAMPLES = {
    "validate": "examples:\n  cortexfm validate ~/data/sensorium2023/dynamic29156-11-10-Video-...\n  cortexfm validate ~/data/sensorium2023   # every session inside",
    "simulate": "examples:\n  cortexfm simulate --mice 4 --neurons 1000 --minutes 20 --out data/sim\n  cortexfm simulate --mice 1 --neurons 200 --minutes 2 --images ../shared/data/stimuli/sensorium2022_images --out /tmp/sim",
    "demo": "examples:\n  cortexfm demo\n  cortexfm demo --out runs/demo --quick",
}


def _cmd_validate(args: argparse.Namespace) -> int:
    from cortexfm.data.validate import format_reports, validate_tree

    reports = validate_tree(args.path)
    print(format_reports(reports))
    return 1 if any(r.problems for r in reports) else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Runs the stages that exist so far: simulate a cohort, validate it, stream training batches.

    Training, transfer, evaluation, in-silico experiments, anatomy and the report join as
    their issues land.
    """
    from tqdm.auto import tqdm

    from cortexfm.data import TrainingWindows, WindowConfig, make_loader, open_cohort
    from cortexfm.data.validate import format_reports, validate_tree
    from cortexfm.sim import SimulationConfig, simulate_cohort

    out = Path(args.out)
    cohort_dir = out / "cohort"
    if args.quick:
        config, n_mice = (
            SimulationConfig(n_neurons=100, train_minutes=1, oracle_clips=2, repeats=4),
            2,
        )
    else:
        config, n_mice = SimulationConfig(n_neurons=500, train_minutes=10), 5
    simulate_cohort(cohort_dir, n_mice, config, seed=args.seed)  # resumable: finished mice kept
    print(format_reports(validate_tree(cohort_dir)))
    cohort = open_cohort(cohort_dir)
    windows = TrainingWindows(
        cohort, WindowConfig(window=64, batch_size=8, batches_per_epoch=40, seed=args.seed)
    )
    t0, frames = time.perf_counter(), 0
    for batch in tqdm(make_loader(windows), total=len(windows), desc="streaming windows"):
        frames += batch["video"].shape[0] * batch["video"].shape[1]
    print(f"streamed {frames} frames in {time.perf_counter() - t0:.2f} s; outputs under {out}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from cortexfm.sim import SimulationConfig, simulate_cohort

    config = SimulationConfig(
        n_neurons=args.neurons,
        train_minutes=args.minutes,
        oracle_clips=args.oracle_clips,
        repeats=args.repeats,
        ood_clips=args.ood_clips,
        image_folder=args.images,
    )
    paths = simulate_cohort(args.out, args.mice, config, seed=args.seed)
    print(f"wrote {len(paths)} simulated mice under {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from cortexfm import __version__

    parser = argparse.ArgumentParser(
        prog="cortexfm", description="Foundation models of mouse visual cortex."
    )
    parser.add_argument("--version", action="version", version=f"cortexfm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "validate",
        help="check a data tree and summarise it",
        epilog=EXAMPLES["validate"],
        formatter_class=fmt,
    )
    p.add_argument("path", help="a session folder, or a folder of session folders")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "simulate",
        help="simulate a cohort of mice (Sensorium 2023 trees with ground truth)",
        epilog=EXAMPLES["simulate"],
        formatter_class=fmt,
    )
    p.add_argument("--mice", type=int, default=4)
    p.add_argument("--neurons", type=int, default=1000, help="neurons per mouse")
    p.add_argument(
        "--minutes",
        type=float,
        default=20.0,
        help="minutes of natural-movie training data per mouse",
    )
    p.add_argument("--oracle-clips", type=int, default=4, help="repeated natural test clips")
    p.add_argument("--repeats", type=int, default=10, help="repeats of each test clip")
    p.add_argument("--ood-clips", type=int, default=1, help="clips per out-of-distribution family")
    p.add_argument("--images", default=None, help="folder of real images for the natural movies")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (one sub-folder per mouse)")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo on the built-in simulated cohort",
        epilog=EXAMPLES["demo"],
        formatter_class=fmt,
    )
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run (used by CI)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
