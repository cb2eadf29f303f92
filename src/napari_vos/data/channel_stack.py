"""Several (T, Y, X) stacks read as the channels of one (T, Y, X, C) video, lazily.

napari opens a multi-channel time-lapse as one layer per channel (``channel_axis``); a cell may
show in phase contrast and in a nuclear stain at once. `ChannelStack` joins such stacks so the
engine's per-channel normalisation (`data.frames.FrameSource`) sees one video: reading frame t
reads frame t of each stack and nothing else.

Written here rather than with ``dask.array.stack``: dask's ``from_array`` builds its tasks for
every frame up front (3.3 s for 400 frames of two 1024 x 1024 channels here, against 0.06 ms) and
runs its scheduler on every read (3.3 against 0.6 ms a frame), while the engine only ever asks for
one frame by its index (`scripts/channel_stack_cost.py`, docs/benchmarks.md).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ChannelStack", "MAX_CHANNELS"]

MAX_CHANNELS = 3  # the networks take three input channels (FrameSource picks at most three)


class ChannelStack:
    """A (T, Y, X, C) view of C (T, Y, X) arrays of one shape (numpy, memmap, zarr, dask, ...).

    ``names`` label the arrays in errors (e.g. layer names). The dtype is the arrays' common type
    (uint8 with uint16 reads as uint16), so each channel keeps its own values and range.
    """

    def __init__(self, stacks: Sequence[Any], names: Sequence[str] | None = None) -> None:
        stacks = list(stacks)
        names = list(names) if names is not None else [f"stack {i}" for i in range(len(stacks))]
        if not 2 <= len(stacks) <= MAX_CHANNELS:
            raise ValueError(f"combine 2 to {MAX_CHANNELS} stacks as channels, got {len(stacks)}")
        if len(names) != len(stacks):  # zip would leave the unnamed stacks unchecked
            raise ValueError(f"give one name per stack: {len(names)} names for {len(stacks)} stacks")
        shapes = [tuple(int(s) for s in getattr(a, "shape", ())) for a in stacks]
        for name, shape in zip(names, shapes):
            if len(shape) != 3:
                raise ValueError(f"{name} has shape {shape}; only (T, Y, X) stacks can be combined as channels")
            if shape != shapes[0]:
                raise ValueError(f"{name} has shape {shape} but {names[0]} has {shapes[0]}: channels must have "
                                 "the same frames and size")
        self.stacks = stacks
        self.names = names
        self.shape = (*shapes[0], len(stacks))
        self.dtype = np.result_type(*[np.dtype(getattr(a, "dtype", np.float32)) for a in stacks])
        self.ndim = 4

    def __repr__(self) -> str:
        return f"ChannelStack(shape={self.shape}, dtype={self.dtype}, names={self.names})"

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        """Frame(s) by an index over (T[, Y[, X]]), with the channels last; the channel axis itself
        cannot be indexed here (pick channels with the engine's ``channels`` option)."""
        parts = key if isinstance(key, tuple) else (key,)
        if any(part is Ellipsis for part in parts) or len(parts) > 3:
            # an Ellipsis would reach each (T, Y, X) stack and index its X, not the channels
            raise IndexError("index the frames (T, Y, X) of a ChannelStack without ... or a channel index; the "
                             "channels are picked with channels=[...] (or read one stack of .stacks)")
        return np.stack([np.asarray(a[key]).astype(self.dtype, copy=False) for a in self.stacks], axis=-1)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The whole (T, Y, X, C) stack in memory (for small stacks and tests)."""
        out = self[:]
        return out if dtype is None else out.astype(dtype)
