"""Ordered multi-object clips for RVOS: n frames in the video's order with every object of the first frame.

Like ``ordered_clips.sample_ordered_clip`` (one random temporal step, one spatial augmentation
shared by all frames) but keeping up to ``max_objects`` objects, ordered by their ids as the
engine orders them, each as its own mask channel. Real DAVIS 2016 sequences give one object; the
synthetic natural-like videos give one to three.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_vos.training.ordered_clips import Augment, FlipAffine, ordered_indices


@dataclass
class ObjectClip:
    """Frames of one sequence with every object's masks, for RVOS's multi-object training."""

    frames: np.ndarray  # (T, H, W, 3) float32 in [0, 1]
    masks: np.ndarray  # (T, K, H, W) float32 {0, 1}, objects in id order
    ids: list[int]  # the objects' ids in the source video
    others: np.ndarray | None = None  # (T, H, W) {0, 1}: objects in the frames but not among the K (ignore_others)


def augment_objects(augment: Augment, frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
                    out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One augmentation for the frames and all K objects: masks (T, K, H, W) go through as T*K masks.

    The ordered-clip augmentations draw their random parameters once per call and apply them to
    every mask alike, so stacking the objects along the mask axis transforms them together.
    """
    t, k = masks.shape[:2]
    f, m = augment(frames, masks.reshape(t * k, *masks.shape[2:]), rng, out_size)
    return f, m.reshape(t, k, *m.shape[1:])


def sample_object_clip(frames: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator,
                       out_size: tuple[int, int], max_step: int = 2, max_objects: int = 3,
                       augment: Augment = FlipAffine(), min_area: float = 0.002,
                       ignore_others: bool = False) -> ObjectClip | None:
    """frames (T, H, W, 3) uint8, labels (T, H, W) int -> n ordered frames with up to ``max_objects`` objects.

    The objects are those covering at least ``min_area`` of the first frame (a random subset when
    there are more), kept in id order; an object falling under ``min_area`` on the first frame
    after the augmentation is dropped. None when the video is shorter than n or no object is left.
    ``ignore_others``: also the pixels of every other object in the frames (``ObjectClip.others``),
    which zero-shot training leaves out of its loss rather than teach them as background.
    """
    idx = ordered_indices(len(frames), n, max_step, rng)
    if idx is None:
        return None
    first = labels[idx[0]]
    ids, counts = np.unique(first[first > 0], return_counts=True)
    ids = ids[counts >= min_area * first.size]
    if not len(ids):
        return None
    if len(ids) > max_objects:
        ids = np.sort(rng.choice(ids, size=max_objects, replace=False))
    masks = np.stack([(labels[idx] == i) for i in ids], 1).astype(np.float32)
    if ignore_others:  # one more channel, augmented with the objects: everything labelled but not chosen
        rest = ((labels[idx] > 0) & ~np.isin(labels[idx], ids)).astype(np.float32)
        masks = np.concatenate([masks, rest[:, None]], 1)
    f, m = augment_objects(augment, frames[idx], masks, rng, out_size)
    others = None
    if ignore_others:
        m, others = m[:, :-1], m[:, -1]
    keep = m[0].reshape(len(ids), -1).mean(1) >= min_area
    if not keep.any():
        return None
    if others is not None:  # objects dropped after the augmentation are left out of the loss too
        others = np.maximum(others, m[:, ~keep].max(1) if (~keep).any() else 0).astype(np.float32)
    return ObjectClip(f.astype(np.float32), m[:, keep].astype(np.float32), [int(i) for i in ids[keep]], others)
