"""Ordered training clips for the recurrent methods (A-GAME, S2S; later RVOS): n frames in the video's order.

Recurrent methods are trained through time on short sequences annotated on their first frame
only, so their frames must keep the video's order, unlike ``clips.sample_clip_from``'s reference
+ random frames. A clip is n frames at one random temporal step from a random start (A-GAME also
plays it backward half of the time), one object present on its first frame, and one spatial
augmentation shared by all its frames, so the motion between frames stays the video's own:

- ``CropFlip`` (A-GAME): a random zoom crop near the object and a random horizontal flip;
- ``FlipAffine`` (S2S): the whole frame resized, a random flip and a random affine transform
  (rotation, translation, scale, shear).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from napari_vos.nn.warp import affine
from napari_vos.training.clips import Clip, crop_flip_resize


class Augment(Protocol):
    """frames (T, H, W, 3) uint8, masks (T, H, W) float32 {0, 1} -> frames (T, h, w, 3) float32, masks {0, 1}."""

    def __call__(self, frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
                 out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class CropFlip:
    """A random zoom crop (1x-1.5x, at least ``min_crop`` pixels) near the first frame's object, a random flip."""

    min_crop: int = 16

    def __call__(self, frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
                 out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        return crop_flip_resize(frames.astype(np.float32) / 255.0, masks, rng, out_size, self.min_crop)


@dataclass(frozen=True)
class AffineRanges:
    """Ranges of the per-sequence random affine transform."""

    degrees: float = 20.0  # rotation in [-degrees, degrees]
    translate: float = 0.1  # fraction of the size, in [-translate, translate]
    scale: tuple[float, float] = (0.75, 1.25)
    shear: float = 10.0  # degrees, in [-shear, shear]


@dataclass(frozen=True)
class FlipAffine:
    """The whole frames resized to the output size, then one random flip and one random affine transform."""

    flip: bool = True
    affine: AffineRanges | None = AffineRanges()

    def __call__(self, frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
                 out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        f = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        m = torch.from_numpy(masks)
        if tuple(f.shape[-2:]) != tuple(out_size):
            shrink = out_size[0] < f.shape[-2]
            f = F.interpolate(f, size=out_size, mode="bilinear", align_corners=False, antialias=shrink)
            m = F.interpolate(m[:, None], size=out_size, mode="bilinear", align_corners=False)[:, 0]
        if self.flip and rng.random() < 0.5:
            f, m = f.flip(-1), m.flip(-1)
        if self.affine is not None:
            a = self.affine
            h, w = f.shape[-2:]
            kw = dict(angle=float(rng.uniform(-a.degrees, a.degrees)),
                      translate=(float(rng.uniform(-a.translate, a.translate) * w),
                                 float(rng.uniform(-a.translate, a.translate) * h)),
                      scale=float(rng.uniform(*a.scale)),
                      shear=(float(rng.uniform(-a.shear, a.shear)), 0.0))
            f = affine(f, **kw)
            m = affine(m, **kw)
        return f.clamp(0, 1).permute(0, 2, 3, 1).numpy(), (m > 0.5).float().numpy()


def ordered_indices(t: int, n: int, max_step: int, rng: np.random.Generator) -> np.ndarray | None:
    """n frame indices of a video of t frames in order, one random step in 1..max_step (lowered
    when the video is too short); None when t < n."""
    if t < n:
        return None
    step = int(rng.integers(1, max_step + 1))
    while step > 1 and (n - 1) * step >= t:
        step -= 1
    start = int(rng.integers(0, t - (n - 1) * step))
    return start + step * np.arange(n)


def sample_ordered_clip(frames: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator,
                        out_size: tuple[int, int], max_step: int = 2, backward: bool = True,
                        augment: Augment = CropFlip(), visible_only: bool = False,
                        min_area: float = 0.002) -> Clip | None:
    """frames (T, H, W, 3) uint8, labels (T, H, W) int -> a Clip of n ordered frames, or None if unusable.

    The temporal step is drawn in 1..max_step (lowered when the video is too short); ``backward``
    plays the clip backward with probability 1/2. The object is drawn among those on the first
    frame (``visible_only``: among those covering at least ``min_area`` of it); None when the video
    is shorter than n or the object covers less than ``min_area`` of the first frame, before or
    after ``augment``.
    """
    idx = ordered_indices(len(frames), n, max_step, rng)
    if idx is None:
        return None
    if backward and rng.random() < 0.5:
        idx = idx[::-1]
    first = labels[idx[0]]
    ids, counts = np.unique(first[first > 0], return_counts=True)
    if visible_only:
        ids = ids[counts >= min_area * first.size]
    if not len(ids):
        return None
    obj = int(rng.choice(ids))
    masks = (labels[idx] == obj).astype(np.float32)
    if masks[0].mean() < min_area:
        return None
    f, m = augment(frames[idx], masks, rng, out_size)
    if m[0].mean() < min_area:
        return None
    return Clip(f, m.astype(np.float32))
