"""How many of this process's file descriptors are open on a file (Linux /proc): does a reader close what it opened?"""
from __future__ import annotations

import os


def open_handles(path) -> int:
    """How many of this process's file descriptors are open on ``path`` (Linux /proc)."""
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            found += os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")) == os.path.realpath(path)
        except OSError:
            continue
    return found
