"""The `napari-vos` command: its parser, main(), and the small commands demo, info and weights.

The others are registered from their own modules: propagate (cli_propagate.py), overlay (cli_overlay.py),
train (cli_train.py), measure (cli_objects.py), divisions, ctc, and eval, score, bench, synth
(evaluation/cli_measure.py). Each subcommand imports what it needs when it runs, so `napari-vos --help`
stays fast.
"""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np

from napari_vos import __version__
from napari_vos.cli_inputs import check_writable, settle_made_folders
from napari_vos.cli_options import CHECKPOINT_HELP, DEVICE_HELP, ZERO_SHOT_HELP, method_help_text
from napari_vos.cli_terminal import progress_bar, stops_as_interrupt, warnings_as_lines


def cmd_demo(args: argparse.Namespace) -> int:
    """Run a method on a built-in sample and score it against the sample's known truth.

    A zero-shot method (COSNet) is given no annotation and its foreground is scored against the
    union of the sample's objects on every frame but the first and the last (DAVIS 2016 unsupervised
    convention).
    """
    from napari_vos.data import samples
    from napari_vos.evaluation.cli_measure import command_options
    from napari_vos.evaluation.metrics import score_stack
    from napari_vos.evaluation.runner import resolve_annotation
    from napari_vos.evaluation.unsupervised import score_foreground
    from napari_vos.session import annotated_session

    options = command_options(args)
    if args.json:  # before the run, not after it
        check_writable(Path(args.json), folder=False, what="the summary")
    mode = resolve_annotation(args.method, args.annotation, options)
    sample = samples.natural_sample() if args.sample == "natural" else samples.cell_sample()
    frames, truth = np.asarray(sample.frames), np.asarray(sample.labels)
    if args.frames is not None:
        if args.frames < 3:  # scoring leaves out the annotated frame and the last, as eval's does
            raise ValueError(f"--frames must be at least 3 (the annotated frame, one scored, the last), got {args.frames}")
        frames, truth = frames[:args.frames], truth[:args.frames]
    # the session first, so a missing checkpoint or a bad option is refused before a bar is drawn
    session, start = annotated_session(frames, truth[0] if mode == "first" else None, method=args.method, frame=0,
                                       device=args.device, checkpoint=args.checkpoint, **options)
    with progress_bar(f"{args.method} on the {args.sample} sample", len(frames)) as update:
        result = session.run("forward", update, start=start)
    scores = score_stack(result.labels, truth, annotated=0) if mode == "first" else \
        score_foreground(result.labels, truth)
    out = {"method": args.method, "checkpoint": result.checkpoint, "sample": args.sample, "annotation": mode,
           "options": options,
           "J_mean": float(scores["J_mean"]), "F_mean": float(scores["F_mean"]),
           "JF_mean": float(scores["JF_mean"]), "fps": float(result.fps),
           "start_seconds": round(float(result.start_seconds), 3), "device": result.device,
           "precision": result.options.get("precision"),
           "frames": int(len(frames)), "size": list(frames.shape[1:3])}
    objects = f"{len(result.object_ids)} objects" if mode == "first" else "no annotation, foreground vs all objects"
    print(f"{args.method} on the built-in {args.sample} sample ({len(frames)} frames, {frames.shape[2]}x{frames.shape[1]},"
          f" {objects}, {result.device}, {out['precision']}): J={out['J_mean']:.3f} F={out['F_mean']:.3f} "
          f"J&F={out['JF_mean']:.3f}  {out['fps']:.2f} frames/s (after a {out['start_seconds']:.1f} s start: the "
          f"method's build, first fit or fine-tuning)  checkpoint={result.checkpoint}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """`napari-vos info`: versions, devices, optional parts, checkpoints and scratch room, for a bug report."""
    from napari_vos.diagnostics import environment_report, format_report

    report = environment_report(verify_checkpoints=not args.no_verify)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    """`napari-vos weights`: list the registered checkpoints and verify each file's hash (exit 1 for a missing or
    corrupt one); -v also shows each one's training, scores and preprocessing."""
    from napari_vos import weights

    if args.method is not None:
        from napari_vos.methods import registry

        if not registry.traits(args.method).uses_checkpoint:  # an unknown name: a ValueError listing the methods
            print(f"{args.method} uses no weights")
            return 0
    entries = weights.list_checkpoints(args.method)
    if not entries:
        print("no checkpoints registered" + (f" for {args.method}" if args.method else ""))
        return 0
    status = 0
    for e in entries:
        try:
            path, _ = weights.resolve(e.name, download=False)  # listing downloads nothing
            state = f"ok ({path})"
        except weights.NotDownloaded as err:
            state = str(err)
        except weights.CheckpointError as err:
            state, status = f"PROBLEM: {err}", 1
        default = " [default]" if e.default else ""
        print(f"{e.name}{default}: method={e.method} backbone={e.backbone} sha256={e.sha256[:12]}… {state}")
        if args.verbose:
            print(f"    trained on: {e.training}\n    scores: {json.dumps(e.scores)}\n"
                  f"    preprocessing: {json.dumps(e.preprocessing)}")
    return status


