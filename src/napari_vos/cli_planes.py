"""`napari-vos propagate --z painted` (or ``--z 2,5``): runs through several Z planes of a (T, Z, Y, X) TIFF
stack into one (T, Z, Y, X) labels TIFF.

The methods are 2-D: each plane's painted objects are followed through time on that plane by a run of
its own (its annotations, start frame, test-time learning), one plane after another, as the widget's
"every painted Z plane" runs them. Every plane's labels go, frame by frame as they finish, into one
memory-mapped partial file (`PartialLabels`, as a one-plane run's do); the output is written from it
when the last plane ends or a run stops, with the Z step and the record of the planes
(`planes_run_record`), so napari-vos opens it as the widget's output of the same runs. The partial
file's record names each plane as it ends, so a stopped run's output and a killed one's partial file
can both be gone on from with ``--resume`` (`plane_resume`): the planes they hold finished are kept.
"""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from napari_vos.checks import frame_ranges
from napari_vos.cli_inputs import check_not_an_input, check_writable, read_labels, read_video
from napari_vos.cli_overlay import check_run_overlay, write_plane_montage
from napari_vos.cli_propagate import check_maps_folder, inputs_record, run_keeping_frames, run_record, \
    session_options, stopped_path
from napari_vos.cli_terminal import say
from napari_vos.plane_records import PAINTED

__all__ = ["PAINTED", "planes_or_word", "propagate_planes", "runs_several_planes", "z_planes_arg"]


def runs_several_planes(z: Any) -> bool:
    """Whether ``--z`` (as `z_planes_arg` parsed it) asks for runs through several planes."""
    return z == PAINTED or isinstance(z, list)


def z_planes_arg(text: str) -> int | str | list[int]:
    """``propagate --z``: one Z plane ("3"), the planes painted in the labels ("painted"), or a list of
    planes ("2,5", "2-5"), each once in order."""
    return planes_or_word(text, PAINTED)


def planes_or_word(text: str, word: str) -> int | str | list[int]:
    """A ``--z`` of one Z plane ("3", an int), a list of planes ("2,5", "2-5": each once in order) or the
    command's ``word`` for a set of planes (propagate's "painted", overlay's "all"); argparse's error
    otherwise."""
    from napari_vos.checks import frames_in_ranges

    words = text.strip()
    if words.lower() == word:
        return word
    try:
        planes = frames_in_ranges(words)
    except ValueError:
        planes = []
    if not planes:
        raise argparse.ArgumentTypeError(f"--z takes a Z plane (3), a list of planes (2,5 or 2-5) or "
                                         f"'{word}', got {text!r}")
    return planes[0] if words.isdigit() else sorted(set(planes))


def _z_flag(args: argparse.Namespace) -> str:
    """--z as given for several planes, for the messages: "--z painted", "--z 1,3"."""
    return f"--z {args.z if args.z == PAINTED else ','.join(map(str, args.z))}"


def _refuse_options(args: argparse.Namespace) -> None:
    """What runs through several planes do not take, said before anything is read."""
    several = _z_flag(args)
    if args.labels is None:
        raise ValueError(f"{several} runs through the Z planes painted in a (T, Z, Y, X) labels TIFF: give the labels")
    if Path(args.output).suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"{several} writes (T, Z, Y, X) labels, which a folder of PNGs cannot hold: give an output "
                         "name ending in .tif")
    if getattr(args, "keep_other_frames", False):
        raise ValueError(f"--keep-other-frames continues one plane's labels stack: give one plane (--z N) with it, "
                         f"not {several}")


def _asked_planes(args: argparse.Namespace, volumes: Any) -> tuple[dict[int, list[int]], int]:
    """The planes --z names (the painted ones for "painted"), each holding paint (at --frame, if given), with
    their painted frames, and the largest id."""
    from napari_vos.data.label_types import painted_plane_frames

    painted, top = painted_plane_frames(volumes)
    depth = int(volumes.shape[1])
    if not painted:
        raise ValueError(f"the labels {args.labels} are empty on every Z plane: paint at least one object")
    asked = list(painted) if args.z == PAINTED else list(args.z)
    outside = [z for z in asked if z >= depth]
    if outside:
        raise ValueError(f"--z names plane(s) {', '.join(map(str, outside))}, but the labels {args.labels} have "
                         f"{depth} Z planes (0-{depth - 1})")
    empty = [z for z in asked if z not in painted]
    if empty:
        raise ValueError(f"the labels {args.labels} hold nothing on Z plane(s) {', '.join(map(str, empty))}; they "
                         f"hold objects on plane(s) {frame_ranges(list(painted))} (--z {PAINTED} runs through those)")
    unpainted = [z for z in asked if args.frame is not None and args.frame not in painted[z]]
    if unpainted:
        raise ValueError(f"--frame {args.frame} is the frame every plane's run starts from, but Z plane(s) "
                         f"{', '.join(map(str, unpainted))} hold nothing there; leave --frame out (each plane starts "
                         "from its first painted frame) or give the planes painted there")
    return {z: painted[z] for z in asked}, top


