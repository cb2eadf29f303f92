"""Keep triton out of a napari process whose OpenGL is Mesa (it would crash the process).

Mesa's OpenGL drivers (llvmpipe/swrast under a virtual display or remote desktop, radeonsi and
others on AMD/Intel GPUs) link the system's libLLVM. triton's compiler library carries its own
LLVM; loading it *after* Mesa's is in the process is a segmentation fault (seen with Mesa 22 /
LLVM 15 and triton 3 on Debian 12). napari creates its OpenGL canvas first; with torch's CUDA build
anything that imports torch._dynamo afterwards (torchvision's ops did, when napari-vos used them)
imports triton, and the viewer dies.

Inference never needs triton (it serves torch.compile), so when Mesa's LLVM is already mapped
and triton is not yet imported, `guard_triton()` marks triton as unavailable
(``sys.modules["triton"] = None``; torch then reports no triton and carries on). Elsewhere it does
nothing. The widget and `console.propagate_layers` call it before the engine loads.
"""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

__all__ = ["guard_triton", "mesa_llvm_loaded"]

log = logging.getLogger(__name__)
_LLVM = re.compile(r"/libLLVM[-.\w]*\.so")


def mesa_llvm_loaded(maps_file: str | Path = "/proc/self/maps") -> bool:
    """Whether a system libLLVM (as Mesa's GL drivers load it) is mapped into this process (Linux)."""
    try:
        text = Path(maps_file).read_text()
    except OSError:
        return False
    return bool(_LLVM.search(text))


def guard_triton(maps_file: str | Path = "/proc/self/maps") -> bool:
    """Block the triton import if loading it now would crash the process; returns True if blocked."""
    if "triton" in sys.modules:
        return sys.modules["triton"] is None
    if not mesa_llvm_loaded(maps_file):
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]
    log.info("napari-vos: Mesa's LLVM is loaded (OpenGL); triton disabled in this process to avoid a crash")
    return True
