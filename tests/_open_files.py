"""How many of this process's file descriptors are open on a file (Linux /proc): does a reader close what it opened?"""
from __future__ import annotations

import os

import numpy as np


def open_handles(path) -> int:
    """How many of this process's file descriptors are open on ``path`` (Linux /proc)."""
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            found += os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")) == os.path.realpath(path)
        except OSError:
            continue
    return found


def closes_with_its_last_layer(viewer, path, layers, second_at, second, first_at, first) -> None:
    """The two channel layers ``layers`` that `open_image_layers` opened from ``path`` read from one open
    file while either is in ``viewer`` (the second reads ``second`` at index ``second_at`` once the first is
    removed), which is closed with the last of them and opened again when the first is added back (it reads
    ``first`` at ``first_at``)."""
    assert open_handles(path) == 1
    viewer.layers.remove(layers[0])
    assert open_handles(path) == 1  # its other channel still reads from it
    np.testing.assert_array_equal(np.asarray(layers[1].data[second_at]), second)
    viewer.layers.remove(layers[1])
    assert open_handles(path) == 0
    viewer.add_layer(layers[0])  # a layer kept in the console and added again reads the file again
    np.testing.assert_array_equal(np.asarray(layers[0].data[first_at]), first)
