"""Convolutional building blocks shared by the methods: conv-ReLU, residual block, CAB.

The channel attention block (CAB) is the one of Yu et al. (DFN, CVPR 2018) that FRTM's
refinement modules use: global pooling of the concatenated low- and high-level features
gives per-channel weights that select which low-level channels to add to the high-level ones.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def conv(in_ch: int, out_ch: int, k: int = 3, stride: int = 1, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    """A 'same'-padded convolution."""
    return nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=dilation * (k - 1) // 2, dilation=dilation, bias=bias)


def conv_relu(in_ch: int, out_ch: int, k: int = 3, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(conv(in_ch, out_ch, k, dilation=dilation), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(relu(x)))), with a 1x1 projection when the width changes."""

    def __init__(self, in_ch: int, out_ch: int | None = None, k: int = 3) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        self.conv1 = conv(in_ch, out_ch, k)
        self.conv2 = conv(out_ch, out_ch, k)
        self.skip = None if in_ch == out_ch else conv(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(F.relu(x))))
        return (x if self.skip is None else self.skip(x)) + y


class ChannelAttentionBlock(nn.Module):
    """CAB: weight the low-level channels by attention computed from both levels, add the high level."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(2 * channels, channels, 1)
        self.fc2 = nn.Conv2d(channels, channels, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        # the channel means of [low, high], pooled before concatenating: the same numbers without
        # copying both maps (with many objects at stride 4 that copy was 6 % of FRTM's frame)
        pooled = torch.cat([F.adaptive_avg_pool2d(low, 1), F.adaptive_avg_pool2d(high, 1)], 1)
        attention = torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))
        return low * attention + high


def conv_over_shared_and_own(layer: nn.Conv2d, shared: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """``layer(cat([shared, own], 1))`` where ``shared`` (1, C, h, w) is the same for the K objects of
    ``own`` (K, C', h, w), without copying ``shared`` K times.

    A convolution is linear in its input channels, so the shared channels' response is computed
    once and added to each object's. With many objects (cells) the (K, C + C', h, w) concatenation
    was copied and convolved K times (A-GAME's upsampling module at 1024 px and 70 cells: several GB
    a frame). The same sum, in another order; with equal batches (training) the plain path."""
    if shared.shape[0] == own.shape[0]:
        return layer(torch.cat([shared, own], 1))
    c = shared.shape[1]
    common = F.conv2d(shared, layer.weight[:, :c], layer.bias, padding=layer.padding, dilation=layer.dilation)
    out = F.conv2d(own, layer.weight[:, c:], None, padding=layer.padding, dilation=layer.dilation)
    return out.add_(common)  # in place: at stride 4 each (K, C, h, w) map of many objects is a GB
