"""What splitting divided cells (`napari_vos.divisions.split_divisions`) gains on synthetic time-lapses
with known lineage: SEG of a method's propagated labels against the ground truth before and after the
split (the ground truth gives daughters new ids, as the Cell Tracking Challenge does), and the
divisions found against the true ones (a found division counts when its parent is a true parent and
its frame within 2 frames of the true one).
Usage: .venv/bin/python scripts/division_split_gain.py [METHOD] [SEEDS] [DIVISION_RATE]"""
import sys
import time

import numpy as np

from napari_vos import propagate
from napari_vos.data.synthetic_cells import cell_video
from napari_vos.divisions import split_divisions
from napari_vos.evaluation.ctc import seg_measure

method = sys.argv[1] if len(sys.argv) > 1 else "flow"
seeds = range(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0.02
rows = []
for seed in seeds:
    video = cell_video(40, (256, 256), n_cells=20, seed=seed, division_rate=rate)
    truth = np.asarray(video.labels)
    true_divisions = {(parent, first) for i, (parent, first, _) in video.lineage.items() if parent}  # (parent, frame)
    result = propagate(video.frames, truth[0], method=method, device="cpu")
    start = time.perf_counter()
    split = split_divisions(result.labels)
    seconds = time.perf_counter() - start
    before, after = seg_measure(truth, result.labels), seg_measure(truth, split.labels)
    # found divisions against the true ones, by the parent's first-frame id (propagation keeps those)
    found = {(d.parent, d.frame) for d in split.divisions}
    hits = sum(any(p == fp and abs(f - ff) <= 2 for p, f in true_divisions) for fp, ff in found)
    delays = [ff - min(f for p, f in true_divisions if p == fp) for fp, ff in found if any(p == fp for p, _ in true_divisions)]
    rows.append((before, after, len(true_divisions), len(found), hits, seconds))
    print(f"seed {seed}: SEG {before:.3f} -> {after:.3f}; divisions true {len(true_divisions)}, found {len(found)}, "
          f"right {hits}, frames after the true one {sorted(delays)}; split in {seconds:.2f} s")
mean = np.mean([r[:2] for r in rows], axis=0)
totals = np.sum([r[2:5] for r in rows], axis=0)
print(f"{method}, {len(rows)} videos, division rate {rate}: SEG {mean[0]:.3f} -> {mean[1]:.3f}; divisions true "
      f"{totals[0]}, found {totals[1]}, right {totals[2]}")
