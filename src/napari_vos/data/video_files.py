"""Movie files (.mp4, .avi, .mov, .mkv ...) as (T, Y, X[, C]) stacks, decoded with PyAV.

A compressed movie stores most frames as differences from earlier ones, so reading frame i alone
means decoding from the key frame before it, and a backward propagation would decode the video
over and over. The file is therefore decoded once, front to back, into an unlinked temporary file
(in ``tempfile.gettempdir()``, i.e. ``TMPDIR``) that is memory-mapped: the stack then reads like
any array, costs disk rather than RAM (unless TMPDIR is a tmpfs RAM disk, as /tmp is on Fedora, Arch
or Debian 13), and its space is freed when the array is released. Grey movies stay grey; grey and RGB
movies of more than 8 bits per sample (16-bit FFV1) come out as uint16, the rest (camera colour
video, 10-bit HEVC included) as 8-bit RGB; an HDR movie (PQ or HLG, phones' default) is tone-mapped
to standard-range sRGB as a player shows it (`napari_vos.data.hdr`); a rotation in the file's
display matrix (phones) is applied.
PyAV is optional (``pip install "napari-vos[video]"``); without it the error says so.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.calibration import Calibration
from napari_vos.data.hdr import HDR_TRANSFERS, REFERENCE_WHITE_NITS, ToneMapper

__all__ = ["VIDEO_SUFFIXES", "HighDynamicRangeMovie", "InterlacedMovie", "MovieCutShort", "MovieNote", "VariableFrameRate", "display_rotation",
           "hdr_transfer_name", "is_video_file", "read_video_file", "turned_labels_problem", "video_file_calibration"]


class MovieNote(UserWarning):
    """What a movie's reader says of frames read as they are but not as a user may expect (the
    command line prints these as notes)."""


class MovieCutShort(MovieNote):
    """A movie that gave fewer frames than it announces (cut off, or stopped by a damaged part): the
    frames it gave are read, and the warning says how many."""


class InterlacedMovie(MovieNote):
    """An interlaced movie (a camcorder's 1080i, DV, broadcast): each frame weaves two fields taken
    at different times, so moving edges are combed, as they are read (no deinterlacing)."""


class HighDynamicRangeMovie(MovieNote):
    """An HDR movie (HLG or PQ transfer, as phones record by default): its frames are tone-mapped to
    standard-range sRGB, as a player shows them (or, with ``tone_map=False``, read as stored, which
    looks flat and dark)."""


class VariableFrameRate(MovieNote):
    """A movie whose frames are unevenly spaced in time (phones and screen recorders record so): the
    output's one frame interval is their average, so frame n is not at n times it."""


#: movie containers read through PyAV (what FFmpeg opens; TIFF and image folders have their own readers):
#: also camcorders' AVCHD (.mts, .m2ts), broadcast and DVD (.ts, .vob, .mxf, .dv) and older phones' .3gp
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".wmv", ".mpg", ".mpeg", ".ogv", ".flv",
                  ".mts", ".m2ts", ".ts", ".3gp", ".3g2", ".mxf", ".dv", ".vob", ".asf", ".y4m")


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a movie file by its suffix."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _pyav(purpose: str = "reading a movie file",
          instead: str = "or turn the movie into frames first, e.g. ffmpeg -i movie.mp4 frames/%05d.png, and give "
                         "the folder") -> Any:
    """PyAV, or a ValueError saying that ``purpose`` needs it, how to install it and, in ``instead``,
    what to do without it."""
    try:
        import av
    except ImportError as err:
        raise ValueError(f"{purpose} needs PyAV: pip install \"napari-vos[video]\" (or pip install av); {instead}") from err
    return av


def _output_format(pixel_format: Any) -> tuple[str, np.dtype]:
    """PyAV's ndarray format and its dtype for a decoded frame's pixel format: grey stays grey, more
    than 8 bits per sample become 16 for grey and RGB formats (a lossless export of measured
    intensities), anything else (camera colour video, 10-bit HEVC included) 8-bit RGB.

    A camera's 10-bit colour movie read as 16-bit RGB was stretched per channel by its percentiles
    and scored 0.6 J&F below the same frames read as 0-255 (docs/benchmarks.md, session 39), and took
    twice the scratch disk (90 GB for a minute of 4K at 30 frames/s)."""
    deep = any(c.bits > 8 for c in pixel_format.components)
    if pixel_format.name.startswith(("gray", "ya")):
        return ("gray16le", np.dtype(np.uint16)) if deep else ("gray", np.dtype(np.uint8))
    return ("rgb48le", np.dtype(np.uint16)) if deep and pixel_format.is_rgb else ("rgb24", np.dtype(np.uint8))


