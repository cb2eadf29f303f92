"""`napari-vos measure`: a labels stack's objects as CSV tables (one row per object and frame, one per track).

`register(subparsers)` adds the command to the main CLI (cli.py). The reading of labels and videos
is the `overlay` command's, so the same files work (labels TIFFs, PNG folders; TIFF stacks, frame
folders, movies, animated images); the measuring is `napari_vos.object_table`'s. (T, Z, Y, X) labels
TIFFs, which `overlay` takes one plane of (--z), are measured in 3D here (`measure_volumes`), a volume a
frame read plane by plane, with a (T, Z, Y, X) TIFF video for the intensities.
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

from napari_vos.cli_inputs import check_not_an_input, check_not_turned, check_writable, closed_at_end, \
    read_label_stack, read_video, refuse_z_of_flat_labels
from napari_vos.cli_terminal import progress_bar

__all__ = ["cmd_measure", "labels_or_volumes", "labels_record", "register"]


def _check_output(path: Path, inputs: dict[str, str | None], force: bool, flag: str) -> None:
    """A table's name, before anything is read: a .csv name, no input, no table replaced unasked.
    (Its folder is made once the inputs are read: a mistyped labels path leaves no empty folder.)"""
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{flag} {path}: the measurements are a CSV table; name it {path.stem}.csv")
    check_not_an_input(path, inputs, flag=flag, what="table")
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


def labels_record(path: str) -> tuple[Any, dict[str, Any] | None]:
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
        # the files' numbers in another unit: a Z step the files gave in the pixel size's unit (ImageJ's
        # spacing, which has no unit of its own) is in that other unit too, not converted to it
        same = calibration.z_size is not None and calibration.z_unit == calibration.unit
        calibration = replace(calibration, unit=_unit(args.unit))
        if same:
            calibration = replace(calibration, z_unit=calibration.unit)
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
    """The labels file's calibration, with what it lacks (a PNG folder: everything; the Z step of volumes)
    taken from the video."""
    from dataclasses import replace

    if labels.pixel_size is None and video.pixel_size is not None:
        labels = replace(labels, pixel_size=video.pixel_size, unit=video.unit)
    if labels.frame_interval is None and video.frame_interval is not None:
        labels = replace(labels, frame_interval=video.frame_interval, time_unit=video.time_unit)
    if labels.z_size is None and video.z_size is not None:
        labels = replace(labels, z_size=video.z_size, z_unit=video.z_unit)
    return labels


def cmd_measure(args: argparse.Namespace) -> int:
    """`napari-vos measure`: measure each object on each frame, and summarise each object id as a track.
    (T, Z, Y, X) labels (without --z) are measured in 3D, one (Z, Y, X) volume a frame (`_volume_inputs`)."""
    from napari_vos.divisions import parents_from_record
    from napari_vos.object_table import measure_objects, measure_volumes, track_summary, tracks_path, write_tables
    from napari_vos.stopped_runs import stopped_run_note

    out = Path(args.output)
    tracks = Path(args.tracks) if args.tracks else tracks_path(out)
    if tracks.resolve() == out.resolve():  # also as q/../q/x.csv, or through a link
        raise ValueError(f"--tracks {tracks} is the -o table: give the track table another name")
    inputs = {"labels": args.labels, "video": args.video}
    _check_output(out, inputs, args.force, "-o")
    _check_output(tracks, inputs, args.force, "--tracks")
    z_step = _z_step_flag(getattr(args, "z_step", None))
    with ExitStack() as opened:  # the TIFF stacks read frame by frame, closed however the command ends
        volumes = label_volumes(args.labels, args.z, opened)
        if volumes is None:
            labels, video, video_calibration = _plane_inputs(args, opened)
            _refuse_z_step(args, z_step)
        else:
            labels, video, video_calibration = _volume_inputs(args, volumes, opened)
        calibration, record = labels_record(args.labels)
        if video_calibration is not None:
            calibration = _merged(calibration, video_calibration)
        calibration = _given_calibration(args, calibration)
        if volumes is not None:
            calibration = _z_calibration(calibration, z_step)
        for path in (out, tracks):  # the folders made once the inputs are read, before the frames are measured
            check_writable(path, folder=False, what="the table")
        note = stopped_run_note(record, args.labels, "in the tables as well")
        if note:
            print(f"note: {note}", file=sys.stderr)
        if calibration.pixel_size is None:
            print("note: no pixel size in the files: sizes and positions are in pixels only (give --pixel-size and "
                  "--unit for physical ones)", file=sys.stderr)
        measure = measure_objects if volumes is None else measure_volumes
        with progress_bar("measure", len(labels)) as progress:
            objects = measure(labels, video, calibration=calibration, progress=progress)
    summary = track_summary(objects, frames=len(labels), parents=parents_from_record(record))
    write_tables(objects, summary, out, tracks)
    print(f"wrote {out}: {len(objects)} row{'' if len(objects) == 1 else 's'} (objects on frames) and {tracks}: "
          f"{len(summary)} object{'' if len(summary) == 1 else 's'}, over {len(labels)} frames"
          f"{_volume_words(labels, calibration) if volumes is not None else ''}; {calibration.describe()}")
    return 0


def _plane_inputs(args: argparse.Namespace, opened: ExitStack) -> tuple[Any, Any, Any]:
    """(T, Y, X) labels (or --z's plane of a (T, Z, Y, X) stack), the video if given and its calibration
    (None without one), both read frame by frame."""
    if args.video is None:  # with one, --z is the video's plane too, which reading it checks
        refuse_z_of_flat_labels(args.labels, args.z)
    labels = opened.enter_context(closed_at_end(read_label_stack(args.labels, args.z)))
    if args.video is None:
        return _Frames(labels), None, None
    video, video_calibration = read_video(args.video, args.z)
    opened.enter_context(closed_at_end(video))
    check_not_turned(args.video, video, args.labels, (len(labels), *np.shape(labels[0])))
    if len(video) != len(labels):
        raise ValueError(f"the video {args.video} has {len(video)} frames and the labels {args.labels} "
                         f"{len(labels)}: give the video the labels were propagated on")
    return _Frames(labels), _Frames(video), video_calibration


def label_volumes(path: str, z: int | None, opened: ExitStack) -> Any:
    """The (Z, Y, X) volumes of a (T, Z, Y, X) labels TIFF, frame by frame (`_Volumes` over
    `open_tiff_volume_frames`, closed with ``opened``; a napari-vos labels TIFF of one frame or one plane,
    whose file leaves that axis out, read whole: `saved_volume_shape`), or None: --z given (its one
    plane is measured in 2-D), a PNG folder, a file that is no 3D + time TIFF (`read_label_stack` reads
    or refuses those as before). Labels with channels are refused here."""
    import tifffile

    from napari_vos.data.damaged_files import reading
    from napari_vos.data.readers import open_tiff_volume_frames, saved_volume_shape

    where = Path(path)
    if z is not None or where.suffix.lower() not in (".tif", ".tiff") or not where.is_file():
        return None
    planes = open_tiff_volume_frames(where, labels=True)
    if planes is None:
        with reading(where, "a TIFF"), tifffile.TiffFile(where) as tif:
            shape = saved_volume_shape(tif)
            return tif.series[0].asarray().reshape(shape) if shape is not None else None
    opened.callback(planes.close)
    if len(planes.shape) != 4:
        raise ValueError(f"labels {path} holds {planes.shape[-1]} values per voxel, shape {planes.shape} (a colour "
                         "or multi-channel image?); labels hold one object id per voxel: give (T, Z, Y, X) labels")
    return _Volumes(planes)


def labels_or_volumes(path: str, z: int | None, opened: ExitStack) -> Any:
    """The labels `divisions` and `ctc` take, closed with ``opened``: a (T, Z, Y, X) labels TIFF's volumes
    without --z (`label_volumes`), else the (T, Y, X) stack read frame by frame (`read_label_stack`:
    a labels TIFF, --z's plane of one, or a PNG folder)."""
    refuse_z_of_flat_labels(path, z)
    volumes = label_volumes(path, z, opened)
    return volumes if volumes is not None else opened.enter_context(closed_at_end(read_label_stack(path, z)))


def _volume_inputs(args: argparse.Namespace, labels: Any, opened: ExitStack) -> tuple[Any, Any, Any]:
    """(T, Z, Y, X) labels read as volumes (`label_volumes`), and the (T, Z, Y, X[, C]) TIFF video of the
    same shape if given with its calibration (None without one)."""
    if args.video is None:
        return labels, None, None
    video_planes, video_calibration = _video_volumes(args.video, args.labels, labels.shape)
    opened.callback(video_planes.close)
    if video_planes.shape[:4] != labels.shape or len(video_planes.shape) > 5:
        raise ValueError(f"the video {args.video} is {video_planes.shape} but the labels {args.labels} are "
                         f"{labels.shape}: the intensities are measured under the labels, so give the (T, Z, Y, X) "
                         "video they belong to (channels last if it has them)")
    return labels, _Volumes(video_planes), video_calibration


def _video_volumes(path: str, labels_path: str, labels_shape: tuple[int, ...]) -> tuple[Any, Any]:
    """A (T, Z, Y, X[, C]) TIFF video's planes and calibration, for (T, Z, Y, X) labels; a video of any
    other form (a (T, Y, X) stack, a folder of frames, a movie) is refused by name, with both shapes."""
    import tifffile

    from napari_vos.data.calibration import read_tiff_calibration
    from napari_vos.data.damaged_files import reading
    from napari_vos.data.readers import open_tiff_volume_frames

    video = Path(path)
    wanted = (f"the labels {labels_path} are (T, Z, Y, X) {labels_shape}: give the (T, Z, Y, X) TIFF video they "
              "belong to")
    if not video.exists():
        raise ValueError(f"video {path} does not exist; {wanted}")
    if not video.is_file() or video.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"the video {path} is no TIFF stack, so it has no Z planes, but {wanted}")
    calibration = read_tiff_calibration(video)  # first: an error here leaves no file open
    planes = open_tiff_volume_frames(video)
    if planes is None:
        with reading(video, "a TIFF"), tifffile.TiffFile(video) as tif:
            series = tif.series[0]
            shape, axes = tuple(int(n) for n in series.shape), series.axes
        raise ValueError(f"the video {path} is {shape} (axes {axes}), with no Z planes over time, but {wanted}")
    return planes, calibration


def _z_step_flag(value: float | None) -> float | None:
    """--z-step as given: None, or a finite positive step (refused before anything is read)."""
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise ValueError(f"--z-step {value}: give the positive step between Z planes, in the pixel size's unit")
    return value


def _refuse_z_step(args: argparse.Namespace, z_step: float | None) -> None:
    """--z-step beside labels measured in 2-D: (T, Y, X) labels, or --z's one plane, have no Z step to use."""
    if z_step is None:
        return
    how = (f"--z {args.z} measures one plane in 2-D" if args.z is not None
           else f"the labels {args.labels} are no (T, Z, Y, X) TIFF stack")
    raise ValueError(f"--z-step is for (T, Z, Y, X) labels, measured in 3D; {how}: leave out --z-step")


def _z_calibration(calibration: Any, z_step: float | None) -> Any:
    """The calibration of volumes with its Z step in the pixel size's unit: --z-step where given (which
    needs a pixel size), else the files' (a metric one converted; one without a unit taken in the pixel
    size's, as ImageJ's ``spacing`` is), else 1 pixel (the X pixel size) with a note."""
    from dataclasses import replace

    from napari_vos.data.calibration import length_in

    unit, pixel = calibration.unit, calibration.pixel_size
    if z_step is not None:
        if pixel is None:
            raise ValueError(f"--z-step {z_step:g} without a pixel size: give --pixel-size (and --unit) too, the "
                             "Z step being in the pixel size's unit (the files hold none)")
        return replace(calibration, z_size=float(z_step), z_unit=unit)
    if calibration.z_size is None:
        size = f" (a Z step of the X pixel size, {pixel[1]:g} {unit or 'unit'})" if pixel is not None else ""
        print(f"note: no Z step in the files: the Z planes are taken as 1 pixel apart{size}; give --z-step for the "
              "step between planes, in the pixel size's unit", file=sys.stderr)
        return replace(calibration, z_size=pixel[1], z_unit=unit) if pixel is not None else calibration
    z_unit = calibration.z_unit
    z = float(calibration.z_size) if pixel is None or z_unit is None else length_in(calibration.z_size, z_unit, unit)
    if z is not None:
        return replace(calibration, z_size=z, z_unit=unit)
    print(f"note: the files' Z step is in {z_unit} and the pixel size in {unit or 'no unit'}: the volumes and Z "
          "positions in units are left empty; give --z-step in the pixel size's unit", file=sys.stderr)
    return calibration


def _volume_words(labels: Any, calibration: Any) -> str:
    """The end line's words for volumes: " of 40 Z planes (measured in 3D), Z step 2 µm"."""
    step = ""
    if calibration.z_size is not None and calibration.z_unit == calibration.unit and calibration.pixel_size:
        step = f", Z step {calibration.z_size:g} {calibration.unit or 'unit'}"
    return f" of {labels.shape[1]} Z planes (measured in 3D{step})"


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


class _Volumes:
    """A (T, Z, Y, X[, C]) stack's planes (`LazyPlanes`) as the frames `measure_volumes` takes: item t
    is frame t's (Z, Y, X[, C]) volume, read plane by plane into one array (one volume held at a time)."""

    def __init__(self, planes: Any) -> None:
        self.planes = planes
        self.shape = tuple(int(n) for n in planes.shape)
        self.dtype = np.asarray(planes[0]).dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t: int) -> np.ndarray:
        depth = self.shape[1]
        volume = np.empty(self.shape[1:], self.dtype)
        for z in range(depth):
            volume[z] = self.planes[t * depth + z]
        return volume


