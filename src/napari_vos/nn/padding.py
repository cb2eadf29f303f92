"""Pad images to a multiple of the network stride and crop outputs back."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad the last two dims up to a multiple; returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        squeeze = x.ndim == 3
        x4 = x.unsqueeze(0) if squeeze else x
        x4 = F.pad(x4, (0, pw, 0, ph), mode="replicate")
        x = x4.squeeze(0) if squeeze else x4
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x[..., : size[0], : size[1]]
