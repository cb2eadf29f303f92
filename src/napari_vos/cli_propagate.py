"""`napari-vos propagate`: a video and its painted labels in, the labels of every frame out (a labels TIFF
with the image's calibration, or a folder of palette PNGs), with the run's record, its maps and overlay.

`register(subparsers)` adds the command to the main CLI (cli.py). A run through several Z planes of a
3D + time stack is cli_planes.py's; the files are read and the outputs checked by cli_inputs.py. A run
that stops keeps what it finished and says how to go on.
"""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.checks import frame_ranges
from napari_vos.cli_inputs import check_not_an_input, check_not_turned, check_png_folder, check_writable, \
    closed_at_end, read_labels, read_video, refuse_other_planes
from napari_vos.cli_options import CHECKPOINT_HELP, DEVICE_HELP, ZERO_SHOT_HELP, method_help_text
from napari_vos.cli_overlay import check_run_overlay, write_run_overlay
from napari_vos.cli_terminal import progress_bar, say

__all__ = ["register", "cmd_propagate", "check_maps_folder", "session_options", "inputs_record", "run_record",
           "run_keeping_frames", "stopped_path"]


def register(sub: Any) -> None:
    """Add `napari-vos propagate` to the main parser's subcommands."""
    from napari_vos.evaluation.cli_measure import add_precision_argument

    method_help = method_help_text()
    p = sub.add_parser("propagate", help="propagate labels through a TIFF stack, a folder of frames, a movie or "
                                         "an animated GIF")
    p.add_argument("video", help="TIFF stack (any axis order: TYX, TYXC, Fiji's TCYX; TZYX with --z), a "
                                 "folder of frame images (PNG/JPEG/TIFF, in natural name order: frame2 before "
                                 "frame10), a movie file (.mp4, .avi, .mov, .mkv ...; needs PyAV: pip install "
                                 "\"napari-vos[video]\"; decoded once into TMPDIR) or an animated GIF, PNG or "
                                 "WebP")
    p.add_argument("labels", nargs="?", default=None,
                   help="labels: a TIFF, (Y, X) for one frame or (T, Y, X) with painted frames, or one mask "
                        "image (palette or grey PNG); leave out for a zero-shot method (--method cosnet)")
    p.add_argument("-o", "--output", required=True,
                   help="OUT.tif: one labels TIFF (T, Y, X) with the image's calibration; any other name: a "
                        "folder of palette PNGs 00000.png ... (DAVIS results layout) plus the record .napari_vos.json")
    p.add_argument("--method", default="frtm", help=method_help)
    p.add_argument("--frame", type=int, default=None, help="the annotated frame of a (Y, X) labels file (default 0); with a (T, Y, X) "
                   "labels file, the painted frame to start from (default: the first painted one; with --direction backward, the last)")
    p.add_argument("--keep-other-frames", action="store_true",
                   help="with a (T, Y, X) labels stack such as an earlier output with one frame corrected: annotate "
                        "only --frame's labels and keep the stack's other frames wherever the run does not reach "
                        "them (with --direction forward, frames before --frame stay as they were; not with both)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_precision_argument(p)
    p.add_argument("--checkpoint", default=None, help=CHECKPOINT_HELP)
    p.add_argument("--direction", default="both", choices=["both", "forward", "backward"],
                   help="from the start frame (--frame): both (default), forward only or backward only")
    p.add_argument("--max-side", type=int, default=None,
                   help="scale frames down so the longer side is at most this many pixels (default 1024; 0: never)")
    p.add_argument("--min-side", type=int, default=None,
                   help="enlarge smaller videos to this shorter side (0: never; default: the method's, FRTM 480)")
    p.add_argument("--channels", default=None,
                   help="channels to use, 0-based and comma-separated, at most 3, e.g. 0,2 (default: all of up to 3, "
                        "or RGB)")
    p.add_argument("--maps", default=None, metavar="DIR",
                   help="also write the method's intermediate maps (e.g. FRTM's target scores) as DIR/<map>.tif")
    p.add_argument("--overlay", default=None, metavar="MOVIE",
                   help="also write the result drawn over the video, as `napari-vos overlay` does: MOVIE.mp4 "
                        "(.mkv, .mov; needs PyAV) or MOVIE.gif; replaced if it exists; not written for a run "
                        "that stops part way")
    from napari_vos.cli_planes import z_planes_arg

    p.add_argument("--z", type=z_planes_arg, default=None,
                   help="Z plane of a (T, Z, Y, X) stack to propagate through (2D + time); 'painted' runs through "
                        "every Z plane painted in the (T, Z, Y, X) labels, a list (2,5 or 2-5) through those planes, "
                        "one after another, into one (T, Z, Y, X) labels TIFF")
    p.add_argument("--resume", default=None, metavar="FILE",
                   help="with --z painted or a list: go on from FILE, the (T, Z, Y, X) labels TIFF a stopped run "
                        "through several Z planes wrote (or a killed one's partial file, moved): its finished "
                        "planes are kept, the others run (a plane stopped part-way from its start); -o may be FILE")
    p.add_argument("--memmap", action="store_true",
                   help="no effect: frames are always read from the TIFF one at a time (kept for old scripts)")
    p.add_argument("--zero-shot", action="store_true",
                   help=ZERO_SHOT_HELP)
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="method option (repeatable), e.g. --option finetune_iterations=400")
    p.set_defaults(func=cmd_propagate)


