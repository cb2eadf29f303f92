"""Out-of-memory errors told as what to do, so the CLI and the widget say it instead of a traceback.

A run that exhausts the GPU (torch's ``OutOfMemoryError``, MPS's "out of memory" RuntimeError) or
the host (``MemoryError``) is a setting to change, not a bug to report: the working size and the
number of objects are what the memory grows with. No torch import: the class is matched by name.
"""
from __future__ import annotations

__all__ = ["is_out_of_memory", "out_of_memory_advice"]


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says the GPU or the host ran out of memory."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    # MPS: "MPS backend out of memory"; torch's CPU allocator: "not enough memory" (Windows), "can't allocate
    # memory" (Linux, macOS)
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(
        words in text for words in ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory"))


def out_of_memory_advice(err: BaseException) -> str | None:
    """One sentence on what ran out and what to change, with the error's first sentence; None for
    any other error."""
    if not is_out_of_memory(err):
        return None
    text = str(err).strip()
    on_gpu = type(err).__name__ == "OutOfMemoryError" or any(word in text for word in ("CUDA", "MPS", "GPU"))
    if "can't allocate memory" in text:  # "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't..."
        text = text[text.index("can't allocate memory"):]
    first = text.split(". ")[0].rstrip(".") if text else type(err).__name__
    where = "the GPU" if on_gpu else "this machine"
    cpu = ", or run on the CPU (device 'cpu', --device cpu), which has more memory" if on_gpu else ""
    return (f"{where} ran out of memory ({first}): run at a smaller working size (max side, e.g. 480; "
            f"--max-side 480) or with fewer objects at once{cpu}; the frames finished before it are kept")
