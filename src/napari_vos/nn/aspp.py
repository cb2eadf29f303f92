"""Atrous spatial pyramid pooling (DeepLabv3, Chen et al. 2017), the head of COSNet's feature embedding.

Parallel branches over the backbone's stride-16 features: a 1x1 convolution, 3x3 convolutions at
several dilation rates (DeepLabv3: 6, 12, 18 at output stride 16) and image-level pooling; each
normalised and rectified, concatenated, projected by a 1x1 convolution. Group normalisation
stands in for DeepLab's batch normalisation, since the training batches here are a few frame
pairs (batch statistics of 4-8 images are too noisy to keep for test time).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["ASPP", "conv_norm_relu"]


def _groups(channels: int) -> int:
    """Up to 32 groups of at least 4 channels (the pooled branch is 1x1: a group needs several values)."""
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 4:
            return g
    return 1


def conv_norm_relu(in_ch: int, out_ch: int, k: int = 3, dilation: int = 1) -> nn.Sequential:
    """'same'-padded convolution (no bias), group norm, ReLU."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, k, padding=dilation * (k - 1) // 2, dilation=dilation, bias=False),
                         nn.GroupNorm(_groups(out_ch), out_ch), nn.ReLU(inplace=True))


class ASPP(nn.Module):
    """(B, in_ch, h, w) -> (B, out_ch, h, w): 1x1, dilated 3x3 per rate, image pooling; concat; 1x1."""

    def __init__(self, in_ch: int, out_ch: int, rates: tuple[int, ...] = (6, 12, 18)) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_norm_relu(in_ch, out_ch, 1)] +
                                      [conv_norm_relu(in_ch, out_ch, 3, dilation=r) for r in rates])
        self.image_pool = conv_norm_relu(in_ch, out_ch, 1)
        self.project = conv_norm_relu((len(rates) + 2) * out_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        pooled = self.image_pool(F.adaptive_avg_pool2d(x, 1))
        outs.append(pooled.expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, 1))
