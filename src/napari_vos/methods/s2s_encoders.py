"""Feature pyramids for S2S's initializer and encoder: VGG-16 (the paper's) or a ResNet (light).

Both return five maps at strides 2, 4, 8, 16 and 32, the levels the decoder's skip connections
and the skip-memory read. ``vgg16`` is the VGG-16 convolutional part split at its five max-pools
(the paper's backbone, ImageNet weights through torchvision with ``weights="imagenet"``);
``resnet18``/``resnet34`` give the stem's stride-2 map and conv2_x..conv5_x (nn.backbones), a
lighter choice for CPUs that can start from the FRTM-trained ResNet-18. The initializer sees the
RGB image plus the object's mask: its first convolution gets a fourth input channel, whose weights
start randomly (Xavier) while the RGB ones keep whatever the backbone was initialised with.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from napari_vos.nn.backbones import IMAGENET_MEAN, IMAGENET_STD, ResNetFeatures, feature_channels
from napari_vos.nn.vgg import vgg16_features

ENCODERS = ("vgg16", "resnet18", "resnet34")


def widen_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` inputs: the first three keep their weights, the rest Xavier."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    nn.init.xavier_uniform_(new.weight)
    with torch.no_grad():
        new.weight[:, : conv.in_channels] = conv.weight
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


class _Pyramid(nn.Module):
    """Shared input normalisation (ImageNet statistics on RGB; extra channels such as a mask pass as they are)."""

    channels: tuple[int, int, int, int, int]

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}")
        rgb = (x[:, :3] - self.mean) / self.std
        return rgb if self.in_channels == 3 else torch.cat([rgb, x[:, 3:]], 1)

    def load_rgb_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load backbone weights trained on RGB; a widened first convolution takes them into its RGB slice."""
        own = self.state_dict()
        fitted = {}
        for key, value in state.items():
            if key not in own:
                raise KeyError(f"backbone tensor {key!r} does not exist in the {type(self).__name__}")
            target = own[key]
            if value.shape != target.shape and value.ndim == 4 and value.shape[1] == 3 and target.shape[1] > 3:
                widened = target.clone()
                widened[:, :3] = value
                value = widened
            fitted[key] = value
        missing = [k for k in own if k not in fitted and not k.endswith("num_batches_tracked")]
        if missing:
            raise KeyError(f"backbone weights lack {missing[:5]}")
        self.load_state_dict(fitted, strict=False)


class VGGPyramid(_Pyramid):
    """VGG-16's 13 convolutions in five blocks, each ending in its max-pool: strides 2..32, 64..512 channels."""

    channels = (64, 128, 256, 512, 512)

    def __init__(self, in_channels: int = 3, weights: str | None = None) -> None:
        super().__init__(in_channels)
        features = vgg16_features(weights)
        if in_channels != 3:
            features[0] = widen_first_conv(features[0], in_channels)
        blocks, current = [], []
        for layer in features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                blocks.append(nn.Sequential(*current))
                current = []
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.normalise(x)
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out


class ResNetPyramid(_Pyramid):
    """A ResNet (nn.resnet, torchvision's layout): the stem's stride-2 activation, then conv2_x..conv5_x (strides 4..32)."""

    def __init__(self, name: str = "resnet18", in_channels: int = 3, weights: str | None = None) -> None:
        super().__init__(in_channels)
        self.backbone = ResNetFeatures(name, weights=weights)
        self.channels = (64, *feature_channels(name))
        if in_channels != 3:
            self.backbone.stem[0] = widen_first_conv(self.backbone.stem[0], in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        bb = self.backbone
        s2 = bb.stem[2](bb.stem[1](bb.stem[0](self.normalise(x))))
        s4 = bb.conv2(bb.stem[3](s2))
        s8 = bb.conv3(s4)
        s16 = bb.conv4(s8)
        return [s2, s4, s8, s16, bb.conv5(s16)]

    def load_rgb_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_rgb_state_dict({f"backbone.{k}": v for k, v in state.items()})


def make_pyramid(name: str, in_channels: int = 3, weights: str | None = None) -> Any:
    """The named pyramid (``vgg16``, ``resnet18``, ``resnet34``) with ``in_channels`` inputs."""
    if name == "vgg16":
        return VGGPyramid(in_channels, weights)
    if name in ("resnet18", "resnet34"):
        return ResNetPyramid(name, in_channels, weights)
    raise ValueError(f"unknown S2S encoder {name!r}; choose one of {', '.join(ENCODERS)}")
