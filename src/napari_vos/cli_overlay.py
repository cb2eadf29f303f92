"""`napari-vos overlay`: a labels stack drawn over its video as a movie or a GIF, one Z plane or
several side by side. `register(subparsers)` adds the command to the main CLI (cli.py); propagate's
--overlay draws with `write_plane_montage` too."""
from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.checks import frame_ranges
from napari_vos.cli_inputs import check_not_an_input, check_not_turned, check_writable, closed_at_end, \
    read_label_stack, read_video
from napari_vos.cli_terminal import progress_bar
from napari_vos.data.damaged_files import reading

__all__ = ["register", "cmd_overlay", "check_overlay_name", "write_plane_montage"]


def check_overlay_name(out: Path, inputs: dict[str, str | None], flag: str = "-o") -> None:
    """An overlay's name, before anything is decoded: a movie or GIF suffix, and never an input file."""
    from napari_vos.data.overlay_movies import OVERLAY_SUFFIXES

    if out.suffix.lower() not in OVERLAY_SUFFIXES:
        raise ValueError(f"{flag} {out}: give the overlay a movie name ending in {', '.join(OVERLAY_SUFFIXES)}")
    check_not_an_input(out, inputs, flag=flag, what="overlay")


def _playback_fps(video_path: str, calibration: Any, fps: float | None) -> float:
    """The overlay's frames per second: ``fps`` if given, else `playback_fps`'s rule: a movie's or
    animated image's own rate, another video's where its frames are at most a second apart, else 10
    (a time-lapse's interval, minutes, is no playback rate)."""
    if fps is not None:
        return fps
    from napari_vos.data.animated_images import is_animated_image
    from napari_vos.data.overlay_movies import playback_fps
    from napari_vos.data.video_files import is_video_file

    return playback_fps(calibration, played=is_video_file(video_path) or is_animated_image(video_path))


def _overlay_planes_arg(text: str) -> int | str | list[int]:
    """``overlay --z``: one Z plane ("3"), several ("2,5", "2-5") or all of them ("all")."""
    from napari_vos.cli_planes import planes_or_word
    from napari_vos.data.plane_montage import MONTAGE

    return planes_or_word(text, MONTAGE)


def cmd_overlay(args: argparse.Namespace) -> int:
    """`napari-vos overlay`: draw a labels stack over its video as an H.264 movie or a GIF."""
    from napari_vos.data.overlay_movies import rate_words, write_overlay_movie

    out = Path(args.output)  # checked before the video is decoded (minutes, for a long movie)
    check_overlay_name(out, {"video": args.video, "labels": args.labels})
    if out.exists() and not args.force:  # --force replaces an earlier overlay, never the movie drawn over
        raise ValueError(f"{out} exists; give another name or --force to replace it")
    if args.z is not None and not isinstance(args.z, int):
        write_plane_montage(args.video, args.labels, args.z, out, args.fps, args.alpha)
        return 0
    with ExitStack() as opened:  # the TIFF stacks read frame by frame, closed however the command ends
        labels = opened.enter_context(closed_at_end(read_label_stack(args.labels, args.z)))  # before the movie
        video, calibration = read_video(args.video, args.z)
        opened.enter_context(closed_at_end(video))
        check_writable(out, folder=False, what="the overlay")  # its folder made once the inputs are read
        check_not_turned(args.video, video, args.labels, (len(labels), *np.shape(labels[0])))
        fps = _playback_fps(args.video, calibration, args.fps)
        with progress_bar("overlay", len(labels)) as progress:
            write_overlay_movie(out, video, labels, fps, alpha=args.alpha, progress=progress)
    print(f"wrote {out}: {len(labels)} frames at {rate_words(out, fps)}")
    return 0


