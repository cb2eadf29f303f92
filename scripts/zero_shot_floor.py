"""Weight-free floor for zero-shot methods: a fixed centred ellipse scored like `napari-vos eval --method cosnet`.

Why: COSNet gets no annotation, so the optical-flow floor of the one-shot methods does not apply;
an ellipse in the middle of every frame (where photographers put the subject) is the score a
method must beat to show it finds the object at all. Scored on the DAVIS masks at half resolution
(every second pixel), foreground vs the union of the objects, as `evaluation/unsupervised.py` does.

    python scripts/zero_shot_floor.py ../shared/data/videos/davis2016-train \
        bear,bmx-bumps,car-turn,dance-jump,hike,paragliding,rhino,soccerball
"""
from __future__ import annotations

import sys

import numpy as np

from napari_vos.data.readers import open_dataset
from napari_vos.evaluation.unsupervised import score_foreground


def centred_ellipse(shape: tuple[int, int], area_fraction: float) -> np.ndarray:
    """A boolean ellipse centred in ``shape`` covering ``area_fraction`` of it, with the frame's aspect."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    r = np.sqrt(area_fraction / np.pi)
    return ((yy - h / 2) / (r * h)) ** 2 + ((xx - w / 2) / (r * w)) ** 2 <= 1


def main(root: str, sequences: str, fractions: tuple[float, ...] = (0.1, 0.2, 0.3)) -> None:
    truths = [np.stack([seq.masks[i] for i in seq.annotated])[:, ::2, ::2]
              for seq in open_dataset(root, sequences.split(","))]
    for a in fractions:
        scores = [score_foreground(np.broadcast_to(centred_ellipse(gt.shape[1:], a), gt.shape).astype(np.uint8), gt)
                  for gt in truths]
        j, f = np.mean([s["J_mean"] for s in scores]), np.mean([s["F_mean"] for s in scores])
        print(f"centred ellipse, {a:.0%} of the frame: J {100 * j:.1f}  F {100 * f:.1f}  J&F {50 * (j + f):.1f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
