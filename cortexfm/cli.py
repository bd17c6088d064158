"""The ``cortexfm`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXAMPLES = {
    "validate": "examples:\n  cortexfm validate ~/data/sensorium2023/dynamic29156-11-10-Video-...\n  cortexfm validate ~/data/sensorium2023   # every session inside",
    "demo": "examples:\n  cortexfm demo\n  cortexfm demo --out runs/demo --quick",
}


def _cmd_validate(args: argparse.Namespace) -> int:
    from cortexfm.data.validate import format_reports, validate_tree

    reports = validate_tree(args.path)
    print(format_reports(reports))
    return 1 if any(r.problems for r in reports) else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Until the simulator and model land: build a small cohort, validate it, stream batches."""
    from tqdm.auto import tqdm

    from cortexfm.data import TrainingWindows, WindowConfig, make_loader, open_cohort
    from cortexfm.data.synthetic import write_synthetic_session
    from cortexfm.data.validate import format_reports, validate_tree

    out = Path(args.out)
    cohort_dir = out / "cohort"
    n_mice = 2 if args.quick else 4
    for m in tqdm(range(n_mice), desc="writing cohort"):
        path = cohort_dir / f"mouse{m}"
        if not path.exists():  # resumable: finished sessions are kept
            write_synthetic_session(path, n_neurons=200, session_id=f"mouse{m}", seed=args.seed + m)
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
