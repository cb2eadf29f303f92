"""What writing (T, Z, Y, X) labels as a Cell Tracking Challenge 3D result costs: seconds for `write_ctc`
(each frame's (Z, Y, X) volume relabelled to tracks and written as an uncompressed uint16 mask of
pages) and for `check_ctc` reading the folder back, the folder's size and the resident memory; on the
moving ellipsoids of `volume_tools_cost.py`.

    .venv/bin/python scripts/ctc_volumes_cost.py [T] [Z] [SIDE] [N]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from napari_vos.ctc_export import check_ctc, write_ctc
from napari_vos.evaluation.bench import resident_mib
from volume_tools_cost import moving_ellipsoids


def main(frames: int = 30, planes: int = 40, side: int = 256, n: int = 50) -> None:
    labels = moving_ellipsoids(frames, planes, side, n)
    print(f"labels {labels.shape} uint16; resident {resident_mib():.0f} MiB")
    with tempfile.TemporaryDirectory() as folder:
        result_folder = Path(folder) / "01_RES"
        start = time.perf_counter()
        result = write_ctc(result_folder, labels)
        written = time.perf_counter() - start
        start = time.perf_counter()
        problems = check_ctc(result_folder)
        checked = time.perf_counter() - start
        size = sum(path.stat().st_size for path in result_folder.iterdir())
    print(f"write_ctc {written:.2f} s ({len(result.table)} tracks, {result.gaps} gaps, {size / 2**20:.0f} MiB); "
          f"check_ctc {checked:.2f} s ({len(problems)} problems); resident {resident_mib():.0f} MiB")


if __name__ == "__main__":
    main(*(int(v) for v in sys.argv[1:5]))
