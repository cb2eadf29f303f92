"""A lazy stack over frame sequences that lack array attributes: pims-style readers or a user's own
class with ``__len__`` and ``__getitem__`` (no ``shape``), or a stack with ``shape`` but no ``dtype``.
Frame 0 gives what is missing and only the frames asked for are read; ``np.asarray`` on such a
sequence would read every frame at once.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def needs_indexing(video: Any) -> bool:
    """Whether ``video`` is indexable by frame but lacks ``shape`` or ``dtype``. Lists and tuples,
    already in memory, are stacked instead (which also reports frames of several sizes at once)."""
    if isinstance(video, (list, tuple)) or not hasattr(video, "__getitem__"):
        return False
    if hasattr(video, "shape"):
        return not hasattr(video, "dtype")
    return hasattr(video, "__len__")


class IndexedFrames:
    """``video[i]`` read one frame at a time. ``dtype`` is frame 0's, and ``shape`` the video's own
    where it has one, else its length and frame 0's shape (the other frames are checked when read,
    as any stack's are)."""

    def __init__(self, video: Any) -> None:
        self.video = video
        own = getattr(video, "shape", None)
        n = int(own[0]) if own is not None and len(own) else len(video)
        if n < 1:
            raise ValueError("the video holds no frames")
        self._first = np.asarray(video[0])
        self.shape = tuple(int(s) for s in own) if own is not None else (n, *self._first.shape)
        self.dtype = self._first.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            return np.stack([self[i] for i in range(*index.indices(len(self)))])
        i = int(index)
        return self._first if i in (0, -len(self)) else np.asarray(self.video[i])
