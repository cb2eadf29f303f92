"""Arithmetic precision of a run: which autocast dtype the big convolutions use on which device.

A session runs its method's forward passes under ``torch.autocast`` with the dtype chosen here;
the test-time learning (FRTM's Gauss-Newton solve, A-GAME's mixture, the fine-tuning loops) opts
out with `full_precision` and works in float32, since least-squares sums and log-probabilities
leave the float16 range (FRTM's target model turned to NaN under float16 autocast).
``"auto"`` is float16 on CUDA (tensor cores); on a CPU with native bfloat16 instructions
(AVX512-BF16, AMX: `cpu_has_native_bf16`) bfloat16, which ran the shipped methods 1.3-4.6x faster at
the same J&F (docs/benchmarks.md, session 17); float32 on other CPUs (where bfloat16 is emulated
and slower) and on MPS. torch is imported by the functions only, so the CLI and the widget can
list `PRECISIONS` without loading it.
"""
from __future__ import annotations

import functools
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_CPUINFO = Path("/proc/cpuinfo")


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision ("fp32", "bf16" or "fp16") for ``precision`` on ``device``.

    "auto": fp16 on CUDA, bf16 on a CPU with native bfloat16, fp32 otherwise (other CPUs, MPS).
    An explicit choice is kept on every device (fp16 on a CPU runs the GPU's arithmetic, slowly:
    the tests use it).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def autocast_for(precision: str, device: torch.device) -> AbstractContextManager:
    """The autocast context of a resolved precision on ``device``; fp32 turns autocast off, so that a
    caller's own ``torch.autocast`` around the run does not lower it behind the provenance's back."""
    import torch

    if precision == "fp32":
        return _autocast_off(device.type)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def full_precision(device: torch.device | torch.Tensor) -> AbstractContextManager:
    """Autocast off for the device of ``device`` (a device or a tensor): float32 arithmetic inside."""
    import torch

    kind = device.device.type if isinstance(device, torch.Tensor) else torch.device(device).type
    return _autocast_off(kind)


def _autocast_off(kind: str) -> AbstractContextManager:
    """Autocast disabled on a device type; nothing where this torch has no autocast for it (older
    torch on MPS), as then nothing can have turned it on."""
    import torch

    available = getattr(torch.amp, "is_autocast_available", None)
    if available is not None and not available(kind):
        return nullcontext()
    return torch.autocast(device_type=kind, enabled=False)


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 when it is half precision (bf16/fp16 from an autocast); float32 and float64 unchanged."""
    import torch

    return t if t.dtype in (torch.float32, torch.float64) else t.float()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (Linux: avx512_bf16 or amx_bf16 in /proc/cpuinfo).

    Elsewhere (macOS, Windows) False: the flags are not read there, so bf16 is never suggested.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


__all__ = ["PRECISIONS", "resolve_precision", "autocast_for", "full_precision", "at_least_float32",
           "cpu_has_native_bf16"]
