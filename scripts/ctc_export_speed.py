"""Time the Cell Tracking Challenge export (`napari_vos.ctc_export`) on synthetic cells: 200 frames of
512 x 512 with 80 cells that move, divide, enter and leave (`cell_video`, its lineage as the divisions).
Times write_ctc from an in-memory stack, check_ctc reading the folder back, and `napari-vos ctc` end
to end from a labels TIFF (read a frame at a time, written, then checked), each twice.
Usage: .venv/bin/python scripts/ctc_export_speed.py [FRAMES] [SIDE] [CELLS]"""
import contextlib
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

from napari_vos.cli import main
from napari_vos.ctc_export import check_ctc, write_ctc
from napari_vos.data.synthetic import cell_video
from napari_vos.data.writers import write_tiff_labels

frames, side, cells = (int(v) for v in (sys.argv[1:] + ["200", "512", "80"][len(sys.argv) - 1:])[:3])
work = Path(tempfile.mkdtemp())
start = time.perf_counter()
video = cell_video(frames, (side, side), n_cells=cells, seed=0)
print(f"cell_video({frames}, ({side}, {side}), n_cells={cells}, seed=0): {time.perf_counter() - start:.1f} s; "
      f"labels {video.labels.shape} {video.labels.dtype}, {len(video.lineage)} ids, "
      f"{sum(1 for p, _, _ in video.lineage.values() if p)} with a parent")
labels_tif = write_tiff_labels(work / "labels.tif", video.labels)
try:
    for run in (1, 2):
        shutil.rmtree(work / "res", ignore_errors=True)
        start = time.perf_counter()
        result = write_ctc(work / "res", video.labels, video.lineage)
        written = time.perf_counter() - start
        start = time.perf_counter()
        problems = check_ctc(work / "res")
        checked = time.perf_counter() - start
        shutil.rmtree(work / "cli", ignore_errors=True)
        said = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(io.StringIO()):
            code = main(["ctc", str(labels_tif), "-o", str(work / "cli")])
        command = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (work / "res").iterdir()) / 2**20
        print(f"run {run}: write_ctc {written:.2f} s ({1000 * written / frames:.1f} ms/frame), check_ctc "
              f"{checked:.2f} s, napari-vos ctc from the TIFF {command:.2f} s (exit {code}); {len(result.table)} "
              f"tracks, {result.gaps} gaps split, {result.divisions} divisions kept ({result.daughters} daughters), "
              f"{len(result.left_out)} lineage links left out, {size:.0f} MiB; problems: {problems or 'none'}")
    print(said.getvalue().strip())
finally:
    shutil.rmtree(work, ignore_errors=True)
