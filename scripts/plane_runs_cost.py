"""What running every painted Z plane in one go costs against running the same planes one at a time: seconds
(flow, CPU) of `propagate_layers(plane="painted")` on a (T, Z, Y, X) image painted on P planes, against P
calls with ``plane=z``, each into an output of its own; and the process's resident memory after each.

The runs in one go check every plane's layers before the first runs (the annotations read, the ids
scanned for the output's type), then run them one after another into one output, whose planes no run
writes cost no memory.

    .venv/bin/python scripts/plane_runs_cost.py [T] [Z] [SIDE] [PAINTED_PLANES]
"""
from __future__ import annotations

import sys
import time

import numpy as np

from napari_vos.evaluation.bench import resident_mib


def moving_discs(n_frames: int, planes: int, side: int, painted_planes: int
                 ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A (T, Z, side, side) uint8 video of a disc moving along X on every plane (its own offset per plane),
    labels painting it on frame 0 of ``painted_planes`` planes spread over Z (id 1 + z), and those planes."""
    yy, xx = np.mgrid[:side, :side]
    volume = np.full((n_frames, planes, side, side), 30, np.uint8)
    labels = np.zeros(volume.shape, np.uint8)
    chosen = np.linspace(0, planes - 1, painted_planes).round().astype(int).tolist()
    for z in range(planes):
        for t in range(n_frames):
            disc = (yy - side // 3) ** 2 + (xx - side // 5 - 2 * t - z % 7) ** 2 < (side // 12) ** 2
            volume[t, z][disc] = 220
            if t == 0 and z in chosen:
                labels[0, z][disc] = 1 + z
    return volume, labels, chosen


def main() -> None:
    n_frames, planes, side, painted_planes = (int(a) for a in (sys.argv[1:] + ["30", "40", "256", "5"][len(sys.argv) - 1:]))
    from napari.components import ViewerModel

    import napari_vos.methods.flow  # noqa: F401 - torch and the method loaded before the first reading
    from napari_vos.console import propagate_layers

    volume, labels, chosen = moving_discs(n_frames, planes, side, painted_planes)
    viewer = ViewerModel()
    viewer.add_image(volume, name="volume")
    viewer.add_labels(labels, name="painted")
    print(f"{n_frames} frames x {planes} planes of {side}x{side}, painted on planes {chosen}; "
          f"resident {resident_mib():.0f} MiB before the runs")
    began = time.perf_counter()
    together = propagate_layers(viewer, "volume", "painted", method="flow", plane="painted").labels
    seconds = time.perf_counter() - began
    assert together.metadata["napari_vos"]["z_planes_run"] == chosen
    print(f"every painted plane in one go: {seconds:.2f} s, resident {resident_mib():.0f} MiB")
    began = time.perf_counter()
    alone = [propagate_layers(viewer, "volume", "painted", method="flow", plane=z).labels for z in chosen]
    seconds = time.perf_counter() - began
    same = all(np.array_equal(together.data[:, z], run.data[:, z]) for z, run in zip(chosen, alone))
    print(f"{len(chosen)} runs of one plane each: {seconds:.2f} s, resident {resident_mib():.0f} MiB; "
          f"same labels on every plane: {same}")


if __name__ == "__main__":
    main()
