"""One Z plane of a (T, Z, Y, X[, C]) stack seen as a (T, Y, X[, C]) time-lapse, read lazily.

napari-vos propagates 2D + time; a 3D + time stack (confocal, light sheet) is propagated one plane
at a time. A numpy stack's plane is a view (``stack[:, z]``, nothing copied); for a zarr or dask
stack that slice would read (zarr) or schedule (dask) the whole plane over every frame up front,
so `PlaneView` reads ``stack[t, z]`` only when frame t is asked for, and a run of frames
``stack[a:b, z]`` in one read (the engine keeps a chunk row of a chunked stack: `data.frames`).
Written here, as `ChannelStack` is, because the engine asks for one frame by its index and no
library wrapper does that without reading or planning the whole plane first.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PlaneView", "plane_of"]


class PlaneView:
    """Plane ``z`` of a (T, Z, Y, X[, C]) array (numpy, memmap, zarr, dask, ...): a (T, Y, X[, C]) stack."""

    def __init__(self, stack: Any, z: int) -> None:
        shape = tuple(int(s) for s in stack.shape)
        if len(shape) < 4:
            raise ValueError(f"a stack of planes is (T, Z, Y, X[, C]); got shape {shape}")
        self.stack = stack
        self.z = _checked_plane(shape, z)
        self.shape = (shape[0], *shape[2:])
        self.dtype = np.dtype(stack.dtype)
        self.ndim = len(self.shape)
        chunks = getattr(stack, "chunks", None)  # the stack's chunks along T, Y, X[, C]: how a read decodes
        self.chunks = (chunks[0], *chunks[2:]) if chunks else None

    def __repr__(self) -> str:
        return f"PlaneView(z={self.z}, shape={self.shape}, dtype={self.dtype})"

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        """Frame(s) by an index over (T[, Y[, X[, C]]]): ``stack[t, z, ...]`` read then."""
        parts = key if isinstance(key, tuple) else (key,)
        if any(part is Ellipsis for part in parts) or len(parts) > self.ndim:
            raise IndexError(f"index a PlaneView's (T, Y, X{', C' if self.ndim == 4 else ''}) axes without ..., "
                             f"got {key!r}")
        return np.asarray(self.stack[(parts[0], self.z, *parts[1:])])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The whole plane over time in memory (for small stacks and tests)."""
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def plane_of(stack: Any, z: int) -> Any:
    """Plane ``z`` of a (T, Z, Y, X[, C]) stack as a (T, Y, X[, C]) one: a numpy view (writable, as the
    stack is), else a `PlaneView` that reads each frame when it is asked for."""
    if isinstance(stack, np.ndarray):
        return stack[:, _checked_plane(stack.shape, z)]
    return PlaneView(stack, z)


def _checked_plane(shape: tuple[int, ...], z: int) -> int:
    """``z`` as a plane index of a (T, Z, ...) stack of ``shape``; a ValueError where it is outside."""
    if not 0 <= int(z) < shape[1]:
        raise ValueError(f"Z plane {z} is outside the stack's planes 0..{shape[1] - 1}")
    return int(z)
