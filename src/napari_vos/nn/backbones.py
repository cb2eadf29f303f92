"""ResNet feature extractors returning the conv2_x..conv5_x maps (strides 4, 8, 16, 32).

The trunks are ``nn.resnet``'s (torchvision's layout and parameter names). ``weights="imagenet"``
loads torchvision's ImageNet weights through torchvision's own download path (``nn.imagenet``) for
users with internet; the defaults shipped with napari-vos are backbones this
project trained itself (see docs/architecture.md), loaded through ``napari_vos.weights``.
"""
from __future__ import annotations

import torch
from torch import nn

from napari_vos.nn.imagenet import resnet_state_dict
from napari_vos.nn.resnet import ResNetTrunk, stage_channels

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LAYER_NAMES = ("conv2", "conv3", "conv4", "conv5")


def feature_channels(name: str) -> tuple[int, int, int, int]:
    """Channels of conv2_x..conv5_x for a backbone name."""
    return stage_channels(name)


class ResNetFeatures(nn.Module):
    """Image (N, 3, H, W) in [0, 1] -> dict of conv2..conv5 feature maps.

    ``dilate_last`` replaces the stride of conv5_x with dilation (stride 16 instead of 32),
    as A-GAME uses; as in torchvision, only the bottleneck ResNets (50/101) offer it.
    """

    def __init__(self, name: str = "resnet18", weights: str | None = None, dilate_last: bool = False) -> None:
        super().__init__()
        channels = feature_channels(name)
        if weights not in (None, "none", "imagenet"):
            raise ValueError(f"backbone weights must be None or 'imagenet', got {weights!r}")
        net = ResNetTrunk(name, dilate_last=dilate_last)
        if weights == "imagenet":
            net.load_state_dict(resnet_state_dict(name))
        self.name = name
        self.channels = channels
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.conv2, self.conv3, self.conv4, self.conv5 = net.layer1, net.layer2, net.layer3, net.layer4
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor, upto: str = "conv5") -> dict[str, torch.Tensor]:
        x = self.stem((image - self.mean) / self.std)
        out: dict[str, torch.Tensor] = {}
        for name in LAYER_NAMES:
            x = getattr(self, name)(x)
            out[name] = x
            if name == upto:
                break
        return out
