"""Time the object measurements as napari's save dialog runs them (`write_object_tables`, on the GUI
thread) and the centroid tracks of Layers > Track (`centroid_tracks`): the built-in cells sample, and where a data folder is given one DAVIS sequence and the
Usiigaci time-lapse (their ground truth as the labels), each measured twice (the first pays imports).
Usage: .venv/bin/python scripts/object_table_speed.py [VIDEOS_DIR] [OUT_DIR]"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from napari_vos._widgets.object_table_writer import write_object_tables
from napari_vos._widgets.tracks_layer import centroid_tracks
from napari_vos.data.samples import cell_sample

out = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp())
cells = cell_sample()
cases = [("cells sample", cells.frames, np.asarray(cells.labels))]
if len(sys.argv) > 1:
    videos = Path(sys.argv[1])
    davis, usiigaci = videos / "davis2016-train", videos / "usiigaci-t98g"
    cases.append(("bear", np.stack([np.asarray(Image.open(f).convert("RGB"))
                                    for f in sorted((davis / "JPEGImages" / "bear").glob("*.jpg"))]),
                  np.stack([(np.asarray(Image.open(f)) > 0).astype(np.int32)
                            for f in sorted((davis / "Annotations" / "bear").glob("*.png"))])))
    cases.append(("usiigaci-t98g", np.stack([tifffile.imread(f) for f in sorted((usiigaci / "images").glob("*.tif"))]),
                  np.stack([np.asarray(Image.open(f)) for f in sorted((usiigaci / "masks").glob("*.png"))])))
for name, video, labels in cases:
    image = {"name": name, "rgb": video.ndim == 4}
    for _ in range(2):
        start = time.perf_counter()
        written = write_object_tables(str(out / f"{name.replace(' ', '-')}.csv"),
                                      [(video, image, "image"), (labels, {"name": "labels"}, "labels")])
        seconds = time.perf_counter() - start
    rows = sum(1 for _ in open(written[0], encoding="utf-8")) - 1
    for _ in range(2):
        start = time.perf_counter()
        centroid_tracks(labels)
        tracks_seconds = time.perf_counter() - start
    print(f"{name}: {seconds:.2f} s for {len(labels)} frames of {labels.shape[2]}x{labels.shape[1]}, {rows} rows; "
          f"centroid tracks {tracks_seconds:.2f} s")
