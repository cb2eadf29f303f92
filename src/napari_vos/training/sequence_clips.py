"""Ordered training sequences for recurrent methods (S2S, RVOS): consecutive frames, one object, one augmentation.

Backpropagation through time needs frames in their order, so unlike ``clips.sample_clip_from``
(a reference plus random frames) this draws ``length`` frames at a fixed temporal stride from a
random start. One random horizontal flip and one random affine transform (rotation, translation,
scale, shear) are drawn per sequence and applied to all its frames, so the motion between frames
stays the video's own.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_vos.training.clips import Clip


@dataclass(frozen=True)
class AffineRanges:
    """Ranges of the per-sequence random affine transform."""

    degrees: float = 20.0  # rotation in [-degrees, degrees]
    translate: float = 0.1  # fraction of the size, in [-translate, translate]
    scale: tuple[float, float] = (0.75, 1.25)
    shear: float = 10.0  # degrees, in [-shear, shear]


def augment_sequence(frames: torch.Tensor, masks: torch.Tensor, rng: np.random.Generator,
                     flip: bool = True, affine: AffineRanges | None = AffineRanges()
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """frames (T, 3, H, W), masks (T, H, W) -> the same flip and affine transform applied to every frame."""
    import torchvision.transforms.v2.functional as TF

    if flip and rng.random() < 0.5:
        frames, masks = frames.flip(-1), masks.flip(-1)
    if affine is not None:
        h, w = frames.shape[-2:]
        kw = dict(angle=float(rng.uniform(-affine.degrees, affine.degrees)),
                  translate=[float(rng.uniform(-affine.translate, affine.translate) * w),
                             float(rng.uniform(-affine.translate, affine.translate) * h)],
                  scale=float(rng.uniform(*affine.scale)),
                  shear=[float(rng.uniform(-affine.shear, affine.shear)), 0.0])
        frames = TF.affine(frames, interpolation=TF.InterpolationMode.BILINEAR, **kw)
        masks = TF.affine(masks[:, None], interpolation=TF.InterpolationMode.BILINEAR, **kw)[:, 0]
    return frames, (masks > 0.5).float()


def sample_sequence(frames: np.ndarray, labels: np.ndarray, length: int, rng: np.random.Generator,
                    out_size: tuple[int, int], max_stride: int = 1, flip: bool = True,
                    affine: AffineRanges | None = AffineRanges(), min_area: float = 0.002) -> Clip | None:
    """``length`` ordered frames of one object present in the first, resized to ``out_size`` and augmented.

    frames (T, H, W, 3) uint8, labels (T, H, W) int. The stride is drawn in 1..max_stride (lowered
    when the video is too short); None when the video is shorter than ``length`` or the object is
    too small in the first frame after augmentation.
    """
    t = len(frames)
    if t < length:
        return None
    stride = int(rng.integers(1, max_stride + 1))
    while stride > 1 and (length - 1) * stride >= t:
        stride -= 1
    start = int(rng.integers(0, t - (length - 1) * stride))
    idx = start + stride * np.arange(length)
    first = labels[idx[0]]
    ids, counts = np.unique(first[first > 0], return_counts=True)
    ids = ids[counts >= min_area * first.size]
    if not len(ids):
        return None
    obj = int(rng.choice(ids))
    f = torch.from_numpy(np.ascontiguousarray(frames[idx])).permute(0, 3, 1, 2).float() / 255.0
    m = torch.from_numpy((labels[idx] == obj).astype(np.float32))
    if tuple(f.shape[-2:]) != tuple(out_size):
        shrink = out_size[0] < f.shape[-2]
        f = F.interpolate(f, size=out_size, mode="bilinear", align_corners=False, antialias=shrink)
        m = F.interpolate(m[:, None], size=out_size, mode="bilinear", align_corners=False)[:, 0]
    f, m = augment_sequence(f, m, rng, flip, affine)
    if float(m[0].mean()) < min_area:
        return None
    return Clip(frames=f.clamp(0, 1).permute(0, 2, 3, 1).numpy(), masks=m.numpy())
