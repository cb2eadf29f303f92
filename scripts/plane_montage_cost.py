"""What `napari-vos overlay --z all` costs against one plane: wall seconds and peak memory of each command
(a child process) on a 16-bit (T, Z, SIDE, SIDE) noise video with a moving square labelled on every plane,
written as .mp4 (needs PyAV) and .gif.

    .venv/bin/python scripts/plane_montage_cost.py [T] [Z] [SIDE]
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


def _stacks(folder: Path, n_frames: int, planes: int, side: int) -> None:
    rng = np.random.default_rng(0)
    video = (rng.random((n_frames, planes, side, side)) * 4000 + 500).astype(np.uint16)
    labels = np.zeros(video.shape, np.uint16)
    square = side // 3
    for t in range(n_frames):
        for z in range(planes):
            top, left = (side // 6 + t) % (side - square), (side // 5 + 2 * z) % (side - square)
            labels[t, z, top:top + square, left:left + square] = z + 1
    for name, stack in (("video.tif", video), ("labels.tif", labels)):
        tifffile.imwrite(folder / name, stack, imagej=True, metadata={"axes": "TZYX"})


def _overlay(folder: Path, z: str, out: str) -> tuple[float, str]:
    """One overlay command's wall seconds and its last line."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "napari_vos", "overlay", str(folder / "video.tif"),
                           str(folder / "labels.tif"), "--z", z, "-o", str(folder / out)],
                          check=True, capture_output=True, text=True)
    return time.perf_counter() - began, done.stdout.strip().splitlines()[-1]


def main() -> None:
    given = sys.argv[1:] + ["30", "16", "256"][len(sys.argv) - 1:]
    n_frames, planes, side = (int(v) for v in given[:3])
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        _stacks(folder, n_frames, planes, side)
        print(f"{n_frames} frames x {planes} planes of {side}x{side}, uint16")
        for z, label in (("0", "one plane"), ("all", "every plane")):
            for suffix in (".mp4", ".gif"):
                seconds, said = _overlay(folder, z, f"{label.replace(' ', '_')}{suffix}")
                peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
                size = (folder / f"{label.replace(' ', '_')}{suffix}").stat().st_size / 2**20
                print(f"{label:12s} {suffix}: {seconds:6.2f} s, {size:6.1f} MiB written, peak of the children so far "
                      f"{peak:.0f} MiB  ({said})")


if __name__ == "__main__":
    main()
