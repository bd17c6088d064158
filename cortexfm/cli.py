"""The ``cortexfm`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXAMPLES = {
    "validate": "examples:\n  cortexfm validate ~/data/sensorium2023/dynamic29156-11-10-Video-...\n  cortexfm validate ~/data/sensorium2023   # every session inside",
    "simulate": "examples:\n  cortexfm simulate --mice 4 --neurons 1000 --minutes 20 --out data/sim\n  cortexfm simulate --mice 2 --first-mouse 4 --neurons 1000 --minutes 20 --out data/held_out   # new animals\n  cortexfm simulate --mice 4 --neurons 500 --generator subunit --out data/sim_subunit   # the second generator\n  cortexfm simulate --mice 1 --neurons 200 --minutes 2 --images ../shared/data/stimuli/sensorium2022_images --out /tmp/sim",
    "train": "examples:\n  cortexfm train --data data/sim --out runs/foundation\n  cortexfm train --data data/sim --out runs/foundation --preset tiny train.max_steps=200\n  cortexfm train --data data/sim --out runs/foundation --resume\n  cortexfm train --data ~/dff_cohort --out runs/dff --loss gaussian\n  torchrun --nproc_per_node=4 -m cortexfm train --data data/sim --out runs/ddp train.batches_per_step=4",
    "evaluate": "examples:\n  cortexfm evaluate runs/new4/best.safetensors runs/new4_individual/best.safetensors --labels foundation,individual --data data/new_mouse --out runs/compare   # per stimulus family, side by side\n  cortexfm evaluate runs/foundation/best.safetensors --data data/sim --out runs/foundation/eval\n  cortexfm evaluate runs/transfer/best.safetensors --data data/new_mouse --tiers oracle",
    "transfer": "examples:\n  cortexfm transfer runs/foundation/best.safetensors --data data/new_mouse --minutes 4 --out runs/new4\n  cortexfm transfer runs/foundation/best.safetensors --data data/new_mouse --minutes 4 --from-scratch --out runs/new4_individual\n  cortexfm transfer runs/foundation/best.safetensors --data data/new_mouse --out runs/new_all train.max_steps=1000",
    "data-efficiency": "examples:\n  cortexfm data-efficiency runs/foundation/best.safetensors --data data/held_out --out runs/efficiency\n  cortexfm data-efficiency runs/foundation/best.safetensors --data data/held_out --minutes 2,4,all --seeds 0,1 train.max_steps=300",
    "anatomy": "examples:\n  cortexfm anatomy runs/foundation/best.safetensors --data data/sim --out runs/anatomy   # simulated ground truth\n  cortexfm anatomy runs/twin/best.safetensors --data data/my_mouse --cell-types types.csv --id-column unit_id \\\n      --morphology morph.parquet --connections synapses.feather --out runs/anatomy",
    "insilico": "examples:\n  cortexfm insilico runs/foundation/best.safetensors --data data/sim/mouse0 --out runs/insilico\n  cortexfm insilico runs/foundation/best.safetensors --data data/sim/mouse0 --out runs/insilico --validate   # vs the simulator's ground truth",
    "predict": "examples:\n  cortexfm predict runs/foundation/best.safetensors movie.mp4 --session mouse0 --out mouse0_movie.npy\n  cortexfm predict runs/foundation/best.safetensors frames.npy --fps 60 --session mouse0 --neurons 12,57,301 --out subset.parquet\n  cortexfm predict runs/foundation/best.safetensors images/ --fps 2 --data data/sim/mouse0 --behavior running.npy --out images.npy\n  cortexfm predict runs/twin/best.safetensors --data ~/sensorium2023 --tiers live_test_main,final_test_main --format sensorium2023 --out submission/",
    "demo": "examples:\n  cortexfm demo\n  cortexfm demo --out runs/demo --quick",
}


def _cmd_validate(args: argparse.Namespace) -> int:
    from cortexfm.data.validate import format_reports, validate_tree

    reports = validate_tree(args.path)
    print(format_reports(reports))
    return 1 if any(r.problems for r in reports) else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """The paper's pipeline on the built-in simulated cohort (see cortexfm.demo)."""
    from cortexfm.demo import DemoConfig, quick_config, run_demo

    started = time.perf_counter()
    config = quick_config() if args.quick else DemoConfig()
    report = run_demo(args.out, config, seed=args.seed)
    minutes = (time.perf_counter() - started) / 60
    print(f"demo finished in {minutes:.1f} min; report: {report} (every output under {args.out})")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from cortexfm.data import open_cohort
    from cortexfm.train import load_run_config, train

    overrides = list(args.overrides)
    if args.loss:
        overrides.append(f"train.loss={args.loss}")
    if args.response_transform:
        overrides.append(f"train.response_transform={args.response_transform}")
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.max_minutes is not None:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    config = load_run_config(args.config, overrides, preset_name=args.preset)
    cohort = open_cohort(args.data)
    if args.sessions:
        cohort = cohort.subset(args.sessions.split(","))
    result = train(cohort, config, args.out, resume=args.resume)
    print(f"trained {result.describe()}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from cortexfm.data import open_cohort
    from cortexfm.evaluate.run import compare_models, evaluate_cohort, format_summary
    from cortexfm.train import load_checkpoint

    cohort = open_cohort(args.data)
    labels = (
        args.labels.split(",") if args.labels else [Path(c).parent.name for c in args.checkpoint]
    )
    if len(labels) != len(args.checkpoint):
        raise ValueError(f"{len(labels)} labels for {len(args.checkpoint)} checkpoints")
    first = Path(args.checkpoint[0]).parent / "evaluation"
    out = Path(args.out) if args.out else first
    tiers = tuple(args.tiers.split(",")) if args.tiers else None
    summaries = {}
    for label, checkpoint in zip(labels, args.checkpoint, strict=True):
        folder = out if len(labels) == 1 else out / label
        model = load_checkpoint(checkpoint).model
        _, summary = evaluate_cohort(model, cohort, folder, **({"tiers": tiers} if tiers else {}))
        print(f"== {label}")
        print(format_summary(summary))
        summaries[label] = summary
    if len(summaries) > 1:
        table = compare_models(summaries, out)
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"per-neuron scores, summaries and plots in {out}")
    return 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    from cortexfm.data import open_cohort
    from cortexfm.train.transfer import transfer

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    result = transfer(
        args.checkpoint,
        open_cohort(args.data),
        args.out,
        minutes=args.minutes,
        from_scratch=args.from_scratch,
        overrides=overrides,
        resume=args.resume,
    )
    kind = "individual model (from scratch)" if args.from_scratch else "foundation transfer"
    print(f"{kind}: {result.describe()}")
    return 0


