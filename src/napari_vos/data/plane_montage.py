"""Several Z planes of a 3D + time stack laid side by side in a grid, frame by frame: what an overlay of
a (T, Z, Y, X) result draws (`napari-vos overlay --z all`, `propagate --z painted --overlay`, napari's
overlay writer for a (T, Z, Y, X) image and labels pair).

The planes fill the grid row by row, in the order given, with a thin gap between them. The gaps (and the
cells left over in the last row) hold each frame's median for the video, so the engine's percentile
stretch and napari's contrast limits show the planes as they show the stack, and 0 (background) for the
labels, so each plane's objects are outlined on their own; the overlay then draws the gaps white
(`montage_gaps`), so that planes of a like background stay apart. Frames are made when read, one at a time, as
the overlay writer reads them: a stack of many planes is never held whole. scikit-image's
`montage` lays out a whole array at once and fills with the array's mean, so it does not fit here.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from napari_vos.data.sequence import LazyFrames

__all__ = ["GAP", "MONTAGE", "montage_gaps", "montage_grid", "plane_montage", "planes_to_draw"]

#: pixels between two planes of the grid
GAP = 2
#: the planes argument that draws them all (`napari-vos overlay --z all`)
MONTAGE = "all"


def montage_grid(planes: int, plane_shape: tuple[int, int]) -> tuple[int, int]:
    """The (rows, columns) that lay ``planes`` planes of (Y, X) ``plane_shape`` out nearest a square picture."""
    if planes < 1:
        raise ValueError("a montage needs at least one Z plane")
    y, x = plane_shape
    columns = min(planes, max(1, math.ceil(math.sqrt(planes * y / x))))
    return math.ceil(planes / columns), columns


def montage_gaps(planes: int, plane_shape: tuple[int, int]) -> np.ndarray:
    """The (H, W) mask of the lines between the cells of a montage of ``planes`` planes of (Y, X)
    ``plane_shape`` (a cell left over in the last row is not in it)."""
    (y, x), (rows, columns) = plane_shape, montage_grid(planes, plane_shape)
    gaps = np.zeros((rows * (y + GAP) - GAP, columns * (x + GAP) - GAP), bool)
    for row in range(1, rows):
        gaps[row * (y + GAP) - GAP:row * (y + GAP)] = True
    for column in range(1, columns):
        gaps[:, column * (x + GAP) - GAP:column * (x + GAP)] = True
    return gaps


def planes_to_draw(asked: int | str | Sequence[int], depth: int, what: str) -> list[int]:
    """The planes ``asked`` names (`MONTAGE`: all ``depth`` of them; one plane; a list) of a stack ``what``
    holds ``depth`` of, in order, each once; a ValueError for a plane outside it."""
    if isinstance(asked, str):
        if asked != MONTAGE:
            raise ValueError(f"the planes to draw are a Z plane, a list of them or {MONTAGE!r}, got {asked!r}")
        return list(range(depth))
    planes = sorted({int(asked)} if isinstance(asked, (int, np.integer)) else {int(z) for z in asked})
    outside = [z for z in planes if not 0 <= z < depth]
    if not planes or outside:
        raise ValueError(f"Z plane(s) {', '.join(map(str, outside)) or 'none'} asked for, but {what} has {depth} Z "
                         f"planes (0-{depth - 1})")
    return planes


def plane_montage(plane: Callable[[int, int], Any], times: int, planes: Sequence[int], fill_median: bool,
                  close: Callable[[], None] | None = None) -> LazyFrames:
    """The (T, H, W[, C]) frames of ``planes`` laid out by `montage_grid`: frame t reads ``plane(t, z)``
    ((Y, X[, C]), the same shape for every plane) for each plane; the gaps hold the frame's median
    (``fill_median``: a video, per channel) or 0 (labels). ``close`` is the returned frames' close."""
    planes = [int(z) for z in planes]

    def frame(t: int) -> np.ndarray:
        tiles = [np.asarray(plane(t, z)) for z in planes]
        first = tiles[0]
        if any(tile.shape != first.shape for tile in tiles):
            raise ValueError(f"frame {t}'s Z planes differ in shape: {sorted({tile.shape for tile in tiles})}")
        (y, x), rows_columns = first.shape[:2], montage_grid(len(tiles), first.shape[:2])
        rows, columns = rows_columns
        fill: Any = 0
        if fill_median:  # every 4th pixel each way is plenty for a median, and 16x quicker
            sample = np.stack([tile[::4, ::4] for tile in tiles])
            fill = np.nanmedian(sample.reshape(-1, *first.shape[2:]), axis=0).astype(first.dtype)
        picture = np.empty((rows * (y + GAP) - GAP, columns * (x + GAP) - GAP, *first.shape[2:]), first.dtype)
        picture[...] = fill
        for i, tile in enumerate(tiles):
            row, column = divmod(i, columns)
            picture[row * (y + GAP):row * (y + GAP) + y, column * (x + GAP):column * (x + GAP) + x] = tile
        return picture

    return LazyFrames(times, frame, close)
