"""The intensity range a stack is normalised with: per-channel percentiles of a few sample frames.

8- and 16-bit integer frames are counted into a histogram (one `np.bincount` per frame and
channel), whose order statistics give exactly the percentiles `np.percentile` would, without
the float32 copy of every sample frame it needs (2.2 GB and 5.6 s for 8 frames of 4096 x 4096;
docs/benchmarks.md, session 21). Other types (floats, 32-bit integers) use `np.percentile` on
the frames, thinned to a regular grid of pixels where the sample is larger than `MAX_VALUES`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

MAX_VALUES = 1 << 24  # pixels per channel np.percentile is given at most (64 MB of float32)

__all__ = ["MAX_VALUES", "float32_loses_digits", "percentile_range"]


def float32_loses_digits(dtype: np.dtype) -> bool:
    """32/64-bit integers and float64: values float32 cannot hold to the last digit (at 2**40 its
    step is 131072), so their percentiles and offsets are taken in float64."""
    return (dtype.kind in "iu" and dtype.itemsize >= 4) or (dtype.kind == "f" and dtype.itemsize > 4)


def percentile_range(frames: Sequence[np.ndarray], percentiles: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) per channel, float64 arrays of length C (1 for grey), over the (Y, X[, C]) ``frames``.

    Pixels holding NaN or infinity in any channel are left out; a ValueError when none is left.
    """
    dtype = frames[0].dtype
    if dtype.kind in "iu" and dtype.itemsize <= 2:
        return _histogram_percentiles(frames, percentiles)
    return _sampled_percentiles(frames, percentiles)


def _channels(frame: np.ndarray) -> list[np.ndarray]:
    return [frame] if frame.ndim == 2 else [frame[..., c] for c in range(frame.shape[-1])]


def _histogram_percentiles(frames: Sequence[np.ndarray], percentiles: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    info = np.iinfo(frames[0].dtype)
    span = int(info.max) - int(info.min) + 1
    n_channels = len(_channels(frames[0]))
    counts = np.zeros((n_channels, span), np.int64)
    for frame in frames:
        for c, plane in enumerate(_channels(frame)):
            values = plane.ravel()
            if info.min < 0:  # signed: shifted to 0.. so bincount can take them
                values = values.astype(np.int32) - int(info.min)
            counts[c] += np.bincount(values, minlength=span)
    lo, hi = np.empty(n_channels), np.empty(n_channels)
    for c in range(n_channels):
        lo[c], hi[c] = (_order_statistic(counts[c], p) + int(info.min) for p in percentiles)
    return lo, hi


def _order_statistic(counts: np.ndarray, percentile: float) -> float:
    """np.percentile's default ("linear") value from a histogram of the integers 0..len(counts)-1:
    the value at rank p/100 (n - 1), interpolated between the two values around it."""
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    position = percentile / 100.0 * (n - 1)
    below = int(np.floor(position))
    value_at = lambda rank: int(np.searchsorted(cumulative, rank, side="right"))  # noqa: E731
    low = value_at(below)
    high = value_at(min(below + 1, n - 1))
    return low + (position - below) * (high - low)


def _sampled_percentiles(frames: Sequence[np.ndarray], percentiles: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    pixels = sum(f.shape[0] * f.shape[1] for f in frames)
    step = int(np.ceil(np.sqrt(pixels / MAX_VALUES))) if pixels > MAX_VALUES else 1
    # float64 stays float64 here: a value beyond float32's range would become inf and pass for no value
    wide = np.float64 if float32_loses_digits(frames[0].dtype) else np.float32
    sample = np.concatenate([f[::step, ::step].reshape(-1, 1 if f.ndim == 2 else f.shape[-1]).astype(wide)
                             for f in frames])
    finite = sample[np.isfinite(sample).all(axis=1)]
    if finite.size == 0:
        raise ValueError("the stack holds no finite values (all NaN or inf)")
    lo, hi = np.percentile(finite, percentiles, axis=0)
    # the span too: frames are normalised as (x - lo) / (hi - lo) in float32, where a span of 4e38
    # (values within +-2e38) is inf and the frames NaN
    reach = float(max(np.abs(np.concatenate([lo, hi])).max(), np.max(np.asarray(hi, np.float64) - lo)))
    if reach > float(np.finfo(np.float32).max):
        raise ValueError(f"the stack's intensities reach or span {reach:.3g}, beyond the float32 range (3.4e+38) "
                         "napari-vos computes in: divide the stack by a constant first")
    return lo, hi
