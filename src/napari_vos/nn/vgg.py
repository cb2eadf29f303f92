"""VGG-16's convolutional part (Simonyan & Zisserman 2015) with torchvision's layer indices.

Written here for the same reason as ``nn.resnet``: a CPU-only torch has no torchvision that imports.
``vgg16_features()`` returns the flat ``Sequential`` of 13 conv+ReLU pairs and 5 max-pools whose
indices match ``torchvision.models.vgg16().features``, so ImageNet weights (``nn.imagenet``) and the
checkpoints this project trained load unchanged.
"""
from __future__ import annotations

from torch import nn

# output channels of each 3x3 convolution; "M" is a 2x2 max-pool
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_features(weights: str | None = None) -> nn.Sequential:
    """VGG-16's 13 convolutions with their ReLUs and max-pools: He-normal weights and zero biases, or
    torchvision's ImageNet ones with ``weights="imagenet"`` (``nn.imagenet``)."""
    if weights not in (None, "none", "imagenet"):
        raise ValueError(f"backbone weights must be None or 'imagenet', got {weights!r}")
    layers: list[nn.Module] = []
    channels = 3
    for v in VGG16_LAYOUT:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        conv = nn.Conv2d(channels, int(v), 3, padding=1)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        layers += [conv, nn.ReLU(inplace=True)]
        channels = int(v)
    features = nn.Sequential(*layers)
    if weights == "imagenet":
        from napari_vos.nn.imagenet import vgg16_features_state_dict

        features.load_state_dict(vgg16_features_state_dict())
    return features
