"""Result types shared by the synthetic generators: a rendered video and a lazy frame view.

A generator is split into a *scene* (all random choices and trajectories, drawn once from the
seed) and a *render(t)* that draws frame t from the scene alone. So frame t is the same whether
the whole video is rendered (`SyntheticVideo`) or frames are produced on demand
(`RenderedFrames`, used by `bench` to stream a 5000-frame stack in constant memory).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["SyntheticVideo", "Scene", "RenderedFrames", "render_all"]


class Scene(Protocol):
    """What a synthetic scene offers: its length, frame shape/dtype and a deterministic render."""

    n_frames: int
    frame_shape: tuple[int, ...]
    dtype: np.dtype

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame t (image, int32 labels)."""
        ...


@dataclass
class SyntheticVideo:
    """A generated video with exact masks.

    frames: (T, H, W, 3) uint8 (natural) or (T, H, W) uint8/uint16 (cells).
    labels: (T, H, W) int32, object k = k, occluded parts removed, 0 = background.
    lineage: cells only: id -> (parent id or 0, first frame, last frame) where the id is visible.
    """

    name: str
    frames: np.ndarray
    labels: np.ndarray
    lineage: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class RenderedFrames:
    """Array-like (T, H, W[, C]) view whose frames are rendered on access (`frames[t]`).

    `labels` gives the matching ground truth the same way. Rendering twice gives equal arrays.
    """

    def __init__(self, scene: Scene, what: str = "frames") -> None:
        self.scene = scene
        self._what = what

    def __len__(self) -> int:
        return self.scene.n_frames

    @property
    def shape(self) -> tuple[int, ...]:
        if self._what == "labels":
            return (self.scene.n_frames, *self.scene.frame_shape[:2])
        return (self.scene.n_frames, *self.scene.frame_shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.int32) if self._what == "labels" else np.dtype(self.scene.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def labels(self) -> RenderedFrames:
        return RenderedFrames(self.scene, "labels")

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, tuple):
            head, rest = index[0], index[1:]
            base = self[head]
            return base[rest] if isinstance(head, (int, np.integer)) else base[(slice(None), *rest)]
        if isinstance(index, slice):
            return np.stack([self[i] for i in range(*index.indices(len(self)))])
        t = int(index)
        if t < 0:
            t += len(self)
        if not 0 <= t < len(self):
            raise IndexError(f"frame {t} out of range for {len(self)} frames")
        image, labels = self.scene.render(t)
        return labels if self._what == "labels" else image

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[0 : len(self)]
        return out if dtype is None else out.astype(dtype)


def render_all(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Render every frame into preallocated (T, ...) image and label arrays."""
    n = scene.n_frames
    frames = np.empty((n, *scene.frame_shape), dtype=scene.dtype)
    labels = np.empty((n, *scene.frame_shape[:2]), dtype=np.int32)
    for t in range(n):
        frames[t], labels[t] = scene.render(t)
    return frames, labels
