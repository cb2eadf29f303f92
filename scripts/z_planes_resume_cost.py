"""What `napari-vos propagate --z painted --resume FILE` costs: wall seconds of the run that keeps the planes
FILE holds finished and runs the others, against the whole run and a run of only the planes left (the
difference is the cost of keeping: reading FILE and copying its planes), each command a child process, on
the video of `z_planes_cli_cost.py`. FILE is the output of the first K painted planes' runs; the resumed
run's labels are checked equal to the whole run's.

    .venv/bin/python scripts/z_planes_resume_cost.py [T] [Z] [SIDE] [PAINTED_PLANES] [KEPT] [METHOD]
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from z_planes_cli_cost import _peak_mib, _video


def _command(folder: Path, method: str, z: str, out: str, *more: str) -> float:
    """Run one propagate command; its wall seconds."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "napari_vos", "propagate", str(folder / "video.tif"),
                    str(folder / "labels.tif"), "-o", str(folder / out), "--method", method, "--device", "cpu",
                    "--z", z, *more], check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    given = sys.argv[1:] + ["30", "40", "256", "5", "2", "flow"][len(sys.argv) - 1:]
    n_frames, planes, side, painted, kept = (int(v) for v in given[:5])
    method = given[5]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        chosen = _video(folder, n_frames, planes, side, painted)
        first, rest = chosen[:kept], chosen[kept:]
        print(f"{n_frames} frames x {planes} planes of {side}x{side}, painted on planes {chosen}; method {method}, CPU")
        whole = _command(folder, method, "painted", "whole.tif")
        _command(folder, method, ",".join(map(str, first)) + ",", "earlier.tif")  # a list: (T, Z, Y, X) labels
        resumed = _command(folder, method, "painted", "resumed.tif", "--resume", str(folder / "earlier.tif"))
        left = _command(folder, method, ",".join(map(str, rest)) + ",", "left.tif")
        same = np.array_equal(tifffile.imread(folder / "resumed.tif"), tifffile.imread(folder / "whole.tif"))
        print(f"whole run ({len(chosen)} planes): {whole:.2f} s; --resume keeping {len(first)} planes: {resumed:.2f} s; "
              f"the {len(rest)} planes left alone: {left:.2f} s; resumed labels equal the whole run's: {same}; "
              f"peak resident {_peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()
