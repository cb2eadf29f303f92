"""Time and peak memory of turning an annotation into the methods' (K, h, w) masks, box by box
(`nn.aggregation.object_masks`, the engine's way since session 21) against the full one-hot stack
resized at once (the way before).

    python scripts/object_masks_cost.py [CELLS] [SIDE] [WORK_SIDE]    # default 144 2048 1024
"""
from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np
import torch
import torch.nn.functional as F

from napari_vos.nn.aggregation import object_masks


def full_stack(labels: np.ndarray, ids: list[int], size: tuple[int, int]) -> torch.Tensor:
    onehot = torch.from_numpy(np.stack([labels == i for i in ids]).astype(np.float32))
    return (F.interpolate(onehot[None], size=size, mode="bilinear", align_corners=False)[0] > 0.5).float()


def measure(fn, *args) -> tuple[torch.Tensor, float, float]:
    tracemalloc.start()
    tic = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - tic
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def main() -> None:
    cells, side, work = (int(a) for a in (sys.argv[1:] + ["144", "2048", "1024"][len(sys.argv) - 1:])[:3])
    rng = np.random.default_rng(0)
    labels = np.zeros((side, side), np.int32)
    yy, xx = np.ogrid[:side, :side]
    for i in range(cells):
        y, x = rng.integers(20, side - 20, 2)
        labels[(yy - y) ** 2 + (xx - x) ** 2 < 15 ** 2] = i + 1
    ids = list(range(1, cells + 1))
    for warm in (object_masks, full_stack):  # torch's and numpy's first-call costs out of the timings
        warm(labels[:64, :64], ids[:2], (32, 32))
    new, t_new, m_new = measure(object_masks, labels, ids, (work, work))
    old, t_old, m_old = measure(full_stack, labels, ids, (work, work))
    print(f"{cells} cells, {side} px -> {work} px: box by box {t_new:.2f} s, peak {m_new / 2**20:.0f} MiB; "
          f"full stack {t_old:.2f} s, peak {m_old / 2**20:.0f} MiB; equal: {torch.equal(new, old)}")


if __name__ == "__main__":
    main()
