"""DAVIS benchmark metrics: region J, boundary F, J&F, recall and decay; per object and sequence.

Definitions follow the official DAVIS 2017 evaluation code (davisvideochallenge/
davis2017-evaluation, `davis2017/metrics.py`, `utils.py`, `evaluation.py`), re-implemented here
with numpy/scipy (it uses OpenCV, which this package does not depend on):

- J = |G ∩ P| / |G ∪ P|; both empty -> 1.
- F: one-pixel boundaries of both masks (`seg2bmap`: a pixel is boundary if it differs from its
  east, south or south-east neighbour, with the DAVIS handling of the last row/column),
  tolerance `bound_pix = ceil(bound_th * ||(H, W)||)` with bound_th = 0.008 of the image
  diagonal; a boundary pixel matches if the other boundary lies within a disk of that radius
  (done as a Euclidean distance transform, which equals dilation by `skimage.morphology.disk`);
  precision = matched predicted / predicted boundary pixels, recall = matched GT / GT boundary
  pixels, F = 2PR / (P + R). Empty cases as DAVIS: no predicted boundary but a GT one -> P=1, R=0;
  predicted but no GT -> P=0, R=1; neither -> P=R=1 (F=1).
- Per object statistics over its evaluated frames (`db_statistics`): mean (nan-aware), recall =
  fraction of frames with score > 0.5, decay = mean of the first quarter minus mean of the last
  quarter of the frames, with DAVIS's 4 bins `round(linspace(1, n, 5) + 1e-10) - 1`.
- Frames evaluated (semi-supervised): DAVIS 2017 drops the first and the last frame of every
  sequence (`all_gt_masks[:, 1:-1]`). Generalised to sparse ground truth: every frame with GT,
  except the annotated frame given to the method and the sequence's last frame.
- SEG (Cell Tracking Challenge) is not a DAVIS measure and keeps no DAVIS frame rule: it is taken
  over every frame with GT except the annotated one(s), the sequence's last frame included, as the
  official SEG counts every GT frame (those the method was given aside).
- Objects: the ids present in the annotated frame's GT (DAVIS: 1..max id of frame 0). GT value
  255 is void in DAVIS PNG masks and read as background there (see `data.sequence.decode_mask`;
  in TIFF label images 255 is an object).
- Dataset means (J_mean, F_mean) are means over all objects of all sequences, like DAVIS's
  global "J-Mean"/"F-Mean"; J&F is their average. Per-sequence means average its objects.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from napari_vos.checks import painted_ids

__all__ = [
    "seg2bmap",
    "jaccard",
    "f_measure",
    "db_statistics",
    "object_scores",
    "evaluated_frames",
    "ObjectResult",
    "SequenceResult",
    "evaluate_sequence",
    "summarise",
    "score_stack",
    "BOUND_TH",
]

BOUND_TH = 0.008


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask, as the DAVIS/BSDS `seg2bmap` computes it."""
    seg = np.asarray(seg).astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """Region similarity J of two binary masks (both empty -> 1)."""
    gt = np.asarray(gt).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if gt.shape != pred.shape:
        raise ValueError(f"shapes differ: gt {gt.shape} vs prediction {pred.shape}")
    keep = np.ones_like(gt) if void is None else ~np.asarray(void).astype(bool)
    union = np.count_nonzero((gt | pred) & keep)
    if union == 0:
        return 1.0
    return np.count_nonzero(gt & pred & keep) / union


def bound_pixels(shape: tuple[int, ...], bound_th: float = BOUND_TH) -> float:
    """Boundary tolerance in pixels: bound_th itself if >= 1, else ceil(bound_th x diagonal)."""
    return bound_th if bound_th >= 1 else float(np.ceil(bound_th * np.linalg.norm(shape[:2])))


