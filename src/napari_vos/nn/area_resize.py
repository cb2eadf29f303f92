"""Area resizing of (N, C, H, W) maps (adaptive average pooling) on any device.

MPS refuses ``adaptive_avg_pool2d`` (and ``F.interpolate(mode="area")``, which calls it) when the
output size does not divide the input (pytorch#96056, still open in torch 2.13; the MPS fallback
flag does not help, as the op has a kernel that raises). There the same averages are two matrix
products with PyTorch's pooling bins, on the device; elsewhere PyTorch's own pooling runs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["area_resize", "pooling_matrix"]


def pooling_matrix(n_in: int, n_out: int, device: torch.device | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n_out, n_in) averaging weights of adaptive pooling: row i averages input cells
    floor(i n_in / n_out) .. ceil((i + 1) n_in / n_out) - 1, as PyTorch's kernels do."""
    i = torch.arange(n_out)
    start = (i * n_in) // n_out
    end = ((i + 1) * n_in + n_out - 1) // n_out
    cells = torch.arange(n_in)
    inside = (cells[None] >= start[:, None]) & (cells[None] < end[:, None])
    weights = inside.to(torch.float64) / (end - start)[:, None].to(torch.float64)
    return weights.to(device=device, dtype=dtype)


def _refused_on_mps(x: torch.Tensor, size: tuple[int, int]) -> bool:
    return x.device.type == "mps" and (x.shape[-2] % size[0] != 0 or x.shape[-1] % size[1] != 0)


def area_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` (..., H, W) averaged to ``size`` (h, w) as ``F.adaptive_avg_pool2d`` does, on MPS too."""
    size = (int(size[0]), int(size[1]))
    if not _refused_on_mps(x, size):
        return F.adaptive_avg_pool2d(x, size)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    rows = pooling_matrix(x.shape[-2], size[0], x.device, dtype)
    cols = pooling_matrix(x.shape[-1], size[1], x.device, dtype)
    return rows @ x.to(dtype) @ cols.T
