"""A-GAME's offline training (seed 003, "A-GAME: Training"), as a recipe for the shared loop.

Each sample is one video clip of n ordered frames (the paper: 8, then 14) with the annotation of
its first frame only. The network runs through the clip exactly as at test time: the mixture is
fitted on the first frame, every next frame is segmented and the mixture updated with the coarse
soft segmentation, which is also the next frame's y_{t-1}. Gradients flow through the whole
recurrence, the mixture fits included (end to end, the paper's ablation shows it matters). The loss
is the cross-entropy of the final output plus an auxiliary cross-entropy on the coarse output
(log-softmax at stride 16 upsampled). Data: real sequences mixed with the project's synthetic
natural-like videos, standing in for the paper's SynthVOS (objects moved over backgrounds).

Backbone: the paper trains only the last block of an ImageNet ResNet. Here the backbone starts
from the FRTM checkpoint's ``backbone.*`` tensors (``--init``) or torchvision's ImageNet weights
(``--backbone-weights imagenet``) and then only the deep stage trains (``--train-backbone-from``
overrides); from random weights everything trains.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from napari_vos.methods.agame_network import CONFIGS, STRIDE, AGAMENetwork, seg_at_stride
from napari_vos.methods.checkpoint import init_from_checkpoint
from napari_vos.training.clips import Clip, VideoMix
from napari_vos.training.loop import export_tensors
from napari_vos.training.ordered_clips import sample_ordered_clip


@dataclass
class AGAMERecipe(VideoMix):
    """Draws ordered clips from real sequences and synthetic videos; trains through time."""

    default_lr: ClassVar[float] = 1e-4  # Adam's rate without --lr: A-GAME's Adam 1e-4
    clip_frames_field: ClassVar[str | None] = "n_frames"  # what --clip-frames sets

    config: str = "light"
    size: tuple[int, int] = (240, 432)  # the paper's half resolution (H, W), multiples of 16
    batch_size: int = 4
    n_frames: int = 8
    max_frame_step: int = 2
    aux_weight: float = 1.0
    real_dirs: list[str] = field(default_factory=list)
    synthetic_fraction: float = 0.5
    synthetic_source: str | None = None
    backbone_weights: str | None = None
    init_checkpoint: str | None = None
    train_backbone_from: str | None = "auto"  # "auto": the deep stage if the backbone is initialised
    name: str = "agame"

    def __post_init__(self) -> None:
        if self.config not in CONFIGS:
            raise ValueError(f"unknown A-GAME configuration {self.config!r}; choose one of {sorted(CONFIGS)}")
        if self.size[0] % STRIDE or self.size[1] % STRIDE:
            raise ValueError(f"A-GAME training size must be a multiple of {STRIDE}, got {self.size[1]}x{self.size[0]}")
        if self.n_frames < 2:
            raise ValueError("A-GAME trains on clips of at least 2 frames (the annotated one and one to segment)")
        self.size = (int(self.size[0]), int(self.size[1]))
        self._init_videos()
        self.loaded_from_init: str = ""  # "all", "backbone" or nothing loaded

    # -- model ---------------------------------------------------------------------------
    def build(self, device: torch.device) -> AGAMENetwork:
        net = AGAMENetwork(CONFIGS[self.config], backbone_weights=self.backbone_weights)
        if self.init_checkpoint:
            self.loaded_from_init = init_from_checkpoint(net, self.init_checkpoint, "agame", "A-GAME")
        net.trainable_backbone(self.train_backbone_from, initialised=self.starts_from_weights())
        return net.to(device)

    # -- data ----------------------------------------------------------------------------
    def _synthetic_frames(self) -> int:
        return max(12, (self.n_frames - 1) * self.max_frame_step + 1)

    def _clip_frames(self) -> int:
        return self.n_frames

    def batch(self, rng: np.random.Generator) -> list[Clip]:
        return self._clips(rng, lambda frames, labels: sample_ordered_clip(
            frames, labels, self.n_frames, rng, self.size, self.max_frame_step))

    # -- loss ----------------------------------------------------------------------------
    def loss(self, model: AGAMENetwork, batch: list[Clip], device: torch.device) -> tuple[torch.Tensor, dict[str, Any]]:
        images = torch.from_numpy(np.stack([c.frames for c in batch])).permute(0, 1, 4, 2, 3).to(device)  # B,L,3,H,W
        masks = torch.from_numpy(np.stack([c.masks for c in batch])).to(device)  # B,L,H,W
        b, n = images.shape[:2]
        feats = {k: v.unflatten(0, (b, n)) for k, v in model.features(images.flatten(0, 1)).items()}
        state = model.init_state({k: v[:, 0] for k, v in feats.items()}, seg_at_stride(masks[:, 0]))
        final_loss = coarse_loss = 0.0
        inter = union = cinter = cunion = 0.0
        for t in range(1, n):
            pred = model.predict({k: v[:, t] for k, v in feats.items()}, state)
            target = masks[:, t].long()
            final_loss = final_loss + F.cross_entropy(pred.logits.float(), target)
            coarse_log = F.interpolate(F.log_softmax(pred.coarse_logits.float(), dim=1), size=target.shape[-2:],
                                       mode="bilinear", align_corners=False)
            coarse_loss = coarse_loss + F.nll_loss(coarse_log, target)
            soft_coarse = torch.softmax(pred.coarse_logits.float(), dim=1)
            state = model.update_state(state, pred.appearance_features, soft_coarse)
            with torch.no_grad():
                pred_fg, coarse_fg, truth = pred.logits.argmax(1) == 1, coarse_log.argmax(1) == 1, target == 1
                inter += float((pred_fg & truth).sum())
                union += float((pred_fg | truth).sum())
                cinter += float((coarse_fg & truth).sum())
                cunion += float((coarse_fg | truth).sum())
        frames = n - 1
        loss = (final_loss + self.aux_weight * coarse_loss) / frames
        stats = {"final_ce": float(final_loss.detach()) / frames, "coarse_ce": float(coarse_loss.detach()) / frames,
                 "iou": inter / max(union, 1.0), "coarse_iou": cinter / max(cunion, 1.0)}
        return loss, stats

    # -- export --------------------------------------------------------------------------
    def export_tensors(self, model: AGAMENetwork) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """fp16 state dict and metadata for a shipped safetensors checkpoint."""
        return export_tensors(model, "agame", self.config, train_size=f"{self.size[1]}x{self.size[0]}",  # W x H
                              train_frames=str(self.n_frames))