def _checked_video_calibration(args: argparse.Namespace, labels_shape: tuple[int, ...]) -> Any:
    """The video's calibration, once its (T, Z, Y, X) is checked against the labels'."""
    from napari_vos.data.frames import FrameSource
    from napari_vos.data.readers import tiff_z_planes

    frames, calibration = read_video(args.video, 0)  # refuses what has no Z planes (a movie, a folder)
    try:
        source = FrameSource(frames, channels=None)
        shape = (source.n_frames, tiff_z_planes(args.video), *source.frame_shape)
    finally:
        frames.close()
    if shape != tuple(labels_shape):
        raise ValueError(f"the video {args.video} is {shape} (T, Z, Y, X) but the labels {args.labels} are "
                         f"{tuple(labels_shape)}: give the labels painted over this video")
    return calibration


def propagate_planes(args: argparse.Namespace) -> int:
    """`propagate` through the Z planes --z names: check, run each plane (those --resume's file does not hold
    finished), write, report."""
    from napari_vos.cli_objects import label_volumes
    from napari_vos.data.partial_labels import PartialLabels
    from napari_vos.plane_resume import kept_planes, planes_and_left, planes_note

    _refuse_options(args)
    output = Path(args.output)
    check_not_an_input(output, {"video": args.video, "labels": args.labels})
    check_writable(output, folder=False)
    if args.overlay is not None:  # its name, and PyAV for a movie, before the run
        check_run_overlay(args)
    with ExitStack() as opened:
        volumes = label_volumes(args.labels, None, opened)
        if volumes is None:
            raise ValueError(f"{_z_flag(args)} reads (T, Z, Y, X) labels painted over the video's Z planes; "
                             f"{args.labels} is no such TIFF (for one plane's labels give that plane: --z N)")
        painted, top = _asked_planes(args, volumes)
        shape = tuple(int(n) for n in volumes.shape)
    kept = kept_planes(args.resume, shape, args.method) if args.resume else None
    planes, left = planes_and_left(list(painted), kept.records if kept else {}, f"--resume {args.resume}")
    calibration = _checked_video_calibration(args, shape)
    if args.maps:
        for z in left:
            check_maps_folder(args, Path(args.maps) / f"z{z}")
    options = session_options(args)
    if kept:
        print(planes_note(kept, list(painted)), file=sys.stderr)
    print(f"Z planes {frame_ranges(left)}: each propagated through time by a run of its own", file=sys.stderr)
    partial = PartialLabels(args.output, shape, max(top, kept.top if kept else 0, 1), calibration,
                            {"method": args.method, "z_planes_asked": planes})
    try:
        if kept:
            kept.copy_into(partial.labels)
    except BaseException:
        partial.remove()
        raise
    return _run_planes(args, {z: painted[z] for z in left}, planes, top, calibration, options, partial, kept)


def _runs_record(records: dict[int, dict[str, Any]], planes: list[int], latest: int, kept: Any) -> dict[str, Any]:
    """The record of the planes run and kept (`planes_run_record`), naming the file kept planes came from."""
    from napari_vos.plane_records import planes_run_record

    record = planes_run_record(records, planes, latest)
    if kept is not None:
        record["resumed_from"] = {"file": str(kept.path.resolve()), "z_planes_kept": sorted(kept.records)}
    return record


