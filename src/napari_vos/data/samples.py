"""The two built-in sample videos (napari's File > Open Sample > napari-vos) and their truth.

Both are synthetic (data/synthetic.py), generated from fixed seeds and sizes, so every user,
test and `napari-vos demo` sees exactly the same stack:

- natural: 50 frames of 256 x 384 RGB, 2 textured objects moving over a textured background,
  with look-alike distractors, occlusions, camera motion and lighting changes;
- cells: a 40-frame 256 x 256 phase-contrast time-lapse, 16-bit, ~25 cells that move, touch,
  divide and enter/leave the field.

`natural_sample()` / `cell_sample()` return the full `SyntheticVideo` (frames and the true labels
of every frame, cached). The napari entry points hand out the frames and a labels stack with
only the first frame painted: the truth of later frames stays hidden so the propagation can be
compared against it. The cached arrays are read-only, so what one caller sees cannot be changed
by another. numpy only: napari imports this module when a sample is opened.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from napari_vos.data.synthetic import SyntheticVideo, cell_video, natural_video

__all__ = [
    "NATURAL",
    "CELLS",
    "natural_sample",
    "cell_sample",
    "first_frame_labels",
    "napari_sample_natural",
    "napari_sample_cells",
]

# The fixed recipes (also quoted in docs/user-guide.md).
NATURAL: dict[str, Any] = {"n_frames": 50, "size": (256, 384), "n_objects": 2, "seed": 0, "distractors": True}
CELLS: dict[str, Any] = {"n_frames": 40, "size": (256, 256), "n_cells": 25, "seed": 0, "modality": "phase",
                         "bit_depth": 16}

LayerDataTuple = tuple[Any, dict[str, Any], str]


@lru_cache(maxsize=1)
def natural_sample() -> SyntheticVideo:
    """The natural-looking sample: frames (50, 256, 384, 3) uint8, labels (50, 256, 384) int32."""
    return _read_only(natural_video(**NATURAL))


@lru_cache(maxsize=1)
def cell_sample() -> SyntheticVideo:
    """The microscopy sample: phase contrast, frames (40, 256, 256) uint16, labels int32."""
    return _read_only(cell_video(**CELLS))


def _read_only(video: SyntheticVideo) -> SyntheticVideo:
    """Freeze the cached arrays, so no caller can change what the next caller (or the demo) gets."""
    video.frames.flags.writeable = False
    video.labels.flags.writeable = False
    return video


def first_frame_labels(labels: np.ndarray, frame: int = 0) -> np.ndarray:
    """A (T, Y, X) int32 stack holding only ``labels[frame]``; every other frame is 0."""
    out = np.zeros(labels.shape, dtype=np.int32)
    out[frame] = labels[frame]
    return out


def napari_sample_natural() -> list[LayerDataTuple]:
    """napari sample data: the natural video and its first-frame labels (later frames empty)."""
    video = natural_sample()
    return [
        (video.frames, {"name": "natural video", "rgb": True}, "image"),
        (first_frame_labels(video.labels), {"name": "natural labels"}, "labels"),
    ]


def napari_sample_cells() -> list[LayerDataTuple]:
    """napari sample data: the phase-contrast time-lapse and its first-frame cell labels."""
    video = cell_sample()
    lo, hi = np.percentile(video.frames[0], (0.5, 99.5))
    return [
        (video.frames, {"name": "cells (phase contrast)", "contrast_limits": [float(lo), float(hi)],
                        "colormap": "gray"}, "image"),
        (first_frame_labels(video.labels), {"name": "cell labels"}, "labels"),
    ]
