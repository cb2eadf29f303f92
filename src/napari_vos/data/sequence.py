"""The common in-memory shape of one annotated video: a `Sequence` with lazy frames and masks.

Every dataset reader (DAVIS, images/masks, Cell Tracking Challenge, TIFF stacks) returns
`Sequence` objects so the eval/score runners and the training code never care about folder
layouts. Frames and masks are read from disk only when indexed, one frame at a time, so a
5000-frame stack costs no memory until it is used. Image dtype is kept (uint8/uint16/float);
masks come back as int32 label images (0 = background, k = object k).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence as SequenceABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.data.damaged_files import reading

__all__ = [
    "LazyFrames",
    "LazyMasks",
    "Sequence",
    "read_image",
    "read_mask",
    "decode_mask",
    "ColourTable",
]

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp") + TIFF_SUFFIXES


def read_image(path: str | Path) -> np.ndarray:
    """Read one 2-D image file, keeping its dtype: (Y, X) grey or (Y, X, C) colour.

    TIFF goes through tifffile (16-bit and float microscopy), everything else through Pillow.
    Palette images are expanded to RGB here (they are pictures); masks use `read_mask`.
    """
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with reading(path, "a TIFF"), tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            image = np.asarray(series.asarray())
            axes = series.axes
        if image.ndim == 3 and axes[0] in "CS" and axes[1:] == "YX" and image.shape[0] <= 4:
            image = np.moveaxis(image, 0, -1)  # an ImageJ/OME (C, Y, X) frame: its channels last, as colour
        return image
    with opened_image(path) as im:
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode in ("LA", "PA"):
            im = im.convert("RGBA")
        return np.asarray(im)


def opened_image(path: Path) -> Any:
    """A PNG/JPEG/... opened with Pillow and decoded (a damaged file or one past Pillow's
    decompression-bomb limit: a ValueError naming it); use it as ``with opened_image(p) as im``."""
    from PIL import Image

    with reading(path, "an image"):
        image = Image.open(path)
        try:
            image.load()
        except BaseException:
            image.close()
            raise
    return image


def _packed_colours(arr: np.ndarray) -> np.ndarray:
    """A colour mask's (Y, X) 0xRRGGBB values (alpha, if any, ignored)."""
    rgb = arr[..., :3].astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def colour_ids(colours: np.ndarray) -> np.ndarray:
    """Object ids for sorted, distinct 0xRRGGBB colours: their DAVIS palette indices when every one
    is a palette colour (a palette mask saved as RGB), else 1, 2, ... in colour order with black
    as background (0) where present."""
    from napari_vos.data.writers import davis_palette

    pal_packed = _packed_colours(davis_palette())
    if np.isin(colours, pal_packed).all():
        index = {int(c): i for i, c in enumerate(pal_packed)}
        return np.array([index[int(c)] for c in colours], dtype=np.int32)
    first = 0 if colours.size and colours[0] == 0 else 1
    return np.arange(first, first + colours.size, dtype=np.int32)


class ColourTable:
    """One colour -> id table for all the colour masks of a sequence, so that an object keeps its id
    on every frame (numbering each frame's own colours would shift the ids of the colours after one
    that is missing from a frame). Built on first use from every colour mask among ``paths``."""

    def __init__(self, paths: SequenceABC[str | Path]) -> None:
        self._paths = [Path(p) for p in paths]
        self._colours: np.ndarray | None = None
        self._ids: np.ndarray | None = None

    def _build(self) -> None:
        seen = [np.zeros(0, np.uint32)]
        for path in self._paths:
            if path.suffix.lower() in TIFF_SUFFIXES:
                continue
            with opened_image(path) as im:
                if im.mode in _LABEL_MODES:
                    continue
                seen.append(np.unique(_packed_colours(np.asarray(im.convert("RGB")))))
        self._colours = np.unique(np.concatenate(seen))
        self._ids = colour_ids(self._colours)

    def __call__(self, colours: np.ndarray) -> np.ndarray:
        """The ids of these sorted, distinct colours (each one among the sequence's colours)."""
        if self._colours is None:
            self._build()
        assert self._colours is not None and self._ids is not None
        where = np.searchsorted(self._colours, colours)
        if where.size and (where.max() >= self._colours.size or (self._colours[where] != colours).any()):
            raise ValueError("a colour mask changed on disk while it was being read: colours not in the table")
        return self._ids[where]