def _within(boundary: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within Euclidean distance `radius` of any True pixel (= dilation by disk(radius))."""
    if not boundary.any():
        return np.zeros_like(boundary)
    return ndi.distance_transform_edt(~boundary) <= radius


def _f_from_boundaries(fg_b: np.ndarray, gt_b: np.ndarray, radius: float) -> float:
    n_fg = int(np.count_nonzero(fg_b))
    n_gt = int(np.count_nonzero(gt_b))
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = np.count_nonzero(fg_b & _within(gt_b, radius)) / n_fg
        recall = np.count_nonzero(gt_b & _within(fg_b, radius)) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def f_measure(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None,
              bound_th: float = BOUND_TH) -> float:
    """Boundary F-measure of two binary masks of one frame (DAVIS definition)."""
    gt = np.asarray(gt).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if gt.shape != pred.shape:
        raise ValueError(f"shapes differ: gt {gt.shape} vs prediction {pred.shape}")
    if void is not None:
        keep = ~np.asarray(void).astype(bool)
        gt, pred = gt & keep, pred & keep
    radius = bound_pixels(gt.shape, bound_th)
    return _f_from_boundaries(seg2bmap(pred), seg2bmap(gt), radius)


def object_scores(gt: np.ndarray, pred: np.ndarray, ids: Iterable[int],
                  bound_th: float = BOUND_TH) -> tuple[np.ndarray, np.ndarray]:
    """J and F of each object id of one frame's label images: two arrays of len(ids).

    Same values as `jaccard`/`f_measure` on the full binary masks, computed inside each object's
    bounding box padded by the tolerance + 2 pixels (the DAVIS edge rule of seg2bmap then sees
    the same pixels), so hundreds of small cells cost little.
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"shapes differ: gt {gt.shape} vs prediction {pred.shape}")
    ids = [int(i) for i in ids]
    radius = bound_pixels(gt.shape, bound_th)
    pad = int(math.ceil(radius)) + 2
    h, w = gt.shape
    gt_boxes = _boxes(gt, ids)
    pred_boxes = _boxes(pred, ids)
    j = np.ones(len(ids))
    f = np.ones(len(ids))
    for n, k in enumerate(ids):
        boxes = [b for b in (gt_boxes[n], pred_boxes[n]) if b is not None]
        if not boxes:
            continue  # both empty: J = F = 1
        y0 = max(0, min(b[0].start for b in boxes) - pad)
        y1 = min(h, max(b[0].stop for b in boxes) + pad)
        x0 = max(0, min(b[1].start for b in boxes) - pad)
        x1 = min(w, max(b[1].stop for b in boxes) + pad)
        g = gt[y0:y1, x0:x1] == k
        p = pred[y0:y1, x0:x1] == k
        inter = np.count_nonzero(g & p)
        union = np.count_nonzero(g | p)
        j[n] = inter / union if union else 1.0
        f[n] = _f_from_boundaries(seg2bmap(p), seg2bmap(g), radius)
    return j, f


def _boxes(labels: np.ndarray, ids: list[int]) -> list[Any]:
    """Each id's bounding box (slices) in ``labels``, or None where it is absent. The ids are
    numbered 1..K first, so the cost does not grow with their values (an id of 10^8, a negative one)."""
    if not ids:
        return []
    order = np.asarray(ids)
    sorter = np.argsort(order, kind="stable")
    where = np.searchsorted(order, labels, sorter=sorter)
    where = np.clip(where, 0, len(ids) - 1)
    index = sorter[where]
    numbered = np.where(order[index] == labels, index + 1, 0)
    return ndi.find_objects(numbered.astype(np.int64), max_label=len(ids))


def db_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall, decay) of per-frame scores, as DAVIS's `db_statistics` computes them."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.nanmean(values > 0.5))
        ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(int)
        bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


def evaluated_frames(n_frames: int, gt_frames: Iterable[int], annotated: int | Iterable[int],
                     drop_last: bool = True) -> list[int]:
    """Frames scored for a semi-supervised method: GT frames minus annotated ones (and the last)."""
    ann = {int(annotated)} if isinstance(annotated, (int, np.integer)) else {int(a) for a in annotated}
    out = [int(t) for t in gt_frames if int(t) not in ann]
    if drop_last:
        out = [t for t in out if t != n_frames - 1]
    return sorted(out)


@dataclass
class ObjectResult:
    """One object's per-frame scores and DAVIS statistics."""

    id: int
    frames: list[int]
    J: np.ndarray
    F: np.ndarray

    def stats(self) -> dict[str, float]:
        jm, jr, jd = db_statistics(self.J)
        fm, fr, fd = db_statistics(self.F)
        return {"J_mean": jm, "J_recall": jr, "J_decay": jd, "F_mean": fm, "F_recall": fr,
                "F_decay": fd, "JF_mean": (jm + fm) / 2}


@dataclass
class SequenceResult:
    """One sequence's results: objects, evaluated frames and (optionally) the CTC SEG measure."""

    name: str
    frames: list[int]
    objects: list[ObjectResult] = field(default_factory=list)
    seg: float | None = None
    #: ids of the truth's scored frames that are none of the scored objects (an object entering after
    #: the annotated frame, or truth numbered afresh on each frame as CTC's SEG), each with its first frame
    unscored_truth: dict[int, int] = field(default_factory=dict)

    def stats(self) -> dict[str, float]:
        per = [o.stats() for o in self.objects]
        out = {}
        for key in ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"):
            vals = np.array([p[key] for p in per], dtype=float)
            out[key] = float(np.nanmean(vals)) if vals.size and not np.all(np.isnan(vals)) else float("nan")
        out["JF_mean"] = (out["J_mean"] + out["F_mean"]) / 2
        return out

    def jf_over_time(self) -> np.ndarray:
        """Per evaluated frame, J&F averaged over objects (for plots)."""
        if not self.objects:
            return np.zeros(0)
        return np.mean([(o.J + o.F) / 2 for o in self.objects], axis=0)


