"""COSNet's network: feature embedding, gated co-attention, segmentation module (seed 003, slides of Lu et al.).

- Feature embedding (DeepLabv3): a ResNet whose stride-16 features feed an ASPP head (nn.aspp)
  giving V (C channels at stride 16). "paper": ResNet-101 with conv5_x dilated (stride 16 instead
  of 32), ASPP rates 6/12/18, C = 256. "light" (CPU): ResNet-18 up to conv4_x (stride 16 without
  dilation), ASPP rates 2/4/6 (the feature maps of small frames are small), C = 128.
- Co-attention (nn.coattention): gated summaries Z of a frame in light of another.
- Segmentation module: X = [Z, V] (2C) -> two 3x3 convolutions -> (light: blended with projected
  stride-4 conv2_x features, a DeepLabv3+-style skip that the paper does not have) -> 1x1
  predictor -> bilinear upsampling to the frame: one foreground logit map.
- Saliency head: one 1x1 convolution on V alone, used only by the training recipe's single-image
  "saliency" steps (the slides: "backbone trained for salient object segmentation with an
  additional convolutional layer").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from napari_vos.nn.aspp import ASPP, conv_norm_relu
from napari_vos.nn.backbone_freeze import FrozenStagesKeepStatistics
from napari_vos.nn.backbones import feature_channels
from napari_vos.nn.coattention import VARIANTS, CoAttention, CoAttentionOutput

STRIDE = 16


@dataclass
class COSNetConfig:
    """One COSNet configuration; ``paper`` is the slides', ``light`` the CPU one."""

    backbone: str = "resnet18"
    deep_layer: str = "conv4"  # the stride-16 features: "conv5" (dilated, the paper) or "conv4"
    embed_channels: int = 128  # C, the ASPP output
    aspp_rates: tuple[int, ...] = (2, 4, 6)
    variant: str = "symmetric"  # co-attention: vanilla | symmetric | channel
    seg_channels: int = 128
    skip_channels: int = 32  # projected conv2_x features blended in; 0: no skip (the paper)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "COSNetConfig":
        d = dict(d)
        if "aspp_rates" in d:
            d["aspp_rates"] = tuple(d["aspp_rates"])
        return cls(**d)


CONFIGS: dict[str, COSNetConfig] = {
    "paper": COSNetConfig(backbone="resnet101", deep_layer="conv5", embed_channels=256, aspp_rates=(6, 12, 18),
                          seg_channels=256, skip_channels=0),
    "light": COSNetConfig(),
}


def make_config(name: str, **overrides: Any) -> COSNetConfig:
    """A named configuration with fields replaced (e.g. ``variant="vanilla"``)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown COSNet configuration {name!r}; choose one of {sorted(CONFIGS)}")
    return replace(CONFIGS[name], **overrides)


@dataclass
class Embedding:
    """One batch of frames embedded: V (B, C, h, w) at stride 16 and the stride-4 skip features (or None)."""

    v: torch.Tensor
    skip: torch.Tensor | None


@dataclass
class PairOutput:
    """Training outputs for a pair (F_a, F_b): foreground logits (B, 1, H, W) of both, and the gates."""

    logits_a: torch.Tensor
    logits_b: torch.Tensor
    attention: CoAttentionOutput


class SegmentationModule(nn.Module):
    """X (2C) -> two 3x3 conv-norm-ReLU -> optional stride-4 skip blend -> 1x1 predictor -> upsample."""

    def __init__(self, in_ch: int, ch: int, skip_in: int, skip_ch: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_norm_relu(in_ch, ch), conv_norm_relu(ch, ch))
        self.skip_project = conv_norm_relu(skip_in, skip_ch, 1) if skip_ch else None
        self.blend = conv_norm_relu(ch + skip_ch, ch) if skip_ch else None
        self.predictor = nn.Conv2d(ch, 1, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        h = self.convs(x)
        if self.skip_project is not None and self.blend is not None:
            if skip is None:
                raise ValueError("this segmentation module blends stride-4 features: pass the embedding's skip")
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = self.blend(torch.cat([h, self.skip_project(skip)], 1))
        return F.interpolate(self.predictor(h), size=size, mode="bilinear", align_corners=False)


class COSNetNetwork(FrozenStagesKeepStatistics, nn.Module):
    """All trained parts of COSNet."""

    def __init__(self, config: COSNetConfig, backbone_weights: str | None = None) -> None:
        super().__init__()
        if config.variant not in VARIANTS:
            raise ValueError(f"co-attention variant must be one of {VARIANTS}, got {config.variant!r}")
        self.config = config
        deep_ch = self._make_stride16_backbone(config, backbone_weights)
        c2 = feature_channels(config.backbone)[0]
        c = config.embed_channels
        self.aspp = ASPP(deep_ch, c, config.aspp_rates)
        self.coattention = CoAttention(c, config.variant)
        self.segmentation = SegmentationModule(2 * c, config.seg_channels, c2, config.skip_channels)
        self.saliency = nn.Conv2d(c, 1, 1)

    # -- pieces ------------------------------------------------------------------------------
    def embed(self, images: torch.Tensor) -> Embedding:
        """(B, 3, H, W) in [0, 1], H and W multiples of 16 -> V at stride 16 (+ conv2_x for the skip)."""
        feats = self.backbone(images, upto=self.config.deep_layer)
        v = self.aspp(feats[self.config.deep_layer])
        return Embedding(v, feats["conv2"] if self.config.skip_channels else None)

    def segment(self, z: torch.Tensor, query: Embedding, size: tuple[int, int]) -> torch.Tensor:
        """Foreground logits (B, 1, H, W) from the gated summary Z and the query's embedding."""
        return self.segmentation(self.coattention.fuse(z.to(query.v.dtype), query.v), query.skip, size)

    # -- training ------------------------------------------------------------------------------
    def forward_pair(self, frames_a: torch.Tensor, frames_b: torch.Tensor) -> PairOutput:
        """Both frames of each pair segmented in light of each other (the slides' training phase)."""
        b = frames_a.shape[0]
        emb = self.embed(torch.cat([frames_a, frames_b]))
        ea = Embedding(emb.v[:b], None if emb.skip is None else emb.skip[:b])
        eb = Embedding(emb.v[b:], None if emb.skip is None else emb.skip[b:])
        att = self.coattention(ea.v, eb.v, both=True)
        assert att.z_b is not None
        size = tuple(frames_a.shape[-2:])
        return PairOutput(self.segment(att.z_a, ea, size), self.segment(att.z_b, eb, size), att)

    def saliency_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Single-image foreground logits (B, 1, H, W) from V alone (the saliency steps)."""
        v = self.embed(images).v
        return F.interpolate(self.saliency(v), size=images.shape[-2:], mode="bilinear", align_corners=False)