def _cmd_data_efficiency(args: argparse.Namespace) -> int:
    from cortexfm.data import open_cohort
    from cortexfm.evaluate.efficiency import data_efficiency, summarize_efficiency

    minutes = [None if m.strip() == "all" else float(m) for m in args.minutes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    table = data_efficiency(
        args.checkpoint,
        open_cohort(args.data),
        args.out,
        minutes=minutes,
        seeds=seeds,
        overrides=list(args.overrides),
        workers=args.workers,
    )
    print(summarize_efficiency(table).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"results, summary and plot in {args.out}")
    return 0


def _cmd_anatomy(args: argparse.Namespace) -> int:
    from cortexfm.anatomy.run import describe_anatomy, run_anatomy
    from cortexfm.data import open_cohort
    from cortexfm.train import load_checkpoint

    summary = run_anatomy(
        load_checkpoint(args.checkpoint).model,
        open_cohort(args.data),
        args.out,
        cell_types=args.cell_types,
        morphology=args.morphology,
        connections=args.connections,
        id_column=args.id_column,
        type_column=args.type_column,
        permutations=args.permutations,
    )
    for line in describe_anatomy(summary):
        print(line)
    print(f"tables, plots and anatomy.json in {args.out}")
    return 0


def _cmd_insilico(args: argparse.Namespace) -> int:
    from cortexfm.data import open_cohort
    from cortexfm.insilico.run import run_insilico
    from cortexfm.insilico.validation import validate_against_truth
    from cortexfm.train import load_checkpoint

    model = load_checkpoint(args.checkpoint).model
    for session in open_cohort(args.data):
        folder = Path(args.out) / session.session_id
        options = {"n_meis": args.meis, "mei_steps": args.mei_steps, "mei_frames": args.mei_frames}
        if args.validate:
            summary = validate_against_truth(
                model, session, folder, **options, n_frames=args.frames
            )
            for key, value in summary.items():
                print(f"{session.session_id} {key}: {value}")
            continue
        table = run_insilico(model, session.session_id, folder, **options, n_frames=args.frames)
        print(
            f"{session.session_id}: median gOSI {table.gOSI.median():.3f}, "
            f"gDSI {table.gDSI.median():.3f}; results in {folder}"
        )
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from cortexfm.predict.run import predict_file, predict_submission
    from cortexfm.train import load_checkpoint

    model = load_checkpoint(args.checkpoint).model
    if args.format == "sensorium2023":
        if not (args.data and args.tiers) or args.movie:
            raise ValueError("--format sensorium2023 takes --data TREE and --tiers, no movie")
        for path in predict_submission(model, args.data, args.tiers.split(","), args.out):
            print(f"wrote {path}")
        return 0
    if not args.movie:
        raise ValueError(
            "give a movie (video file, .npy or image folder) or --format sensorium2023"
        )
    height, width = (int(v) for v in args.frame_size.lower().split("x"))
    result = predict_file(
        model,
        args.movie,
        args.out,
        data=args.data,
        session_id=args.session,
        frame_size=(height, width),
        frame_rate=args.frame_rate,
        source_rate=args.fps,
        layout=args.layout,
        fit=args.fit,
        behavior=args.behavior,
        pupil_center=args.pupil_center,
        neurons=args.neurons,
        chunk=args.chunk,
        segments=args.segments,
        precision=args.precision,
    )
    print(
        f"predicted {result.neurons} neurons x {result.frames} frames "
        f"({result.frames / result.frame_rate:.1f} s at {result.frame_rate:g} Hz, "
        f"{result.frames_per_s:.0f} frames/s) into {result.path}"
    )
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
        eye_movements=not args.no_eye_movements,
        behavioral_gain=not args.no_behavioral_gain,
    )
    paths = simulate_cohort(
        args.out,
        args.mice,
        config,
        seed=args.seed,
        first_mouse=args.first_mouse,
        generators=args.generator.split(","),
    )
    print(f"wrote {len(paths)} simulated mice under {args.out}")
    return 0