def evaluate_sequence(name: str, gt: object, pred: object, annotated: int,
                      frames: list[int] | None = None, object_ids: list[int] | None = None,
                      bound_th: float = BOUND_TH, seg: bool = False) -> SequenceResult:
    """Score predicted labels against GT labels of one sequence.

    gt: frame-indexable, gt[t] an int label image or None (no GT at t); pred: frame-indexable
    labels (T, Y, X). annotated: the frame whose GT was given to the method. frames: which
    frames to score (default `evaluated_frames`); object_ids: default the ids in gt[annotated].
    seg: also compute the Cell Tracking Challenge SEG measure (by default over the same frames and
    the last one, which SEG does not leave out).
    """
    n = len(pred)  # type: ignore[arg-type]
    n_gt = len(gt) if hasattr(gt, "__len__") else None  # type: ignore[arg-type]
    if n_gt is not None and n_gt != n:
        raise ValueError(f"{name}: {n} predicted frames for {n_gt} ground-truth frames; a prediction must cover "
                         "the whole sequence")
    seg_frames = frames
    if frames is None:
        gt_frames = [t for t in range(n) if gt[t] is not None]  # type: ignore[index]
        frames = evaluated_frames(n, gt_frames, annotated)
        seg_frames = evaluated_frames(n, gt_frames, annotated, drop_last=False)  # SEG: the last frame counts
    if object_ids is None:
        first = np.asarray(gt[annotated])  # type: ignore[index]
        object_ids = painted_ids(first)
    js = np.zeros((len(object_ids), len(frames)))
    fs = np.zeros((len(object_ids), len(frames)))
    seg_scores: list[np.ndarray] = []
    column = {t: c for c, t in enumerate(frames)}
    seg_at = set(seg_frames) if seg else set()
    scored_ids = set(object_ids)
    unscored: dict[int, int] = {}
    for t in sorted(set(column) | seg_at):
        g = np.asarray(gt[t])  # type: ignore[index]
        p = np.asarray(pred[t])  # type: ignore[index]
        if p.shape != g.shape:
            raise ValueError(f"{name} frame {t}: prediction {p.shape} vs ground truth {g.shape}")
        for k in painted_ids(g):
            if k not in scored_ids:
                unscored.setdefault(k, t)
        if object_ids and t in column:
            js[:, column[t]], fs[:, column[t]] = object_scores(g, p, object_ids, bound_th)
        if t in seg_at:
            from napari_vos.evaluation.ctc import seg_per_object

            seg_scores.append(seg_per_object(g, p))
    result = SequenceResult(
        name=name, frames=list(frames),
        objects=[ObjectResult(k, list(frames), js[i], fs[i]) for i, k in enumerate(object_ids)],
        unscored_truth=unscored,
    )
    if seg:
        allv = np.concatenate(seg_scores) if seg_scores else np.zeros(0)
        result.seg = float(allv.mean()) if allv.size else float("nan")
    return result


def summarise(results: list[SequenceResult]) -> dict[str, float]:
    """Dataset means over all objects of all sequences (DAVIS convention)."""
    per = [o.stats() for r in results for o in r.objects]
    out: dict[str, float] = {}
    for key in ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"):
        vals = np.array([p[key] for p in per], dtype=float)
        out[key] = float(np.nanmean(vals)) if vals.size and not np.all(np.isnan(vals)) else float("nan")
    out["JF_mean"] = (out["J_mean"] + out["F_mean"]) / 2
    return out


def score_stack(pred: object, gt: object, annotated: int = 0, seg: bool = False) -> dict[str, float]:
    """One-call scores of a predicted (T, Y, X) stack against a full GT stack (demo, notebooks).

    Same rules as `evaluate_sequence` (objects of gt[annotated]; annotated and last frames not
    scored); returns the sequence's J/F/J&F means, recalls and decays (and "SEG" if asked).
    """
    result = evaluate_sequence("stack", gt, pred, annotated, seg=seg)
    out = result.stats()
    if seg:
        out["SEG"] = float(result.seg) if result.seg is not None else float("nan")
    return out
