"""What splitting divided cells in 3D costs: seconds and resident memory of `split_divisions` on (T, Z, Y, X)
labels, on the moving ellipsoids of `volume_tools_cost.py` (N ellipsoids that never divide, so every id
is checked for parts and necks on every frame and none is split) and on the same with one ellipsoid
dividing into two halves that move apart from the middle frame on (the split that is found is printed).

    .venv/bin/python scripts/volume_divisions_cost.py [T] [Z] [SIDE] [N]
"""
from __future__ import annotations

import sys
import time

import numpy as np

from napari_vos.evaluation.bench import resident_mib
from volume_tools_cost import moving_ellipsoids


def with_a_division(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """``labels`` with a new id (above the others) that is one ellipsoid, then from the middle frame on two
    balls moving apart along X; its id."""
    frames, planes, side, _ = labels.shape
    out = labels.copy()
    cell = int(labels.max()) + 1
    z, y, x = np.ogrid[:planes, :side, :side]
    centre = (planes / 2, side / 2, side / 2)
    for t in range(frames):
        gap = 0 if t < frames // 2 else 10 + 4 * (t - frames // 2)
        if gap == 0:
            mask = ((z - centre[0]) / 6) ** 2 + ((y - centre[1]) / 10) ** 2 + ((x - centre[2]) / 14) ** 2 <= 1
        else:
            mask = np.zeros(out.shape[1:], bool)
            for sign in (-1, 1):
                mask |= ((z - centre[0]) / 5) ** 2 + ((y - centre[1]) / 8) ** 2 + \
                    ((x - centre[2] - sign * gap / 2) / 8) ** 2 <= 1
        out[t][mask] = cell
    return out, cell


def main(frames: int = 30, planes: int = 40, side: int = 256, n: int = 50) -> None:
    import scipy.ndimage  # noqa: F401 - loaded before the first resident reading
    import skimage.segmentation  # noqa: F401

    from napari_vos.divisions import split_divisions

    labels = moving_ellipsoids(frames, planes, side, n)
    print(f"labels {labels.shape} uint16, {labels.nbytes / 2**20:.0f} MiB, {n} ellipsoids; resident "
          f"{resident_mib():.0f} MiB")
    for name, stack in (("none divides", labels), ("one divides", with_a_division(labels)[0])):
        start = time.perf_counter()
        result = split_divisions(stack)
        seconds = time.perf_counter() - start
        found = [(d.parent, d.frame, len(d.daughters)) for d in result.divisions]
        print(f"{name}: split_divisions {seconds:.2f} s ({seconds / frames:.3f} s a frame), divisions "
              f"(parent, frame, daughters) {found}; resident {resident_mib():.0f} MiB")


if __name__ == "__main__":
    main(*(int(v) for v in sys.argv[1:5]))