# -- arguments of each command ------------------------------------------------------------


def _args_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a session folder, or a folder of session folders")


def _args_simulate(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--generator",
        default="gabor",
        help="response generator: gabor (Gabor energy model) or subunit (LGN subunit cascade "
        "with contrast gain control); a comma-separated list is cycled over the mice",
    )
    p.add_argument("--no-eye-movements", action="store_true", help="ablation: the eye holds still")
    p.add_argument(
        "--no-behavioral-gain",
        action="store_true",
        help="ablation: running and pupil do not change the responses",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--first-mouse",
        type=int,
        default=0,
        help="index of the first mouse (held-out mice: the foundation cohort's count)",
    )
    p.add_argument("--out", required=True, help="output folder (one sub-folder per mouse)")


def _args_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="cohort folder (or one session folder)")
    p.add_argument("--out", required=True, help="output folder for checkpoints and logs")
    p.add_argument("--config", default=None, help="JSON or TOML run config")
    p.add_argument("--preset", default=None, choices=["tiny", "cpu", "paper"])
    p.add_argument("--sessions", default=None, help="comma-separated session ids to use")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    p.add_argument(
        "--loss",
        choices=["poisson", "gaussian"],
        default=None,
        help="gaussian: for real-valued responses (ΔF/F, z-scores)",
    )
    p.add_argument(
        "--response-transform",
        choices=["scale", "shift"],
        default=None,
        help="shift: subtract each neuron's training minimum (ΔF/F with poisson)",
    )
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "overrides", nargs="*", help="config overrides, e.g. train.lr=1e-3 model.core.hidden=48"
    )


