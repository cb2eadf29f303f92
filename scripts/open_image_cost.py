"""What File > IO Utilities > Open image TIFF (calibration)... costs against napari's own File > Open on a
calibrated 16-bit time-lapse: seconds to open, the first draw and a step of the time slider, and the
process's peak memory (resident set) after each. Writes the TIFF once under /tmp.
Usage: QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python scripts/open_image_cost.py [FRAMES] [SIDE]"""
import os
import resource
import sys
import time

import numpy as np
import tifffile


def peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


frames = int(sys.argv[1]) if len(sys.argv) > 1 else 200
side = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
path = f"/tmp/napari_vos_open_image_{frames}x{side}.tif"
if not os.path.exists(path):
    video = np.random.default_rng(0).integers(0, 4000, (frames, side, side), dtype=np.uint16)
    tifffile.imwrite(path, video, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"axes": "TYX", "unit": "um", "finterval": 60})
    del video

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from napari_vos.console import open_image_layers  # noqa: E402

viewer = napari.Viewer(show=True)
QApplication.processEvents()
print(f"{frames} frames of {side}x{side} uint16 ({os.path.getsize(path) / 2**20:.0f} MiB); viewer up: peak {peak_mb()} MB")
for label, open_it in (("Open image TIFF (open_image_layers)", lambda: open_image_layers(viewer, path)[0]),
                       ("napari File > Open (viewer.open)", lambda: viewer.open(path)[0])):
    start = time.perf_counter()
    layer = open_it()
    opened = time.perf_counter() - start
    start = time.perf_counter()
    QApplication.processEvents()
    drawn = time.perf_counter() - start
    start = time.perf_counter()
    viewer.dims.set_current_step(0, frames * 3 // 4)
    QApplication.processEvents()
    stepped = time.perf_counter() - start
    print(f"{label}: open {opened:.2f} s, first draw {drawn:.2f} s, a step {stepped:.2f} s; scale "
          f"{tuple(float(v) for v in layer.scale)}; peak {peak_mb()} MB")
    viewer.layers.clear()