def cmd_propagate(args: argparse.Namespace) -> int:
    """TIFF (any axis order) or a folder of frames in; a TIFF (calibration kept) or palette PNGs out."""
    from napari_vos.cli_planes import propagate_planes, runs_several_planes

    if runs_several_planes(args.z):
        return propagate_planes(args)
    if args.resume is not None:
        raise ValueError("--resume goes on with a stopped run through several Z planes (--z painted or a list of "
                         "planes); a one-plane run goes on with --keep-other-frames, as its stop message says")
    with ExitStack() as opened:  # the input TIFFs are read frame by frame from files closed at the end
        # the labels and the output name first: a mistake there is said before a movie is decoded (minutes
        # for a long one); _propagate_files checks the output again, with what the labels hold
        labels = opened.enter_context(closed_at_end(read_labels(args.labels, getattr(args, "z", None))))
        check_not_an_input(Path(args.output), {"video": args.video, "labels": args.labels})
        if Path(args.output).suffix.lower() not in (".tif", ".tiff"):
            check_png_folder(Path(args.output))
        if args.overlay is not None:
            check_run_overlay(args)
        video, calibration = read_video(args.video, args.z)
        opened.enter_context(closed_at_end(video))
        check_not_turned(args.video, video, args.labels, getattr(labels, "shape", None))
        return _propagate_files(args, video, calibration, labels)


def check_maps_folder(args: argparse.Namespace, folder: Path) -> None:
    """Before the run: ``folder`` (--maps) is a folder that can be written, and none of the method's map
    files there (<map name>.tif) is the video or the labels."""
    from napari_vos.methods.registry import method_class

    if folder.suffix.lower() in (".tif", ".tiff") and not folder.is_dir():
        raise ValueError(f"--maps takes a folder (each map is written into it as <map name>.tif), not a file "
                         f"name: {args.maps}")
    check_writable(folder, folder=True)
    for name in method_class(args.method).map_names:  # the map files, created while the video is read
        check_not_an_input(folder / f"{name}.tif", {"video": args.video, "labels": args.labels},
                            "--maps", f"{name} map")


