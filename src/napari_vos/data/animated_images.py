"""Animated images (GIF, animated PNG and WebP) as (T, Y, X[, 3]) stacks, read with Pillow.

Short clips travel as GIFs (slides, papers' supplements, some microscope software's exports), and a
GIF is no movie container FFmpeg needs to open: Pillow, already a dependency, reads the three
formats and composes each frame from the ones before it (a GIF frame may repaint only a part), so
no PyAV is needed. The frames are held in memory, as such clips are small. Frames whose three
channels are equal in all frames (a grey GIF) come out grey; the display time of the frames
becomes the frame interval. ``write_animated_gif`` writes an overlay as a GIF, to show on a slide.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_vos.data.calibration import Calibration
from napari_vos.data.damaged_files import reading

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ANIMATED_SUFFIXES", "animated_image_calibration", "is_animated_image", "read_animated_clip",
           "read_animated_image", "write_animated_gif"]

#: suffixes always read as animated images; a .png is one when it holds more than one frame (APNG)
ANIMATED_SUFFIXES = (".gif", ".apng", ".webp")


def is_animated_image(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an animated image: a .gif, .apng or .webp by its suffix, or a .png file
    that holds more than one frame (an animated PNG saved as .png)."""
    suffix = Path(path).suffix.lower()
    if suffix in ANIMATED_SUFFIXES:
        return True
    if suffix != ".png" or not Path(path).is_file():
        return False
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except (OSError, UnidentifiedImageError):
        return False


#: Pillow's modes of a 16-bit grey PNG (an APNG from a microscope or a camera): read as uint16, not
#: converted to RGB, which clips every value above 255 to white
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")


def read_animated_image(path: str | os.PathLike) -> np.ndarray:
    """The frames of an animated GIF, PNG or WebP as a uint8 (T, Y, X, 3) array, or (T, Y, X) when
    every frame is grey; a 16-bit grey APNG as uint16 (T, Y, X), its values kept. A ValueError names
    the file when it cannot be read or holds one frame only."""
    return read_animated_clip(path)[0]


def read_animated_clip(path: str | os.PathLike) -> tuple[np.ndarray, Calibration]:
    """`read_animated_image`'s frames and `animated_image_calibration`'s frame interval from one pass
    over the file (each frame's display time is known once it is decoded: a second pass decoded a
    WebP again)."""
    from PIL import Image, ImageSequence

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"video {path} does not exist")
    frames, durations = [], []
    with _reading(path):
        with Image.open(path) as image:
            _check_memory(path, getattr(image, "n_frames", 1) * image.width * image.height * 3)
            for frame in ImageSequence.Iterator(image):
                frames.append(_frame_array(frame))  # decodes it: its display time is set
                durations.append(frame.info.get("duration"))
    return _stacked(path, frames), _interval(durations)


def _stacked(path: Path, frames: list[np.ndarray]) -> np.ndarray:
    """The decoded frames as one stack: 16-bit grey kept, all-grey RGB as grey; one frame refused."""
    if len(frames) < 2:
        raise ValueError(f"{path} holds one picture, not an animation: a video needs frames to propagate through "
                         "(give the animated image, a movie, a TIFF stack or a folder of frames)")
    if any(f.dtype == np.uint16 for f in frames):  # 16-bit grey: kept as stored
        return np.stack([f if f.dtype == np.uint16 else f[..., 0].astype(np.uint16) for f in frames])
    stack = np.stack(frames)
    grey = bool((stack[..., 0] == stack[..., 1]).all() and (stack[..., 0] == stack[..., 2]).all())
    return np.ascontiguousarray(stack[..., 0]) if grey else stack


