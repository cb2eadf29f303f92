"""Geometric and blur augmentations on tensors: an affine warp and a Gaussian blur.

Written on ``torch.nn.functional`` (affine_grid / grid_sample, conv2d) so the training recipes and
FRTM's initial-memory augmentation run with a CPU-only torch that has no working torchvision (see
``nn.resnet``). Angle, translation and scale mean what they mean in torchvision's ``affine`` (degrees
clockwise on screen; pixels, x then y; a factor), and a warp matches it to float precision; shear
(degrees, x then y) is x' = x + tan(sx) y, y' = y + tan(sy) x before the rotation; the centre is in
pixel-index coordinates (x, y), the image centre ((W-1)/2, (H-1)/2) by default; samples from outside
the image are 0.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def affine_matrix(angle: float, translate: tuple[float, float], scale: float,
                  shear: tuple[float, float] = (0.0, 0.0), center: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """3x3 map of pixel coordinates (x, y, 1): p' = c + t + R(angle) Sh(shear) scale (p - c)."""
    a = math.radians(angle)
    # rows are (x, y); y points down, so this turns clockwise on screen (torchvision's affine does too)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    shearing = np.array([[1.0, math.tan(math.radians(shear[0]))], [math.tan(math.radians(shear[1])), 1.0]])
    linear = rotation @ shearing * scale
    c = np.asarray(center, dtype=float)
    m = np.eye(3)
    m[:2, :2] = linear
    m[:2, 2] = c + np.asarray(translate, dtype=float) - linear @ c
    return m


def affine(x: torch.Tensor, angle: float, translate: tuple[float, float], scale: float,
           shear: tuple[float, float] = (0.0, 0.0), center: tuple[float, float] | None = None,
           mode: str = "bilinear") -> torch.Tensor:
    """Warp a (..., H, W) tensor by ``affine_matrix``; every leading slice moves the same way."""
    h, w = x.shape[-2:]
    if center is None:
        center = ((w - 1) / 2.0, (h - 1) / 2.0)
    forward = affine_matrix(angle, translate, scale, shear, center)
    inverse = np.linalg.inv(forward)  # output pixel -> input pixel
    # pixel index -> grid_sample's normalised coordinate (align_corners=False): u = (2 x + 1) / W - 1
    to_unit = np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])
    theta = to_unit @ inverse @ np.linalg.inv(to_unit)
    theta_t = torch.as_tensor(theta[:2], dtype=x.dtype if x.is_floating_point() else torch.float32,
                              device=x.device)[None]
    flat = x.reshape(1, -1, h, w)
    source = flat if flat.is_floating_point() else flat.float()
    grid = F.affine_grid(theta_t, list(source.shape), align_corners=False)
    out = F.grid_sample(source, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out.reshape(x.shape).to(x.dtype)


def gaussian_blur(x: torch.Tensor, sigma: float, kernel_size: int | None = None) -> torch.Tensor:
    """Blur each channel of a (..., H, W) float tensor with a separable Gaussian (reflected borders)."""
    if kernel_size is None:
        kernel_size = 2 * math.ceil(3 * sigma) + 1
    if kernel_size % 2 == 0 or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
    half = kernel_size // 2
    t = torch.arange(kernel_size, dtype=x.dtype, device=x.device) - half
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    h, w = x.shape[-2:]
    flat = x.reshape(-1, 1, h, w)
    flat = F.pad(flat, (half, half, half, half), mode="reflect")
    flat = F.conv2d(flat, kernel.view(1, 1, 1, -1))
    flat = F.conv2d(flat, kernel.view(1, 1, -1, 1))
    return flat.reshape(x.shape)
