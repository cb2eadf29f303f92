"""How long `split_divisions` takes on a large stack: the merged ground truth (every daughter under its
root cell's id, as scripts/division_split_oracle.py merges it) of cell_video(FRAMES, (SIZE, SIZE),
n_cells=CELLS, seed=0, division_rate=0.004), split REPEAT times; the best and the median time, and the
number of divisions. ``--option NAME=VALUE`` passes keyword arguments to split_divisions. To time an
older version of the module, run with PYTHONPATH pointing at its src folder.
Usage: .venv/bin/python scripts/division_split_speed.py [FRAMES] [SIZE] [CELLS] [REPEAT] [--option NAME=VALUE ...]"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from division_split_oracle import parse_options  # noqa: E402

import napari_vos  # noqa: E402
from napari_vos.data.synthetic_cells import cell_video, under_root_ids  # noqa: E402
from napari_vos.divisions import split_divisions  # noqa: E402

args, options = parse_options(sys.argv[1:])
frames, size, cells, repeat = ([int(a) for a in args] + [200, 512, 80, 3][len(args):])[:4]
video = cell_video(frames, (size, size), n_cells=cells, seed=0, division_rate=0.004)
merged = under_root_ids(np.asarray(video.labels), video.lineage)
times = []
for _ in range(repeat):
    start = time.perf_counter()
    result = split_divisions(merged, **options)
    times.append(time.perf_counter() - start)
print(f"{frames} frames of {size}x{size}, {cells} cells (napari_vos from {Path(napari_vos.__file__).parent}) "
      f"{options or ''}: {len(result.divisions)} divisions; split in best {min(times):.2f} s, median "
      f"{np.median(times):.2f} s of {repeat}")
