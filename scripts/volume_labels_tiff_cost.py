"""What saving and opening (T, Z, Y, X) labels as the napari-vos labels TIFF costs: seconds for
`save_labels_layer` (ImageJ hyperstack, zlib, with the Z step and record) and `open_labels_layer`, the
file's size, and the process's resident memory after each; on the moving ellipsoids of
`volume_tools_cost.py` in a labels layer of a napari ViewerModel (no window), with 0.5 µm pixels, a 2 µm
Z step and 5 s between frames. The labels are checked to come back equal.

    .venv/bin/python scripts/volume_labels_tiff_cost.py [T] [Z] [SIDE] [N]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_vos.evaluation.bench import resident_mib
from volume_tools_cost import moving_ellipsoids


def main(frames: int = 30, planes: int = 40, side: int = 256, n: int = 50) -> None:
    from napari.components import ViewerModel

    from napari_vos.console import open_labels_layer, save_labels_layer

    labels = moving_ellipsoids(frames, planes, side, n)
    viewer = ViewerModel()
    layer = viewer.add_labels(labels, name="cells", scale=(5.0, 2.0, 0.5, 0.5), units=("s", "µm", "µm", "µm"))
    print(f"labels {labels.shape} uint16, {labels.nbytes / 2**20:.0f} MiB; resident {resident_mib():.0f} MiB")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = save_labels_layer(layer, Path(folder) / "cells.tif")
        saved = time.perf_counter() - start
        print(f"save_labels_layer: {saved:.2f} s, file {path.stat().st_size / 2**20:.1f} MiB; "
              f"resident {resident_mib():.0f} MiB")
        start = time.perf_counter()
        again = open_labels_layer(viewer, path)
        opened = time.perf_counter() - start
        print(f"open_labels_layer: {opened:.2f} s; resident {resident_mib():.0f} MiB")
        assert np.array_equal(again.data, labels) and tuple(again.scale) == (5.0, 2.0, 0.5, 0.5)
        print("labels and scale came back equal")


if __name__ == "__main__":
    main(*(int(v) for v in sys.argv[1:5]))