def _args_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="+", help="one or more .safetensors checkpoints")
    p.add_argument("--labels", default=None, help="comma-separated names of the checkpoints")
    p.add_argument("--data", required=True, help="cohort or session folder")
    p.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    p.add_argument("--tiers", default=None, help="comma-separated tiers (default: all test tiers)")


def _args_transfer(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="the foundation model's checkpoint")
    p.add_argument("--data", required=True, help="the new mouse's session folder (or a cohort)")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="use only the first M minutes of training trials",
    )
    p.add_argument(
        "--from-scratch", action="store_true", help="train every parameter (the individual model)"
    )
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("overrides", nargs="*", help="train.* overrides, e.g. train.max_steps=300")


def _args_data_efficiency(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="the foundation model's checkpoint")
    p.add_argument("--data", required=True, help="held-out mice (never seen by the foundation)")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--minutes", default="2,4,8,16,all", help="comma-separated amounts (default: 2,4,8,16,all)"
    )
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="fits run at once, each in its own process sharing the CPU cores (default 1)",
    )
    p.add_argument("overrides", nargs="*", help="train.* overrides for every fit")


def _args_anatomy(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="the cohort (simulated: ground truth is used)")
    p.add_argument("--out", required=True)
    p.add_argument("--cell-types", default=None, help="table: unit id -> cell type")
    p.add_argument("--morphology", default=None, help="table: unit id -> numeric features")
    p.add_argument("--connections", default=None, help="table: pre, post, synapse_count (unit ids)")
    p.add_argument("--id-column", default="unit_id")
    p.add_argument("--type-column", default="cell_type")
    p.add_argument("--permutations", type=int, default=5, help="label permutations for chance")


def _args_insilico(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="session(s) the model knows")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--meis", type=int, default=10, help="neurons to compute most exciting inputs for"
    )
    p.add_argument("--mei-steps", type=int, default=150, help="gradient-ascent steps")
    p.add_argument(
        "--mei-frames",
        type=int,
        default=8,
        help="frames per most exciting input, looped for 48 frames (1: a static image)",
    )
    p.add_argument("--frames", type=int, default=60, help="frames per grating / noise stimulus")
    p.add_argument(
        "--validate", action="store_true", help="compare with the simulator's ground truth"
    )


def _args_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    p.add_argument("movie", nargs="?", help="video file (mp4, avi, gif, ...), .npy or image folder")
    p.add_argument("--out", required=True, help=".npy or .parquet (a folder for sensorium2023)")
    p.add_argument("--session", default=None, help="whose neurons (default: --data's session)")
    p.add_argument(
        "--data", default=None, help="the session's folder: its frame size and rate (or a tree)"
    )
    p.add_argument("--neurons", default=None, help="unit ids: comma-separated, or a .npy/.txt file")
    p.add_argument("--behavior", default=None, help=".npy [time, 2] pupil dilation, running speed")
    p.add_argument("--pupil-center", default=None, help=".npy [time, 2] eye position")
    p.add_argument(
        "--fps", type=float, default=None, help="source rate of a .npy or image folder (Hz)"
    )
    p.add_argument("--fit", choices=["crop", "stretch"], default="crop")
    p.add_argument(
        "--layout", choices=["thw", "hwt"], default="thw", help=".npy axes (hwt: Sensorium files)"
    )
    p.add_argument("--frame-size", default="36x64", help="HxW without --data (default 36x64)")
    p.add_argument("--frame-rate", type=float, default=30.0, help="Hz without --data")
    p.add_argument("--chunk", type=int, default=600, help="frames per streamed chunk")
    p.add_argument(
        "--segments",
        type=int,
        default=1,
        help="chunks predicted side by side as one batch, each after 5 s of warm-up (equal to "
        "float precision for a trained twin; faster on a GPU); 1: one exact pass, the faster "
        "on CPU",
    )
    p.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        default="float32",
        help="bfloat16: about twice the core's speed on CPUs with native bfloat16 (AVX512-BF16, "
        "AMX) and on GPUs, to about three significant digits; elsewhere (AVX2-only CPUs) "
        "float32 runs instead, with a message",
    )
    p.add_argument("--tiers", default=None, help="sensorium2023: comma-separated test tiers")
    p.add_argument("--format", choices=["auto", "sensorium2023"], default="auto")


