"""FRTM's segmentation network S(s, x): target segmentation encoders + refinement modules (seed 001, 3.2).

At each of the four backbone depths (conv5_x .. conv2_x) a target segmentation encoder (TSE)
projects the features to 64 channels, concatenates the coarse target scores resized to that
stride and encodes them with three convolutions; a refinement module (residual block, channel
attention block merging the deeper output, residual block) builds a U-Net style decoder. Two final
convolutions give the segmentation logits at stride 4, upsampled to the image.
The network is target agnostic: K objects are K batch entries sharing the projected features.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from napari_vos.nn.backbones import LAYER_NAMES
from napari_vos.nn.blocks import ChannelAttentionBlock, ResidualBlock, conv, conv_over_shared_and_own, conv_relu


class TargetSegmentationEncoder(nn.Module):
    """Project features to ``ch`` channels, concatenate scores, three convolutions."""

    def __init__(self, in_ch: int, ch: int = 64) -> None:
        super().__init__()
        self.project = conv(in_ch, ch, 1)
        self.encode = nn.Sequential(conv_relu(ch + 1, ch), conv_relu(ch, ch), conv(ch, ch))

    def forward(self, features: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (1, C, h, w) shared; scores (K, 1, hs, ws) -> encoding (K, ch, h, w), projection (1, ch, h, w)."""
        projected = self.project(features)
        s = F.interpolate(scores, size=features.shape[-2:], mode="bilinear", align_corners=False)
        # the first convolution over [projection, scores]: the shared projection's part once
        first = F.relu(conv_over_shared_and_own(self.encode[0][0], projected, s), inplace=True)
        return self.encode[1:](first), projected


class RefinementModule(nn.Module):
    """Residual block -> CAB with the deeper output -> residual block."""

    def __init__(self, ch: int = 64) -> None:
        super().__init__()
        self.rb1 = ResidualBlock(ch)
        self.cab = ChannelAttentionBlock(ch)
        self.rb2 = ResidualBlock(ch)

    def forward(self, encoded: torch.Tensor, deeper: torch.Tensor) -> torch.Tensor:
        return self.rb2(self.cab(self.rb1(encoded), deeper))


class SegmentationNetwork(nn.Module):
    """S(s, x): multi-level refinement of the coarse target scores into segmentation logits."""

    def __init__(self, feature_channels: tuple[int, int, int, int], ch: int = 64) -> None:
        super().__init__()
        self.tse = nn.ModuleDict({n: TargetSegmentationEncoder(c, ch) for n, c in zip(LAYER_NAMES, feature_channels)})
        self.refine = nn.ModuleDict({n: RefinementModule(ch) for n in LAYER_NAMES})
        self.head = nn.Sequential(conv_relu(ch, ch // 2), conv(ch // 2, 1))

    def forward(self, features: dict[str, torch.Tensor], scores: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """features: conv2..conv5 of one image (1, C, h, w); scores (K, 1, h16, w16) -> logits (K, H, W)."""
        z = None
        for name in reversed(LAYER_NAMES):
            encoded, projected = self.tse[name](features[name], scores)
            deeper = projected.expand(encoded.shape[0], -1, -1, -1) if z is None else z
            z = self.refine[name](encoded, deeper)
        logits = self.head(z)
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)[:, 0]
