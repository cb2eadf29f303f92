"""The measurement subcommands of `napari-vos`: eval, score, bench, synth.

`register(subparsers)` adds them to the main argparse CLI (cli.py); each sets `func=` and the
function returns the exit status. Heavy imports (torch, the engine, matplotlib) happen inside
the functions, so `napari-vos --help` stays fast.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any

from napari_vos.cli_inputs import check_writable
from napari_vos.cli_options import CHECKPOINT_HELP, DEVICE_HELP, ZERO_SHOT_HELP, method_help_text, zero_shot_flag, \
    zero_shot_option

__all__ = ["register", "add_bench_arguments", "add_precision_argument", "precision_option", "run_eval",
           "run_score", "run_bench"]


def _sequences(text: str | None, split: str | None = None, root: str | None = None) -> list[str] | None:
    """The sequences asked for: --sequences a,b,c, or --split NAME (a DAVIS ImageSets list), or all (None)."""
    if split:
        if text:
            raise ValueError("give --split or --sequences, not both")
        from napari_vos.data.readers import davis_split

        names, listed = davis_split(root or ".", split)
        print(f"split {split!r}: {len(names)} sequences listed in {listed}", file=sys.stderr)
        return names
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def parse_option_pairs(pairs: list[str] | None, flags: dict[str, str] | None = None) -> dict[str, Any]:
    """--option key=value (repeatable). A value is read as JSON (``true``, ``null``, ``[1.0]``) or as
    a Python literal (``True``, ``None``, ``"ilk"``, as the widget's options field takes them) when it
    is one, else kept as the string typed (``flow=ilk``): ``False`` must not reach a method as the
    string "False", which is true. ``flags``: the session keywords this command sets by a flag of its
    own (``{"max_side": "--max-side"}``), refused as --option like the commands' shared ones (the
    option silently won over the flag)."""
    refused = {**_NOT_OPTIONS, **(flags or {})}
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--option expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        if key in refused:
            flag = refused[key]
            raise ValueError(f"--option {key}=... is not a method option: " +
                             (f"use {flag}" if flag else "it cannot be set from the command line"))
        out[key] = _option_value(value.strip())
    return out


#: keywords of the session or the command itself, which --option must not pass: the flag that sets
#: each (None: none does)
_NOT_OPTIONS = {"device": "--device", "checkpoint": "--checkpoint", "frame": "--frame (propagate)",
                "direction": "--direction (propagate)", "maps": "--maps DIR (propagate)", "method": "--method",
                "precision": "--precision", "out": None, "maps_out": None, "keep_maps": None, "progress": None,
                "labels": None, "video": None, "on_finetune": None, "cancel_event": None}


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _check_summary_path(path: str | None, out: str | None = None) -> None:
    """A --json path and an --out folder are checked (their folders made) before the measurement,
    not after its first sequence (the --out files are started only when a sequence is scored)."""
    if path:
        check_writable(Path(path), folder=False, what="the summary")
    if out:
        check_writable(Path(out), folder=True, what="the scores")


def run_eval(args: argparse.Namespace) -> int:
    """`napari-vos eval`: run a method over a dataset folder and print its scores (DAVIS J&F; SEG for cell time-lapses)."""
    from napari_vos.evaluation.runner import evaluate_method
    from napari_vos.evaluation.scoring import format_table

    if args.save_predictions and not args.out:
        raise ValueError("--save-predictions writes OUT/predictions/<seq>/*.png: give --out OUT")
    if args.resume and not args.out:
        raise ValueError("--resume continues the run whose files are in --out: give that --out OUT")
    _check_summary_path(args.json, args.out)

    summary = evaluate_method(
        args.method, args.data, sequences=_sequences(args.sequences, args.split, args.data), device=args.device,
        max_side=args.max_side, checkpoint=args.checkpoint, json_path=args.json, out_dir=args.out,
        save_predictions=args.save_predictions, plot=not args.no_plot, progress=not args.quiet,
        method_options=command_options(args, {"max_side": "--max-side"}),
        annotation=args.annotation, resume=args.resume, say=lambda line: print(line, file=sys.stderr),
    )
    print(f"{args.method} on {args.data} (checkpoint: {summary.get('checkpoint')}, device: {summary.get('device')}, "
          f"max side: {'engine default' if args.max_side is None else args.max_side or 'none (never scaled down)'})")
    print(format_table(summary))
    if not summary.get("complete", True):
        left = summary.get("not_evaluated") or []
        more = ""
        if left:
            more = f"; not evaluated: {', '.join(left)} ({_how_to_finish(args, left)})"
        print(f"interrupted: the summary holds the finished sequences only{more}", file=sys.stderr)
        return 130
    return 0


def _how_to_finish(args: argparse.Namespace, left: list[str]) -> str:
    """The stopped-run hint: --resume into the same --out, or the sequences left on their own."""
    alone = f"--sequences {','.join(left)}"
    if args.out:
        return (f"continue with the same command and --resume, which keeps the finished sequences in {args.out} "
                f"and runs these; or run them alone with {alone} and another --out")
    if args.json:
        return (f"run them with {alone} and another --json: the same one is started afresh, losing the finished "
                "sequences' scores; --resume needs an --out")
    return f"run them with {alone}"


def run_score(args: argparse.Namespace) -> int:
    """`napari-vos score`: score saved predictions against a ground-truth folder."""
    from napari_vos.evaluation.scoring import format_table, score_dataset

    _check_summary_path(args.json, args.out)
    summary = score_dataset(args.pred, args.gt, sequences=_sequences(args.sequences, args.split, args.gt), json_path=args.json,
                            out_dir=args.out, progress=not args.quiet, annotation=args.annotation)
    print(f"{args.pred} against {args.gt}")
    print(format_table(summary))
    return 0


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    """The --precision flag shared by propagate, demo, eval and bench."""
    from napari_vos.nn.precision import PRECISIONS  # no torch import

    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="arithmetic of the network passes: auto (default: fp16 on CUDA, bf16 on CPUs with bfloat16 "
                        "instructions, fp32 elsewhere), fp32, bf16, fp16; test-time learning always runs in fp32")


def precision_option(args: argparse.Namespace) -> dict[str, str]:
    """``--precision`` as a session option, left out when "auto" (so records keep their old options)."""
    return {} if args.precision == "auto" else {"precision": args.precision}


def command_options(args: argparse.Namespace, flags: dict[str, str] | None = None) -> dict[str, Any]:
    """A run command's session options from its --option pairs, --zero-shot and --precision; ``flags``: the
    keywords its own flags set (`parse_option_pairs`), --zero-shot's option among them where given."""
    return {**parse_option_pairs(args.option, {**(flags or {}), **zero_shot_flag(args)}), **zero_shot_option(args),
            **precision_option(args)}


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `napari-vos bench` (method, sizes, objects, frames, sweep)."""
    p.add_argument("--method", default="frtm", help=method_help_text())
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_precision_argument(p)
    p.add_argument("--size", default="640x360", help="frame size WIDTHxHEIGHT (default 640x360)")
    p.add_argument("--objects", type=int, default=1, help="objects annotated on frame 0 (default 1)")
    p.add_argument("--frames", type=int, default=100, help="stack length (default 100)")
    p.add_argument("--kind", default="auto", choices=["auto", "natural", "cells", "fluorescence"],
                   help="synthetic video (default auto: natural up to 10 objects, cells above)")
    p.add_argument("--warmup", type=int, default=5, help="frames of the warm-up run (default 5; 0: none)")
    p.add_argument("--max-side", type=int, default=None, help="longer side of the working size (default 1024)")
    p.add_argument("--checkpoint", default=None, help=CHECKPOINT_HELP)
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="method option (repeatable)")
    p.add_argument("--json", default=None, help="write the record (a list with --sweep) here")
    p.add_argument("--sweep", action="store_true", help="run a size x objects x frames grid, one process per point")
    p.add_argument("--sweep-sizes", default="640x360,1280x720,1920x1080",
                   help="the sweep's frame sizes (default 640x360,1280x720,1920x1080)")
    p.add_argument("--sweep-objects", default="1,10,100", help="the sweep's object counts (default 1,10,100)")
    p.add_argument("--sweep-frames", default="50,500,5000",
                   help="the sweep's stack lengths (default 50,500,5000: 27 points, hours on a CPU; start smaller)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per sweep point (default: no limit)")
    p.add_argument("--plot", default=None, help="with --sweep: write a PNG of fps and memory here")
    p.add_argument("--profile", default=None, metavar="TXT",
                   help="then profile up to 30 more frames (torch.profiler) and write where the time goes here")


def run_bench(args: argparse.Namespace) -> int:
    """`napari-vos bench`: frames per second and peak memory of one setting or a sweep."""
    from napari_vos.evaluation.bench import bench_once, bench_sweep, check_timeout, parse_size

    check_timeout(args.timeout)
    if args.warmup < 0:
        raise ValueError(f"--warmup is a number of frames, 0 or more; got {args.warmup}")
    if args.plot and not args.sweep:
        raise ValueError("--plot draws a sweep's points: give it with --sweep")
    _check_summary_path(args.json)
    if args.sweep and getattr(args, "profile", None):
        raise ValueError("--profile profiles one setting: give it without --sweep")
    # before a sweep of hours or a profiled run: a name matplotlib cannot write (or would give .png
    # unsaid), a folder that cannot be made, was an error or a surprise only at the end
    if args.plot:
        if Path(args.plot).suffix.lower() != ".png":
            raise ValueError(f"--plot {args.plot}: the sweep's plot is a PNG; give a name ending in .png")
        check_writable(Path(args.plot), folder=False, what="the plot")
    if getattr(args, "profile", None):
        check_writable(Path(args.profile), folder=False, what="the profile")

    if args.sweep:
        from napari_vos.methods import registry
        from napari_vos.session import SESSION_KEYWORDS

        # a bad --option refused once, up front, as each point's Session would, not in every point's process
        given = parse_option_pairs(args.option, {"max_side": "--max-side"})
        registry.check_options(args.method, {k: v for k, v in given.items() if k not in SESSION_KEYWORDS},
                               SESSION_KEYWORDS)
        extra = ["--kind", args.kind, "--warmup", str(args.warmup)]
        if args.max_side is not None:
            extra += ["--max-side", str(args.max_side)]
        if args.checkpoint is not None:
            extra += ["--checkpoint", args.checkpoint]
        for o in args.option or []:
            extra += ["--option", o]
        extra += ["--precision", args.precision]
        rows = bench_sweep(args.method, args.device, [parse_size(s) for s in args.sweep_sizes.split(",")],
                           _int_list(args.sweep_objects), _int_list(args.sweep_frames), json_path=args.json,
                           plot_path=args.plot, timeout=args.timeout, extra=extra)
        print(f"{'size':>10}{'objects':>9}{'frames':>8}{'fps':>9}{'RSS MB':>9}{'GPU MB':>9}")
        for r in rows:
            if "error" in r:
                print(f"{r['size']:>10}{r['objects']:>9}{r['frames']:>8}  error: {r['error']}")
            else:
                gpu = f"{r['peak_gpu_mb']:9.1f}" if r["peak_gpu_mb"] is not None else f"{'-':>9}"
                print(f"{r['size']:>10}{r['objects']:>9}{r['frames']:>8}{r['fps']:9.2f}{r['peak_rss_mb']:9.1f}{gpu}")
        return 0 if all("error" not in r for r in rows) else 1
    record = bench_once(args.method, args.device, parse_size(args.size), args.objects, args.frames,
                        kind=args.kind, warmup=args.warmup, max_side=args.max_side, checkpoint=args.checkpoint,
                        profile=args.profile, **parse_option_pairs(args.option, {"max_side": "--max-side"}),
                        **precision_option(args))
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    gpu = f", peak GPU {record['peak_gpu_mb']:.1f} MB" if record["peak_gpu_mb"] is not None else ""
    print(f"{record['method']} on {record['device']}: {record['size']}, {record['objects']} object(s), "
          f"{record['frames']} frames: {record['fps']:.2f} frames/s (start {record['start_seconds']:.2f} s), "
          f"peak RSS {record['peak_rss_mb']:.1f} MB{gpu}")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    """`napari-vos synth`: write a set of synthetic videos in the DAVIS layout (for eval and training)."""
    from napari_vos.checks import seed_problem
    from napari_vos.data.synthetic import write_synthetic_set
    from napari_vos.evaluation.bench import parse_size

    if args.n < 1:
        raise ValueError(f"--n is the number of sequences to write, at least 1; got {args.n}")
    if args.frames < 3:  # eval scores neither the annotated first frame nor the last
        raise ValueError(f"--frames must be at least 3 (the annotated frame, one scored, the last); got {args.frames}")
    problem = seed_problem(args.seed)
    if problem:
        raise ValueError(f"--{problem}")
    w, h = parse_size(args.size)
    names = write_synthetic_set(args.out, args.n, kind=args.kind, seed=args.seed, n_frames=args.frames,
                                size=(h, w), n_objects=args.objects)
    print(f"wrote {len(names)} {args.kind} sequence(s) of {args.frames} frames ({w}x{h}) to {args.out} "
          f"in DAVIS layout: {', '.join(names)}")
    return 0


def register(subparsers: Any) -> None:
    """Add `eval`, `score`, `bench` and `synth` to the `napari-vos` argparse subcommands."""
    p = subparsers.add_parser("eval", help="run a method on a dataset folder and score it (DAVIS J/F, CTC SEG)")

    p.add_argument("--method", required=True, help=method_help_text().replace("frtm (default)", "frtm"))
    p.add_argument("--data", required=True, help="dataset folder: DAVIS, images/+masks/, CTC, or a TIFF stack (its "
                   "truth <stem>_labels.tif, or a TIFF named *mask*, *gt* or *seg* beside it; several stacks: one "
                   "sub-folder each)")
    p.add_argument("--sequences", default=None, help="comma-separated sequence names (default: all)")
    p.add_argument("--split", default=None, help="a DAVIS split: the sequences listed in DATA/ImageSets "
                   "(val, train, or e.g. 2017/val; DAVIS 2016's ImageSets/480p/val.txt is found as 'val')")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_precision_argument(p)
    p.add_argument("--max-side", type=int, default=None,
                   help="working resolution: longer side in pixels (default 1024; the papers' DAVIS size: 480 at 854x480)")
    p.add_argument("--checkpoint", default=None, help=CHECKPOINT_HELP)
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="method option (repeatable)")
    p.add_argument("--json", default=None, help="summary JSON path (default OUT/summary.json)")
    p.add_argument("--out", default=None, help="folder for CSVs, the plot, summary.json (and predictions); "
                   "without it only the table is printed")
    p.add_argument("--save-predictions", action="store_true", help="also write OUT/predictions/<seq>/*.png")
    p.add_argument("--resume", action="store_true", help="continue a stopped run in --out: keep the sequences it "
                   "scored and run the rest into the same files (refused if method, checkpoint, data, --sequences, "
                   "--max-side, options or annotation differ, or a kept sequence's files changed; the same files at "
                   "another --data folder go on)")
    p.add_argument("--no-plot", action="store_true", help="no OUT/plot PNG")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--annotation", default="auto", choices=["auto", "first", "none"],
                   help="first: give the first GT frame; none: give nothing and score the foreground against "
                        "the union of the GT objects; auto (default): none for zero-shot methods (cosnet)")
    p.add_argument("--zero-shot", action="store_true", help=ZERO_SHOT_HELP)
    p.set_defaults(func=run_eval)

    p = subparsers.add_parser("score", help="score existing predictions against ground truth")
    p.add_argument("--pred", required=True, help="predictions: <seq>/00000.png ... or <seq>.tif")
    p.add_argument("--gt", required=True, help="ground-truth dataset folder (any layout eval reads)")
    p.add_argument("--sequences", default=None, help="comma-separated sequence names (default: all of --gt's)")
    p.add_argument("--split", default=None, help="a DAVIS split listed in GT/ImageSets (val, train, 2017/val)")
    p.add_argument("--json", default=None, help="also write the summary as JSON here")
    p.add_argument("--out", default=None, help="folder for the CSVs (default: none written)")
    p.add_argument("--annotation", default="first", choices=["first", "none"],
                   help="first (default): score each GT object by its id, as eval scores a method given the first "
                        "annotated frame; none: score the predicted foreground against the union of the GT objects, "
                        "as eval scores a zero-shot method (cosnet)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_score)

    p = subparsers.add_parser("bench", help="frames/s and peak memory on a streamed synthetic video")
    add_bench_arguments(p)
    p.set_defaults(func=run_bench)

    p = subparsers.add_parser("synth", help="write a generated synthetic set (DAVIS layout) to evaluate on")
    p.add_argument("--out", required=True, help="folder to write (DAVIS layout: JPEGImages/, Annotations/)")
    p.add_argument("--n", type=int, default=10, help="number of sequences (default 10)")
    p.add_argument("--kind", default="natural", choices=["natural", "cells", "fluorescence"],
                   help="what the videos show (default natural)")
    p.add_argument("--seed", type=int, default=0, help="sequence i uses seed + i (default 0)")
    p.add_argument("--frames", type=int, default=40, help="frames per sequence (default 40)")
    p.add_argument("--size", default="320x240", help="WIDTHxHEIGHT (default 320x240)")
    p.add_argument("--objects", type=int, default=None, help="objects (cells) per sequence (default: natural 1-3, cells 30)")
    p.set_defaults(func=run_synth)
