"""Scoring a zero-shot (unsupervised) prediction: its foreground against the union of the true objects.

The DAVIS 2016 unsupervised convention: the method is told nothing and segments "the primary
object"; every predicted object id counts as foreground, the ground truth of all objects is merged
into one foreground, and J/F are computed for that single binary object on the frames with ground
truth, the sequence's first and last frame left out as the DAVIS 2016 code leaves them out for
every method, unsupervised ones included (its loader's ``[1:-1]``); a sequence of one or two
frames keeps them (nothing would be left).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from napari_vos.evaluation.metrics import SequenceResult, evaluate_sequence

__all__ = ["ForegroundStack", "evaluate_foreground", "score_foreground"]


class ForegroundStack:
    """A frame-indexable view of a labels stack as 0/1 foreground (None stays None: no GT on that frame)."""

    def __init__(self, labels: Any) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, t: int) -> np.ndarray | None:
        frame = self.labels[t]
        return None if frame is None else (np.asarray(frame) > 0).astype(np.int32)


def evaluate_foreground(name: str, gt: Any, pred: Any, only: set[int] | None = None) -> SequenceResult:
    """J/F of ``pred``'s foreground (any id > 0) against the union of ``gt``'s objects, on the GT
    frames but the first and the last.

    gt: frame-indexable, gt[t] an int label image or None; pred: labels (T, Y, X). only: score only
    these frames (a stopped run's). The result has one object (id 1, "the foreground").
    """
    n = len(pred)
    if hasattr(gt, "__len__") and len(gt) != n:
        raise ValueError(f"{name}: {n} predicted frames for {len(gt)} ground-truth frames; a prediction must cover "
                         "the whole sequence")
    frames = [t for t in range(n) if gt[t] is not None]
    if n >= 3:  # DAVIS 2016: the first and the last frame are not scored
        frames = [t for t in frames if 0 < t < n - 1]
    if only is not None:
        frames = [t for t in frames if t in only]
    return evaluate_sequence(name, ForegroundStack(gt), ForegroundStack(pred), annotated=-1, frames=frames,
                             object_ids=[1])


def score_foreground(pred: Any, gt: Any) -> dict[str, float]:
    """One-call J/F/J&F means, recalls and decays of a zero-shot prediction (demo, notebooks)."""
    return evaluate_foreground("stack", gt, pred).stats()
