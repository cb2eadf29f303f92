"""Time `napari_vos.object_table.measure_objects` alone on the long synthetic cell stack that
scripts/menu_work_freeze.py measures through the menu (every daughter under its root cell's id, as
the methods propagate a division), with the video as the intensity image; each run twice.
Usage: .venv/bin/python scripts/measure_objects_speed.py [FRAMES] [SIZE] [CELLS] [SAVE.npz]
(SAVE: the columns of the last run, to compare the values of two versions)."""
import sys
import time

import numpy as np

from napari_vos.data.synthetic_cells import cell_video, under_root_ids
from napari_vos.object_table import measure_objects

frames, size, cells = (int(a) for a in (sys.argv[1:4] + ["200", "512", "80"][len(sys.argv[1:4]):])[:3])
video = cell_video(frames, (size, size), n_cells=cells, seed=0, division_rate=0.004)
labels, image = under_root_ids(video.labels, video.lineage), np.asarray(video.frames)
for _ in range(2):
    start = time.perf_counter()
    table = measure_objects(labels, image)
    print(f"measure_objects: {time.perf_counter() - start:.2f} s for {frames} frames of {size}x{size}, "
          f"{len(table)} rows", flush=True)
if len(sys.argv) > 4:
    np.savez(sys.argv[4], **table.columns)
