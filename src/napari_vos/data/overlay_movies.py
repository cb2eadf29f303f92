"""A propagation's labels drawn over its video as a movie file (H.264 through PyAV) or an animated
GIF (Pillow, for slides), to watch or show a result without napari.

Each object is tinted with its DAVIS palette colour (the colour of the palette PNG outputs) and
outlined, over the frames as the methods saw them (the engine's normalisation, so a dim 16-bit
time-lapse is as visible as in napari). H.264 in yuv420p, which every player reads, needs even
sides, so an odd row or column is repeated at the bottom or right edge.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.hidden_files import hidden_beside

__all__ = ["overlay_frame", "write_overlay_movie", "playback_fps", "OVERLAY_SUFFIXES", "TIME_LAPSE_FPS"]

#: containers the overlay is written in (H.264 plays from all of them), and .gif (needs no PyAV)
OVERLAY_SUFFIXES = (".mp4", ".mkv", ".mov", ".gif")
#: frames per second of a time-lapse (frames further apart than a second), or of a video with no frame interval
TIME_LAPSE_FPS = 10.0


def playback_fps(calibration: Any, played: bool = False) -> float:
    """The overlay's frames per second for a video of this calibration, one rule for `napari-vos
    overlay`, `propagate --overlay` and napari's save dialog: a movie's or animated image's own rate
    (``played``), and any other video's where its frames are at most a second apart (a high-speed
    camera's TIFF stack); a time-lapse, or a video with no frame interval, at `TIME_LAPSE_FPS` (an
    interval of minutes is no playback rate). A frame interval with no unit is in seconds."""
    from napari_vos.data.calibration import SECONDS_PER_TIME_UNIT

    interval = getattr(calibration, "frame_interval", None)
    unit = (getattr(calibration, "time_unit", None) or "s").lower()
    if not interval or interval <= 0 or unit not in SECONDS_PER_TIME_UNIT:
        return TIME_LAPSE_FPS
    seconds = interval * SECONDS_PER_TIME_UNIT[unit]
    return 1.0 / seconds if played or seconds <= 1.0 else TIME_LAPSE_FPS


def stored_fps(path: str | os.PathLike, fps: float) -> float:
    """The frame rate an overlay written to ``path`` at ``fps`` plays at: a GIF's rounded to its frame
    times in hundredths of a second (at most 50 frames/s), a movie's as asked."""
    if Path(path).suffix.lower() != ".gif":
        return float(fps)
    from napari_vos.data.animated_images import gif_frame_ms

    return 1000.0 / gif_frame_ms(fps)


def rate_words(path: str | os.PathLike, fps: float) -> str:
    """"N frames/s" as an overlay written to ``path`` at ``fps`` plays, saying where a GIF cannot hold ``fps``."""
    stored = stored_fps(path, fps)
    held = "" if abs(stored - fps) <= 1e-6 * fps else f" (a GIF's nearest to the {fps:g} asked)"
    return f"{stored:.4g} frames/s{held}"


def overlay_frame(frame: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """One (Y, X, 3) uint8 picture: ``frame`` (float RGB in [0, 1]) with each labelled object tinted at
    ``alpha`` by its colour and outlined in it. ``colours`` is a palette whose row 0 is the background:
    ids 1 .. len - 1 take their own row, larger ones wrap round to row 1 (ids up to 255: the palette
    PNGs' colours), negative ones (napari draws those too) wrap round from the end."""
    from skimage.segmentation import find_boundaries

    picture = np.clip(frame, 0.0, 1.0) * np.float32(255.0)
    ids = np.asarray(labels)
    inside = ids != 0  # negative ids too, as napari colours them
    if inside.any():
        def tint(where: np.ndarray) -> np.ndarray:  # the colours of the ids there (not of the whole frame)
            return colours[(ids[where] - 1) % (len(colours) - 1) + 1].astype(np.float32)

        picture[inside] = (1.0 - alpha) * picture[inside] + alpha * tint(inside)
        edges = find_boundaries(ids, mode="inner") & inside
        picture[edges] = tint(edges)
    return np.round(picture).astype(np.uint8)


def _whitened(picture: np.ndarray, white: np.ndarray) -> np.ndarray:
    """``picture`` with the pixels of the mask ``white`` white."""
    picture[white] = 255
    return picture


def _even(picture: np.ndarray) -> np.ndarray:
    """The picture with an odd height or width made even by repeating its last row or column."""
    pad = ((0, picture.shape[0] % 2), (0, picture.shape[1] % 2), (0, 0))
    return np.pad(picture, pad, mode="edge") if any(p[1] for p in pad) else picture


def write_overlay_movie(path: str | os.PathLike, video: Any, labels: Any, fps: float, alpha: float = 0.45,
                        progress: Callable[[int, int], None] | None = None,
                        intensity: tuple[float, float] | None = None, gamma: float = 1.0,
                        colormap: np.ndarray | None = None, white: np.ndarray | None = None) -> Path:
    """Write ``labels`` ((T, Y, X) object ids) over ``video`` ((T, Y, X[, C]), any type the engine
    reads) as an H.264 movie, or a looping GIF for a ``path`` ending in .gif, at ``fps`` frames per
    second; ``progress(done, total)`` after each frame. The frames are shown as the engine normalises
    them, or, with ``intensity`` (lo, hi), mapped from that range to black-white as napari's contrast
    limits map them, raised to ``gamma`` and, for grey frames, through ``colormap`` ((N, 3) RGB in
    [0, 1] from the low end to the high one: a napari colormap sampled) as napari shows them.
    ``white``: a (Y, X) mask of pixels drawn white on every frame (the gaps between a montage's planes,
    `plane_montage.montage_gaps`). A frame count or size that differs between the two is refused before
    anything is written."""
    from napari_vos.data.frames import FrameSource
    from napari_vos.data.video_files import _pyav
    from napari_vos.data.writers import davis_palette

    path = Path(path)
    if path.suffix.lower() not in OVERLAY_SUFFIXES:
        raise ValueError(f"overlay {path}: give a movie name ending in {', '.join(OVERLAY_SUFFIXES)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"the overlay's alpha is {alpha}; give a value from 0 (outlines only) to 1 (solid colour)")
    if not fps > 0:
        raise ValueError(f"the overlay's frame rate is {fps}; give a positive number of frames per second")
    source = FrameSource(video) if intensity is None else _InRange(video, *intensity, gamma=gamma, colormap=colormap)
    n = len(source)
    if len(labels) != n or tuple(np.shape(labels[0])) != tuple(source.frame_shape):
        raise ValueError(f"the labels are {len(labels)} frames of {tuple(np.shape(labels[0]))} but the video is {n} "
                         f"frames of {tuple(source.frame_shape)}: give the labels of this video (its propagation's "
                         "output)")
    if white is not None and tuple(np.shape(white)) != tuple(source.frame_shape):
        raise ValueError(f"the overlay's white mask is {tuple(np.shape(white))} but its frames are "
                         f"{tuple(source.frame_shape)}")
    gif = path.suffix.lower() == ".gif"
    # before anything is written: without PyAV an H.264 overlay cannot be made
    av = None if gif else _pyav("an H.264 overlay", f"or write a GIF ({path.with_suffix('.gif').name}), which needs none")
    colours = davis_palette()
    pictures = (overlay_frame(source[i], np.asarray(labels[i]), colours, alpha) for i in range(n))
    if white is not None:
        pictures = (_whitened(picture, white) for picture in pictures)
    # written under a temporary name beside it, then renamed: an error or Ctrl+C part way leaves
    # neither a half movie to be taken for the result nor a loss of the earlier overlay it replaces
    path.parent.mkdir(parents=True, exist_ok=True)  # as the labels and table writers make theirs
    partial = hidden_beside(path, "partial")
    try:
        if gif:
            from napari_vos.data.animated_images import write_animated_gif

            write_animated_gif(partial, pictures, fps, progress=progress, total=n)
        else:
            _write_h264(av, partial, pictures, source.frame_shape, fps, progress, n)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


class _InRange:
    """Frames of a (T, Y, X[, C]) stack mapped from (lo, hi) to [0, 1] and raised to ``gamma``, as
    napari's contrast limits and gamma show them (all channels of an RGB layer with the one range;
    alpha dropped), grey through ``colormap`` ((N, 3) RGB in [0, 1]; none: grey repeated). NaN is
    black (napari's colormaps show it transparent, over the black canvas)."""

    def __init__(self, video: Any, lo: float, hi: float, gamma: float = 1.0, colormap: Any = None) -> None:
        if not hi > lo:
            raise ValueError(f"the overlay's intensity range is {lo:g} to {hi:g}; give a low end below the high one")
        if not gamma > 0:
            raise ValueError(f"the overlay's gamma is {gamma}; give a positive number (1: none)")
        self.video, self.lo, self.hi, self.gamma = video, float(lo), float(hi), float(gamma)
        self.colormap = None if colormap is None else np.clip(np.asarray(colormap, np.float32)[:, :3], 0.0, 1.0)
        if self.colormap is not None and len(self.colormap) < 2:
            raise ValueError("the overlay's colormap needs two colours or more (low end to high end)")
        self.frame_shape = tuple(int(n) for n in np.shape(video)[1:3])

    def __len__(self) -> int:
        return int(np.shape(self.video)[0])

    def __getitem__(self, index: int) -> np.ndarray:
        x = np.asarray(self.video[index], np.float32)
        with np.errstate(invalid="ignore"):
            x = np.clip((x - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        if self.gamma != 1.0:
            x = x ** np.float32(self.gamma)
        if x.ndim != 2:
            return np.nan_to_num(x[..., :3], nan=0.0)
        if self.colormap is None:
            return np.repeat(np.nan_to_num(x, nan=0.0)[..., None], 3, axis=-1)
        nan = np.isnan(x)
        shown = self.colormap[np.rint(np.nan_to_num(x, nan=0.0) * (len(self.colormap) - 1)).astype(np.intp)]
        shown[nan] = 0.0
        return shown


def _write_h264(av: Any, path: Path, pictures: Any, frame_shape: tuple[int, int], fps: float,
                progress: Callable[[int, int], None] | None, n: int) -> Path:
    """The overlay pictures as H.264 in yuv420p (odd sides made even) at ``fps``."""
    rate = Fraction(fps).limit_denominator(1001)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as movie:
        # x264's veryfast preset: 0.9 s for 82 frames of 854x480 against its default's 2.2 s, at a
        # smaller file for these pictures (docs/benchmarks.md, session 39); the viewer waits on a napari writer
        options = {"preset": "veryfast"} if codec == "libx264" else {}
        stream = movie.add_stream(codec, rate=rate, options=options)
        stream.height, stream.width = (side + side % 2 for side in frame_shape)
        stream.pix_fmt = "yuv420p"
        for i, picture in enumerate(pictures):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_even(picture), format="rgb24")):
                movie.mux(packet)
            if progress is not None:
                progress(i + 1, n)
        for packet in stream.encode():
            movie.mux(packet)
    return path
