"""COSNet's offline training (seed 003, "COSNet: Training"), as a recipe for the shared loop.

The slides' training alternates two kinds of steps:

- **video pairs**: two frames drawn anywhere in one video (query F_a and reference F_b, the
  paper's "pairs of randomly selected video frames"), one shared random zoom crop and flip; both
  are segmented in light of each other (``COSNetNetwork.forward_pair``) and both outputs are
  scored against the video's primary object, here the union of its annotated objects;
- **saliency images**: the paper trains the embedding for salient object segmentation on MSRA10k
  and DUT with an additional convolutional layer. No saliency dataset is on this project's
  machines, so these steps use single frames of the same real and synthetic videos (their
  foreground as the salient object), each with its own random zoom crop and flip and a colour
  jitter, through the embedding and the extra 1x1 layer (``COSNetNetwork.saliency_logits``). The
  synthetic natural-like videos (objects moving over textured backgrounds) play the part of the
  cut-out composites that saliency sets resemble.

The batch of every ``saliency_every``-th step (default 2: strict alternation) is a saliency batch,
counted by the loop's step across resumes and worker processes (`follow_steps`). The loss is
the paper's weighted binary cross-entropy: per image, with eta the foreground fraction of the
truth, foreground pixels weigh 1 - eta and background pixels eta, so a small object counts as
much as the background around it; the weighted sum is divided by the sum of the weights.

Backbone: the paper starts from DeepLabv3 (ImageNet + COCO). Here the backbone starts from the
FRTM checkpoint's ``backbone.*`` tensors (``--init frtm-resnet18-vos``), torchvision's ImageNet
weights (``--backbone-weights imagenet``), or a COSNet checkpoint as a whole; once initialised only
the deep stage trains by default (``--train-backbone-from`` overrides); from random weights all does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from napari_vos.methods.checkpoint import init_from_checkpoint
from napari_vos.methods.cosnet_network import CONFIGS, STRIDE, COSNetNetwork, make_config
from napari_vos.nn.coattention import VARIANTS
from napari_vos.training.clips import Clip, VideoMix, crop_flip_resize, union_share
from napari_vos.training.loop import export_tensors

__all__ = ["COSNetRecipe", "COSNetBatch", "balanced_bce", "sample_pair", "sample_saliency"]


@dataclass
class COSNetBatch:
    """One training batch: ``kind`` "pair" (frames (B, 2, H, W, 3)) or "saliency" (frames (B, 1, H, W, 3))."""

    kind: str
    frames: np.ndarray
    masks: np.ndarray  # (B, 2 or 1, H, W) {0, 1}


def balanced_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's weighted BCE: per image, foreground weighs 1 - eta, background eta (eta = foreground fraction).

    logits, target: (B, 1, H, W). The weighted sum is divided by the sum of the weights.
    """
    target = target.float()
    eta = target.mean(dim=(1, 2, 3), keepdim=True).clamp(0.01, 0.99)
    weights = torch.where(target > 0.5, 1.0 - eta, eta)
    losses = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    return (weights * losses).sum() / weights.sum()


def _foreground(labels: np.ndarray) -> np.ndarray:
    return (labels > 0).astype(np.float32)


def sample_pair(frames: np.ndarray, labels: np.ndarray, rng: np.random.Generator, size: tuple[int, int],
                min_area: float = 0.002) -> Clip | None:
    """Two different frames of one video anywhere in it, with the union of its objects as the truth.

    frames (T, H, W, 3) uint8, labels (T, H, W) int; None when the query frame's object is too small.
    """
    t = len(frames)
    if t < 2:
        return None
    a = int(rng.integers(t))
    b = int(rng.choice([i for i in range(t) if i != a]))
    masks = _foreground(labels[[a, b]])
    if masks[0].mean() < min_area:
        return None
    f, m = crop_flip_resize(frames[[a, b]].astype(np.float32) / 255.0, masks, rng, size, min_crop=STRIDE)
    if m[0].mean() < min_area:
        return None
    return Clip(f, m.astype(np.float32))


def sample_saliency(frames: np.ndarray, labels: np.ndarray, rng: np.random.Generator, size: tuple[int, int],
                    min_area: float = 0.002) -> Clip | None:
    """One frame with its foreground as the salient object: zoom crop (up to 2x), flip, colour jitter."""
    i = int(rng.integers(len(frames)))
    mask = _foreground(labels[i:i + 1])
    if mask.mean() < min_area:
        return None
    f, m = crop_flip_resize(frames[i:i + 1].astype(np.float32) / 255.0, mask, rng, size, min_crop=STRIDE,
                            zoom=(1.0, 2.0))
    if m[0].mean() < min_area:
        return None
    gain = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    offset = np.float32(rng.uniform(-0.08, 0.08))
    return Clip(np.clip(f * gain + offset, 0.0, 1.0).astype(np.float32), m.astype(np.float32))


