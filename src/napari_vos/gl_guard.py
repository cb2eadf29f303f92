"""Keep triton out of a process whose OpenGL is Mesa (loading it there crashes the process).

Mesa's OpenGL drivers (llvmpipe/swrast under a virtual display or remote desktop, radeonsi and
others on AMD/Intel GPUs) link the system's libLLVM. triton's compiler library carries its own
LLVM; loading it *after* Mesa's is in the process is a segmentation fault (seen with Mesa 22 /
LLVM 15 and triton 3 on Debian 12). napari creates its OpenGL canvas first; with a GPU build of
torch (CUDA or ROCm, whose wheels install triton) anything that imports torch._dynamo afterwards
imports triton, and the viewer dies. Building a network does (FRTM's, for one: torch's weight
initialisers on the meta device go through torch._refs, which imports torch._dynamo).

Inference never needs triton (it serves torch.compile), so when triton is installed, Mesa's LLVM
is already mapped and triton is not yet imported, `guard_triton()` marks triton as unavailable
(``sys.modules["triton"] = None``; torch then reports no triton and carries on). Elsewhere it does
nothing. The engine (`Session`, before it builds a method) calls it, so a script or napari's
console is guarded like the widget and `console.propagate_layers`, which call it before the
engine loads. No torch, Qt or napari import here.
"""
from __future__ import annotations

import importlib.util
import logging
import re
import sys
from pathlib import Path

__all__ = ["guard_triton", "mesa_llvm_loaded", "triton_installed"]

log = logging.getLogger(__name__)
_LLVM = re.compile(r"/libLLVM[-.\w]*\.so")


def mesa_llvm_loaded(maps_file: str | Path = "/proc/self/maps") -> bool:
    """Whether a system libLLVM (as Mesa's GL drivers load it) is mapped into this process (Linux)."""
    try:
        text = Path(maps_file).read_text()
    except OSError:
        return False
    return bool(_LLVM.search(text))


def triton_installed() -> bool:
    """Whether ``import triton`` could load triton here (GPU builds of torch install it; CPU builds do not)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a broken or spec-less "triton" entry: nothing importable
        return False


def guard_triton(maps_file: str | Path = "/proc/self/maps") -> bool:
    """Block the triton import if loading it now would crash the process; returns True if blocked.

    Idempotent and cheap (a look at sys.modules, the import path and /proc/self/maps): a no-op
    once triton is imported or blocked, where triton is not installed, and where Mesa's LLVM is not loaded.
    """
    if "triton" in sys.modules:
        return sys.modules["triton"] is None
    if not triton_installed() or not mesa_llvm_loaded(maps_file):
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]
    log.info("napari-vos: Mesa's LLVM is loaded (OpenGL); triton disabled in this process to avoid a crash")
    return True
