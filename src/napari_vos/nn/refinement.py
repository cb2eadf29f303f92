"""The residual refinement module of RGMP's decoder (seed 002, Fig. 2; after Pinheiro et al. 2016).

A refinement module merges a coarse decoder map with a skip connection from the encoder one
scale finer: the skip features are projected to the decoder width by a 3x3 convolution and
refined by a residual block, the coarse map is upsampled x2 and added, and a second residual
block refines the sum. RGMP replaces the convolution layers of the original refinement module by
residual blocks; A-GAME's decoder uses the same module.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from napari_vos.nn.blocks import ResidualBlock, conv


class RefinementModule(nn.Module):
    """skip (N, skip_ch, H, W) + coarse (N, ch, h, w) -> (N, ch, H, W)."""

    def __init__(self, skip_ch: int, channels: int = 256) -> None:
        super().__init__()
        self.project = conv(skip_ch, channels, 3)
        self.skip_residual = ResidualBlock(channels)
        self.merge_residual = ResidualBlock(channels)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        s = self.skip_residual(self.project(skip))
        up = F.interpolate(coarse, size=s.shape[-2:], mode="bilinear", align_corners=False)
        return self.merge_residual(s + up)
