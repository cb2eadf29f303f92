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

__all__ = [
    "LazyFrames",
    "LazyMasks",
    "Sequence",
    "read_image",
    "read_mask",
    "decode_mask",
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

        return np.asarray(tifffile.imread(path))
    from PIL import Image

    with Image.open(path) as im:
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode in ("LA", "PA"):
            im = im.convert("RGBA")
        return np.asarray(im)


def decode_mask(arr: np.ndarray, void_255: bool = True, binary_255: bool | None = None) -> np.ndarray:
    """Turn a stored mask into int32 object labels (0 = background).

    - integer label images (palette indices, 8/16-bit grey, TIFF labels) are kept as they are;
    - with ``void_255`` (8-bit PNG masks, DAVIS style; TIFF label images pass False, where 255 is
      just another cell) and an 8-bit mask: a single-object 0/255 mask (DAVIS 2016) becomes 0/1,
      and 255 next to other object ids is the DAVIS "void" label, which the official DAVIS 2017
      code sets to background when reading ground truth, and so do we; ``binary_255`` (default:
      as ``void_255``) rules the 0/255 case alone, for an annotation PNG, whose 0/255 mask is one
      object but whose 255 beside other ids is an object too (``void_255=False, binary_255=True``);
    - colour (Y, X, 3/4) masks: a palette mask saved as RGB (every colour a DAVIS palette colour)
      gets the palette index as id, the same on every frame; other colours get ids in the order of
      their packed value within the frame (so a colour missing from a frame shifts the later ids).
    """
    arr = np.asarray(arr)
    if arr.ndim == 3:
        rgb = arr[..., :3].astype(np.uint32)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        colours, inverse = np.unique(packed, return_inverse=True)
        inverse = inverse.reshape(packed.shape)
        from napari_vos.data.writers import davis_palette

        pal = davis_palette().astype(np.uint32)
        pal_packed = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
        if np.isin(colours, pal_packed).all():  # a palette mask saved as RGB: the palette index is the id,
            index = {int(c): i for i, c in enumerate(pal_packed)}  # the same on every frame
            return np.array([index[int(c)] for c in colours], dtype=np.int32)[inverse]
        if colours[0] == 0:
            return inverse.astype(np.int32)
        return (inverse + 1).astype(np.int32)
    if arr.ndim != 2:
        raise ValueError(f"a mask must be 2-D (or 2-D colour), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int32)
    eight_bit = arr.dtype == np.uint8
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.rint(arr)
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


def read_mask(path: str | Path, void_255: bool = True) -> np.ndarray:
    """Read one stored mask file (palette/grey PNG, TIFF, colour PNG) as int32 labels; ``void_255``:
    an 8-bit PNG's 255 beside other ids is DAVIS's "void" (ground truth); False keeps it an object
    (an annotation, where 255 is this package's own PNG output's last id)."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        return decode_mask(tifffile.imread(path), void_255=False)
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
            # a 0/255 PNG is one object (DAVIS 2016) either way; 255 beside other ids is void only for GT
            return decode_mask(np.asarray(im), void_255=void_255, binary_255=True)
        return decode_mask(np.asarray(im.convert("RGB")))


class LazyFrames(SequenceABC):
    """A read-only, indexable list of frames backed by a per-frame loader.

    `frames[i]` reads frame i (negative indices work); `frames[a:b]` returns a stacked array.
    `shape`/`dtype`/`ndim` describe the whole (T, Y, X[, C]) stack (from frame 0), so the object
    can be handed to code that expects an array-like video (the engine indexes frame by frame).
    """

    def __init__(self, n: int, loader: Callable[[int], np.ndarray]) -> None:
        self._n = int(n)
        self._loader = loader
        self._first: np.ndarray | None = None

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
    """Per-frame ground truth: `masks[i]` is an int32 (Y, X) label image, or None (no GT there)."""

    def __init__(self, n: int, loaders: dict[int, Callable[[], np.ndarray]]) -> None:
        self._n = int(n)
        self._loaders = dict(loaders)

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
    """

    name: str
    frames: LazyFrames
    masks: LazyMasks
    layout: str = "array"
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def annotated(self) -> list[int]:
        return self.masks.annotated

    def __len__(self) -> int:
        return len(self.frames)

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
