"""`napari-vos measure`: a labels stack's objects as CSV tables (one row per object and frame, one per track).

`register(subparsers)` adds the command to the main CLI (cli.py). The reading of labels and videos
is the `overlay` command's, so the same files work (labels TIFFs, PNG folders; TIFF stacks, frame
folders, movies, animated images); the measuring is `napari_vos.object_table`'s.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "cmd_measure"]


def _check_output(path: Path, inputs: dict[str, str | None], force: bool, flag: str) -> None:
    """A table's name, before anything is read: a .csv name, no input, no table replaced unasked.
    (Its folder is made once the inputs are read: a mistyped labels path leaves no empty folder.)"""
    from napari_vos.cli import _check_not_an_input

    if path.suffix.lower() != ".csv":
        raise ValueError(f"{flag} {path}: the measurements are a CSV table; name it {path.stem}.csv")
    _check_not_an_input(path, inputs, flag=flag, what="table")
    if path.exists() and not force:
        raise ValueError(f"{path} exists; give another name or --force to replace it")


def _pixel_sizes(text: str) -> list[float]:
    """--pixel-size's one size or Y,X sizes, each a finite positive number."""
    try:
        sizes = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or not all(math.isfinite(v) and v > 0 for v in sizes):
        raise ValueError(f"--pixel-size {text}: give one positive size, or Y,X sizes (e.g. 0.65 or 0.5,0.65)")
    return sizes


def _labels_record(path: str) -> tuple[Any, dict[str, Any] | None]:
    """A labels output's calibration (TIFF; none for PNG folders) and its run record, if it has them."""
    from napari_vos.data.calibration import Calibration, read_tiff_calibration
    from napari_vos.data.writers import png_record, read_tiff_provenance

    where = Path(path)
    if where.is_dir():
        record = png_record(where)
        return Calibration(), (json.loads(record.read_text(encoding="utf-8")) if record else None)
    if where.suffix.lower() in (".tif", ".tiff"):
        try:
            record = read_tiff_provenance(where)
        except (ValueError, json.JSONDecodeError):  # a description that is not ours
            record = None
        return read_tiff_calibration(where), record
    return Calibration(), None


def _given_calibration(args: argparse.Namespace, found: Any) -> Any:
    """The calibration the flags give, each flag replacing what the files said."""
    from dataclasses import replace

    from napari_vos.data.calibration import _unit

    calibration = found
    if args.pixel_size is not None:
        sizes = _pixel_sizes(args.pixel_size)
        calibration = replace(calibration, pixel_size=(sizes[0], sizes[-1]),
                              unit=_unit(args.unit) if args.unit else calibration.unit)
    elif args.unit is not None:
        if calibration.pixel_size is None:
            raise ValueError(f"--unit {args.unit} without a pixel size: give --pixel-size too (the files hold none)")
        calibration = replace(calibration, unit=_unit(args.unit))
    if args.frame_interval is not None:
        if not math.isfinite(args.frame_interval) or args.frame_interval <= 0:
            raise ValueError(f"--frame-interval {args.frame_interval}: give the positive time between frames")
        calibration = replace(calibration, frame_interval=float(args.frame_interval),
                              time_unit=args.time_unit or calibration.time_unit or "s")
    elif args.time_unit is not None:
        if calibration.frame_interval is None:
            raise ValueError(f"--time-unit {args.time_unit} without a frame interval: give --frame-interval too")
        calibration = replace(calibration, time_unit=args.time_unit)
    return calibration


def _merged(labels: Any, video: Any) -> Any:
    """The labels file's calibration, with what it lacks (a PNG folder: everything) taken from the video."""
    from dataclasses import replace

    if labels.pixel_size is None and video.pixel_size is not None:
        labels = replace(labels, pixel_size=video.pixel_size, unit=video.unit)
    if labels.frame_interval is None and video.frame_interval is not None:
        labels = replace(labels, frame_interval=video.frame_interval, time_unit=video.time_unit)
    return labels


