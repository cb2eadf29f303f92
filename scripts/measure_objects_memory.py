"""Time and peak memory (tracemalloc) of `measure_objects` on one large frame: 2048x2048 with 2000
disk cells, or ("voronoi") 2000 cells covering every pixel, with a uint16 image. With --old FILE, the
same for another version of object_table.py (e.g. `git show 482a321:src/napari_vos/object_table.py >
/tmp/old_object_table.py`, the regionprops_table one) for comparison.
Usage: .venv/bin/python scripts/measure_objects_memory.py disks|voronoi [--old FILE]"""
import importlib.util
import sys
import time
import tracemalloc

import numpy as np
from scipy import ndimage
from skimage.draw import disk

from napari_vos import object_table

kind = sys.argv[1] if len(sys.argv) > 1 else "disks"
versions = {"now": object_table}
if "--old" in sys.argv:
    spec = importlib.util.spec_from_file_location("old_object_table", sys.argv[sys.argv.index("--old") + 1])
    versions["old"] = sys.modules["old_object_table"] = importlib.util.module_from_spec(spec)  # its dataclass
    spec.loader.exec_module(versions["old"])
rng = np.random.default_rng(1)
side = 2048
frame = np.zeros((side, side), np.uint16)
centres = [(22 + i * 45 + int(rng.integers(-5, 6)), 22 + j * 45 + int(rng.integers(-5, 6)))
           for i in range(45) for j in range(45)][:2000]
if kind == "disks":
    for k, centre in enumerate(centres, start=1):
        frame[disk(centre, rng.uniform(8, 20), shape=frame.shape)] = k
else:  # every pixel to its nearest centre: cells that tile the frame
    seeds = np.zeros((side, side), np.uint16)
    for k, (y, x) in enumerate(centres, start=1):
        seeds[min(y, side - 1), min(x, side - 1)] = k
    _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    frame = seeds[iy, ix]
image = rng.integers(0, 4096, frame.shape).astype(np.uint16)
for name, module in versions.items():
    tracemalloc.start()
    start = time.perf_counter()
    table = module.measure_objects(frame[None], image[None])
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{kind}, {name}: {seconds:.2f} s, peak {peak / 2**20:.0f} MiB, {len(table)} rows")