def session_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Session's options that `propagate`'s flags set: sizes, channels, zero-shot, precision, the method's
    own (--option), and the fine-tuning report for a method that fine-tunes first."""
    from napari_vos.evaluation.cli_measure import command_options
    from napari_vos.methods import registry

    options: dict[str, Any] = {} if args.max_side is None else {"max_side": args.max_side}
    if args.min_side is not None:
        options["min_side"] = args.min_side or None
    if args.channels:
        try:
            options["channels"] = [int(c) for c in args.channels.split(",")]
        except ValueError:
            raise ValueError(f"--channels takes comma-separated channel numbers such as 0,2; got {args.channels!r}") from None
    options.update(command_options(args, {"max_side": "--max-side", "min_side": "--min-side",
                                          "channels": "--channels"}))
    if registry.traits(args.method).reports_finetune:  # a minute of fine-tuning before frame 1 is shown
        options.setdefault("on_finetune", _FinetuneReport())
    return options


def _propagate_files(args: argparse.Namespace, video: Any, calibration: Any, labels: Any) -> int:
    """`propagate`'s run on its opened video and labels: check the outputs, run, write, report."""
    from napari_vos.data.label_types import check_id_range, largest_id, painted_frames
    from napari_vos.data.writers import label_dtype, labels_tiff_is_imagej, write_tiff_labels
    from napari_vos.session import annotated_session

    to_tiff = Path(args.output).suffix.lower() in (".tif", ".tiff")
    painted = None  # a labels stack's painted frames, found in the one pass that reads each frame
    if labels is None:
        top = 1  # a zero-shot run's ids are 1..K
    elif labels.ndim == 3:
        painted, top = painted_frames(labels)
        if not painted and getattr(args, "z", None) is not None:
            refuse_other_planes(args.labels, args.z)
    else:
        top = largest_id(labels)
    if not to_tiff and top > 255:  # before the run, not after it
        raise ValueError(f"object ids up to {top} do not fit palette PNGs (0..255); give an output name ending in .tif")
    check_not_an_input(Path(args.output), {"video": args.video, "labels": args.labels})
    earlier_pngs = [] if to_tiff else check_png_folder(Path(args.output))
    # a run stopped part-way does not replace an earlier output (a re-run with another method or option)
    earlier_output = Path(args.output).is_file() if to_tiff else bool(earlier_pngs)
    check_writable(Path(args.output), folder=not to_tiff)
    if args.maps:
        check_maps_folder(args, Path(args.maps))
    options = session_options(args)
    from napari_vos.data.frames import FrameSource
    from napari_vos.data.partial_labels import PartialLabels
    # the stack's (T, Y, X), for the labels file the run writes into
    source = FrameSource(video, channels=options.get("channels"))
    if source.n_frames == 1 and labels is not None and labels.ndim == 3 and len(labels) > 1:
        raise ValueError(f"the video {args.video} is one frame but the labels {args.labels} are a stack of "
                         f"{len(labels)}: are VIDEO and LABELS the other way round?")
    if source.n_frames == 1:  # said here with the file's name (a one-frame movie or TIFF), before any run
        raise ValueError(f"nothing to propagate: the video {args.video} has a single frame; give a time-lapse (a stack "
                         "with axes T, Y, X[, C], a movie or a folder of frames)")
    keep = getattr(args, "keep_other_frames", False)
    if keep and (labels is None or labels.ndim != 3 or args.frame is None):
        raise ValueError("--keep-other-frames takes a (T, Y, X) labels stack and the --frame to start from (the "
                         "corrected one)")
    if keep and tuple(labels.shape) != (source.n_frames, *source.frame_shape):  # its frames are copied one by one
        raise ValueError(f"--keep-other-frames: the labels stack {args.labels} has shape {tuple(labels.shape)} but "
                         f"the video {args.video} is {source.n_frames} frames of {tuple(source.frame_shape)}: give "
                         "a stack of this video's frames (an earlier output of a run on it)")
    if keep and args.direction == "both":  # both directions reach every frame: none would be kept
        raise ValueError("--keep-other-frames keeps the frames a one-way run does not reach, and with --direction "
                         "both every frame is propagated: add --direction forward (the frames before --frame are "
                         "kept) or backward")
    if keep and args.frame not in (painted or []):
        raise ValueError(_not_painted_message(args, painted or []))
    recovered = _stopped_run_annotations(args, labels, painted or []) if keep else {}
    partial = PartialLabels(args.output, (source.n_frames, *source.frame_shape), max(top, 1), calibration,
                            {"method": args.method})
    map_files = None
    try:
        if keep:  # the stack's frames first: the run overwrites those it reaches, the others stay (an earlier output)
            for t in range(len(labels)):
                frame = recovered[t] if t in recovered else np.asarray(labels[t])
                # copied as they are: ids the output cannot hold are refused (-3 became 65533 in uint16)
                check_id_range(frame.min(), frame.max(), f"frame {t} of {args.labels} (--keep-other-frames copies it)")
                partial.labels[t] = frame
        session, start = annotated_session(video, np.asarray(labels[args.frame]) if keep else labels,
                                           method=args.method, frame=args.frame,
                                           device=args.device, checkpoint=args.checkpoint, maps=bool(args.maps),
                                           out=partial.labels, painted=None if keep else painted, **options)
        for t, frame in recovered.items():  # a stopped run's later paintings stay annotations, as in that run
            session.annotate(t, frame)
        if keep:  # from --frame, not the session's earliest annotation, which a recovered one may now be
            start = args.frame
        # what a killed run's file must say for the next run to tell how to go on from it
        partial.describe({**session.result().provenance(), **inputs_record(args), "direction": args.direction,
                          "start_frame": _first_frame(session, args.direction, start),
                          **({"labels_stack_copied": True} if keep else {})})
        if session.annotations:  # advice from the first painted frame, as the session holds it (not read again)
            from napari_vos.advice import method_advice

            tip = method_advice(args.method, args.checkpoint, [session.annotations[min(session.annotations)]])
            if tip:
                print(f"{tip} (here: --method {tip.method} --checkpoint {tip.checkpoint})", file=sys.stderr)
        if args.maps:  # each map goes into its TIFF as its frames finish: none is held, a killed run keeps them
            from napari_vos.data.map_tiffs import MapTiffs

            map_files = session.maps_out = MapTiffs(args.maps, calibration, session)
        finished, stop = run_keeping_frames(session, args.direction, start)
    except BaseException:  # nothing segmented (a bad option, a missing checkpoint): nothing to keep
        partial.remove()
        raise
    result = session.result()
    planned = session.planned_frames
    provenance = run_record(args, result.provenance(), finished, stop, len(labels) if keep else None)
    written_to = stopped_path(Path(args.output)) if stop is not None and earlier_output else Path(args.output)
    try:
        partial.close(provenance)
        maps = map_files.close(provenance) if map_files is not None else []
        if to_tiff or written_to != Path(args.output):
            write_tiff_labels(written_to, result.labels, calibration=calibration, provenance=provenance,
                              max_id=max([top, *result.object_ids]))  # what it holds: no pass over it to find out
        else:  # a folder of palette PNGs, 00000.png ... (DAVIS results layout)
            _write_png_output(Path(args.output), result.labels, provenance, earlier_pngs)
    except KeyboardInterrupt:  # a second Ctrl+C, or a Ctrl+C or `kill` while the output is written
        from napari_vos.data.partial_labels import how_to_use

        partial.release()
        say(f"napari-vos propagate: interrupted while writing {written_to}; the finished frames "
             f"({frame_ranges(finished)}) are kept in {partial.path}: {how_to_use(written_to)} to use it, or "
             "delete it to run again")
        return 130
    except BaseException:
        partial.release()
        say(f"the labels are kept in {partial.path} (an uncompressed TIFF with the run's record)")
        raise
    continuable = isinstance(stop, KeyboardInterrupt) and labels is not None and written_to.suffix.lower() in (
        ".tif", ".tiff")  # a PNG folder cannot be given back as labels
    continuing = _continue_hint(args, result.labels, finished, written_to) if continuable else ""
    labels_shape = tuple(result.labels.shape)
    # Windows deletes no memory-mapped file: every view of the partial file goes before it is removed
    result.labels = partial.labels = None
    session.labels = None
    del session
    if not partial.remove():
        say(f"note: {partial.path} could not be deleted (the system still holds it open); it holds the same "
             f"labels as {args.output}, and the next run to {args.output} removes it")
    if stop is not None:
        kept = ""
        if written_to != Path(args.output):
            kept = (f"; {args.output} from an earlier run is kept as it was" +
                    (" (the --maps files are this run's)" if maps else ""))
        others = "the others as the labels stack has them" if keep else "the others empty"
        say(f"stopped after {len(finished)} of {planned} frames; wrote the finished ones (frames "
             f"{frame_ranges(finished)}) to {written_to}" + (f" and {args.maps}" if maps else "") +
             f", {others}{kept}{continuing}")
        if isinstance(stop, KeyboardInterrupt):
            return 130
        raise stop
    found = "found" if labels is None else "propagated"
    top_id = max([top, *result.object_ids])  # as written: unreached annotated frames keep their painted ids
    kept = "" if calibration.empty or not to_tiff else _calibration_kept(
        calibration, labels_tiff_is_imagej(labels_shape, label_dtype(top_id)), top_id)
    start = f" after a {result.start_seconds:.0f} s start (the method's fine-tuning or first fit)" \
        if result.start_seconds >= 5 else ""  # the frames/s leave it out (OSVOS-AT with 70 cells: minutes)
    print(f"wrote {args.output}: {labels_shape} labels, {len(result.object_ids)} object(s) {found}, "
          f"{result.fps:.2f} frames/s on {result.device}{start}{kept}")
    for path in maps:
        print(f"wrote {path}: the method's {path.stem} map")
    if maps:
        others = sorted(p.name for p in Path(args.maps).glob("*.tif") if p not in maps)
        if others:
            print(f"note: {args.maps} also holds {', '.join(others)} from an earlier run", file=sys.stderr)
    if getattr(args, "overlay", None) is not None:
        write_run_overlay(args, video, calibration)
    return 0