def cmd_measure(args: argparse.Namespace) -> int:
    """`napari-vos measure`: measure each object on each frame, and summarise each object id as a track."""
    from napari_vos.cli import (_check_not_turned, _check_writable, _closed_at_end, _progress, _read_label_stack,
                                _read_video)
    from napari_vos.divisions import parents_from_record
    from napari_vos.object_table import measure_objects, track_summary, tracks_path, write_tables
    from napari_vos.stopped_runs import stopped_run_note

    out = Path(args.output)
    tracks = Path(args.tracks) if args.tracks else tracks_path(out)
    if tracks.resolve() == out.resolve():  # also as q/../q/x.csv, or through a link
        raise ValueError(f"--tracks {tracks} is the -o table: give the track table another name")
    inputs = {"labels": args.labels, "video": args.video}
    _check_output(out, inputs, args.force, "-o")
    _check_output(tracks, inputs, args.force, "--tracks")
    with ExitStack() as opened:  # the TIFF stacks read frame by frame, closed however the command ends
        labels = opened.enter_context(_closed_at_end(_read_label_stack(args.labels, args.z)))
        calibration, record = _labels_record(args.labels)
        video = None
        if args.video is not None:
            video, video_calibration = _read_video(args.video, args.z)
            opened.enter_context(_closed_at_end(video))
            _check_not_turned(args.video, video, args.labels, (len(labels), *np.shape(labels[0])))
            if len(video) != len(labels):
                raise ValueError(f"the video {args.video} has {len(video)} frames and the labels {args.labels} "
                                 f"{len(labels)}: give the video the labels were propagated on")
            calibration = _merged(calibration, video_calibration)
        calibration = _given_calibration(args, calibration)
        for path in (out, tracks):  # the folders made once the inputs are read, before the frames are measured
            _check_writable(path, folder=False, what="the table")
        note = stopped_run_note(record, args.labels, "in the tables as well")
        if note:
            print(f"note: {note}", file=sys.stderr)
        if calibration.pixel_size is None:
            print("note: no pixel size in the files: sizes and positions are in pixels only (give --pixel-size and "
                  "--unit for physical ones)", file=sys.stderr)
        with _progress("measure", len(labels)) as progress:
            objects = measure_objects(_Frames(labels), _Frames(video) if video is not None else None,
                                      calibration=calibration, progress=progress)
    summary = track_summary(objects, frames=len(labels), parents=parents_from_record(record))
    write_tables(objects, summary, out, tracks)
    print(f"wrote {out}: {len(objects)} row{'' if len(objects) == 1 else 's'} (objects on frames) and {tracks}: "
          f"{len(summary)} object{'' if len(summary) == 1 else 's'}, over {len(labels)} frames; "
          f"{calibration.describe()}")
    return 0


class _Frames:
    """A reader's frames (their length and frame by frame indexing) as the stack `measure_objects` takes."""

    def __init__(self, frames: Any) -> None:
        self.frames = frames
        first = np.asarray(frames[0])
        self.shape, self.dtype = (len(frames), *first.shape), first.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t: int) -> np.ndarray:
        return np.asarray(self.frames[t])


def register(subparsers: Any) -> None:
    """Add `measure` to the CLI's subcommands."""
    p = subparsers.add_parser("measure", help="measure each object on each frame of a labels stack (area, position, "
                                              "shape, intensity) and summarise it as a track: CSV tables")
    p.add_argument("labels", help="the (T, Y, X) labels: a labels TIFF or a folder of palette PNGs (a propagate "
                                  "output)")
    p.add_argument("-o", "--output", required=True,
                   help="OBJECTS.csv: one row per object per frame; the per-object summary goes beside it as "
                        "OBJECTS.tracks.csv")
    p.add_argument("--video", default=None, help="the video the labels belong to, for the intensity columns (a "
                                                 "TIFF stack, a folder of frames, a movie or an animated GIF)")
    p.add_argument("--tracks", default=None, help="where the per-object summary goes (default: beside -o, "
                                                  "OBJECTS.tracks.csv)")
    p.add_argument("--pixel-size", default=None,
                   help="the pixel size, one number or Y,X (default: the labels TIFF's, else the video's)")
    p.add_argument("--unit", default=None, help="the pixel size's unit, e.g. um (default: the files')")
    p.add_argument("--frame-interval", type=float, default=None,
                   help="the time between frames (default: the labels TIFF's, else the video's)")
    p.add_argument("--time-unit", default=None, help="the frame interval's unit, e.g. min (default: the files', "
                                                     "else s)")
    p.add_argument("--z", type=int, default=None, help="the plane of a (T, Z, Y, X) TIFF stack")
    p.add_argument("--force", action="store_true", help="replace the tables if they exist")
    p.set_defaults(func=cmd_measure)
