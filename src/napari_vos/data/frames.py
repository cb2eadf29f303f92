"""Frame source: read a (T, Y, X[, C]) stack one frame at a time and normalise it to RGB in [0, 1].

Works with anything indexable by frame (numpy, dask, zarr, tifffile-backed arrays, the
readers' lazy frames). Nothing but the requested frame is loaded. 8-bit data is scaled by 1/255;
16-bit, other integer and float data (float data within [0, 1] too) use percentile normalisation with one range per channel
for the whole stack (estimated from a few evenly spaced frames), so intensity is comparable over
time. Grey becomes three equal channels; multi-channel data picks up to three channels.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from napari_vos.checks import from_torch, not_an_array, whole_number
from napari_vos.data.indexed_frames import IndexedFrames, needs_indexing
from napari_vos.data.intensity import float32_loses_digits, percentile_range

PERCENTILES = (1.0, 99.8)
_SAMPLE_FRAMES = 8
#: an 8-bit stack whose brightest channel's upper percentile is below this reads as dark frames
DARK_8BIT_TOP = 128  # RGMP's shipped checkpoint lost a square of 80 or 120 on 30 read as 0-255 (kept it as float)


def range_sample(n_frames: int) -> np.ndarray:
    """The frames a stack's intensity range is read from: up to 8, evenly spaced."""
    return np.unique(np.linspace(0, n_frames - 1, min(_SAMPLE_FRAMES, n_frames)).astype(int))


def channels_first(shape: tuple[int, ...]) -> bool:
    """Whether a 4-D stack looks like (T, C, Y, X): a second axis of at most 4 before two larger ones."""
    return len(shape) == 4 and shape[1] <= 4 < min(shape[2:])


def describe_axes_error(shape: tuple[int, ...]) -> str:
    """What to do with a stack whose axes are not (T, Y, X[, C]); a small second axis reads as channels first."""
    if channels_first(shape):
        return (f"napari-vos expects a stack with axes (T, Y, X) or (T, Y, X, C); got shape {shape}, which looks "
                f"like a (T, C, Y, X) stack with {shape[1]} channels on axis 1 (what tifffile.imread gives for a "
                f"Fiji hyperstack): move that axis last, np.moveaxis(video, 1, -1) (a zarr or dask stack: "
                f"napari_vos.ChannelStack([video[:, 0], video[:, 1]])), then pick channels with channels=[...]. "
                f"If axis 1 holds Z planes instead, pick one (video[:, z]; on the command line --z N).")
    return (f"napari-vos expects a stack with axes (T, Y, X) or (T, Y, X, C) with C <= 4 channels; "
            f"got shape {shape}. A 3D + time stack such as (T, Z, Y, X) is not supported yet: "
            f"pick one plane (e.g. video[:, z]; on the command line --z N) or a maximum projection "
            f"(video.max(axis=1)), or pass channels=[...] (on the command line --channels, e.g. 0,1,2) "
            f"if the last axis really holds channels.")


def _same_layout(frame: np.ndarray, channels: tuple[int, ...], dtype: np.dtype, picked: list[int] | None) -> bool:
    """Whether a frame read from a stack has the stack's channel layout and type. RGB and RGBA mix
    where the colour channels are picked (alpha is dropped either way: a PNG saved with transparency
    among plain ones) and float widths mix (a dask stack whose chunks compute float64 under a float32
    declaration); integer frames must be of the stack's width, as they are normalised by its range
    (8-bit among 16-bit came out nearly black, 16-bit among 8-bit nearly white)."""
    ours, theirs = tuple(frame.shape[2:]), tuple(channels)
    rgb_and_rgba = len(ours) == len(theirs) == 1 and {ours[0], theirs[0]} == {3, 4} and max(picked or [0]) < 3
    if ours != theirs and not rgb_and_rgba:
        return False
    if frame.dtype.kind == "f" or dtype.kind == "f":
        return frame.dtype.kind == dtype.kind
    if {frame.dtype.kind, dtype.kind} == {"b", "u"} and max(frame.dtype.itemsize, dtype.itemsize) == 1:
        return True  # a 1-bit PNG (black and white) among 8-bit frames: normalise reads bool as 0/1
    return (frame.dtype.kind, frame.dtype.itemsize) == (dtype.kind, dtype.itemsize)