def _first_frame(session: Any, direction: str, start: int | None) -> int | None:
    """The frame a run starts from: ``start``, or the Session's default (its earliest annotation, the
    latest going backward; None for a zero-shot run, which starts at an end)."""
    if start is not None or not session.annotations:
        return start
    return max(session.annotations) if direction == "backward" else min(session.annotations)


def inputs_record(args: argparse.Namespace) -> dict[str, Any]:
    """The record's ``inputs``: the video's and the labels' full paths (and --z), to trace a file back."""
    return {"inputs": {"video": str(Path(args.video).resolve()),
                       "labels": None if args.labels is None else str(Path(args.labels).resolve()),
                       **({"z": args.z} if args.z is not None else {})}}


def run_record(args: argparse.Namespace, provenance: dict[str, Any], finished: list[int],
                stop: BaseException | None, kept_stack_frames: int | None) -> dict[str, Any]:
    """The record a run's output carries: the Session's, its inputs, which frames were segmented
    from where, what stopped it; with --keep-other-frames (``kept_stack_frames``: the stack's
    length) also the frames copied from the labels stack, as the widget records them."""
    from napari_vos.checks import unreached_frames

    # what a file must say to be traced back: its inputs, and which frames were segmented from where
    provenance.update(**inputs_record(args), direction=args.direction,
                      start_frame=finished[0] if finished else None, frames_segmented=frame_ranges(finished))
    if kept_stack_frames is not None:  # "0-1" as frames_segmented
        copied = unreached_frames(args.direction, args.frame, kept_stack_frames)
        if copied:  # none (a forward run from frame 0): no entry, as the widget writes none
            provenance["frames_kept_from_labels"] = frame_ranges(copied)
        unreached = sorted(set(range(kept_stack_frames)) - set(copied) - set(finished))
        if unreached:  # stopped: the frames it never reached hold the labels stack's too
            provenance["frames_not_reached_kept_from_labels"] = frame_ranges(unreached)
    if stop is not None:  # what is done is written, and the record says which frames it holds
        provenance.update(complete=False,
                          stopped_by="interrupt" if isinstance(stop, KeyboardInterrupt) else repr(stop))
    return provenance