def _frame_array(frame: Image.Image) -> np.ndarray:
    """One composed frame: (Y, X) uint16 for 16-bit grey, else (Y, X, 3) uint8 RGB."""
    if frame.mode in _SIXTEEN_BIT:
        values = np.asarray(frame)
        if values.size and (values.min() < 0 or values.max() > 65535):  # mode "I" holds 32-bit ints
            raise ValueError(f"frame values {values.min()}..{values.max()} do not fit 16 bits")
        return values.astype(np.uint16)
    return np.asarray(frame.convert("RGB"))


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Pillow's errors on a damaged clip (a truncated GIF, flipped bytes: OSError, IndexError,
    SyntaxError, a decompression-bomb refusal) as one ValueError naming the file."""
    from PIL import UnidentifiedImageError

    with reading(path, "an animated image"):
        try:
            yield
        except (UnidentifiedImageError, SyntaxError) as err:  # Pillow's SyntaxError: "not a GIF file", APNG errors
            movie = _movie_container(path)
            if movie:
                raise ValueError(f"{path} is a movie file ({movie}) under an image's name: rename it to "
                                 f"{path.with_suffix('.' + movie.lower()).name}, which napari-vos reads as a movie "
                                 "(with PyAV: pip install \"napari-vos[video]\")") from err
            raise ValueError(f"{path} cannot be read as an animated image (damaged, or not a GIF, PNG or WebP?): "
                             f"{err}") from err


def _movie_container(path: Path) -> str | None:
    """The movie container ``path`` holds by its first bytes (MP4/MOV's ftyp box, Matroska/WebM's
    EBML header, AVI's RIFF header), as the suffix napari-vos reads it under; None otherwise."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    if head[4:8] == b"ftyp":
        return "MP4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "MKV"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


def _check_memory(path: Path, needed: int) -> None:
    """Refuse, before reading, a clip whose frames would not fit in the memory free now (a GIF of
    minutes of HD video), pointing to the movie path, which keeps frames on disk."""
    import psutil

    free = psutil.virtual_memory().available
    if needed > 0.8 * free:
        raise ValueError(f"{path} decodes to about {needed / 2**30:.1f} GiB of frames, more than the "
                         f"{free / 2**30:.1f} GiB of memory free: make it a movie first (ffmpeg -i {path.name} "
                         "-c:v libx264 -crf 18 clip.mp4), whose frames napari-vos keeps on disk")


def animated_image_calibration(path: str | os.PathLike) -> Calibration:
    """The time between an animated image's frames in seconds: the median of their display times
    (GIF, PNG and WebP store one per frame, in milliseconds; the median, as a clip for slides often
    holds its last frame for seconds, which would pull a mean far off); no calibration where none is
    stored or all are 0 (browsers then show about 10 frames a second, a choice the file did not make)."""
    from PIL import Image, ImageSequence

    with _reading(Path(path)), Image.open(path) as image:
        return _interval([_duration(frame) for frame in ImageSequence.Iterator(image)])


def _interval(durations: list[float | None]) -> Calibration:
    """The frame interval of display times in ms (None or 0 where a frame stores none): their median."""
    shown = [float(d) for d in durations if d and d > 0]
    if not shown:
        return Calibration()
    return Calibration(frame_interval=round(float(np.median(shown)) / 1000.0, 12), time_unit="s")


def _duration(frame: Image.Image) -> float | None:
    """A frame's display time in ms. Pillow's WebP reader sets it when the frame is decoded, not when
    it is sought (GIF and APNG set it then), so a WebP frame is decoded first."""
    if frame.format == "WEBP":
        frame.load()
    return frame.info.get("duration")


def gif_frame_ms(fps: float) -> int:
    """How long each frame of a GIF written at ``fps`` is shown, in ms: GIF stores hundredths of a second,
    and players slow a frame under 20 ms to 100 ms, so 50 frames/s is the most a GIF plays at."""
    return max(20, int(round(100.0 / fps)) * 10)


def write_animated_gif(path: str | os.PathLike, pictures: Iterable[np.ndarray], fps: float,
                       progress: Callable[[int, int], None] | None = None, total: int = 0) -> Path:
    """Write (Y, X, 3) uint8 ``pictures`` as a looping GIF at ``fps`` (GIF stores display times in
    hundredths of a second, so the rate is rounded to one of those), one GIF frame per picture, each
    written as it comes. ``progress(done, total)`` after each. Nothing is left at ``path`` when a
    picture fails part way.

    Each picture is written whole with its own palette through Pillow's frame-by-frame GIF functions:
    Pillow's ``save(save_all=True)`` drops a picture equal to the one before (adding its time to
    that one's), so a still scene's overlay had fewer frames than its labels (5 equal pictures: a
    GIF of one picture, which napari-vos itself refuses as no animation)."""
    from PIL import GifImagePlugin, Image

    path = Path(path)
    duration = gif_frame_ms(fps)
    done = 0
    out = None
    try:
        for picture in pictures:
            # one adaptive palette per picture, GIF's 256 colours: the fast octree's is 19x quicker than
            # median cut (0.36 against 6.8 s for 82 frames of 854x480), 2.6 grey levels off on average
            # against 1.7 (docs/benchmarks.md, session 39)
            frame = Image.fromarray(picture).quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                                      dither=Image.Dither.NONE)
            if out is None:  # the file is made at the first picture: none for no pictures
                out = open(path, "wb")  # noqa: SIM115 - closed below, also on an error part way
                header, _ = GifImagePlugin.getheader(frame, info={"loop": 0, "duration": duration})
                out.writelines(header)
            out.writelines(GifImagePlugin.getdata(frame, duration=duration, disposal=1, include_color_table=True))
            done += 1
            if progress is not None:
                progress(done, total or done)
        if out is None:
            raise ValueError(f"{path}: no pictures to write")
        out.write(b";")  # the GIF's trailer
        out.close()
    except BaseException:
        if out is not None:
            out.close()
            path.unlink(missing_ok=True)
        raise
    return path