def build_parser() -> argparse.ArgumentParser:
    """The `napari-vos` argument parser with all its subcommands."""
    from napari_vos import cli_ctc, cli_divisions, cli_objects, cli_overlay, cli_propagate, cli_train
    from napari_vos.evaluation.cli_measure import add_precision_argument

    method_help = method_help_text()
    parser = argparse.ArgumentParser(prog="napari-vos", description="Video object segmentation for time-lapses.")
    parser.add_argument("--version", action="version", version=f"napari-vos {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_propagate.register(sub)  # first: the order of the help's list

    p = sub.add_parser("demo", help="run a method on a built-in sample and print J&F and speed")
    p.add_argument("--method", default="frtm", help=method_help)
    p.add_argument("--sample", default="natural", choices=["natural", "cells"],
                   help="natural (default): a synthetic natural-looking video; cells: a synthetic microscopy time-lapse")
    p.add_argument("--frames", type=int, default=None, help="only the sample's first N frames (a quicker check)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_precision_argument(p)
    p.add_argument("--checkpoint", default=None, help=CHECKPOINT_HELP)
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write the scores as JSON (method, checkpoint, J_mean, F_mean, JF_mean, fps, ...)")
    p.add_argument("--annotation", default="auto", choices=["auto", "first", "none"],
                   help="first: give frame 0's true labels; none: give nothing, score the foreground against all "
                        "objects; auto (default): none for zero-shot methods (cosnet)")
    p.add_argument("--zero-shot", action="store_true",
                   help=ZERO_SHOT_HELP)
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="method option (repeatable)")
    p.set_defaults(func=cmd_demo)

    cli_overlay.register(sub)
    cli_train.register(sub)
    cli_objects.register(sub)
    cli_divisions.register(sub)
    cli_ctc.register(sub)

    p = sub.add_parser("info", help="what this installation is: versions, devices, movie support, checkpoints "
                                    "(paste it into a bug report)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--no-verify", action="store_true", help="do not hash the shipped checkpoints (about a second)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("weights", help="list and verify the registered checkpoints")
    p.add_argument("--method", default=None, help="only this method's checkpoints")
    p.add_argument("-v", "--verbose", action="store_true", help="also show what each was trained on and its measured scores")
    p.set_defaults(func=cmd_weights)

    try:
        from napari_vos.evaluation import cli_measure
    except ImportError:  # pragma: no cover - the measurement commands are optional at import time
        cli_measure = None
    if cli_measure is not None:
        cli_measure.register(sub)
    parser.subcommands = sub.choices  # type: ignore[attr-defined]  # for _parse's second reading
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line, letting a positional follow an option (``propagate v.tif --z 3 l.tif``).

    argparse gives every positional its value from the first run of them, so an optional one that
    comes after an option is left over; a subcommand whose positionals were not all given in one run
    is read again with its parser's ``parse_intermixed_args``, which takes them wherever they stand.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args, left_over = parser.parse_known_args(argv)
    if not left_over:
        return args
    sub_parser = parser.subcommands[args.command]  # type: ignore[attr-defined]
    rest = argv[argv.index(args.command) + 1:]
    return sub_parser.parse_intermixed_args(rest, namespace=argparse.Namespace(command=args.command))


def _escape_what_the_console_cannot_show() -> None:
    """Print a character stdout's encoding lacks (a µ on a Japanese Windows console, a file name
    that is not valid UTF-8) as an escape such as ``\\xb5``: Python's stdout raises on it, which
    turned a finished run into an error exit (stderr already escapes). Only a strict stream: one that
    already writes such a file name back as its own bytes (surrogateescape: the C and UTF-8 modes
    of Linux containers) keeps doing so, so the printed path still names the file."""
    for stream in (sys.stdout, sys.stderr):
        # a TextIOWrapper; a stream replaced by other code is left as it is
        if hasattr(stream, "reconfigure") and getattr(stream, "errors", None) == "strict":
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: parse, run the subcommand, turn expected errors into one line and an exit code."""
    _escape_what_the_console_cannot_show()
    args = _parse(build_parser(), argv)
    code = 1  # where the command raises out (a bug: its traceback)
    try:
        code = _exit_code(args)
        return code
    finally:  # a failed command's output folder, made by its checks and still empty, is taken away again
        settle_made_folders(failed=code != 0)


def _exit_code(args: argparse.Namespace) -> int:
    """Run the subcommand of ``args``: its exit code, expected errors said in one line (2), Ctrl+C or a kill 130."""
    # `kill` (a cluster's time limit) stops every command as Ctrl+C does, from the first second: what
    # it finished is written, nothing half-made is left, and it exits 130 (train handles its own signals)
    stops = nullcontext() if args.command == "train" else stops_as_interrupt()
    try:
        with stops, warnings_as_lines(args.command):
            return int(args.func(args) or 0)
    except KeyboardInterrupt:  # before anything was finished (after it, the command returns 130 itself)
        print(f"napari-vos {args.command}: interrupted" + (" before the first frame was segmented; nothing was "
              "written" if args.command == "propagate" else ""), file=sys.stderr)
        return 130
    except (ValueError, OSError) as err:  # OSError: a file not found, a full disk, a folder not writable
        print(f"napari-vos {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # CheckpointError and friends: say what, not a traceback
        from napari_vos.weights import CheckpointError

        from napari_vos.memory_errors import out_of_memory_advice

        if isinstance(err, CheckpointError):
            print(f"napari-vos {args.command}: error: {err}", file=sys.stderr)
            return 2
        tip = out_of_memory_advice(err)
        if tip:  # a setting to change, not a bug: no traceback
            print(f"napari-vos {args.command}: error: {tip}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