def _write_png_output(folder: Path, labels: Any, provenance: dict[str, Any], earlier_pngs: list[Path]) -> None:
    """The labels as a folder of palette PNGs, 00000.png ... (DAVIS results layout), with the record
    beside them; an earlier output's frames this one has not are removed."""
    from napari_vos.data.writers import OLD_PNG_RECORD, PNG_RECORD, write_png_labels

    # an earlier run's record must not describe a mix of its frames and this run's if writing stops
    # part-way: the folder says it is being rewritten (and stays a napari-vos output for a rerun)
    (folder / OLD_PNG_RECORD).unlink(missing_ok=True)
    if earlier_pngs:
        (folder / PNG_RECORD).write_text(json.dumps(
            {**provenance, "complete": False, "frames_segmented": "being rewritten"}, indent=2) + "\n")
    written = set(write_png_labels(folder, labels))
    for stale in earlier_pngs:  # an earlier, longer output's frames would be read as this run's
        if stale not in written:
            stale.unlink(missing_ok=True)
    (folder / PNG_RECORD).write_text(json.dumps(provenance, indent=2) + "\n")


def _continue_hint(args: argparse.Namespace, labels: Any, finished: list[int], written_to: Path) -> str:
    """The end of the stop message: the command(s) that continue the run from its last finished
    frame that holds labels, into ``<stopped>.continued.tif``; "" when nothing is left to do."""
    from napari_vos.continuing import continue_commands, continue_steps, last_labelled

    last = last_labelled(labels, finished)
    if last is None:  # every finished frame is empty: nothing to continue from
        return "; none of the finished frames holds labels, so there is nothing to continue from"
    steps = continue_steps(args.direction, finished[0], last, len(labels))
    if not steps:
        return ""
    commands = continue_commands(args.video, written_to, steps, written_to.with_name(f"{written_to.stem}.continued.tif"),
                                 _run_options(args))
    return "; to continue from its last frame with labels, run: " + " and then ".join(commands)