def _args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run (used by CI)")
    p.add_argument("--seed", type=int, default=0)


#: Each command: its help line, its arguments, what runs it, and whether --help lists the
#: configuration keys.
COMMANDS = {
    "validate": (
        "check a data tree and summarise it",
        _args_validate,
        _cmd_validate,
        False,
    ),
    "simulate": (
        "simulate a cohort of mice (Sensorium 2023 trees with ground truth)",
        _args_simulate,
        _cmd_simulate,
        False,
    ),
    "train": (
        "train a foundation model on a cohort (one process, or many with torchrun)",
        _args_train,
        _cmd_train,
        True,
    ),
    "evaluate": (
        "score a checkpoint on a cohort's test trials (CC_norm, single-trial, Sensorium)",
        _args_evaluate,
        _cmd_evaluate,
        False,
    ),
    "transfer": (
        "adapt a foundation model to new mice (frozen core), or train them from scratch",
        _args_transfer,
        _cmd_transfer,
        True,
    ),
    "data-efficiency": (
        "foundation transfer vs individual models by minutes of new-mouse data",
        _args_data_efficiency,
        _cmd_data_efficiency,
        True,
    ),
    "anatomy": (
        "functional barcodes vs cell types, morphology and connectivity",
        _args_anatomy,
        _cmd_anatomy,
        False,
    ),
    "insilico": (
        "in-silico experiments: tuning, receptive fields, frequency tuning, most exciting inputs",
        _args_insilico,
        _cmd_insilico,
        False,
    ),
    "predict": (
        "predict responses to any movie (video file, .npy, image folder), or write the "
        "Sensorium 2023 submission file",
        _args_predict,
        _cmd_predict,
        False,
    ),
    "demo": (
        "run the end-to-end demo on the built-in simulated cohort",
        _args_demo,
        _cmd_demo,
        False,
    ),
}


class _CommandParser(argparse.ArgumentParser):
    """A command's parser; the training commands' ``--help`` ends with every configuration key
    (built only when help is shown: it imports the model, and with it torch)."""

    lists_config = False

    def format_help(self) -> str:
        text = super().format_help()
        if not self.lists_config:
            return text
        from cortexfm.train.config import config_reference

        return f"{text}\n{config_reference()}\n"


def build_parser() -> argparse.ArgumentParser:
    from cortexfm import __version__

    parser = argparse.ArgumentParser(
        prog="cortexfm", description="Foundation models of mouse visual cortex."
    )
    parser.add_argument("--version", action="version", version=f"cortexfm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser)
    for name, (help_text, add_arguments, command, lists_config) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.lists_config = lists_config
        add_arguments(p)
        p.set_defaults(func=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come anywhere after the command (argparse stops collecting
    # positionals once options start)
    stray = [x for x in extra if "=" not in x or x.startswith("-")]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    from cortexfm.data.errors import DataFormatError

    try:
        return int(args.func(args) or 0)
    except (DataFormatError, FileNotFoundError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cortexfm {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
