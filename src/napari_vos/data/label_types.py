"""The integer type of a propagated labels stack: the smallest that holds its object ids.

Kept apart from the engine so the napari widget can size its output layer without importing torch.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from napari_vos.checks import frame_count

__all__ = ["check_id_range", "label_dtype_for", "largest_id", "painted_frames", "painted_planes",
           "painted_plane_frames"]


def label_dtype_for(max_id: int) -> np.dtype:
    """The smallest integer type for label ids up to ``max_id``: uint8, uint16, else int32.

    A (T, Y, X) stack of 1000 frames of 2048 x 2048 is 4 GiB as uint8 and 16 GiB as int32.
    """
    if max_id <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    if max_id <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


#: the largest object id napari-vos keeps (int32 labels)
MAX_ID = int(np.iinfo(np.int32).max)


def check_id_range(lowest: float, highest: float, what: str = "labels") -> None:
    """A ValueError naming ``what`` when its ids go below 0 or above `MAX_ID`, which no output
    type napari-vos writes would hold as they are (a -3 would become 253 in uint8)."""
    if lowest < 0:
        raise ValueError(f"{what} contain negative ids; use 0 for background and 1, 2, ... for objects")
    if float(highest) > MAX_ID:  # float(): float16's max compared with 2**31 - 1 overflowed
        raise ValueError(f"{what} hold ids up to {highest}, more than napari-vos keeps ({MAX_ID}); number the "
                         "objects 1, 2, ... first (skimage.segmentation.relabel_sequential)")


def _top(frame: Any) -> int:
    """The largest id of a frame; a ValueError for NaN or infinite float labels."""
    frame = np.asarray(frame)
    if np.issubdtype(frame.dtype, np.floating) and not np.isfinite(frame).all():
        raise ValueError("labels must hold integer object ids (0 = background); got NaN or infinite float values")
    return int(np.max(frame, initial=0))


def largest_id(labels: Any) -> int:
    """The largest id of a (Y, X) labels image or a (T, Y, X) stack, read one frame at a time (a
    lazy stack is never held whole); 0 when nothing is painted."""
    if np.ndim(labels[0]) == 1:  # a (Y, X) image, whose first item is a row
        return _top(labels)
    return max((_top(labels[t]) for t in range(frame_count(labels))), default=0)


def painted_frames(labels: Any) -> tuple[list[int], int]:
    """The frames of a (T, Y, X) labels stack that hold anything (any non-zero value), and the largest
    id, in one pass that reads each frame once (a TIFF's frames are decoded again by every pass)."""
    painted: list[int] = []
    top = 0
    for t in range(frame_count(labels)):
        frame = np.asarray(labels[t])
        if frame.any():
            painted.append(t)
            top = max(top, _top(frame))
    return painted, top


def painted_planes(labels: Any, planes: Iterable[int] | None = None) -> tuple[list[int], int]:
    """The Z planes of a (T, Z, Y, X) labels stack that hold anything, among ``planes`` (default: all), and
    their largest id, in one pass that reads each plane once (as `painted_frames` does a stack's frames)."""
    painted: list[int] = []
    top = 0
    for z in range(int(np.shape(labels)[1])) if planes is None else planes:
        plane = np.asarray(labels[:, z])
        if plane.any():
            painted.append(int(z))
            top = max(top, _top(plane))
    return painted, top


def painted_plane_frames(volumes: Any) -> tuple[dict[int, list[int]], int]:
    """Each Z plane of (T, Z, Y, X) labels that holds anything, with the frames it holds paint on, and the
    largest id, in one pass that reads each (Z, Y, X) volume once (labels read a volume a frame, which
    have no plane indexing for `painted_planes`)."""
    painted: dict[int, list[int]] = {}
    top = 0
    for t in range(frame_count(volumes)):
        volume = np.asarray(volumes[t])
        held = np.flatnonzero(volume.reshape(len(volume), -1).any(axis=1))
        for z in held:
            painted.setdefault(int(z), []).append(t)
        if len(held):
            top = max(top, _top(volume))
    return dict(sorted(painted.items())), top