def _run_options(args: argparse.Namespace) -> list[str]:
    """The options of this `propagate` run that a continuation repeats (the method and what sets its
    labels: checkpoint, device, sizes, channels, plane, method options), as command-line words."""
    given = [("--method", args.method), ("--checkpoint", args.checkpoint),
             ("--device", None if args.device == "auto" else args.device), ("--max-side", args.max_side),
             ("--min-side", args.min_side), ("--channels", args.channels), ("--z", args.z),
             ("--precision", None if getattr(args, "precision", "auto") == "auto" else args.precision)]
    words = [w for flag, value in given if value is not None for w in (flag, str(value))]
    words += ["--memmap"] if getattr(args, "memmap", False) else []
    return words + [w for pair in (args.option or []) for w in ("--option", pair)]


def _not_painted_message(args: argparse.Namespace, painted: list[int]) -> str:
    """Why --keep-other-frames refuses an empty --frame, naming the nearest painted frame on the side
    the run comes from (a stopped run's last frames may be empty: its object was lost or left)."""
    before = [t for t in painted if t < args.frame] if args.direction == "forward" else \
        [t for t in painted if t > args.frame]
    text = f"--keep-other-frames: frame {args.frame} of {args.labels} is not painted (it is empty)"
    if before:
        nearest = max(before) if args.direction == "forward" else min(before)
        return (f"{text}; the nearest painted frame {'before' if args.direction == 'forward' else 'after'} it is "
                f"{nearest}: give --frame {nearest} to go on {args.direction} from there, or give the corrected "
                "frame as --frame")
    return f"{text}; give the corrected frame as --frame"


