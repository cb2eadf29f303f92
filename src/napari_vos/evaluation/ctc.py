"""The Cell Tracking Challenge SEG measure, for frames with many small objects.

SEG (Maška et al., "A benchmark for comparison of cell tracking algorithms", 2014; CTC
evaluation software): each ground-truth object R is matched to the predicted object S with
|R ∩ S| > 0.5 |R| (at most one S can satisfy this); its score is the Jaccard index |R ∩ S| /
|R ∪ S|, or 0 when no predicted object matches. SEG is the mean over all GT objects of all
evaluated frames. Object identities do not need to agree between GT and prediction, which is
why it is the right score for cell data whose GT ids are not consistent over time.
All pairwise overlaps come from one `bincount` over the frame, so hundreds of cells cost little.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["seg_per_object", "seg_measure"]


def seg_per_object(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """SEG score of every GT object of one frame (ascending GT id); empty array if no GT object."""
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"shapes differ: gt {gt.shape} vs prediction {pred.shape}")
    g_ids, g = np.unique(gt.ravel(), return_inverse=True)
    p_ids, p = np.unique(pred.ravel(), return_inverse=True)
    n_p = len(p_ids)
    overlap = np.bincount(g * n_p + p, minlength=len(g_ids) * n_p).reshape(len(g_ids), n_p)
    g_area = overlap.sum(1)
    p_area = overlap.sum(0)
    g_fg = g_ids != 0
    p_fg = p_ids != 0
    scores = []
    for i in np.nonzero(g_fg)[0]:
        row = np.where(p_fg, overlap[i], 0)
        j = int(np.argmax(row))
        inter = row[j]
        if p_fg[j] and 2 * inter > g_area[i]:
            scores.append(inter / (g_area[i] + p_area[j] - inter))
        else:
            scores.append(0.0)
    return np.asarray(scores, dtype=float)


def seg_measure(gts: Iterable[np.ndarray], preds: Iterable[np.ndarray]) -> float:
    """SEG over several frames: mean over all GT objects (nan if there are none)."""
    scores = [seg_per_object(g, p) for g, p in zip(gts, preds)]
    allv = np.concatenate(scores) if scores else np.zeros(0)
    return float(allv.mean()) if allv.size else float("nan")