def register(subparsers: Any) -> None:
    """Add `measure` to the CLI's subcommands."""
    p = subparsers.add_parser("measure", help="measure each object on each frame of a labels stack (area, position, "
                                              "shape, intensity; volumes in 3D) and summarise it as a track: CSV "
                                              "tables")
    p.add_argument("labels", help="the (T, Y, X) or (T, Z, Y, X) labels: a labels TIFF or a folder of palette PNGs (a "
                                  "propagate output); (T, Z, Y, X) labels are measured in 3D, a volume a frame")
    p.add_argument("-o", "--output", required=True,
                   help="OBJECTS.csv: one row per object per frame; the per-object summary goes beside it as "
                        "OBJECTS.tracks.csv")
    p.add_argument("--video", default=None, help="the video the labels belong to, for the intensity columns (a "
                                                 "TIFF stack, a folder of frames, a movie or an animated GIF; for "
                                                 "(T, Z, Y, X) labels the (T, Z, Y, X) TIFF stack)")
    p.add_argument("--tracks", default=None, help="where the per-object summary goes (default: beside -o, "
                                                  "OBJECTS.tracks.csv)")
    p.add_argument("--pixel-size", default=None,
                   help="the pixel size, one number or Y,X (default: the labels TIFF's, else the video's)")
    p.add_argument("--unit", default=None, help="the pixel size's unit, e.g. um (default: the files')")
    p.add_argument("--frame-interval", type=float, default=None,
                   help="the time between frames (default: the labels TIFF's, else the video's)")
    p.add_argument("--time-unit", default=None, help="the frame interval's unit, e.g. min (default: the files', "
                                                     "else s)")
    p.add_argument("--z", type=int, default=None, help="measure this one plane of a (T, Z, Y, X) TIFF stack in 2-D "
                                                       "(without it such a stack is measured in 3D)")
    p.add_argument("--z-step", type=float, default=None,
                   help="the step between Z planes of (T, Z, Y, X) labels, in the pixel size's unit (default: the "
                        "labels TIFF's, else the video's, else 1 pixel)")
    p.add_argument("--force", action="store_true", help="replace the tables if they exist")
    p.set_defaults(func=cmd_measure)