class FrameSource:
    """Lazy, normalised view of a video: ``source[i]`` is a float32 (Y, X, 3) array in [0, 1]."""

    def __init__(self, video: Any, channels: Sequence[int] | None = None, rgb: bool | None = None) -> None:
        if channels is not None:
            channels = _channel_indices(channels)
        problem = not_an_array(video, "the video")
        if problem:
            raise ValueError(problem)
        video = from_torch(video)  # a torch tensor: its numpy view (a copy off the CPU, or of bfloat16)
        if needs_indexing(video):  # a pims-style reader: frame 0 gives shape and dtype; frames read one by one
            video = IndexedFrames(video)
        declared = tuple(getattr(video, "shape", ()))
        if any(isinstance(s, float) and s != s for s in declared):  # dask's nan: a length not known until computed
            raise ValueError(f"the video's shape {declared} is not known yet (a dask array indexed by a boolean mask "
                             "or filtered has chunks of unknown size): call video.compute_chunk_sizes() first, "
                             "which reads the chunks once to count them")
        shape = tuple(int(s) for s in declared)
        if not shape:
            try:
                video = np.asarray(video)
            except ValueError as err:  # a ragged list: frames of several sizes, a multiscale image's levels
                raise ValueError(f"the video's frames do not stack into one array ({err}); give frames of one "
                                 "shape (of a multiscale image's levels, pass one: data[0])") from None
            shape = video.shape
        if len(shape) == 2:
            raise ValueError(f"got a single 2-D image of shape {shape}; napari-vos needs a time-lapse (T, Y, X)")
        if len(shape) < 2 or len(shape) > 4:
            raise ValueError(describe_axes_error(shape))
        if len(shape) == 4:
            n_ch = shape[-1]
            if channels is not None and channels_first(shape):  # channels= would read C as Y and Y as X
                raise ValueError(describe_axes_error(shape))
            if channels is None and rgb is False and n_ch <= 4:
                raise ValueError(f"rgb=False: the last axis of the stack {shape} (size {n_ch}) is not read as colour, "
                                 f"so the stack has one axis more than (T, Y, X); pass channels="
                                 f"{list(range(min(n_ch, 3)))} to read that axis as channels, or leave rgb unset")
            if channels is None and n_ch > 4:
                raise ValueError(describe_axes_error(shape))
            if channels is None and rgb and n_ch not in (3, 4):  # 2 values a pixel were read as 2 channels unsaid
                raise ValueError(f"rgb=True reads the last axis as colour, but the stack {shape} has {n_ch} values a "
                                 "pixel there (colour has 3, or 4 with alpha): leave rgb unset to read them as "
                                 "channels")
            if channels is None and n_ch == 4 and getattr(video, "channels_are_colour", None) is False:
                raise ValueError(f"the stack {shape} has 4 channels on a channel axis (a hyperstack's C), not colour "
                                 f"and alpha: pick up to 3 with channels=[...] (the command line's --channels), "
                                 f"e.g. [0, 1, 3]")
        else:
            n_ch = 1
            if rgb:  # was read as grey all the same: (T, Y, 3) frames 3 pixels wide
                raise ValueError(f"rgb=True reads the last axis as colour, but the stack {shape} has no axis for it "
                                 "beside (T, Y, X): give a (T, Y, X, 3) stack, or leave rgb unset for a grey one")
            if rgb is None and shape[2] in (3, 4) and shape[1] >= 16:  # (Y, X, 3): Y frames 3 pixels wide
                raise ValueError(f"the stack {shape} reads as {shape[0]} frames of {shape[1]} x {shape[2]} pixels: "
                                 f"a single colour image? napari-vos needs a time-lapse, (T, Y, X, {shape[2]}) for "
                                 "colour; pass rgb=False if these are frames so narrow")
            if channels is not None and list(channels) not in ([0],):
                raise ValueError(f"channels={list(channels)} given, but the stack {shape} has no channel axis")
        if channels is not None:
            channels = [int(c) for c in channels]
            if not 1 <= len(channels) <= 3:
                raise ValueError(f"pick 1 to 3 channels, got {channels}")
            bad = [c for c in channels if not 0 <= c < n_ch]
            if bad:
                raise ValueError(f"channel(s) {bad} do not exist: the stack has {n_ch} channel(s)")
        elif n_ch == 4:
            channels = [0, 1, 2]  # RGBA: drop alpha
        elif n_ch > 1:
            channels = list(range(n_ch))
        if shape[0] < 1:
            raise ValueError(f"the stack {shape} has no frames")
        if shape[1] < 2 or shape[2] < 2:  # (resizing and the networks' padding need two pixels each way)
            raise ValueError(f"the stack {shape} has frames {shape[2]} pixel{'s' if shape[2] != 1 else ''} wide and "
                             f"{shape[1]} pixel{'s' if shape[1] != 1 else ''} high: napari-vos needs frames of at "
                             "least 2 x 2 pixels (a line scan or kymograph is one image, not a time-lapse)")
        self.video = video
        self.shape = shape
        self.n_frames = shape[0]
        self.frame_shape = (shape[1], shape[2])
        self.channels = channels if len(shape) == 4 else None
        self.dtype = np.dtype(video.dtype)
        if self.dtype.kind not in "biuf":  # complex, object, strings, records: no image to normalise
            raise ValueError(f"frames of dtype {self.dtype} are not images napari-vos can read; give integer, "
                             "float or boolean frames")
        self._range: tuple[np.ndarray, np.ndarray] | None = None
        self._frame_dtype: np.dtype | None = None  # frame 0's type as computed (`raw`)
        # 32/64-bit integers and float64 lose their low digits in float32 (at 2**40 its step is 131072), so
        # their range's low end is taken off in float64 first (`_shifted`); None for the other types
        self._offset: np.ndarray | None = None
        self._dark: bool | None = None  # an 8-bit stack stretched by its percentiles (`dark_8bit_top`)
        self._block_frames = _frames_per_chunk(video, shape)
        self._block: tuple[int, np.ndarray] | None = None  # (first frame, frames) of the last chunk read
        self._range_on: dict[str, tuple[Any, Any]] = {}  # the range as tensors, per device

    def __len__(self) -> int:
        return self.n_frames

    def raw(self, index: int) -> np.ndarray:
        """The frame as stored, channels picked: (Y, X) or (Y, X, c)."""
        if not -self.n_frames <= index < self.n_frames:
            raise IndexError(f"frame {index} is outside the stack of {self.n_frames} frames")
        frame = self._stored_frame(index % self.n_frames)
        if not frame.dtype.isnative:  # big-endian data (np.fromfile(..., ">u2")): torch reads native order only
            frame = frame.astype(frame.dtype.newbyteorder("="))
        if tuple(frame.shape[:2]) != self.frame_shape:  # e.g. one odd image in a folder of frames
            raise ValueError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]} pixels but the stack's frames are "
                             f"{self.frame_shape[1]}x{self.frame_shape[0]} (frame 0): every frame must have one size")
        if self._frame_dtype is None:  # the type the frames compute (a dask declaration may differ)
            self._frame_dtype = frame.dtype if index % self.n_frames == 0 else np.dtype(self._stored_frame(0).dtype)
        if not _same_layout(frame, self.shape[3:], self._frame_dtype, self.channels):
            # a folder of frames with one saved grey among colour ones (its first 3 columns were taken as
            # its channels), or 16-bit among 8-bit (normalised with the 8-bit range, nearly white)
            def layout(shape: tuple[int, ...], dtype: np.dtype) -> str:
                return f"{'grey' if not shape else f'{shape[0]}-channel'} {dtype}"

            raise ValueError(f"frame {index} is {layout(frame.shape[2:], frame.dtype)} but the stack's frames are "
                             f"{layout(tuple(self.shape[3:]), self._frame_dtype)} (frame 0): every frame must have one channel "
                             "layout and one type; convert the odd frames (e.g. all to RGB, or all to 8 bits)")
        if self.channels is not None and self.channels != list(range(frame.shape[-1])):
            # picking channels by a list copies (numpy's fancy indexing); all of them in order is
            # the frame itself, a view
            frame = frame[..., self.channels]
        return frame

    def _stored_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0..T-1) as stored. A dask or zarr stack chunked over several frames
        decodes a whole chunk for any frame of it, so the last chunk read is kept and the next
        frames come from it (chunks of 64 frames: 191 ms a frame read one by one, against 3 ms)."""
        n = self._block_frames
        if n <= 1:
            return np.asarray(self.video[index])
        first = index - index % n
        if self._block is None or self._block[0] != first:
            self._block = (first, np.asarray(self.video[first:min(first + n, self.n_frames)]))
        return self._block[1][index - first]

    def _intensity_range(self, known: tuple[int, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One (lo, hi) per channel for the whole stack, from up to 8 evenly spaced frames
        (``known``: a frame already read, (index, raw frame), which is then not read again)."""
        if self._range is None:
            sample = [known[1] if known is not None and int(i) == known[0] % self.n_frames else self.raw(int(i))
                      for i in range_sample(self.n_frames)]
            # float data too, even within [0, 1]: 12-bit camera data through skimage's img_as_float
            # fill [0, 0.0625], which the networks read as black frames if taken as they are
            lo, hi = percentile_range(sample, PERCENTILES)
            # a flat range (a constant stack) widens to lo + 1, in float32, where the frames are
            # normalised: from 2**24 on lo + 1 rounds back to lo, and the next float up is taken
            # (0 / 0 gave NaN frames: empty labels, or flow's error naming nothing)
            # flat means hi == lo as found: a range of 1e-13 (currents in A, lengths in m) is a range
            flat = hi <= lo
            if float32_loses_digits(self.dtype):
                self._offset = lo.astype(np.float64)
                lo, hi = lo - self._offset, hi - self._offset
            lo, hi = lo.astype(np.float32), hi.astype(np.float32)
            hi = np.where(flat, lo + np.float32(1.0), hi)
            hi = np.where(hi > lo, hi, np.nextafter(lo, np.float32(np.inf)))
            self._range = (lo, hi)
        return self._range

    def _shifted(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` less the range's float64 low end for the types float32 cannot hold exactly
        (`float32_loses_digits`), as float32 (the range is then relative to 0); other frames as they are."""
        if self._offset is None:
            return frame
        return np.subtract(frame, self._offset, dtype=np.float64).astype(np.float32)

    def release(self) -> None:
        """Let go of the last chunk row read (kept so a run decodes each chunk once)."""
        self._block = None

    def frames_decoded_per_frame(self) -> int:
        """How many frames a frame read decodes: a chunk row too large to keep (see `_block_budget`)
        is decoded whole for each of its frames; 1 when frames are read alone or from a kept row."""
        return 1 if self._block_frames > 1 else min(_chunk_frames(self.video), self.n_frames)

    def dark_8bit_top(self, known: tuple[int, np.ndarray] | None = None) -> int | None:
        """For an 8-bit stack that uses only the bottom half of 0-255 (its brightest channel's
        99.8th percentile below 128: a faint fluorescence channel), that percentile; else None.
        Such a stack is stretched by its percentiles as 16-bit data are: read as 0-255 it reached
        the networks dark (RGMP on a dark copy of the natural sample: J&F 0.47 -> 0.14)."""
        if self.dtype != np.uint8:
            return None
        top = float(self._intensity_range(known)[1].max())
        return int(top) if top < DARK_8BIT_TOP else None

    def _scaled_by_255(self, known: tuple[int, np.ndarray] | None = None) -> bool:
        """Whether frames are read as 0-255 (8-bit, not dark) rather than by the stack's percentiles."""
        if self._dark is None:
            self._dark = self.dark_8bit_top(known) is not None
        return self.dtype == np.uint8 and not self._dark

    def normalise(self, frame: np.ndarray, index: int = -1) -> np.ndarray:
        """Stored frame -> float32 (Y, X, 3) in [0, 1]."""
        known = (index, frame) if index >= 0 else None  # a frame of the stack: not read again for the range
        if frame.dtype == np.bool_ or (frame.dtype == np.uint8 and self._scaled_by_255(known)):
            out = frame.astype(np.float32) / (1.0 if frame.dtype == np.bool_ else 255.0)
        else:
            _check_finite(frame, index)  # as stored: float64 beyond float32's range is no NaN (it clips)
            lo, hi = self._intensity_range()
            out = self._shifted(frame).astype(np.float32)
            out = np.clip((out - lo) / (hi - lo), 0.0, 1.0)
        if out.ndim == 2:
            out = np.repeat(out[..., None], 3, axis=-1)
        elif out.shape[-1] == 1:
            out = np.repeat(out, 3, axis=-1)
        elif out.shape[-1] == 2:
            out = np.concatenate([out, np.zeros_like(out[..., :1])], axis=-1)
        return np.ascontiguousarray(out[..., :3])

    def __getitem__(self, index: int) -> np.ndarray:
        return self.normalise(self.raw(index), index)

    def tensor(self, index: int, device: Any = "cpu", size: tuple[int, int] | None = None) -> Any:
        """The frame as the engine feeds it to a method: a float32 (3, H, W) torch tensor in [0, 1]
        on ``device``, resized to ``size`` (bilinear with antialiasing) if given.

        The same values as `normalise` (the same float32 operations), but done by torch on the
        device: the stored frame travels as it is (8-bit frames as bytes), a grey frame is resized
        before it becomes three channels, and the host does no per-pixel numpy work (3.4 -> 0.1 ms
        for an 854x480 RGB frame, 26 -> 5 ms for a 2048 x 2048 16-bit one halved: docs/benchmarks.md,
        session 19). The layouts are those the engine's numpy path gave: a permuted (H, W, 3)
        tensor, or a plain (3, h, w) one when resized.
        """
        import torch
        import torch.nn.functional as F

        frame = self.raw(index)
        _check_finite(frame, index)
        if float32_loses_digits(self.dtype):  # the range first (from this frame if it is one of its samples), then the shift
            self._intensity_range(known=(index, frame))
            frame = self._shifted(frame)
        frame = np.ascontiguousarray(frame)
        if not frame.flags.writeable:  # torch wants writable memory (zarr, dask and the samples give read-only)
            frame = frame.copy()
        x = torch.from_numpy(frame)
        eight_bit = x.dtype in (torch.uint8, torch.bool)
        # 8-bit frames convert on the device; other integer types (uint16 has few torch kernels off
        # the CPU) and floats become float32 here, always as a copy: x may share the caller's memory,
        # and the normalisation below works in place
        if eight_bit:
            x = x.to(device, torch.uint8).to(torch.float32)
        else:
            x = x.to(torch.float32, copy=True).to(device)
        if frame.dtype == np.uint8 and self._scaled_by_255((index, frame)):
            x = x.div_(255.0)
        elif frame.dtype != np.bool_:
            lo, hi = self._range_tensors(device, known=(index, frame))
            x = x.sub_(lo).div_(hi - lo).clamp_(0.0, 1.0)
        chw = x[None] if x.ndim == 2 else x.permute(2, 0, 1)  # a view; RGB stays channels-last in memory
        resized = size is not None and tuple(chw.shape[-2:]) != tuple(size)
        if resized:  # before grey becomes three channels: a third of the work
            chw = F.interpolate(chw[None], size=tuple(size), mode="bilinear", antialias=True,
                                align_corners=False)[0]
        if len(chw) == 1:
            chw = chw.expand(3, -1, -1)
        elif len(chw) == 2:
            chw = torch.cat([chw, torch.zeros_like(chw[:1])])
        if resized:  # a plain (3, h, w) tensor, as torch's resize of the (H, W, 3) array gave it
            return chw.contiguous()
        return chw.permute(1, 2, 0).contiguous().permute(2, 0, 1)  # the (H, W, 3) array's layout

    def _range_tensors(self, device: Any, known: tuple[int, np.ndarray] | None = None) -> tuple[Any, Any]:
        """`_intensity_range` as float32 tensors on ``device``, kept per device."""
        import torch

        key = str(device)
        if key not in self._range_on:
            lo, hi = self._intensity_range(known)
            self._range_on[key] = (torch.from_numpy(lo).to(device), torch.from_numpy(hi).to(device))
        return self._range_on[key]


_MAX_BLOCK_BYTES = 256 * 2**20  # a chunk row of frames is always kept up to this size ...
_MAX_BLOCK_BYTES_CAP = 2 * 2**30  # ... and up to a quarter of the free memory, at most this


def _block_budget() -> int:
    """Bytes a kept chunk row may take: zarr's own chunks for 2048 x 2048 uint16 frames hold 125
    frames (1 GiB), each decoded whole for any frame of it, so what the memory allows is kept."""
    try:
        import psutil

        free = int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or unable to tell: the floor
        return _MAX_BLOCK_BYTES
    return max(_MAX_BLOCK_BYTES, min(_MAX_BLOCK_BYTES_CAP, free // 4))


def _chunk_frames(video: Any) -> int:
    """Frames per chunk along T of a dask or zarr stack with regular chunks; 1 for anything else."""
    chunks = getattr(video, "chunks", None)
    if not chunks:
        return 1
    first = chunks[0]
    if isinstance(first, tuple):  # dask: the sizes of the chunks along T, regular but perhaps the last
        # (one chunk along T, the whole stack: every frame read decodes all of it, as any chunk row)
        if not first or (len(first) > 1 and (len(set(first[:-1])) != 1 or first[-1] > first[0])):
            return 1
        first = first[0]
    try:
        return max(1, int(first))
    except (TypeError, ValueError):
        return 1


def _frames_per_chunk(video: Any, shape: tuple[int, ...]) -> int:
    """Frames per chunk along T of a chunked stack whose chunk row (all of Y, X[, C]) fits
    `_block_budget`, to keep while its frames are read; 1 for anything else (read frame by frame)."""
    n = _chunk_frames(video)
    try:
        itemsize = np.dtype(video.dtype).itemsize
    except (TypeError, ValueError):
        return 1
    if n <= 1 or n * int(np.prod(shape[1:])) * itemsize > _block_budget():
        return 1
    return n


def _channel_indices(channels: Any) -> list[int]:
    """``channels`` as a list of ints; a ValueError for anything else (a bare number, a string, floats)."""
    bad = ValueError(f"channels must be a list of channel indices such as [0, 2], got {channels!r}")
    if isinstance(channels, (str, bytes)) or not hasattr(channels, "__iter__"):
        raise bad
    channels = list(channels)
    if not all(whole_number(c) for c in channels):
        raise bad
    return [int(c) for c in channels]


def _check_finite(frame: np.ndarray, index: int) -> None:
    """A clear error for a float frame holding NaN or infinity (integer frames cannot)."""
    if np.issubdtype(frame.dtype, np.floating) and not np.isfinite(frame).all():
        raise ValueError(f"frame {index} contains NaN or infinite values; fill or mask them first")


DEFAULT_MAX_SIDE = 1024  # the engine's default working-resolution cap (longer side, pixels)


def working_size(frame_shape: tuple[int, int], max_side: int | None,
                 min_side: int | None = None, min_scale: float = 1.0) -> tuple[int, int]:
    """Size the methods run at: the frame scaled so its shorter side is at least ``min_side``
    (small videos are enlarged, for methods whose coarse maps need objects several cells wide),
    by at least ``min_scale`` (small objects are enlarged: see `object_scale`), and its longer
    side at most ``max_side`` (which wins when they disagree)."""
    h, w = frame_shape
    s = 1.0
    if min_side and min(h, w) < min_side:
        s = min_side / min(h, w)
    s = max(s, float(min_scale))
    if max_side and max(h, w) * s > max_side:
        s = max_side / max(h, w)
    if s == 1.0:
        return h, w
    return max(1, round(h * s)), max(1, round(w * s))


def median_equivalent_diameter(areas: Iterable[float]) -> float | None:
    """Median equivalent diameter (pixels, 2 * sqrt(area / pi)) of objects with these pixel areas
    (empty ones ignored); None when there is no object."""
    diameters = [2.0 * np.sqrt(a / np.pi) for a in areas if a > 0]
    return float(np.median(diameters)) if diameters else None


def median_object_diameter(label_images: Iterable[np.ndarray]) -> float | None:
    """Median equivalent diameter of the objects in the labels images (`median_equivalent_diameter`);
    None when there is no object."""
    areas: list[float] = []
    for labels in label_images:
        ids, counts = np.unique(np.asarray(labels), return_counts=True)
        areas += [float(c) for i, c in zip(ids, counts) if i]
    return median_equivalent_diameter(areas)


def object_scale(label_images: Iterable[np.ndarray], min_object_side: int | None) -> float:
    """How much to enlarge the frames so the typical (median) annotated object is at least
    ``min_object_side`` pixels across (1.0: no enlargement needed, or no rule, or no object).

    For methods whose coarsest maps must hold an object in several cells (RGMP's stride-32
    encoder loses 20-pixel cells at their own size); the median, so one small object among large
    ones does not blow the whole video up."""
    if not min_object_side:
        return 1.0
    diameter = median_object_diameter(label_images)
    if not diameter:
        return 1.0
    return max(1.0, float(min_object_side) / diameter)