def _rotation(frame: Any) -> int:
    """The counterclockwise quarter turn (0, 90, 180 or 270) a player gives ``frame`` (PyAV's display-
    matrix angle, rounded; 0 where this PyAV reads none)."""
    return int(round(float(getattr(frame, "rotation", 0) or 0) / 90)) % 4 * 90


def _upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as a player shows it: PyAV's rotation is the display matrix's counterclockwise
    angle (0, 90, 180 or 270 here), which np.rot90 turns by (a portrait phone movie is stored
    sideways, turned by 270)."""
    return np.ascontiguousarray(np.rot90(frame, rotation // 90)) if rotation else frame


def _open(av: Any, path: Path) -> Any:
    if not path.exists():
        raise ValueError(f"video {path} does not exist")
    if not path.is_file():  # a pipe would block the read for ever
        raise ValueError(f"video {path} is not a regular file (a pipe or a device)")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read as a movie (damaged, or not a movie?): {err}") from err
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path} holds no video stream (an audio file?)")
    return container


def _picture_stream(container: Any) -> Any:
    """The movie's own video stream, FFmpeg's best one: not a cover picture or preview that tagged MP4s
    and some cameras' files hold as their first video stream (read, it is a one-frame movie)."""
    return container.streams.best("video") or container.streams.video[0]


def _announced_frames(container: Any, stream: Any) -> int:
    """The frame count the file announces: its own, else its picture's duration times its frame rate (0
    where it announces neither). Matroska gives a stream's duration as a DURATION tag; the container's
    duration is the longest stream's, so it stands for the picture's only when the picture is the one
    stream (a recording's sound often runs on after its picture, and was taken for missing frames)."""
    frames = int(stream.frames or 0)
    if not frames and stream.average_rate:
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        else:
            seconds = _tag_seconds((stream.metadata or {}).get("DURATION"))
            if seconds is None:
                alone = len(container.streams) == 1
                seconds = (container.duration or 0) / 1_000_000 if alone else 0.0  # av.time_base: microseconds
        frames = int(seconds * float(stream.average_rate))
    return frames


