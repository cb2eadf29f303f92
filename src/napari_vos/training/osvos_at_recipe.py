"""OSVOS-AT's offline training of the parent network (seed 000, section III-C), as a recipe for the shared loop.

In each iteration a training video is drawn; one of its frames goes through the teacher stream and
a batch of its other frames through the student stream, which adds the teacher's attention maps to
its own (eq. 6). The class-balanced cross-entropy (eq. 5) of both streams is summed and
back-propagated, through the student into the teacher's attention as well (one set of weights).
The paper feeds the video's first frame to the teacher; here the teacher frame is drawn at random
(users may annotate any frame), with the student frames within ``max_gap`` of it.

As in OSVOS's parent network the target is the foreground: the union of a frame's objects
(``foreground="union"``, DAVIS 2016 style), or one object picked per clip (``"object"``).
No ImageNet VGG-16 exists on this project's machines: the light configuration starts its
ResNet-18 from the FRTM checkpoint's ``backbone.*`` tensors (``init_checkpoint``); the paper
configuration can start from torchvision's ImageNet VGG-16 with ``backbone_weights="imagenet"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from napari_vos.methods.osvos_at_net import CONFIGS, OSVOSATNetwork, balanced_bce
from napari_vos.nn.backbone_freeze import freeze, keep_statistics, leading_stages
from napari_vos.nn.padding import crop_to, pad_to_multiple
from napari_vos.training.clips import Clip, VideoMix, sample_clip_from, union_share
from napari_vos.training.loop import export_tensors


STAGE_NAMES = ("stem", "conv2", "conv3", "conv4", "conv5")  # VGG-16: "stem" is its conv1_x stage


def _stages(model: OSVOSATNetwork) -> dict[str, torch.nn.Module]:
    return {name: model.backbone.stage(i) for i, name in enumerate(STAGE_NAMES)}


def _iou(logits: torch.Tensor, target: torch.Tensor) -> float:
    pred, truth = logits > 0, target > 0.5
    inter = (pred & truth).flatten(1).sum(1).float()
    union = (pred | truth).flatten(1).sum(1).float().clamp_min(1)
    return float((inter / union).mean())


@dataclass
class OSVOSATRecipe(VideoMix):
    """Draws (teacher frame, student frames) clips from real sequences and synthetic videos."""

    default_lr: ClassVar[float] = 1e-4  # Adam's rate without --lr: the parent's documented run (OSVOS: SGD on a pixel-summed loss)

    @classmethod
    def from_options(cls, train_backbone_from: str | None = None, **kwargs: Any) -> "OSVOSATRecipe":
        """As `VideoMix.from_options`, with ``train_backbone_from`` kept as given ("none" is a value here)."""
        return cls(train_backbone_from=train_backbone_from, **kwargs)

    config: str = "light"
    size: tuple[int, int] = (192, 320)
    batch_size: int = 2  # videos per step
    n_student: int = 3  # other frames of each video through the student stream
    max_gap: int = 40
    foreground: str = "union"
    real_dirs: list[str] = field(default_factory=list)
    synthetic_fraction: float = 0.5
    synthetic_source: str | None = None
    backbone_weights: str | None = None
    init_checkpoint: str | None = None
    train_backbone_from: str | None = None  # first backbone stage trained; earlier ones (and "none": all) fixed
    name: str = "osvos_at"

    def _object_share(self, labels: np.ndarray) -> float:
        return union_share(labels) if self.foreground == "union" else super()._object_share(labels)

    def __post_init__(self) -> None:
        if self.config not in CONFIGS:
            raise ValueError(f"unknown osvos_at config {self.config!r}; choose one of {', '.join(CONFIGS)}")
        if self.foreground not in ("union", "object"):
            raise ValueError(f"foreground must be 'union' or 'object', got {self.foreground!r}")
        if self.train_backbone_from not in (None, *STAGE_NAMES, "none"):
            raise ValueError(f"train_backbone_from must be one of {', '.join(STAGE_NAMES)} or 'none', "
                             f"got {self.train_backbone_from!r}")
        self._init_videos()

    def build(self, device: torch.device) -> OSVOSATNetwork:
        net = OSVOSATNetwork(CONFIGS[self.config], backbone_weights=self.backbone_weights)
        if self.init_checkpoint:  # an osvos_at checkpoint whole, or another method's backbone (FRTM's ResNet-18)
            from napari_vos.methods.checkpoint import init_from_checkpoint

            init_from_checkpoint(net, self.init_checkpoint, "osvos_at", f"OSVOS-AT '{self.config}'",
                                 hint="an osvos_at checkpoint of another --config")
        freeze(_stages(net), self._fixed_stages())
        return net.to(device)

    def _fixed_stages(self) -> list[str]:
        """Backbone stages before ``train_backbone_from`` ("none": all of them; None: no stage)."""
        if self.train_backbone_from is None:
            return []
        return leading_stages(STAGE_NAMES, None if self.train_backbone_from == "none" else self.train_backbone_from)

    def batch(self, rng: np.random.Generator) -> list[Clip]:
        def sample(frames: np.ndarray, labels: np.ndarray) -> Clip | None:
            if self.foreground == "union":
                labels = (labels > 0).astype(np.int32)
            return sample_clip_from(frames, labels, 1 + self.n_student, self.max_gap, rng, self.size)

        return self._clips(rng, sample)

    def loss(self, model: OSVOSATNetwork, batch: list[Clip], device: torch.device) -> tuple[torch.Tensor, dict[str, Any]]:
        images = torch.from_numpy(np.stack([c.frames for c in batch])).permute(0, 1, 4, 2, 3).to(device)  # B,T,3,H,W
        masks = torch.from_numpy(np.stack([c.masks for c in batch])).to(device)  # B,T,H,W
        b, t = images.shape[:2]
        keep_statistics(_stages(model), self._fixed_stages())  # fixed stages keep their batch-norm statistics too
        # padded as inference pads (replicate), the loss taken on the crop's own pixels as inference
        # crops its output: the padding's repeated border is neither trained on nor counted in eq. 5's beta
        images, size = pad_to_multiple(images.flatten(0, 1), model.multiple)
        images = images.unflatten(0, (b, t))
        masks = masks[:, :, None]  # B,T,1,H,W
        teacher = model(images[:, 0])
        transferred = [a.repeat_interleave(t - 1, 0) for a in teacher.attention]
        student = model(images[:, 1:].flatten(0, 1), teacher_attention=transferred)
        teacher_logits, student_logits = crop_to(teacher.logits, size), crop_to(student.logits, size)
        teacher_target, student_target = masks[:, 0], masks[:, 1:].flatten(0, 1)
        loss_t = balanced_bce(teacher_logits, teacher_target)
        loss_s = balanced_bce(student_logits, student_target, images_per_beta=t - 1)  # one beta per video
        stats = {"teacher_loss": float(loss_t.detach()), "student_loss": float(loss_s.detach()),
                 "teacher_iou": _iou(teacher_logits.detach(), teacher_target),
                 "student_iou": _iou(student_logits.detach(), student_target)}
        return loss_t + loss_s, stats

    def export_tensors(self, model: OSVOSATNetwork) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """fp16 state dict and metadata for a shipped safetensors checkpoint."""
        return export_tensors(model, "osvos_at", self.config, train_size=f"{self.size[1]}x{self.size[0]}",
                              foreground=self.foreground)
