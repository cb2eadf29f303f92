"""ImageNet-pretrained weights for the backbones, fetched through torchvision (needs internet).

The project's own checkpoints never need this: it serves ``--backbone-weights imagenet`` for users
who train from ImageNet features. torchvision is an optional dependency (``pip install
napari-vos[imagenet]``); it downloads and caches the weight files the usual way, and the state dicts
load into ``nn.resnet.ResNetTrunk`` / ``nn.vgg.vgg16_features`` because the parameter names match.
"""
from __future__ import annotations

from typing import Any

import torch

_RESNET_ENUMS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights",
                 "resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights"}


def torchvision_models():  # noqa: ANN201 - torchvision.models, typed by torchvision
    """torchvision.models, or a RuntimeError saying how to get a usable torchvision."""
    try:
        import torchvision.models as tvm
    except Exception as exc:  # a torchvision that does not match torch raises RuntimeError on import
        raise RuntimeError(
            "ImageNet backbone weights are downloaded through torchvision, which is not usable here "
            f"({type(exc).__name__}: {exc}). Install a torch/torchvision pair that match "
            "(pip install 'napari-vos[imagenet]'), or train from a napari-vos checkpoint instead "
            "(--init).") from exc
    return tvm


def resnet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet-1k (V1) weights of a ResNet, classifier (``fc``) removed."""
    if name not in _RESNET_ENUMS:
        raise ValueError(f"no ImageNet weights for backbone {name!r}; choose one of {sorted(_RESNET_ENUMS)}")
    tvm = torchvision_models()
    state = _fetched(getattr(tvm, _RESNET_ENUMS[name]).IMAGENET1K_V1, name)
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def vgg16_features_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet-1k (V1) VGG-16 weights of the convolutional part (``features.*``)."""
    tvm = torchvision_models()
    state = _fetched(tvm.VGG16_Weights.IMAGENET1K_V1, "vgg16")
    return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}


def _fetched(weights: Any, name: str) -> dict[str, torch.Tensor]:
    """torchvision's weights (from torch hub's cache, else downloaded); a failed download says what
    was fetched and the way round it, instead of urllib's bare "<urlopen error ...>"."""
    try:
        return weights.get_state_dict(progress=True)
    except OSError as err:  # URLError, a refused cache folder
        raise OSError(f"the ImageNet weights of {name} could not be fetched through torchvision ({err}); on a "
                      "machine without internet, copy torch hub's checkpoint file into its cache "
                      "(torch.hub.get_dir()/checkpoints) or start from a napari-vos checkpoint (--init)") from err
