"""`napari-vos propagate` on a small TIFF video, run in a child process that a signal stops as it
reads one frame: what the tests of killed, hung-up and continued runs start from."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import tifffile

from _layers import sliding_square

SRC = str(Path(__file__).resolve().parents[1] / "src")


def write_video(tmp_path: Path, n_frames: int = 8):
    """A sliding square written as ``tmp_path/video.tif``; returns its true labels."""
    frames, truth = sliding_square(n_frames, (64, 64))
    tifffile.imwrite(tmp_path / "video.tif", frames, photometric="minisblack")
    return truth


def run_propagate(tmp_path: Path, *args) -> int:
    """`propagate` of ``tmp_path/video.tif`` with flow on the CPU, in this process; its exit code."""
    from napari_vos.cli import main

    return main(["propagate", str(tmp_path / "video.tif"), *map(str, args), "--method", "flow", "--device", "cpu"])


def propagate_signalled(tmp_path: Path, at_frame: int, signal_name: str = "SIGKILL", output: str = "out.tif",
                        extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`propagate` of ``labels.tif`` to ``output`` in ``tmp_path``, in a child process that sends
    itself ``signal_name`` as it reads frame ``at_frame``; the finished child (output captured)."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {SRC!r})
        import torch; torch.set_num_threads(1)
        from napari_vos.data.frames import FrameSource
        from napari_vos.cli import main
        if {signal_name!r} != "SIGKILL":  # as from a terminal: a runner under nohup passes SIGHUP on ignored
            signal.signal(signal.{signal_name}, signal.SIG_DFL)
        real = FrameSource.tensor
        def stop(self, index, *a, **k):
            if index == {at_frame}:
                os.kill(os.getpid(), signal.{signal_name})
            return real(self, index, *a, **k)
        FrameSource.tensor = stop
        sys.exit(main(["propagate", {str(tmp_path / "video.tif")!r}, {str(tmp_path / "labels.tif")!r},
                       "-o", {str(tmp_path / output)!r}, "--method", "flow", "--device", "cpu", *{list(extra)!r}]))
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
