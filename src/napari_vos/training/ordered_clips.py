"""Ordered training clips for recurrent methods: n consecutive frames (fixed temporal step) of one object.

Recurrent methods (A-GAME, and the other mask-propagation methods) are trained through time on
short sequences annotated on their first frame only, so their frames must keep the video's
order, unlike training/clips.py's reference + random frames. A clip is played forward or
backward, with one random temporal step, one object (chosen among those on the first frame), and
one random crop/scale/flip shared by all its frames.
"""
from __future__ import annotations

import numpy as np
from skimage.transform import resize

from napari_vos.training.clips import Clip


def sample_ordered_clip(frames: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator,
                        out_size: tuple[int, int], max_step: int = 2, min_area: float = 0.002) -> Clip | None:
    """frames (T, h, w, 3) uint8, labels (T, h, w) int -> a Clip of n ordered frames, or None if unusable."""
    t = len(frames)
    if t < n:
        return None
    step = int(rng.integers(1, max_step + 1))
    while step > 1 and (n - 1) * step >= t:
        step -= 1
    start = int(rng.integers(0, t - (n - 1) * step))
    idx = start + step * np.arange(n)
    if rng.random() < 0.5:
        idx = idx[::-1]
    ids = [i for i in np.unique(labels[idx[0]]) if i != 0]
    if not ids:
        return None
    obj = int(rng.choice(ids))
    m = (labels[idx] == obj).astype(np.float32)
    if m[0].mean() < min_area:
        return None
    f = frames[idx].astype(np.float32) / 255.0
    h, w = f.shape[1:3]
    scale = rng.uniform(1.0, 1.5)
    ch, cw = max(16, int(h / scale)), max(16, int(w / scale))
    ys, xs = np.nonzero(m[0])
    y0 = int(np.clip(ys.mean() - ch / 2 + rng.uniform(-0.25, 0.25) * ch, 0, h - ch))
    x0 = int(np.clip(xs.mean() - cw / 2 + rng.uniform(-0.25, 0.25) * cw, 0, w - cw))
    f, m = f[:, y0:y0 + ch, x0:x0 + cw], m[:, y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        f, m = f[:, :, ::-1], m[:, :, ::-1]
    f = np.stack([resize(x, out_size, order=1, anti_aliasing=False) for x in f]).astype(np.float32)
    m = np.stack([resize(x, out_size, order=1, anti_aliasing=False) for x in m]) > 0.5
    if m[0].mean() < min_area:
        return None
    return Clip(f, m.astype(np.float32))
