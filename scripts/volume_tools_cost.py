"""What Layers > Track and Layers > Measure cost on (T, Z, Y, X) labels (a 3D segmentation over time):
seconds for the 3D centroid tracks (`centroid_tracks`), the 3D measurements without and with a
(T, Z, Y, X) uint16 image (`measure_objects` -> `measure_volumes`) and the per-track summary, on an
in-memory stack and on the same stack as a dask array of one volume a chunk (read a volume at a time,
as a lazily opened TIFF is); the process's resident memory after each.

The labels: N ellipsoids of 5 to 9 voxels' radius (Y, X; half that in Z) at random places, each moving
up to 1.5 voxels a frame in Y and X, 0.75 in Z (uint16; about 1 s to make 30 frames of 40 x 256 x 256).
skimage and scipy are imported before the first reading of the resident memory, so that the readings
after each step show what the step holds, not the libraries.

    .venv/bin/python scripts/volume_tools_cost.py [T] [Z] [SIDE] [N]
"""
from __future__ import annotations

import sys
import time

import numpy as np

from napari_vos.evaluation.bench import resident_mib


def moving_ellipsoids(frames: int, planes: int, side: int, n: int, seed: int = 0) -> np.ndarray:
    """(T, Z, side, side) uint16 labels: ``n`` ellipsoids (ids 1..n) moving by a random step each frame,
    later ids drawn over earlier ones where they meet."""
    rng = np.random.default_rng(seed)
    radius = rng.uniform(5, 9, n)
    centre = np.column_stack([rng.uniform(4, planes - 4, n), rng.uniform(12, side - 12, (n, 2))])
    step = rng.uniform(-1.5, 1.5, (n, 3)) * [0.5, 1, 1]
    labels = np.full((frames, planes, side, side), 0, np.uint16)  # written: resident from the start
    for t in range(frames):
        at = np.clip(centre + t * step, [2, 10, 10], [planes - 3, side - 11, side - 11])
        for i in range(n):
            r = radius[i]
            lo = np.maximum(np.floor(at[i] - [r / 2, r, r]).astype(int), 0)
            hi = np.minimum(np.ceil(at[i] + [r / 2, r, r]).astype(int) + 1, labels.shape[1:])
            z, y, x = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            inside = ((z - at[i, 0]) / (r / 2)) ** 2 + ((y - at[i, 1]) / r) ** 2 + ((x - at[i, 2]) / r) ** 2 <= 1
            labels[t, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][inside] = i + 1
    return labels


def timed(what: str, work) -> object:
    """Run ``work()``, print its seconds and the resident memory after it, return its result."""
    start = time.perf_counter()
    result = work()
    print(f"  {what:44s} {time.perf_counter() - start:6.2f} s   resident after {resident_mib()} MiB")
    return result


def main() -> None:
    import dask.array as da
    import scipy.ndimage  # noqa: F401 - loaded before the first resident reading
    import skimage.measure  # noqa: F401

    from napari_vos._widgets.tracks_layer import centroid_tracks
    from napari_vos.data.calibration import Calibration
    from napari_vos.object_table import measure_objects, track_summary

    frames, planes, side, n = (int(a) for a in (sys.argv[1:] + ["30", "40", "256", "50"][len(sys.argv) - 1:]))
    start = time.perf_counter()
    labels = moving_ellipsoids(frames, planes, side, n)
    image = (labels * 97 % 4000).astype(np.uint16) + 100
    objects_seen = len(np.unique(labels[0])) - 1
    print(f"{frames} frames of {planes} x {side} x {side} voxels, {objects_seen} objects on frame 0 "
          f"(labels {labels.nbytes / 2**20:.0f} MiB, made in {time.perf_counter() - start:.1f} s); "
          f"resident {resident_mib()} MiB")
    calibration = Calibration((0.5, 0.5), "µm", 60.0, "s", 2.0, "µm")
    for name in ("numpy", "dask, a volume a chunk"):
        stack, video = labels, image
        if name != "numpy":  # dask's from_array hashes each array it is given
            stack, video = (da.from_array(a, chunks=(1, planes, side, side)) for a in (labels, image))
        print(f"{name}: resident {resident_mib()} MiB")
        data, _ = timed("centroid tracks (3D)", lambda: centroid_tracks(stack))
        objects = timed("measure_objects (3D, no image)", lambda: measure_objects(stack, calibration=calibration))
        timed("measure_objects (3D, uint16 image)",
              lambda: measure_objects(stack, video, calibration=calibration))
        tracks = timed("track_summary", lambda: track_summary(objects, frames=frames))
        print(f"  {len(data)} track rows, {len(objects)} object rows, {len(tracks)} tracks")


if __name__ == "__main__":
    main()
