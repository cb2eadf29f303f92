"""FRTM's offline training (seed 001, section 3.3), as a recipe for the shared loop.

Each sample is one reference frame and two validation frames of one sequence. The target model
is optimised on the reference frame with the same Gauss-Newton solver used at inference; the
full network with that target model then segments the validation frames and the binary
cross-entropy is back-propagated. The paper freezes an ImageNet backbone; no ImageNet weights
exist on this project's machines, so the backbone is trained here too, end to end (the target
model weights are treated as constants of each step, as the paper's pre-learned ones are).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from napari_vos.methods.frtm import CONFIGS, FRTMNetwork
from napari_vos.methods.frtm_target import TargetModel, target_scores
from napari_vos.nn.backbone_freeze import freeze_leading, named_stages, resnet_features
from napari_vos.nn.padding import crop_to, pad_to_multiple
from napari_vos.training.clips import Clip, VideoMix, sample_clip_from
from napari_vos.training.loop import export_tensors
from napari_vos.training.ridge_probe import ridge_probe_loss, ridge_probe_scores


@dataclass
class FRTMRecipe(VideoMix):
    """Draws reference/validation triplets from real sequences and synthetic videos."""

    default_lr: ClassVar[float] = 1e-3  # Adam's rate without --lr: FRTM section 3.3: Adam 1e-3

    config: str = "fast"
    size: tuple[int, int] = (192, 320)
    batch_size: int = 4
    max_gap: int = 15
    zoom: tuple[float, float] = (1.0, 2.5)  # crop zoom: objects seen larger than at training size too
    real_dirs: list[str] = field(default_factory=list)
    synthetic_fraction: float = 0.5
    synthetic_source: str | None = None
    backbone_weights: str | None = None
    init_checkpoint: str | None = None
    train_backbone_from: str | None = "stem"  # first trained backbone stage; None freezes it (the paper)
    probe_weight: float = 1.0  # auxiliary ridge-probe loss on conv4 (training/ridge_probe.py); 0 turns it off
    name: str = "frtm"

    def __post_init__(self) -> None:
        if self.config not in CONFIGS:
            raise ValueError(f"unknown frtm configuration {self.config!r}; choose one of {', '.join(CONFIGS)}")
        self._init_videos()
        self._frozen: list[str] = []

    def build(self, device: torch.device) -> FRTMNetwork:
        net = FRTMNetwork(CONFIGS[self.config], backbone_weights=self.backbone_weights)
        if self.init_checkpoint:
            from napari_vos.weights import load_state_dict_file

            state = load_state_dict_file(self.init_checkpoint)
            own = net.state_dict()
            shared = [k for k in state if k in own]
            wrong = [k for k in shared if own[k].shape != state[k].shape]
            if not shared or wrong:
                why = f"{len(wrong)} tensors of another shape (e.g. {wrong[0]})" if wrong else "no FRTM tensor"
                raise ValueError(f"--init {self.init_checkpoint}: {why} for an FRTM '{self.config}' network "
                                 "(another method's checkpoint, or another --config's)")
            net.load_state_dict(state, strict=False)
        # fixed stages keep training-mode batch norm (unlike A-GAME and OSVOS-AT)
        self._frozen = freeze_leading(named_stages(net.backbone), self.train_backbone_from)
        return net.to(device)

    def batch(self, rng: np.random.Generator) -> list[Clip]:
        return self._clips(rng, lambda frames, labels: sample_clip_from(
            frames, labels, 3, self.max_gap, rng, self.size, zoom=self.zoom))

    def loss(self, model: FRTMNetwork, batch: list[Clip], device: torch.device) -> tuple[torch.Tensor, dict[str, Any]]:
        images = torch.from_numpy(np.stack([c.frames for c in batch])).permute(0, 1, 4, 2, 3).to(device)  # B,3,3,H,W
        masks = torch.from_numpy(np.stack([c.masks for c in batch])).to(device)  # B,3,H,W
        b, n = images.shape[:2]
        # padded (replicate) to a multiple of 32 as inference pads frames and masks, so that conv2..conv5
        # cover one extent and the decoder's upsampling lines up as it will at test time (a 432x240 crop
        # unpadded put conv5's last row 15 pixels off); the loss is taken on the crop's own pixels
        padded, size = pad_to_multiple(images.flatten(0, 1), 32)
        images = padded.unflatten(0, (b, n))
        masks, _ = pad_to_multiple(masks, 32)
        h, w = images.shape[-2:]
        feats = resnet_features(model.backbone, images.flatten(0, 1), self._frozen)
        conv4 = feats["conv4"].unflatten(0, (b, n))
        cfg = model.config
        stride = cfg.label_stride
        # one batched Gauss-Newton problem per sample: each sees only its own reference frame
        tm = TargetModel(cfg.target, conv4.shape[2], b, device)
        ref_labels = F.adaptive_avg_pool2d(masks[:, :1], (h // stride, w // stride)).transpose(0, 1)  # (1, B, ..)
        tm.fit(conv4[:, :1].detach(), ref_labels, torch.ones(1, device=device), initial=True)
        scores_t = target_scores(tm.w1, tm.w2, conv4[:, 1:])  # (n-1, B, h16, w16)
        scores_t = scores_t.transpose(0, 1).flatten(0, 1)[:, None]  # (B*(n-1), 1, h16, w16), sample-major
        val = {k: v.unflatten(0, (b, n))[:, 1:].flatten(0, 1) for k, v in feats.items()}
        logits = crop_to(model.seg(val, scores_t, (h, w)), size)
        target = crop_to(masks[:, 1:], size).flatten(0, 1)
        loss = F.binary_cross_entropy_with_logits(logits, target)
        stats: dict[str, Any] = {}
        if self.probe_weight > 0 and "conv4" not in self._frozen:
            labels16 = F.adaptive_avg_pool2d(masks, conv4.shape[-2:])  # (B, n, h16, w16)
            probe = ridge_probe_scores(conv4[:, 0], labels16[:, 0], conv4[:, 1:], cfg.target.kappa_min)
            probe_loss = ridge_probe_loss(probe, labels16[:, 1:], cfg.target.kappa_min)
            loss = loss + self.probe_weight * probe_loss
            with torch.no_grad():
                hit, truth = probe.detach() > 0.5, labels16[:, 1:] > 0.5
                stats["probe_loss"] = float(probe_loss.detach())
                stats["probe_iou"] = float(((hit & truth).flatten(2).sum(-1).float()
                                            / (hit | truth).flatten(2).sum(-1).float().clamp_min(1)).mean())
        with torch.no_grad():
            pred = logits > 0
            inter = (pred & (target > 0.5)).flatten(1).sum(1).float()
            union = (pred | (target > 0.5)).flatten(1).sum(1).float().clamp_min(1)
            coarse = F.interpolate(scores_t, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
            coarse = crop_to(coarse, size) > 0.5
            cinter = (coarse & (target > 0.5)).flatten(1).sum(1).float()
            cunion = (coarse | (target > 0.5)).flatten(1).sum(1).float().clamp_min(1)
        return loss, {"iou": float((inter / union).mean()), "coarse_iou": float((cinter / cunion).mean()), **stats}

    def export_tensors(self, model: FRTMNetwork) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """fp16 state dict and metadata for a shipped safetensors checkpoint."""
        return export_tensors(model, "frtm", self.config, train_size=f"{self.size[1]}x{self.size[0]}")