def _stopped_run_annotations(args: argparse.Namespace, labels: Any, painted: list[int]) -> dict[int, np.ndarray]:
    """The painted frames a napari-vos run did not reach, when its output is the labels stack of
    --keep-other-frames: they stay annotations of this run as they were of that one (so the second
    command continuing a stopped `both` run keeps a painting on the backward side). Taken from the
    stack, which holds them, or, for a stopped run's output that does not, read back from the labels
    file its record names. {} for any other stack."""
    from napari_vos.checks import frames_in_ranges
    from napari_vos.data.writers import read_tiff_provenance

    if Path(args.labels).suffix.lower() not in (".tif", ".tiff"):
        return {}
    try:
        record = read_tiff_provenance(args.labels) or {}
    except (OSError, ValueError):
        return {}
    if not record.get("annotated_frames"):
        return {}
    try:
        reached = set(frames_in_ranges(record.get("frames_segmented", "")))
    except ValueError:  # a killed run's file: its frames that hold labels are those it reached, but for
        # its painted frames ahead of this run, which the Session wrote into it at the start
        ahead = (lambda t: t > args.frame) if args.direction == "forward" else (lambda t: t < args.frame)
        reached = set(painted) - {int(t) for t in record["annotated_frames"] if ahead(int(t))}
    wanted = [int(t) for t in record["annotated_frames"] if int(t) not in reached and int(t) != args.frame
              and 0 <= int(t) < len(labels)]
    from_stack = {t: np.asarray(labels[t]) for t in wanted if t in painted}  # kept by an earlier continuation
    # a finished run's output holds every frame it was given painted; only a stopped one may lack some
    missing = [t for t in wanted if t not in from_stack] if record.get("complete") is False else []
    recovered = {**from_stack, **_painted_frames_of(record, missing, args.labels, labels.shape)}
    if recovered:
        print(f"note: frame(s) {frame_ranges(sorted(recovered))}, painted for the run that wrote {args.labels} but "
              "not reached by it, are annotations of this run too", file=sys.stderr)
    return dict(sorted(recovered.items()))


def _painted_frames_of(record: dict[str, Any], frames: list[int], stopped: str, shape: tuple[int, ...]
                       ) -> dict[int, np.ndarray]:
    """``frames`` of the labels file a stopped run's ``record`` names; a ValueError naming that file
    when it is gone or is not the stack the run was given."""
    if not frames:
        return {}
    from napari_vos.data.readers import open_tiff_frames

    painting = (record.get("inputs") or {}).get("labels")
    why = f"{stopped} is a stopped run's output: its painted frame(s) {frame_ranges(frames)}, which it never reached"
    if not painting or not Path(painting).is_file():
        raise ValueError(f"{why}, are in its labels file {painting}, which is not there any more; put that file "
                         "back to continue the run with them")
    stack = open_tiff_frames(painting, z=(record.get("inputs") or {}).get("z"))
    try:
        if tuple(stack.shape[-2:]) != tuple(shape[-2:]) or len(stack) != shape[0]:
            raise ValueError(f"{why}, should be in its labels file {painting}, which holds a {tuple(stack.shape)} "
                             f"stack, not one of {tuple(shape)}: put the run's labels file back there")
        return {t: np.asarray(stack[t]) for t in frames}
    finally:
        getattr(stack, "close", lambda: None)()


class _FinetuneReport:
    """``on_finetune`` for the CLI: a line on stderr at the start and every tenth of a method's
    fine-tuning on the annotated frame, which comes before the first frame's progress."""

    def __init__(self) -> None:
        self.shown = -1

    def __call__(self, step: int, total: int, loss: float) -> None:
        tenth = 10 * step // max(total, 1)
        if step == 1 or tenth > self.shown:
            self.shown = tenth
            print(f"fine-tuning on the annotated frame: {step}/{total}", file=sys.stderr, flush=True)


