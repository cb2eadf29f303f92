"""Time and peak memory of the stack-wide intensity range (8 sample frames) at a given frame size.

    python scripts/intensity_range_cost.py [SIDE] [DTYPE]    # default 4096 uint16

Measures `FrameSource._intensity_range` on a (64, SIDE, SIDE) stack of random values (numbers in
docs/benchmarks.md, session 21); tracemalloc counts numpy's allocations.
"""
from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np

from napari_vos.data.frames import FrameSource
from napari_vos.data.sequence import LazyFrames


def main() -> None:
    side = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    dtype = np.dtype(sys.argv[2] if len(sys.argv) > 2 else "uint16")
    rng = np.random.default_rng(0)
    frames = [(rng.random((side, side), np.float32) * 4000).astype(dtype) for _ in range(8)]
    source = FrameSource(LazyFrames(64, lambda i: frames[i % 8]))  # indexable by frame, nothing stacked
    tracemalloc.start()
    tic = time.perf_counter()
    lo, hi = source._intensity_range()
    seconds = time.perf_counter() - tic
    peak = tracemalloc.get_traced_memory()[1]
    print(f"{side}x{side} {dtype}: range {lo} .. {hi}, {seconds:.2f} s, peak {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
