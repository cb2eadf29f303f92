"""What `napari-vos propagate --z painted` costs against P commands of `--z N`, one painted plane each: wall
seconds and the peak resident memory of each command (a child process each), on a (T, Z, Y, X) ImageJ TIFF
of a disc moving on every plane (the video of `plane_runs_cost.py`), painted on frame 0 of P planes. The
labels the planes' runs write into one (T, Z, Y, X) file are checked equal to the one-plane runs'.

    .venv/bin/python scripts/z_planes_cli_cost.py [T] [Z] [SIDE] [PAINTED_PLANES] [METHOD]
"""
from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from plane_runs_cost import moving_discs


def _video(folder: Path, n_frames: int, planes: int, side: int, painted: int) -> list[int]:
    """Write video.tif (ImageJ, 2 µm Z step, 0.5 µm pixels, 5 s between frames) and labels.tif into
    ``folder``; the painted planes."""
    volume, labels, chosen = moving_discs(n_frames, planes, side, painted)
    meta = {"axes": "TZYX", "spacing": 2.0, "unit": "um", "finterval": 5.0}
    tifffile.imwrite(folder / "video.tif", volume, imagej=True, resolution=(2.0, 2.0), metadata=meta)
    tifffile.imwrite(folder / "labels.tif", labels, imagej=True, metadata={"axes": "TZYX"})
    return chosen


def _command(folder: Path, method: str, z: str, out: str) -> float:
    """Run one propagate command; its wall seconds."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "napari_vos", "propagate", str(folder / "video.tif"),
                    str(folder / "labels.tif"), "-o", str(folder / out), "--method", method, "--device", "cpu",
                    "--z", z], check=True, capture_output=True)
    return time.perf_counter() - began


def _peak_mib() -> float:
    """The largest resident memory of the children waited for so far (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    given = sys.argv[1:] + ["30", "40", "256", "5", "flow"][len(sys.argv) - 1:]
    n_frames, planes, side, painted = (int(v) for v in given[:4])
    method = given[4]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        chosen = _video(folder, n_frames, planes, side, painted)
        print(f"{n_frames} frames x {planes} planes of {side}x{side} (video {(folder / 'video.tif').stat().st_size / 2**20:.0f}"
              f" MiB), painted on planes {chosen}; method {method}, CPU")
        seconds = _command(folder, method, "painted", "together.tif")
        print(f"--z painted: {seconds:.2f} s, peak resident {_peak_mib():.0f} MiB, output "
              f"{(folder / 'together.tif').stat().st_size / 2**20:.2f} MiB")
        alone = sum(_command(folder, method, str(z), f"z{z}.tif") for z in chosen)
        together = tifffile.imread(folder / "together.tif")
        same = all(np.array_equal(together[:, z], tifffile.imread(folder / f"z{z}.tif")) for z in chosen)
        others = np.delete(together, chosen, axis=1).any()
        print(f"{len(chosen)} commands of --z N: {alone:.2f} s in all; same labels on every plane: {same}; "
              f"labels on planes not painted: {bool(others)}")


if __name__ == "__main__":
    main()