def run_keeping_frames(session: Any, direction: str, start: int | None) -> tuple[list[int], BaseException | None]:
    """Run the session's propagation with a progress bar; a Ctrl+C, a `kill` (SIGTERM, as a cluster's
    time limit sends) or an error on a later frame (a NaN frame, memory) stops it but leaves the
    frames already finished in the session. Returns those frames and what stopped the run (None
    when it ran to the end)."""
    finished: list[int] = []
    segmented = 0
    try:
        import warnings

        from napari_vos.session import NothingToPropagate

        with warnings.catch_warnings():
            warnings.simplefilter("error", NothingToPropagate)
            try:  # checks the arguments; its planned_frames is the total
                frames = session.propagate(direction, start=start)
            except NothingToPropagate as nothing:
                if len(session.source) <= 1:  # no direction helps
                    raise ValueError("nothing to propagate: the video has a single frame; give a time-lapse "
                                     "(a stack with axes T, Y, X[, C])") from None
                raise ValueError(f"{nothing}: give --direction both (or forward/backward towards the other frames)") \
                    from None
        with progress_bar("propagating", session.planned_frames) as update:  # SIGTERM, SIGHUP are Ctrl+C here (main)
            for step in frames:
                finished.append(step.index)
                segmented += not step.annotated
                update(len(finished), session.planned_frames)
    except (KeyboardInterrupt, Exception) as stop:
        if not segmented:  # nothing segmented yet (a bad option, a missing checkpoint): nothing to keep
            raise
        return finished, stop
    return finished, None


def _calibration_kept(calibration: Any, imagej: bool, top_id: int) -> str:
    """What the end-of-run line says of the image's calibration, as the labels TIFF holds it: ids
    beyond uint16 or 4 GiB of labels make a baseline TIFF (no ImageJ metadata), which has no place for
    the frame interval, nor for a pixel size in a unit other than inch, cm, mm or µm (a metric one
    is converted)."""
    from dataclasses import replace

    from napari_vos.data.calibration import storable_calibration

    written = storable_calibration(calibration, imagej)
    if written == calibration:
        return f"; kept the image's calibration ({calibration.describe()})"
    pixels = replace(calibration, frame_interval=None, time_unit=None)
    said, lost = [], []
    if written.pixel_size is not None:
        same = written.pixel_size == calibration.pixel_size and written.unit == calibration.unit
        said.append(f"kept the image's pixel size ({pixels.describe()})" if same else
                    f"kept the image's pixel size ({pixels.describe()}) as {written.describe()}")
    elif calibration.pixel_size is not None:
        lost.append(f"pixel size ({pixels.describe()})")
    if written.frame_interval is None and calibration.frame_interval is not None:
        lost.append("frame interval")
    if lost:
        form = "a labels TIFF of " + ("ids above 65535" if top_id > 65535 else "4 GiB or more (a BigTIFF)") \
            if not imagej else "the labels TIFF"
        said.append(f"{form} has no place for the {' or the '.join(lost)}")
    return "".join(f"; {part}" for part in said)


def stopped_path(output: Path) -> Path:
    """Where a stopped run's frames go when ``output`` holds an earlier run's labels: beside it,
    ``out.tif`` -> ``out.stopped.tif``, a PNG folder ``results/`` -> ``results.stopped.tif`` (``-o .``:
    the folder's own name), or ``out.stopped-2.tif`` and on where such a file is already there (an
    earlier stopped run's, or one corrected and given as this run's labels)."""
    output = output.absolute()
    if not output.name or output.name in (".", ".."):
        output = output.resolve()
    stem = output.stem if output.suffix.lower() in (".tif", ".tiff") else output.name
    candidate, n = output.with_name(f"{stem}.stopped.tif"), 1
    while candidate.exists():
        n += 1
        candidate = output.with_name(f"{stem}.stopped-{n}.tif")
    return candidate