def write_plane_montage(video_path: str, labels_path: str, asked: str | list[int], out: Path, fps: float | None,
                         alpha: float = 0.45, calibration: Any = None) -> None:
    """The overlay of several Z planes side by side (`plane_montage`): the (T, Z, Y, X) labels TIFF
    ``labels_path`` over the (T, Z, Y, X[, C]) TIFF stack ``video_path``, the planes ``asked`` for;
    ``calibration``: the video's, where the caller read it already (else read here)."""
    from napari_vos.data.calibration import read_tiff_calibration
    from napari_vos.data.overlay_movies import rate_words, write_overlay_movie
    from napari_vos.data.plane_montage import montage_gaps, montage_grid, plane_montage, planes_to_draw
    from napari_vos.data.readers import open_tiff_volume_frames

    with ExitStack() as opened:
        stacks = []
        for path, what in ((labels_path, "labels"), (video_path, "video")):
            if not Path(path).is_file():
                raise ValueError(f"{what} {path} is no file: --z with several planes draws a (T, Z, Y, X) TIFF stack")
            with reading(Path(path), "a TIFF"):
                stack = open_tiff_volume_frames(path, labels=what == "labels")
            if stack is None:
                raise ValueError(f"{what} {path} is no 3D + time TIFF stack (T, Z, Y, X): --z with several planes draws "
                                 "those; give one plane (--z N) of another stack")
            stacks.append(opened.enter_context(closed_at_end(stack)))
        labels, video = stacks
        plane = np.shape(labels[0])  # each [i] reads a plane from the file: read once
        if labels.volume != video.volume or plane != np.shape(video[0])[:2]:  # labels with channels too
            raise ValueError(f"the labels {labels_path} are {labels.shape} (T, Z, Y, X) but the video {video_path} is "
                             f"{video.shape}: give the labels propagated on this video")
        times, depth = labels.volume
        planes = planes_to_draw(asked, depth, f"the labels {labels_path}")
        check_writable(out, folder=False, what="the overlay")
        rows, columns = montage_grid(len(planes), plane)
        tiles = [plane_montage(lambda t, z, s=s: s[t * depth + z], times, planes, fill_median=s is video)
                 for s in (labels, video)]
        rate = _playback_fps(video_path, read_tiff_calibration(video_path) if calibration is None else calibration, fps)
        with progress_bar("overlay", times) as progress:
            write_overlay_movie(out, tiles[1], tiles[0], rate, alpha=alpha, progress=progress,
                                white=montage_gaps(len(planes), plane))
    print(f"wrote {out}: {times} frames at {rate_words(out, rate)}, Z planes {frame_ranges(planes)} side by side in "
          f"{rows} row(s) of {columns}, row by row")


def register(sub: Any) -> None:
    """Add `napari-vos overlay` to the main parser's subcommands."""
    p = sub.add_parser("overlay", help="draw a labels stack over its video as a movie (.mp4) or a GIF, to watch or "
                                       "show a result")
    p.add_argument("video", help="the video the labels belong to (a TIFF stack, a folder of frames, a movie or an "
                                 "animated GIF)")
    p.add_argument("labels", help="its (T, Y, X) labels: a labels TIFF or a folder of palette PNGs (a propagate "
                                  "output)")
    p.add_argument("-o", "--output", required=True, help="OUT.mp4 (or .mkv, .mov): H.264, needs PyAV (pip install "
                                                         "\"napari-vos[video]\"); OUT.gif: a looping GIF (256 "
                                                         "colours a frame, each frame stored whole: for short "
                                                         "clips)")
    p.add_argument("--alpha", type=float, default=0.45,
                   help="how strongly objects are tinted, 0 (outlines only) to 1 (solid); default 0.45")
    p.add_argument("--fps", type=float, default=None,
                   help="playback frames per second (default: a movie's own rate, else 10)")
    p.add_argument("--z", type=_overlay_planes_arg, default=None,
                   help="the plane of a (T, Z, Y, X) TIFF stack to draw (3), or several side by side in a grid, "
                        "row by row: a list (2,5 or 2-5) or 'all'")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=cmd_overlay)


def check_run_overlay(args: argparse.Namespace) -> None:
    """propagate --overlay, before the run: its name, PyAV for a movie (not found missing only after
    the labels are written), not inside the PNG folder -o names (a later run into that folder would
    refuse it as a file napari-vos did not write), and its folder writable."""
    out = Path(args.overlay)
    check_overlay_name(out, {"video": args.video, "labels": args.labels}, flag="--overlay")
    if out.suffix.lower() != ".gif":
        from napari_vos.data.video_files import _pyav

        _pyav(f"--overlay {out} (an H.264 movie)", f"or give --overlay {out.with_suffix('.gif')}, a GIF, which needs none")
    output = Path(args.output)
    if output.suffix.lower() not in (".tif", ".tiff") and output.resolve() in out.resolve().parents:
        raise ValueError(f"--overlay {out} is inside the folder of PNG labels -o {output}, which holds napari-vos's "
                         f"frames alone: give a name beside it, such as --overlay {output.parent / out.name}")
    check_writable(out, folder=False, what="the overlay")


def write_run_overlay(args: argparse.Namespace, video: Any, calibration: Any) -> None:
    """propagate --overlay: the labels just written, drawn over the video (as `napari-vos overlay` draws them)."""
    from napari_vos.data.overlay_movies import rate_words, write_overlay_movie

    out = Path(args.overlay)
    fps = _playback_fps(args.video, calibration, None)
    with closed_at_end(read_label_stack(args.output, None)) as labels, \
            progress_bar("overlay", len(labels)) as progress:
        write_overlay_movie(out, video, labels, fps, progress=progress)
    print(f"wrote {out}: the labels drawn over the video, {len(labels)} frames at {rate_words(out, fps)}")
