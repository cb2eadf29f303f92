"""RVOS's offline training (seed 003, "RVOS: Training"), as a recipe for the shared loop.

Batches of clips of 5 consecutive frames (the slides: 4 clips of 5 frames at 256 x 448), each with
every object of its first frame (up to ``max_objects``, in id order), trained by backpropagation
through time over the frames and through the spatial recurrence over the objects. Stages
(``--config ARCH:STAGE``):

- ``teacher`` (one-shot, first): S_{t-1,i} is the ground-truth mask of the previous frame;
- ``inferred`` (one-shot, then; start it from the teacher run with ``--init``): S_{t-1,i} is the
  network's own prediction of the previous frame, aggregated over the objects as the engine does
  (the slides: 20 epochs with the ground truth, then 20 with the inferred masks, "RVOS-Mask-ST+");
- ``zero`` (zero-shot network, no mask input): the first n slots are matched to the clip's n
  objects by the Hungarian algorithm on the relaxed IoU summed over the clip's frames, so a slot
  follows one object through the clip; unmatched slots add no mask loss (the slides), and every
  slot's stop score is trained to say whether it holds an object (1 for the first n, RIS).

Mask loss per object and frame: 1 - relaxed IoU (RIS) + ``bce_weight`` x binary cross-entropy.
Data: real sequences (DAVIS-style folders, one object each) mixed with the synthetic natural-like
videos (one to three objects), the only multi-object clips available here.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from napari_vos.methods.checkpoint import init_from_checkpoint
from napari_vos.methods.rvos_matching import hungarian, soft_iou
from napari_vos.methods.rvos_network import CONFIGS, RVOSConfig, RVOSNetwork
from napari_vos.nn.backbone_freeze import freeze_leading, named_stages
from napari_vos.training.clips import VideoMix
from napari_vos.training.loop import export_tensors
from napari_vos.training.ordered_clips import FlipAffine
from napari_vos.training.rvos_clips import sample_object_clip

STAGES = ("teacher", "inferred", "zero")


@dataclass
class RVOSRecipe(VideoMix):
    """Draws multi-object clips from real and synthetic videos; BPTT over frames and objects."""

    default_lr: ClassVar[float] = 1e-4  # Adam's rate without --lr: the documented runs' for every stage
    clip_frames_field: ClassVar[str | None] = "clip_length"  # what --clip-frames sets

    config: str = "light"
    stage: str = "teacher"
    size: tuple[int, int] = (256, 448)  # (H, W), the slides' training size; multiples of 32
    batch_size: int = 4
    clip_length: int = 5
    max_stride: int = 2  # temporal step 1..2 between the clip's frames
    max_objects: int = 3
    bce_weight: float = 1.0
    stop_weight: float = 1.0
    real_dirs: list[str] = field(default_factory=list)
    synthetic_fraction: float = 0.5
    synthetic_source: str | None = None
    backbone_weights: str | None = None
    init_checkpoint: str | None = None
    train_backbone_from: str | None = None  # None: everything trains (end to end)
    name: str = "rvos"

    @classmethod
    def from_options(cls, config: str | None = None, **kwargs: Any) -> "RVOSRecipe":
        """Build from `napari-vos train` options; ``config`` is ``ARCH`` or ``ARCH:STAGE`` (e.g. ``light:inferred``)."""
        arch, _, stage = (config or "light").partition(":")
        return cls(config=arch or "light", stage=stage or "teacher", **kwargs)

    def __post_init__(self) -> None:
        if self.config not in CONFIGS:
            raise ValueError(f"unknown RVOS configuration {self.config!r}; choose one of {', '.join(CONFIGS)}")
        if self.stage not in STAGES:
            raise ValueError(f"unknown RVOS training stage {self.stage!r}; choose one of {', '.join(STAGES)}")
        self.size = (int(self.size[0]), int(self.size[1]))
        if self.size[0] % 32 or self.size[1] % 32:
            raise ValueError(f"RVOS training size must be a multiple of 32, got {self.size[1]}x{self.size[0]}")
        if self.clip_length < 2:
            raise ValueError("RVOS trains on clips of at least 2 frames")
        self._init_videos()

    @property
    def network_config(self) -> RVOSConfig:
        return replace(CONFIGS[self.config], zero_shot=self.stage == "zero")

    # -- model ---------------------------------------------------------------------------
    def build(self, device: torch.device) -> RVOSNetwork:
        net = RVOSNetwork(self.network_config, backbone_weights=self.backbone_weights)
        if self.init_checkpoint:
            init_from_checkpoint(net, self.init_checkpoint, "rvos", "RVOS",
                                 hint="a one-shot and a zero-shot network differ in their mask input")
        if self.train_backbone_from is not None:
            first = None if self.train_backbone_from == "none" else self.train_backbone_from
            freeze_leading(named_stages(net.backbone), first)
        # small batches: keep a pretrained backbone's batch-norm statistics
        net.freeze_batchnorm = self.starts_from_weights()
        return net.to(device)

    # -- data ----------------------------------------------------------------------------
    def _synthetic_frames(self) -> int:
        return self.clip_length * self.max_stride + 2

    def _clip_frames(self) -> int:
        return self.clip_length

    def _start_frames(self, n_frames: int) -> range:
        return range(max(n_frames - self.clip_length + 1, 0))  # clips played forward only

    def batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """frames (B, T, 3, H, W), masks (B, T, K, H, W) padded with empty objects, valid (B, K)."""
        # zero-shot: every object the slots can hold is supervised (the slides assign each annotated
        # object to a prediction), and the pixels of any further one are left out of the loss, not
        # taught as background; one-shot: up to max_objects of them, as given objects
        zero = self.stage == "zero"
        max_objects = self.network_config.slots if zero else self.max_objects
        clips = self._clips(rng, lambda frames, labels: sample_object_clip(
            frames, labels, self.clip_length, rng, self.size, max_step=self.max_stride, max_objects=max_objects,
            augment=FlipAffine(), ignore_others=zero))
        k = max(c.masks.shape[1] for c in clips)
        masks = np.zeros((len(clips), self.clip_length, k, *self.size), np.float32)
        valid = np.zeros((len(clips), k), bool)
        for b, c in enumerate(clips):
            masks[b, :, :c.masks.shape[1]] = c.masks
            valid[b, :c.masks.shape[1]] = True
        frames = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 1, 4, 2, 3).contiguous()
        batch = {"frames": frames, "masks": torch.from_numpy(masks), "valid": torch.from_numpy(valid)}
        if zero:
            batch["ignore"] = torch.from_numpy(np.stack([c.others for c in clips]).astype(np.float32))
        return batch

    # -- loss ----------------------------------------------------------------------------
    def mask_loss(self, logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(..., H, W) logits and {0, 1} targets -> (...) of 1 - relaxed IoU + bce_weight x BCE;
        ``keep`` (broadcastable, {0, 1}): the pixels counted (others' pixels in zero-shot clips are not)."""
        probs, target = torch.sigmoid(logits.float()), target.float()
        bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
        if keep is None:
            return (1.0 - soft_iou(probs, target)) + self.bce_weight * bce.mean((-2, -1))
        keep = keep.float().expand_as(bce)
        iou = soft_iou(probs * keep, target * keep)
        return (1.0 - iou) + self.bce_weight * (bce * keep).sum((-2, -1)) / keep.sum((-2, -1)).clamp_min(1.0)

    def loss(self, model: RVOSNetwork, batch: dict[str, torch.Tensor], device: torch.device
             ) -> tuple[torch.Tensor, dict[str, Any]]:
        frames = batch["frames"].to(device)
        masks = batch["masks"].to(device)
        valid = batch["valid"].to(device)
        if self.stage == "zero":
            ignore = batch.get("ignore")
            keep = None if ignore is None else 1.0 - ignore.to(device)
            return self._zero_shot_loss(model, frames, masks, valid, keep)
        previous = "predicted" if self.stage == "inferred" else "truth"
        logits, _ = model(frames, masks, valid, previous=previous)
        target = masks[:, 1:]
        weight = valid[:, None, :].expand(target.shape[:3]).float()
        per = self.mask_loss(logits, target)
        loss = (per * weight).sum() / weight.sum()
        with torch.no_grad():
            iou = _binary_iou(logits > 0, target > 0.5)
            stats = {"mask": float(loss.detach()), "iou": float((iou * weight).sum() / weight.sum()),
                     "objects": float(valid.float().sum(1).mean())}
        return loss, stats

    def _zero_shot_loss(self, model: RVOSNetwork, frames: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor,
                        keep: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        logits, stop = model(frames)  # (B, T, N, H, W), (B, T, N)
        b, _, n_slots = stop.shape
        mask_terms, ious = [], []
        stop_target = torch.zeros_like(stop)
        for i in range(b):
            n = min(int(valid[i].sum()), n_slots)
            stop_target[i, :, :n] = 1.0
            with torch.no_grad():  # score of slot s for object j: relaxed IoU summed over the clip's frames
                probs = torch.sigmoid(logits[i, :, :n].float())
                score = soft_iou(probs[:, :, None], masks[i, :, None, :n].float()).sum(0)
            for s, j in hungarian(score):
                mask_terms.append(self.mask_loss(logits[i, :, s], masks[i, :, j],
                                                 None if keep is None else keep[i]).mean())
                with torch.no_grad():
                    ious.append(_binary_iou(logits[i, :, s] > 0, masks[i, :, j] > 0.5).mean())
        mask = torch.stack(mask_terms).mean()
        stop_loss = F.binary_cross_entropy_with_logits(stop.float(), stop_target)
        loss = mask + self.stop_weight * stop_loss
        with torch.no_grad():
            stop_acc = ((stop > 0) == (stop_target > 0.5)).float().mean()
        return loss, {"mask": float(mask.detach()), "stop": float(stop_loss.detach()),
                      "iou": float(torch.stack(ious).mean()), "stop_acc": float(stop_acc)}

    # -- export --------------------------------------------------------------------------
    def export_tensors(self, model: RVOSNetwork) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """fp16 state dict and metadata for a shipped safetensors checkpoint (config ``ARCH:STAGE``)."""
        return export_tensors(model, "rvos", f"{self.config}:{self.stage}", stage=self.stage,
                              train_size=f"{self.size[1]}x{self.size[0]}", clip_length=str(self.clip_length))


def _binary_iou(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """IoU over the last two axes of boolean masks; 1 where both are empty."""
    inter = (pred & truth).flatten(-2).sum(-1).float()
    union = (pred | truth).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))

