"""Time the overlay writers (napari's File > Save Selected Layers path, `write_overlay`) on one DAVIS
sequence: seconds and file size for .mp4 and .gif, each written twice (the first run pays imports).
Usage: .venv/bin/python scripts/overlay_speed.py DAVIS_DIR [SEQUENCE] [OUT_DIR]"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from napari_vos._widgets.overlay_writer import write_overlay

davis = Path(sys.argv[1])
sequence = sys.argv[2] if len(sys.argv) > 2 else "bear"
out = Path(sys.argv[3] if len(sys.argv) > 3 else tempfile.mkdtemp())
video = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted((davis / "JPEGImages" / sequence).glob("*.jpg"))])
labels = np.stack([(np.asarray(Image.open(f)) > 0).astype(np.int32)
                   for f in sorted((davis / "Annotations" / sequence).glob("*.png"))])
image = {"name": sequence, "rgb": True, "contrast_limits": [0, 255], "scale": [1, 1, 1]}
for suffix in ("mp4", "gif", "mp4", "gif"):
    path = out / f"{sequence}.{suffix}"
    start = time.perf_counter()
    write_overlay(str(path), [(video, image, "image"), (labels, {"name": "labels"}, "labels")])
    print(f"{suffix}: {time.perf_counter() - start:.2f} s for {len(video)} frames of {video.shape[2]}x{video.shape[1]}, "
          f"{path.stat().st_size / 1e6:.1f} MB")
