"""The ResNet-18/34/50/101 trunks (He et al. 2016) with torchvision's parameter names.

Written here rather than taken from torchvision because PyPI's torchvision wheels only load next to
PyPI's CUDA build of torch (about 6 GB installed): a CPU-only install (torch's ``+cpu`` build, 0.7 GB)
has no torchvision that imports. The module and parameter names match ``torchvision.models.resnet``,
so torchvision's ImageNet state dicts load as they are (``nn.imagenet``), and the initialisation is
the usual one (He-normal convolutions, unit batch-norm scales).
"""
from __future__ import annotations

import torch
from torch import nn

# name -> (block kind, blocks per stage)
LAYOUTS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}


WIDTHS = (64, 128, 256, 512)  # bottleneck widths of layer1..layer4


def _layout(name: str) -> tuple[str, tuple[int, int, int, int]]:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(LAYOUTS)}") from None


def stage_channels(name: str) -> tuple[int, int, int, int]:
    """Output channels of layer1..layer4 (conv2_x..conv5_x) of a ResNet name."""
    expansion = 1 if _layout(name)[0] == "basic" else Bottleneck.expansion
    return tuple(w * expansion for w in WIDTHS)


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    """1x1 projection for a block whose input and output differ in shape, else None (identity)."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _shortcut(cin, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, or dilated), 1x1 expand by 4, with a residual connection (ResNet-50/101)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride, dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNetTrunk(nn.Module):
    """Stem (conv1, bn1, relu, maxpool) and stages layer1..layer4; no classifier head.

    ``dilate_last`` gives layer4 stride 1 and dilation 2 (output stride 16), the way torchvision's
    ``replace_stride_with_dilation=[False, False, True]`` does; like torchvision it is offered for the
    bottleneck networks only (the first block of the stage keeps dilation 1, the rest use 2).
    """

    def __init__(self, name: str = "resnet18", dilate_last: bool = False) -> None:
        super().__init__()
        kind, counts = _layout(name)
        if dilate_last and kind == "basic":
            raise ValueError(f"{name} cannot dilate its last block; use resnet50 or resnet101")
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for index, (width, count) in enumerate(zip(WIDTHS, counts)):
            dilated = dilate_last and index == 3
            stride = 1 if index == 0 or dilated else 2
            blocks = [block(cin, width, stride)]
            cin = width * block.expansion
            blocks += [block(cin, width, 1, dilation=2 if dilated else 1) for _ in range(count - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