def decode_mask(
    arr: np.ndarray,
    void_255: bool = True,
    binary_255: bool | None = None,
    table: ColourTable | None = None,
) -> np.ndarray:
    """Turn a stored mask into int32 object labels (0 = background).

    - integer label images (palette indices, 8/16-bit grey, TIFF labels) are kept as they are;
    - with ``void_255`` (8-bit PNG masks, DAVIS style; TIFF label images pass False, where 255 is
      just another cell) and an 8-bit mask: a single-object 0/255 mask (DAVIS 2016) becomes 0/1,
      and 255 next to other object ids is the DAVIS "void" label, which the official DAVIS 2017
      code sets to background when reading ground truth, and so do we; ``binary_255`` (default:
      as ``void_255``) rules the 0/255 case alone, for an annotation PNG, whose 0/255 mask is one
      object but whose 255 beside other ids is an object too (``void_255=False, binary_255=True``);
    - colour (Y, X, 3/4) masks: ids from `colour_ids` (palette indices for a palette mask saved as
      RGB, else colour order, black the background), over ``table``'s colours (the whole
      sequence's, the same id on every frame) or, without one, over this mask's own colours.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3:
        colours, inverse = np.unique(_packed_colours(arr), return_inverse=True)
        ids = colour_ids(colours) if table is None else table(colours)
        return ids[inverse.reshape(arr.shape[:2])]
    if arr.ndim != 2:
        raise ValueError(f"a mask must be 2-D (or 2-D colour), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int32)
    eight_bit = arr.dtype == np.uint8
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.rint(arr)
    if arr.size and arr.dtype.kind in "uif" and not np.can_cast(arr.dtype, np.int32):
        low, high = arr.min(), arr.max()
        if low < np.iinfo(np.int32).min or high > np.iinfo(np.int32).max:  # they wrapped to other ids
            raise ValueError(f"mask ids from {low} to {high} do not fit 32-bit ids (up to {np.iinfo(np.int32).max})")
    out = arr.astype(np.int32)
    binary_255 = void_255 if binary_255 is None else binary_255
    if (void_255 or binary_255) and eight_bit and out.max(initial=0) == 255:
        others = np.unique(out)
        others = others[(others != 0) & (others != 255)]
        if others.size == 0:
            if binary_255:
                out[out == 255] = 1
        elif void_255:
            out[out == 255] = 0
    return out


# PIL modes holding integer labels (palette indices, grey levels), not colours
_LABEL_MODES = ("P", "L", "I", "I;16", "I;16B", "I;16L", "1")


def read_mask(path: str | Path, void_255: bool = True, table: ColourTable | None = None) -> np.ndarray:
    """Read one stored mask file (palette/grey PNG, TIFF, colour PNG) as int32 labels; ``void_255``:
    an 8-bit PNG's 255 beside other ids is DAVIS's "void" (ground truth); False keeps it an object
    (an annotation, where 255 is this package's own PNG output's last id). ``table``: the colour
    ids of the mask's whole sequence (see `ColourTable`)."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with reading(path, "a TIFF"):
            mask = tifffile.imread(path)
        return decode_mask(mask, void_255=False)
    with opened_image(path) as im:
        if im.mode in _LABEL_MODES:
            # a 0/255 PNG is one object (DAVIS 2016) either way; 255 beside other ids is void only for GT
            return decode_mask(np.asarray(im), void_255=void_255, binary_255=True)
        return decode_mask(np.asarray(im.convert("RGB")), table=table)


def _read_after_close(i: int) -> np.ndarray:
    raise ValueError(f"frame {i} cannot be read: its file was closed (frames.close() or the end of a with block)")


