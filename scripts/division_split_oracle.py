"""How well `split_divisions` finds divisions where the propagation is perfect: the ground truth of
synthetic dividing cells with every daughter put back under its root cell's id (what a method that
follows each painted cell without error gives), split again and compared with the true lineage.
A found division matches a true one when they are at most 4 frames apart and, on the later of the
two frames, its daughters overlap the two true daughters one each (IoU above 0.5), each true
division matched once. "Visible" counts the true divisions the labels alone can show: two daughters,
each of 10 pixels or more (split_divisions' min_pixels) on 2 frames (its persist) within those 4
frames; the others lose a daughter through the frame's edge at once, or divide on the last frames.
Usage: .venv/bin/python scripts/division_split_oracle.py [FRAMES] [SEEDS...]"""
import sys
import time

import numpy as np

from napari_vos.data.synthetic_cells import cell_video, under_root_ids
from napari_vos.divisions import split_divisions


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


frames = int(sys.argv[1]) if len(sys.argv) > 1 else 120
WITHIN = 4  # frames between a found division and the true one
seeds = [int(s) for s in sys.argv[2:]] or [5, 6]
totals = np.zeros(4, int)
for seed in seeds:
    video = cell_video(frames, (256, 256), n_cells=20, seed=seed, division_rate=0.01)
    truth = np.asarray(video.labels)
    merged = under_root_ids(truth, video.lineage)
    true = {}  # parent -> (frame, daughters)
    for i, (parent, first, _) in video.lineage.items():
        if parent:
            frame, daughters = true.get(parent, (first, []))
            true[parent] = (min(frame, first), daughters + [i])
    visible = sum(len(daughters) == 2 and sum(all(np.count_nonzero(truth[t] == d) >= 10 for d in daughters)
                                              for t in range(frame, min(frame + WITHIN + 1, frames))) >= 2
                  for frame, daughters in true.values())
    start = time.perf_counter()
    result = split_divisions(merged)
    seconds = time.perf_counter() - start
    matched = set()
    for found in result.divisions:
        for parent, (frame, daughters) in true.items():
            t = max(found.frame, frame)
            if parent in matched or abs(found.frame - frame) > WITHIN or len(daughters) != 2 or t >= frames:
                continue
            pairs = [[iou(result.labels[t] == d, truth[t] == g) for g in daughters] for d in found.daughters]
            if len(found.daughters) >= 2 and any(pairs[a][0] > 0.5 and pairs[b][1] > 0.5
                                                 for a in range(len(pairs)) for b in range(len(pairs)) if a != b):
                matched.add(parent)
                break
    totals += (len(true), visible, len(result.divisions), len(matched))
    print(f"seed {seed}: true divisions {len(true)} ({visible} visible), reported {len(result.divisions)}, "
          f"matching {len(matched)}; split in {seconds:.2f} s")
print(f"{len(seeds)} videos of {frames} frames: true {totals[0]} ({totals[1]} visible), reported {totals[2]}, "
      f"matching {totals[3]}")
