"""Per-video intensity changes for training (``napari-vos train --photometric P``).

Propagation reads an 8-bit video as 0-255 but stretches a 16-bit, float or dim one by its
1st-99.8th percentiles (`data.frames`), so the same scene reaches a network at different
contrasts; the shipped RGMP checkpoint's labels agreed at only J 0.58 between a video and its
16-bit copy (docs/benchmarks.md, "Reproducibility"). Training videos given either that
stretch or a random contrast, brightness and gamma are meant to make a network less sensitive to
it (the effect is measured in docs/benchmarks.md before a checkpoint trained so is shipped).

Each change is one monotone look-up table per video (per channel for the stretch, as the engine
stretches each channel; one for all channels for the random change), the same for every frame,
as a camera's or a reader's change of scale is: a 256-entry table over uint8 frames is far cheaper
than float arithmetic on a whole real sequence. Written here rather than with scikit-image's
``exposure`` functions because the stretch must be the engine's own (`percentile_range`).
"""
from __future__ import annotations

import numpy as np

from napari_vos.data.frames import PERCENTILES, range_sample
from napari_vos.data.intensity import percentile_range

#: contrast factor, brightness offset (of the 0-1 range) and log-gamma ranges of the random change
CONTRAST = (0.5, 1.6)
BRIGHTNESS = (-0.12, 0.12)
LOG_GAMMA = (-0.4, 0.4)


def _sample(frames: np.ndarray) -> list[np.ndarray]:
    """The frames the engine reads a stack's intensity range from (`range_sample`)."""
    return [frames[i] for i in range_sample(len(frames))]


def stretch_tables(frames: np.ndarray) -> np.ndarray:
    """(C, 256) uint8 tables (C = 1 for grey frames) that stretch each channel's 1st-99.8th
    percentiles to 0-255, with the engine's own `percentile_range`: propagation's reading of a
    16-bit or dim copy of ``frames``."""
    lo, hi = percentile_range(_sample(frames), PERCENTILES)
    x = np.arange(256, dtype=np.float64)[None]
    scaled = (x - lo[:, None]) / np.maximum(hi - lo, 1.0)[:, None]
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def random_table(rng: np.random.Generator, mean: float) -> np.ndarray:
    """A (256,) uint8 table changing contrast about ``mean`` (0-1), brightness and gamma at random."""
    contrast = rng.uniform(*CONTRAST)
    brightness = rng.uniform(*BRIGHTNESS)
    gamma = float(np.exp(rng.uniform(*LOG_GAMMA)))
    x = np.arange(256, dtype=np.float64) / 255.0
    y = np.clip((x - mean) * contrast + mean + brightness, 0.0, 1.0) ** gamma
    return np.round(y * 255).astype(np.uint8)


class TabledFrames:
    """uint8 frames (T, H, W[, C]) seen through per-channel tables, applied to the frames indexed only:
    a clip takes 1-14 frames of a video of a hundred, so changing the whole video was 5-12x the
    batch's cost. Indexing gives numpy arrays, as the video's own indexing does."""

    def __init__(self, frames: np.ndarray, tables: np.ndarray) -> None:
        self.frames, self.tables = frames, tables
        self.shape, self.dtype, self.ndim = frames.shape, frames.dtype, frames.ndim

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, key: object) -> np.ndarray:
        if isinstance(key, tuple):  # indexing within frames could drop or pick the channel axis
            return np.asarray(self)[key]
        return apply_tables(self.frames[key], self.tables)  # frames picked: the channel axis stays last

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        out = apply_tables(self.frames, self.tables)
        return out if dtype is None else out.astype(dtype)


def apply_tables(frames: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """``frames`` (..., C) uint8 with channels last through (C, 256) tables, or any uint8 array
    through one table (grey frames, or one table for all channels)."""
    if len(tables) == 1:
        return tables[0][frames]
    if frames.shape[-1] != len(tables):
        raise ValueError(f"{len(tables)} channel tables for frames of shape {frames.shape}")
    out = np.empty_like(frames)
    for c in range(frames.shape[-1]):
        out[..., c] = tables[c][frames[..., c]]
    return out


def photometric_change(frames: np.ndarray, rng: np.random.Generator) -> TabledFrames:
    """uint8 ``frames`` (T, H, W[, C]) seen through per-video tables: the engine's percentile stretch
    or a random contrast/brightness/gamma change (one table for all channels), with equal chance.
    The frames are not copied; the tables apply to the frames a clip takes (`TabledFrames`)."""
    if frames.dtype != np.uint8:
        raise ValueError(f"photometric changes apply to uint8 training frames, got {frames.dtype}")
    if rng.random() < 0.5:
        tables = stretch_tables(frames)
    else:
        mean = float(np.mean([f.mean() for f in _sample(frames)])) / 255.0
        tables = random_table(rng, mean)[None]
    return TabledFrames(frames, tables)