def _run_planes(args: argparse.Namespace, painted: dict[int, list[int]], planes: list[int], top: int,
                calibration: Any, options: dict[str, Any], partial: Any, kept: Any) -> int:
    """Run each plane of ``painted`` (its painted frames) into its plane of ``partial``, then write the output
    of ``planes`` (those run and those ``kept``, a `KeptPlanes` or None) and say what was done. The partial
    file's record names each plane as it ends, so a killed run's file can be gone on from (--resume)."""
    from napari_vos.session import annotated_session

    to_run = list(painted)
    records: dict[int, dict[str, Any]] = dict(kept.records) if kept else {}
    latest = None  # the last plane this run ran
    maps: list[Path] = []
    stop: BaseException | None = None
    stopped = (None, [], 0)  # the plane a stop came in, its finished frames, its planned frames
    devices = set()
    for i, z in enumerate(to_run):
        print(f"Z plane {z} ({i + 1} of {len(to_run)})", file=sys.stderr)
        with ExitStack() as opened:
            try:
                labels = read_labels(args.labels, z)
                opened.callback(labels.close)
                video, _ = read_video(args.video, z)
                opened.callback(video.close)
                session, start = annotated_session(video, labels, method=args.method, frame=args.frame,
                                                   device=args.device, checkpoint=args.checkpoint,
                                                   maps=bool(args.maps), out=partial.labels[:, z], painted=painted[z],
                                                   **options)
                if args.maps:
                    from napari_vos.data.map_tiffs import MapTiffs

                    session.maps_out = MapTiffs(Path(args.maps) / f"z{z}", calibration, session)
                if kept:  # once its checkpoint is loaded, before it starts
                    session.check_method = lambda built: kept.check_same_run(built.result().provenance(), args.direction)
                if latest is None:  # what a killed run's file says of it before its first plane ends
                    earlier = _runs_record(records, planes, max(records), kept) if records else {}
                    partial.describe({**earlier, **session.result().provenance(), **inputs_record(args),
                                      "z_planes_asked": planes, "direction": args.direction})
                finished, stop = run_keeping_frames(session, args.direction, start)
            except (KeyboardInterrupt, Exception) as err:  # nothing of this plane segmented
                if latest is None:  # nor of any other this run ran: the --resume file is all there is
                    partial.remove()
                    if isinstance(err, ValueError) and len(to_run) > 1:
                        raise ValueError(f"Z plane {z}: {err}") from err
                    raise
                stop, stopped = err, (z, [], 0)
                break
            record = {**run_record(args, session.result().provenance(), finished, stop, None), "z_plane": z}
            records[z], latest = record, z
            devices.add(str(session.result().device))
            if session.maps_out is not None:
                maps += session.maps_out.close(record)
            if stop is not None:
                stopped = (z, finished, session.planned_frames)
            else:
                partial.describe(_runs_record(records, planes, z, kept))
            del session
        if stop is not None:
            break
    return _write_output(args, planes, _runs_record(records, planes, latest, kept), stop, stopped, top, calibration,
                         partial, maps, devices)


def _write_output(args: argparse.Namespace, planes: list[int], record: dict[str, Any], stop: BaseException | None,
                  stopped: tuple[Any, list[int], int], top: int, calibration: Any, partial: Any, maps: list[Path],
                  devices: set[str]) -> int:
    """Write the planes' labels from ``partial`` with their ``record`` (a stopped run's beside an earlier
    output, unless that is the --resume file, whose finished planes it holds too) and say so."""
    from napari_vos.data.partial_labels import how_to_use
    from napari_vos.data.writers import label_dtype, labels_tiff_is_imagej, write_tiff_labels
    from napari_vos.plane_resume import finished_planes

    output = Path(args.output)
    if stop is not None:
        record.update(complete=False, stopped_by="interrupt" if isinstance(stop, KeyboardInterrupt) else repr(stop))
    top_id = max([top, *record["object_ids"]])
    going_on = args.resume is not None and output.is_file() and Path(args.resume).is_file() \
        and os.path.samefile(output, args.resume)
    written_to = stopped_path(output) if stop is not None and output.is_file() and not going_on else output
    shape = tuple(partial.labels.shape)
    try:
        partial.close(record)
        write_tiff_labels(written_to, partial.labels, calibration=calibration, provenance=record, max_id=top_id)
    except KeyboardInterrupt:
        partial.release()
        say(f"napari-vos propagate: interrupted while writing {written_to}; the labels are kept in {partial.path}: "
             f"{how_to_use(written_to)} to use it, or delete it to run again")
        return 130
    except BaseException:
        partial.release()
        say(f"the labels are kept in {partial.path} (an uncompressed TIFF with the run's record)")
        raise
    partial.labels = None
    partial.remove()
    for path in maps:
        print(f"wrote {path}: the method's {path.stem} map of Z plane {path.parent.name[1:]}")
    done = finished_planes(record)
    if stop is not None:
        z, finished, planned = stopped
        part = f" and Z plane {z}'s finished frames ({frame_ranges(finished)})" if finished else ""
        say(f"stopped in Z plane {z}" + (f" after {len(finished)} of {planned} frames" if planned else "") +
             f"; wrote Z plane(s) {frame_ranges(done) or 'none'}{part} to {written_to}, the others empty" +
             ("; " + f"{output} from an earlier run is kept as it was" if written_to != output else "") +
             f"; to run the planes left ({frame_ranges([p for p in planes if p not in done])}) into it, give the same "
             f"command with --resume {written_to}")
        if isinstance(stop, KeyboardInterrupt):
            return 130
        raise stop
    step = ""
    if calibration.z_size is not None and labels_tiff_is_imagej(shape, label_dtype(top_id)):
        step = f"; kept the Z step ({calibration.z_size:g} {calibration.z_unit or 'pixel'})"
    resumed = record.get("resumed_from")
    kept = f" ({frame_ranges(resumed['z_planes_kept'])} kept from {args.resume})" if resumed else ""
    print(f"wrote {args.output}: {shape} labels, {len(record['object_ids'])} object(s) propagated on Z planes "
          f"{frame_ranges(planes)}{kept}, {record['fps']:.2f} frames/s on {', '.join(sorted(devices))}{step}")
    if args.overlay is not None:  # the planes run, side by side, as `napari-vos overlay --z LIST` draws them
        write_plane_montage(args.video, args.output, planes, Path(args.overlay), None, calibration=calibration)
    return 0
