"""What opening a 3D + time TIFF whole costs (`console.open_image_layers`, as File > IO Utilities > Open
image TIFF does): seconds to open, to read one (t, z) plane and to read a frame's whole volume, and the
process's resident memory, against opening one plane (``z=N``). Writes the TIFF (an ImageJ hyperstack) in a temporary folder.

    .venv/bin/python scripts/open_volume_cost.py [T] [Z] [SIDE]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_vos.evaluation.bench import resident_mib


def main() -> None:
    n_frames, planes, side = (int(a) for a in (sys.argv[1:] + ["10", "200", "256"][len(sys.argv) - 1:]))
    import tifffile
    from napari.components import ViewerModel

    from napari_vos.console import open_image_layers

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "volume.tif"
        rng = np.random.default_rng(0)
        volume = np.random.default_rng(0).integers(0, 4000, (n_frames, planes, side, side), dtype=np.uint16)
        tifffile.imwrite(path, volume, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                         metadata={"axes": "TZYX", "spacing": 2.0, "unit": "um", "finterval": 30.0})
        del volume
        size = path.stat().st_size / 2**20
        print(f"{n_frames} frames x {planes} planes of {side}x{side} uint16 ({size:.0f} MiB); resident at start "
              f"{resident_mib()} MiB")
        viewer = ViewerModel()
        for label, z in (("whole", None), ("one plane (z=N)", planes // 2)) * 2:
            start = time.perf_counter()
            layer = open_image_layers(viewer, path, z=z)[0]
            opened = time.perf_counter() - start
            index = (n_frames // 2, planes // 2) if z is None else (n_frames // 2,)
            start = time.perf_counter()
            np.asarray(layer.data[index])
            one = time.perf_counter() - start
            start = time.perf_counter()
            np.asarray(layer.data[n_frames // 2]) if z is None else None
            frame = time.perf_counter() - start
            print(f"{label:16s} shape {tuple(layer.data.shape)} scale {tuple(round(float(s), 3) for s in layer.scale)}: "
                  f"open {opened:.3f} s, one plane {one:.4f} s" + (f", one frame's {planes} planes {frame:.3f} s"
                                                                    if z is None else "")
                  + f", resident {resident_mib()} MiB")
            viewer.layers.clear()


if __name__ == "__main__":
    main()
