"""Where a network lives: on its device, in channels-last (NHWC) layout (methods at test time, training).

oneDNN (CPU) and cuDNN (CUDA tensor cores) run convolutions and pooling faster on NHWC tensors: on
a 2-core CPU the ResNet-18 stem's max-pool took 24 ms in NCHW and 1.5 ms in NHWC at 854x480, and
FRTM ran 1.2-1.3x the frames/s (docs/benchmarks.md, session 18). Converting the weights is enough:
a convolution whose weight is channels-last returns a channels-last map, and later layers keep it.
MPS keeps the default layout (channels-last support there is partial). ``NAPARI_VOS_CHANNELS_LAST=0``
in the environment keeps NCHW everywhere: a switch for comparing the layouts on a new device (older
GPUs without tensor cores can run NCHW faster).
"""
from __future__ import annotations

import os

import torch
from torch import nn

CHANNELS_LAST_DEVICES = ("cpu", "cuda")
SWITCH = "NAPARI_VOS_CHANNELS_LAST"


def channels_last_on(device: torch.device | str) -> bool:
    """Whether networks on ``device`` run channels-last (the device benefits, and the switch is not "0")."""
    return torch.device(device).type in CHANNELS_LAST_DEVICES and os.environ.get(SWITCH, "1") != "0"


def prefer_channels_last(module: nn.Module, device: torch.device | str) -> nn.Module:
    """``module`` with its 4-D weights in channels-last layout where ``device`` benefits (in place)."""
    if channels_last_on(device):
        module = module.to(memory_format=torch.channels_last)
    return module


def place_network(network: nn.Module, device: torch.device | str) -> nn.Module:
    """``network`` moved to ``device``, in eval mode, channels-last where the device benefits."""
    return prefer_channels_last(network.to(device).eval(), device)
