"""Global convolution block (Peng et al., "Large Kernel Matters", CVPR 2017) as RGMP uses it.

Two branches of separable large kernels, (k x 1 then 1 x k) and (1 x k then k x 1), summed: every
output pixel sees a k x k window of the input at the cost of 4k instead of k^2 weights per channel
pair. RGMP (seed 002, section 3.1) uses it to match the reference and target streams' deepest
features over a large area (k = 7, 256 channels), *without* batch normalisation, followed by one
residual block. There is no non-linearity inside the block, as in the original GCN.
"""
from __future__ import annotations

import torch
from torch import nn

from napari_vos.nn.blocks import ResidualBlock


class GlobalConv(nn.Module):
    """(k x 1 -> 1 x k) + (1 x k -> k x 1); every convolution has ``out_ch`` filters and a bias."""

    def __init__(self, in_ch: int, out_ch: int = 256, k: int = 7) -> None:
        super().__init__()
        if k < 1 or k % 2 == 0:
            raise ValueError(f"the global convolution kernel size must be odd and positive, got {k}")
        p = k // 2
        self.k = k
        self.left1 = nn.Conv2d(in_ch, out_ch, (k, 1), padding=(p, 0))
        self.left2 = nn.Conv2d(out_ch, out_ch, (1, k), padding=(0, p))
        self.right1 = nn.Conv2d(in_ch, out_ch, (1, k), padding=(0, p))
        self.right2 = nn.Conv2d(out_ch, out_ch, (k, 1), padding=(p, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.left2(self.left1(x)) + self.right2(self.right1(x))


class GlobalConvBlock(nn.Module):
    """RGMP's matching block: global convolution followed by one residual block, no batch norm.

    (N, in_ch, h, w) -> (N, out_ch, h, w). The receptive field of one output pixel is
    (k + 4) x (k + 4) input pixels: k x k from the global convolution, widened by the residual
    block's two 3 x 3 convolutions.
    """

    def __init__(self, in_ch: int, out_ch: int = 256, k: int = 7) -> None:
        super().__init__()
        self.gc = GlobalConv(in_ch, out_ch, k)
        self.residual = ResidualBlock(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(self.gc(x))