@dataclass
class COSNetRecipe(VideoMix):
    """Alternates video-pair batches and single-frame saliency batches; weighted BCE on every output.

    ``config``: "light" or "paper", optionally with a co-attention variant, e.g. "light:vanilla".
    """

    default_lr: ClassVar[float] = 1e-4  # Adam's rate without --lr: the documented run's (the paper's SGD 2.5e-4 is another optimiser)

    config: str = "light"
    size: tuple[int, int] = (224, 384)  # (H, W), multiples of 16
    batch_size: int = 4
    saliency_every: int = 2  # every n-th batch is a saliency batch (2: alternate); 0: pairs only
    real_dirs: list[str] = field(default_factory=list)
    synthetic_fraction: float = 0.5
    synthetic_source: str | None = None
    backbone_weights: str | None = None
    init_checkpoint: str | None = None
    train_backbone_from: str | None = "auto"  # "auto": the deep stage if the backbone is initialised
    name: str = "cosnet"

    def _object_share(self, labels: np.ndarray) -> float:
        return union_share(labels)  # the salient object: every object of the frame together

    def __post_init__(self) -> None:
        base, _, variant = self.config.partition(":")
        if base not in CONFIGS:
            raise ValueError(f"unknown COSNet configuration {base!r}; choose one of {sorted(CONFIGS)} "
                             f"(optionally with a co-attention variant, e.g. 'light:vanilla')")
        if variant and variant not in VARIANTS:
            raise ValueError(f"unknown co-attention variant {variant!r}; choose one of {VARIANTS}")
        self.network_config = make_config(base, **({"variant": variant} if variant else {}))
        if self.size[0] % STRIDE or self.size[1] % STRIDE:
            raise ValueError(f"COSNet training size must be a multiple of {STRIDE}, got {self.size[1]}x{self.size[0]}")
        if self.saliency_every < 0 or self.saliency_every == 1:
            raise ValueError("saliency_every must be 0 (pairs only) or at least 2")
        self.size = (int(self.size[0]), int(self.size[1]))
        self._init_videos()
        self.loaded_from_init: str = ""  # "all", "backbone" or nothing loaded
        self.follow_steps(0)

    # -- model ---------------------------------------------------------------------------
    def build(self, device: torch.device) -> COSNetNetwork:
        net = COSNetNetwork(self.network_config, backbone_weights=self.backbone_weights)
        if self.init_checkpoint:
            self.loaded_from_init = init_from_checkpoint(net, self.init_checkpoint, "cosnet", "COSNet")
        net.trainable_backbone(self.train_backbone_from, initialised=self.starts_from_weights())
        return net.to(device)

    # -- data ----------------------------------------------------------------------------
    def follow_steps(self, first_step: int, stride: int = 1) -> None:
        """The next batch trains step ``first_step + 1`` and each later one ``stride`` steps on (the
        loop's resumed step; a worker process among ``stride`` drawing in turn), so the alternation
        follows the steps across resumes and workers."""
        self._next_step = first_step + 1
        self._stride = stride

    def next_kind(self) -> str:
        """The kind of the next batch: that of every ``saliency_every``-th step is "saliency"."""
        step, self._next_step = self._next_step, self._next_step + self._stride
        return "saliency" if self.saliency_every and step % self.saliency_every == 0 else "pair"

    def _clip_frames(self) -> int:
        return 2  # a pair's two frames (a saliency step takes one)

    def batch(self, rng: np.random.Generator) -> COSNetBatch:
        kind = self.next_kind()
        sampler = sample_saliency if kind == "saliency" else sample_pair
        clips = self._clips(rng, lambda frames, labels: sampler(frames, labels, rng, self.size))
        return COSNetBatch(kind, np.stack([c.frames for c in clips]), np.stack([c.masks for c in clips]))

    # -- loss ----------------------------------------------------------------------------
    def loss(self, model: COSNetNetwork, batch: COSNetBatch, device: torch.device) -> tuple[torch.Tensor, dict[str, Any]]:
        images = torch.from_numpy(batch.frames).permute(0, 1, 4, 2, 3).to(device)  # B, n, 3, H, W
        masks = torch.from_numpy(batch.masks).to(device)[:, :, None]  # B, n, 1, H, W
        if batch.kind == "saliency":
            logits = model.saliency_logits(images[:, 0])[:, None]
            loss = balanced_bce(logits[:, 0], masks[:, 0])
            return loss, {"saliency_wbce": float(loss.detach()), "saliency_iou": _iou(logits, masks)}
        out = model.forward_pair(images[:, 0], images[:, 1])
        loss = 0.5 * (balanced_bce(out.logits_a, masks[:, 0]) + balanced_bce(out.logits_b, masks[:, 1]))
        logits = torch.stack([out.logits_a, out.logits_b], 1)
        return loss, {"pair_wbce": float(loss.detach()), "pair_iou": _iou(logits, masks),
                      "gate": float(out.attention.gate_a.detach().mean())}

    # -- export --------------------------------------------------------------------------
    def export_tensors(self, model: COSNetNetwork) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """fp16 state dict and metadata for a shipped safetensors checkpoint."""
        return export_tensors(model, "cosnet", self.config.partition(":")[0],
                              train_size=f"{self.size[1]}x{self.size[0]}")  # W x H


def _iou(logits: torch.Tensor, masks: torch.Tensor) -> float:
    with torch.no_grad():
        pred, truth = logits > 0, masks > 0.5
        return float((pred & truth).sum()) / max(float((pred | truth).sum()), 1.0)

