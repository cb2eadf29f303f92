"""Slot <-> object matching for RVOS's zero-shot mode (RIS/RSIS's bipartite matching, seed 003).

Zero-shot RVOS segments N slots without being told which object is which. Training matches the
first n slots to the n ground-truth objects by the Hungarian algorithm on the relaxed IoU
(RIS: <Y^, Y> / (|Y^|_1 + |Y|_1 - <Y^, Y>)); at test time, when the user annotated a frame, the
slots are matched to the annotated objects on that frame the same way (by IoU), so each
annotated object is followed by one slot.
"""
from __future__ import annotations

import numpy as np
import torch


def soft_iou(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Relaxed IoU of soft masks over the last two axes: (..., H, W) x (..., H, W) -> (...).

    Two empty masks have IoU 1 (nothing to find, nothing found).
    """
    inter = (pred * target).sum((-2, -1))
    union = pred.sum((-2, -1)) + target.sum((-2, -1)) - inter
    return (inter + eps) / (union + eps)


def iou_matrix(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred (N, H, W), target (K, H, W) -> (N, K) relaxed IoU of every slot with every object."""
    return soft_iou(pred[:, None].float(), target[None].float())


def hungarian(score: torch.Tensor | np.ndarray) -> list[tuple[int, int]]:
    """Pairs (row, column) maximising the summed score; min(rows, columns) pairs, sorted by row."""
    from scipy.optimize import linear_sum_assignment

    s = score.detach().float().cpu().numpy() if isinstance(score, torch.Tensor) else np.asarray(score, float)
    rows, cols = linear_sum_assignment(s, maximize=True)
    return sorted(zip(rows.tolist(), cols.tolist()))


def match_slots(slot_probs: torch.Tensor, objects: torch.Tensor) -> list[int]:
    """The slot following each annotated object: slot_probs (N, H, W), objects (K, H, W) -> K slot indices.

    Hungarian matching on the IoU of the slots' masks (probabilities above 0.5) with the objects;
    needs N >= K.
    """
    n, k = slot_probs.shape[0], objects.shape[0]
    if k > n:
        raise ValueError(f"{k} annotated objects but only {n} zero-shot slots; use a network with more slots")
    pairs = hungarian(iou_matrix((slot_probs > 0.5).float(), (objects > 0.5).float()))
    slot_of = {obj: slot for slot, obj in pairs}
    return [slot_of[j] for j in range(k)]


def count_objects(stop_probs: torch.Tensor, threshold: float = 0.5) -> int:
    """RIS's stopping rule: the slots before the first whose "object present" score falls below ``threshold``."""
    below = (stop_probs < threshold).nonzero()
    return int(below[0, 0]) if len(below) else int(stop_probs.shape[0])