class LazyFrames(SequenceABC):
    """A read-only, indexable list of frames backed by a per-frame loader.

    `frames[i]` reads frame i (negative indices work); `frames[a:b]` returns a stacked array.
    `shape`/`dtype`/`ndim` describe the whole (T, Y, X[, C]) stack (from frame 0), so the object
    can be handed to code that expects an array-like video (the engine indexes frame by frame).
    ``close`` releases what the loader reads from (a TIFF's open file); ``with frames:`` calls it.
    """

    def __init__(self, n: int, loader: Callable[[int], np.ndarray], close: Callable[[], None] | None = None) -> None:
        self._n = int(n)
        self._loader = loader
        self._first: np.ndarray | None = None
        self._close = close
        # False where the last axis is known to hold channels, not colour (a TIFF hyperstack's C axis)
        self.channels_are_colour: bool | None = None
        # the axes the file names, where it is a TIFF series ("ZYX": planes read as frames)
        self.axes: str | None = None

    def close(self) -> None:
        """Release the file the frames are read from (a second call does nothing); reading a frame
        afterwards is an error."""
        if self._close is not None:
            self._close()
            self._close = None
            self._loader = _read_after_close

    def __enter__(self) -> LazyFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self._n

    def _load(self, i: int) -> np.ndarray:
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"frame {i} out of range for {self._n} frames")
        return self._loader(i)

    def __getitem__(self, index: Any) -> np.ndarray:  # type: ignore[override]
        if isinstance(index, (int, np.integer)):
            return self._load(int(index))
        if isinstance(index, slice):
            return np.stack([self._load(i) for i in range(*index.indices(self._n))])
        if isinstance(index, tuple) and index and isinstance(index[0], (int, np.integer)):
            return self._load(int(index[0]))[index[1:]]
        raise TypeError(f"unsupported index {index!r}")

    def _peek(self) -> np.ndarray:
        if self._first is None:
            self._first = self._load(0)
        return self._first

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n, *self._peek().shape)

    @property
    def dtype(self) -> np.dtype:
        return self._peek().dtype

    @property
    def ndim(self) -> int:
        return 1 + self._peek().ndim

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[0 : self._n]
        return out if dtype is None else out.astype(dtype)


class LazyMasks(SequenceABC):
    """Per-frame ground truth: `masks[i]` is an int32 (Y, X) label image, or None (no GT there).

    ``close`` releases what the loaders read from (a labels TIFF's open file).
    """

    def __init__(self, n: int, loaders: dict[int, Callable[[], np.ndarray]],
                 close: Callable[[], None] | None = None) -> None:
        self._n = int(n)
        self._loaders = dict(loaders)
        self._close = close

    def close(self) -> None:
        """Release the labels file; reading a mask afterwards is an error."""
        if self._close is not None:
            self._close()
            self._close = None
            self._loaders = {i: (lambda i=i: _read_after_close(i)) for i in self._loaders}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> np.ndarray | None:  # type: ignore[override]
        i = int(index)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"frame {i} out of range for {self._n} frames")
        loader = self._loaders.get(i)
        return None if loader is None else loader()

    @property
    def annotated(self) -> list[int]:
        return sorted(self._loaders)


@dataclass
class Sequence:
    """One video with its (possibly partial) ground truth.

    name: sequence name (folder name, CTC "01", stack file stem).
    frames: lazy (T, Y, X[, C]) frames in their stored dtype.
    masks: lazy per-frame int32 labels, None where a frame has no ground truth.
    annotated: indices of the frames that have ground truth, ascending.
    layout: which reader produced it ("davis", "images_masks", "ctc", "tiff", "array").
    frame_files, truth_files: the files the reader reads the frames and the truth from (what
    `evaluation.fingerprints` hashes for eval --resume); empty for in-memory arrays.
    """

    name: str
    frames: LazyFrames
    masks: LazyMasks
    layout: str = "array"
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    frame_files: list[Path] = field(default_factory=list)
    truth_files: list[Path] = field(default_factory=list)

    @property
    def annotated(self) -> list[int]:
        return self.masks.annotated

    def __len__(self) -> int:
        return len(self.frames)

    def close(self) -> None:
        """Close the files its frames and masks are read from (a TIFF stack's); ``with seq:`` calls it."""
        self.frames.close()
        self.masks.close()

    def __enter__(self) -> Sequence:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def from_arrays(
        cls, name: str, frames: Any, labels: Any | None = None, annotated: list[int] | None = None
    ) -> Sequence:
        """Wrap in-memory arrays (napari layers, generated videos) in the same interface.

        labels: (T, Y, X) ints or None; annotated: frames of `labels` that count as GT
        (default: all frames when labels are given).
        """
        n = len(frames)
        loaders: dict[int, Callable[[], np.ndarray]] = {}
        if labels is not None:
            idx = range(n) if annotated is None else annotated
            for i in idx:
                loaders[int(i)] = (lambda i=int(i): np.asarray(labels[i]).astype(np.int32))
        return cls(
            name=name,
            frames=LazyFrames(n, lambda i: np.asarray(frames[i])),
            masks=LazyMasks(n, loaders),
            layout="array",
        )
