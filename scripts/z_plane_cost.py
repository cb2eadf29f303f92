"""What propagating one Z plane of a (T, Z, Y, X) image layer costs against the same frames as a
(T, Y, X) layer: seconds per run (flow, CPU) and the process's resident memory after each run.

The output of a plane run has the image's shape; its planes the run does not write are numpy
zeros, which the OS maps only when written, so a 120-plane output should cost about one plane.
Then the Track menu's work on each output (centroid tracks of the plane; for the plane output that
includes the look at its other planes, which `plane_outputs.run_plane` makes), timed alike.

    .venv/bin/python scripts/z_plane_cost.py [T] [Z] [SIDE]
"""
from __future__ import annotations

import sys
import time

import numpy as np

from napari_vos.evaluation.bench import resident_mib


def main() -> None:
    n_frames, planes, side = (int(a) for a in (sys.argv[1:] + ["30", "120", "512"][len(sys.argv) - 1:]))
    from napari.components import ViewerModel

    import napari_vos.methods.flow  # noqa: F401 - torch and the method loaded before the first reading
    from napari_vos.console import propagate_layers

    yy, xx = np.mgrid[:side, :side]
    frames = np.full((n_frames, side, side), 30, np.uint8)
    for t in range(n_frames):
        frames[t][(yy - side // 3) ** 2 + (xx - side // 5 - 4 * t) ** 2 < (side // 16) ** 2] = 220
    painted = np.zeros(frames.shape, np.uint8)
    painted[0] = frames[0] > 100
    z = planes // 2
    volume = np.zeros((n_frames, planes, side, side), np.uint8)  # planes other than z never written
    volume[:, z] = frames
    volume_labels = np.zeros(volume.shape, np.uint8)
    volume_labels[:, z] = painted
    viewer = ViewerModel()
    viewer.add_image(frames, name="time-lapse")
    viewer.add_labels(painted, name="painted")
    viewer.add_image(volume, name="volume")
    viewer.add_labels(volume_labels, name="painted volume")
    print(f"{n_frames} frames of {side}x{side}, {planes} planes (output {volume.nbytes / 2**20:.0f} MiB if "
          f"every plane were written); resident at start {resident_mib()} MiB")
    outputs = {}
    for image, labels, plane in [("time-lapse", "painted", None), ("volume", "painted volume", z)] * 2:
        start = time.perf_counter()
        out = outputs[image] = propagate_layers(viewer, image, labels, method="flow", device="cpu", plane=plane).labels
        took = time.perf_counter() - start
        frames_out = out.data[:, z] if plane is not None else out.data
        iou = np.logical_and(frames_out > 0, frames > 100).sum() / np.logical_or(frames_out > 0, frames > 100).sum()
        print(f"{image:10s} run {took:5.2f} s ({n_frames / took:5.1f} frames/s), IoU {iou:.3f}, "
              f"resident after {resident_mib()} MiB")
    from napari_vos._widgets.plane_outputs import run_plane
    from napari_vos._widgets.tracks_layer import tracks_layer_data

    volume_out = outputs["volume"]
    start = time.perf_counter()
    run_plane(volume_out.data, volume_out.metadata, volume_out.name, "timed")
    print(f"the plane output's other {planes - 1} planes looked at: {time.perf_counter() - start:.3f} s")
    for image in ("time-lapse", "volume") * 2:
        start = time.perf_counter()
        rows = len(tracks_layer_data(outputs[image])[0])
        print(f"{image:10s} output's centroid tracks: {time.perf_counter() - start:.3f} s ({rows} rows), "
              f"resident after {resident_mib()} MiB")


if __name__ == "__main__":
    main()