def _tag_seconds(text: Any) -> float | None:
    """Seconds from a Matroska DURATION tag ("00:01:02.500000000"); None for none or another form."""
    try:
        hours, minutes, seconds = str(text).split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _cut_short_note(path: Path, count: int, announced: int, error: Exception | None) -> str | None:
    """What to say of a movie that gave fewer frames than it should (a decoding error part way, or far
    fewer than announced: a copy or a recording cut off), so a shorter stack is never taken silently;
    None when it gave them all (a duration-based count is approximate: a few frames' slack)."""
    if error is not None:
        why = f"a damaged part after frame {count - 1} stopped the decoder ({error})"
    elif announced - count > max(2, announced // 20):
        why = f"it gives {count} of the {announced} frames it announces (cut off, or damaged?)"
    else:
        return None
    return (f"{path}: {why}; its first {count} frames are read, so the labels cover frames 0-{count - 1} (repair or "
            "re-copy the movie for the rest, or let ffmpeg decode past the damage: ffmpeg -i IN -c:v ffv1 OUT.mkv)")


def _variable_rate_note(path: Path, times: list[float | None], rate: Any) -> str | None:
    """What to say of a movie whose frames' time stamps are unevenly spaced (more than 20 % between the
    shortest and longest gap), as the output records one frame interval, 1 / its average ``rate``; None
    otherwise (or where the stamps are missing or out of order, which say nothing of the spacing)."""
    if len(times) < 3 or any(t is None for t in times):
        return None
    gaps = np.diff(np.asarray(times, dtype=np.float64))
    if not rate or gaps.min() <= 0 or gaps.max() - gaps.min() <= 0.2 * np.median(gaps):
        return None
    return (f"{path} has a variable frame rate: its frames are {gaps.min():.3g} to {gaps.max():.3g} s apart, and the "
            f"output records one frame interval, {1.0 / float(rate):.3g} s (1 / its average rate), so frame n is "
            "not at n times it (for evenly spaced frames re-encode it at a constant rate, e.g. ffmpeg -i IN "
            "-fps_mode cfr -r 30 OUT.mp4, which repeats or drops frames to do so)")


def _interlaced_note(path: Path) -> str:
    """Why an interlaced movie's moving edges come out combed, and the ffmpeg line that deinterlaces
    it first (players do it as they show it; the labels would otherwise follow the combs)."""
    return (f"{path} is interlaced: each frame weaves two fields taken 1/50 or 1/60 s apart, so moving objects "
            "have combed edges, which the labels follow; for clean edges deinterlace it first, e.g. ffmpeg -i IN "
            "-vf bwdif -c:v ffv1 OUT.mkv")


def _hdr_transfer(stream: Any) -> int | None:
    """FFmpeg's number of the movie's HDR transfer (16 PQ, 18 HLG); None for standard video."""
    transfer = int(getattr(stream.codec_context, "color_trc", 0) or 0)
    return transfer if transfer in HDR_TRANSFERS else None


def _hdr_note(path: Path, transfer: int, tone_mapped: bool) -> str:
    """What was done with an HDR movie's frames: tone-mapped as a player shows them, or, where that was
    turned off, read as stored (flat and dark) with the ffmpeg line that makes a standard-range copy."""
    what = f"{path} is HDR video ({HDR_TRANSFERS[transfer]} transfer, as phones record by default)"
    if tone_mapped:
        return (f"{what}: its frames are tone-mapped to standard-range sRGB as a player shows them (BT.2100 to "
                f"BT.709, light up to 3/4 of the {REFERENCE_WHITE_NITS:.0f}-nit reference white kept, brighter "
                "light rolled off towards white); read_video_file(path, tone_map=False) gives the codes as stored")
    return (f"{what}: its frames are read as stored, without tone mapping, so they look flatter or darker than a "
            "player shows them, which weakens the propagation (docs/benchmarks.md); for a standard-range copy: "
            "ffmpeg -i IN -vf zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable,"
            "zscale=t=bt709:m=bt709:r=tv,format=yuv420p -c:v libx264 -crf 18 OUT.mp4")


def read_video_file(path: str | os.PathLike, scratch: str | os.PathLike | None = None,
                    tone_map: bool = True) -> np.ndarray:
    """Decode a movie file into a read-only, memory-mapped (T, Y, X) or (T, Y, X, 3) array.

    ``scratch``: the folder of the temporary file (default ``tempfile.gettempdir()``). A movie whose
    decoded frames would not fit there is refused before decoding; one whose frames change size part
    way is refused at the frame that does. A movie cut off, or with a damaged part, gives the frames
    before it, with a `MovieCutShort` warning saying how many; an interlaced one is read as it is
    stored, with an `InterlacedMovie` warning; one with unevenly spaced frames, with a
    `VariableFrameRate` warning; an HDR one (PQ or HLG) is tone-mapped to 8-bit sRGB as a player
    shows it, or with ``tone_map=False`` read as stored, with a `HighDynamicRangeMovie` warning
    either way. The array's ``display_rotation`` is the counterclockwise turn applied (0, 90, 180 or 270).
    """
    av = _pyav()
    path = Path(path)
    folder = Path(scratch) if scratch is not None else Path(tempfile.gettempdir())
    container = _open(av, path)
    try:
        stream = _picture_stream(container)
        stream.thread_type = "AUTO"
        with tempfile.TemporaryFile(dir=folder) as store:
            shape, dtype, count, stopped, times = None, None, 0, None, []
            announced = _announced_frames(container, stream)
            try:
                for frame in container.decode(stream):
                    if shape is None:  # frame 0 sets the format, the turn and the size of them all
                        (fmt, dtype), rotation = _output_format(frame.format), _rotation(frame)
                        if frame.interlaced_frame:
                            warnings.warn(_interlaced_note(path), InterlacedMovie, stacklevel=2)
                        transfer = _hdr_transfer(stream)
                        tone_mapper = _tone_mapper(transfer, fmt) if tone_map else None
                        if transfer is not None:
                            warnings.warn(_hdr_note(path, transfer, tone_mapper is not None), HighDynamicRangeMovie,
                                          stacklevel=2)
                    if tone_mapper is not None:
                        pixels = _upright(tone_mapper(frame.to_ndarray(format="rgb48le")), rotation)
                    else:
                        pixels = _upright(frame.to_ndarray(format=fmt), rotation)
                    if shape is None:
                        shape = pixels.shape
                        _check_room(path, folder, announced * pixels.nbytes)
                    elif pixels.shape != shape:
                        raise ValueError(f"{path}: frame {count} is {pixels.shape[1]} x {pixels.shape[0]} pixels, "
                                         f"frame 0 {shape[1]} x {shape[0]}; napari-vos needs one size for all "
                                         "frames (re-encode it at one size, e.g. ffmpeg -i IN -vf scale=W:H OUT)")
                    store.write(pixels.tobytes())
                    times.append(frame.time)
                    count += 1
            except av.FFmpegError as err:
                if not count:
                    raise ValueError(f"{path} cannot be decoded (damaged, or a codec this FFmpeg lacks?): {err}") from err
                stopped = err  # the frames before a damaged part are kept, and said
            except OSError as err:
                raise _filled_up(err, path, folder, count) from err
            if not count:
                raise ValueError(f"{path} holds no decodable frames")
            try:  # the last buffered bytes may be what finds the disk full
                store.flush()
            except OSError as err:
                raise _filled_up(err, path, folder, count) from err
            note = _cut_short_note(path, count, announced, stopped)
            if note:
                warnings.warn(note, MovieCutShort, stacklevel=2)
            uneven = _variable_rate_note(path, times, stream.average_rate)
            if uneven:
                warnings.warn(uneven, VariableFrameRate, stacklevel=2)
            frames = np.memmap(store, dtype=dtype, mode="r", shape=(count, *shape))
            frames.display_rotation = rotation  # for a reader's note: napari's own reader leaves it out
            return frames
    finally:
        container.close()


def _tone_mapper(transfer: int | None, fmt: str) -> ToneMapper | None:
    """The tone mapper of an HDR colour movie, whose frames are then decoded to 16-bit RGB for it
    (the codes' full precision) and come out 8-bit (``fmt`` rgb24); None for standard or grey video."""
    return ToneMapper(transfer) if transfer is not None and fmt == "rgb24" else None


def _filled_up(err: OSError, path: Path, folder: Path, count: int) -> Exception:
    """A full scratch disk (ENOSPC, EDQUOT) as a ValueError naming the folder and what to do; another
    OSError as it is."""
    if err.errno in (28, 122):
        return ValueError(f"{path}: the scratch folder {folder} filled up after {count} decoded frames; set TMPDIR "
                          "to a disk with more room")
    return err


def _check_room(path: Path, folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed and needed > free:
        raise ValueError(f"{path} decodes to about {needed / 2**30:.1f} GiB of frames, more than the "
                         f"{free / 2**30:.1f} GiB free in {folder}, where they are kept while napari-vos reads "
                         "them: set TMPDIR to a disk with room, or cut the movie first (ffmpeg -ss START -t "
                         "SECONDS, or -vf scale=-2:480 for smaller frames)")


def display_rotation(path: str | os.PathLike) -> int:
    """The counterclockwise turn (0, 90, 180 or 270) a player gives a movie's frames, from its first
    frame, without decoding the rest (what `read_video_file` applies and napari's reader leaves out)."""
    av = _pyav()
    container = _open(av, Path(path))
    try:
        frame = next(container.decode(_picture_stream(container)), None)
    except av.FFmpegError as err:  # a damaged first frame, or a codec this FFmpeg lacks
        raise ValueError(f"{path} cannot be decoded (damaged, or a codec this FFmpeg lacks?): {err}") from err
    finally:
        container.close()
    return _rotation(frame) if frame is not None else 0


def hdr_transfer_name(path: str | os.PathLike) -> str | None:
    """The HDR transfer a movie declares ("PQ (HDR10)" or "HLG"), read from its header without decoding
    (for a note where napari's own reader shows the codes as stored); None for standard video."""
    av = _pyav()
    container = _open(av, Path(path))
    try:
        transfer = _hdr_transfer(_picture_stream(container))
    finally:
        container.close()
    return HDR_TRANSFERS[transfer] if transfer is not None else None


def video_file_calibration(path: str | os.PathLike) -> Calibration:
    """A movie's time between frames in seconds (1 / its average frame rate); no pixel size (a movie
    file records none)."""
    av = _pyav()
    container = _open(av, Path(path))
    try:
        rate = _picture_stream(container).average_rate
    finally:
        container.close()
    return Calibration(frame_interval=round(1.0 / float(rate), 12), time_unit="s") if rate else Calibration()


def turned_labels_problem(movie: str | os.PathLike, frames: Any, labels: str | os.PathLike | None,
                          label_shape: Any) -> str | None:
    """Why labels of a turned movie's frames as stored (painted in napari, whose reader shows them so)
    do not fit the upright frames read here, with the two ways out; None when ``label_shape``'s last
    two sides are not the upright frames' swapped (a 180-degree turn or square frames keep the shape)."""
    rotation = int(getattr(frames, "display_rotation", 0) or 0)
    upright = tuple(int(n) for n in np.shape(frames)[1:3])
    sides = tuple(int(n) for n in tuple(label_shape)[-2:])
    if rotation not in (90, 270) or upright[0] == upright[1] or sides != upright[::-1]:
        return None
    return (f"the labels {labels} are {sides[1]} x {sides[0]} pixels, the frames of {movie} as stored, sideways (as "
            f"napari's reader shows them), but napari-vos reads the movie upright, {upright[1]} x {upright[0]}, as "
            f"players show it (a display rotation of {rotation} degrees): turn the labels upright first, e.g. "
            f"np.rot90(labels, {rotation // 90}, axes=(-2, -1)), or make an upright copy of the movie (ffmpeg -i IN "
            "-c:v libx264 -crf 18 OUT.mp4 applies the turn) and paint and propagate on that")
