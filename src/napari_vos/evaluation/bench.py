"""`napari-vos bench`: speed and peak memory of a method for a given size, object count and length.

The video is synthetic and streamed: a small pool of rendered frames (`lazy_video`, at most
`POOL` frames) played back and forth ("ping-pong", so motion stays continuous), so a 5000-frame
stack costs the pool's memory, not 5000 frames. The output labels go to a compressed, chunked
on-disk zarr array through `Session(out=...)`, one chunk per frame, so host memory should not grow
with the stack length; `--sweep` checks exactly that. Where zarr is not installed (the lent GPU
machines' Python has torch but not zarr) a numpy memmap on disk takes its place; its written pages
count in the resident set until the system writes them out, so the record says which was used.

Measurement: one short warm-up run first (imports, allocations, kernel selection), then the
measured run. fps is the engine's own count (frames propagated / seconds spent propagating them,
including reading and normalising each frame). Peak host memory is the process's resident-set
high-water mark (`VmHWM` in /proc/self/status, reset through /proc/self/clear_refs before the
measured run; `resource.getrusage` where /proc is missing: then it includes the warm-up). Peak
GPU memory is `torch.cuda.max_memory_allocated` on CUDA. In a sweep every point runs in its own
process so the peaks do not mix.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.checks import painted_ids

__all__ = ["PingPongVideo", "bench_once", "write_profile", "bench_sweep", "peak_rss_mb", "reset_peak_rss", "resident_mib",
           "parse_size", "main"]

POOL = 16


class PingPongVideo:
    """(T, ...) frames played from a pool of n rendered frames: 0, 1, ..., n-1, n-2, ..., 1, 0, 1, ..."""

    def __init__(self, pool: np.ndarray, n_frames: int) -> None:
        self.pool = pool
        self.n_frames = int(n_frames)
        self.shape = (self.n_frames, *pool.shape[1:])
        self.dtype = pool.dtype
        self.ndim = pool.ndim

    def index(self, t: int) -> int:
        n = len(self.pool)
        if n == 1:
            return 0
        k = t % (2 * n - 2)
        return k if k < n else 2 * n - 2 - k

    def __len__(self) -> int:
        return self.n_frames

    def __getitem__(self, t: Any) -> np.ndarray:
        if isinstance(t, tuple):
            return self[t[0]][t[1:]]
        t = int(t)
        if t < 0:
            t += self.n_frames
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} out of range for {self.n_frames} frames")
        return self.pool[self.index(t)]


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 640x360), got {text!r}") from err
    if w < 8 or h < 8:
        raise ValueError(f"size {text!r} is too small")
    return w, h


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark of this process (Linux); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def resident_mib() -> int:
    """This process's resident set now (Linux /proc: VmRSS), in MiB; -1 where there is none to read."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return -1


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM, else getrusage, else psutil on Windows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows: psutil's peak working set
        import psutil

        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _video(kind: str, size: tuple[int, int], objects: int, frames: int, seed: int) -> tuple[PingPongVideo, np.ndarray]:
    from napari_vos.data.synthetic import lazy_video

    w, h = size
    if kind == "auto":
        kind = "natural" if objects <= 10 else "cells"
    pool_len = max(2, min(POOL, frames))
    lv = lazy_video(kind, pool_len, (h, w), n_objects=objects, seed=seed)
    pool = np.stack([lv[t] for t in range(pool_len)])
    first = lv.labels[0]
    return PingPongVideo(pool, frames), first


def bench_once(method: str = "flow", device: str = "auto", size: tuple[int, int] = (640, 360),
               objects: int = 1, frames: int = 100, kind: str = "auto", warmup: int = 5,
               max_side: int | None = None, checkpoint: str | None = None, seed: int = 0,
               workdir: str | Path | None = None, profile: str | Path | None = None,
               **method_options: Any) -> dict[str, Any]:
    """Measure one configuration in this process; returns the bench JSON record.

    ``profile``: after the measurement, one more run of up to 30 frames under torch.profiler, whose
    tables (the engine's and the method's named stages, then the operators) are written to this
    text file; the measured fps never includes the profiler's overhead.
    """
    if frames < 2:  # the annotated frame alone leaves nothing to time
        raise ValueError(f"--frames must be at least 2 (the annotated frame and one to segment), got {frames}")
    import torch

    from napari_vos.evaluation.scoring import code_version, now_with_zone
    from napari_vos.methods import registry
    from napari_vos.nn.memory_format import channels_last_on
    from napari_vos.session import Session

    video, first = _video(kind, size, objects, frames, seed)
    annotate = registry.accepts_annotation(method)  # zero-shot methods that take none (COSNet) get none
    n_objects = len(painted_ids(first))
    opts: dict[str, Any] = dict(method_options)
    if max_side is not None:
        opts["max_side"] = max_side
    if checkpoint is not None:
        opts["checkpoint"] = checkpoint

    def run(n: int, out: Any) -> Any:
        s = Session(PingPongVideo(video.pool, n), method=method, device=device, out=out, **opts)
        if annotate:
            s.annotate(0, first)
        for _ in s.propagate("forward"):
            pass
        return s.result()

    if warmup > 0:
        run(min(warmup + 1, frames), None)
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    # the GPU the run uses (cuda:1 too): torch.cuda's calls without one act on the current device
    gpu = torch.device(device if device.startswith("cuda") else "cuda") if cuda else None
    if cuda:
        torch.cuda.synchronize(gpu)
        torch.cuda.reset_peak_memory_stats(gpu)
    # ignore_cleanup_errors: Windows deletes no file still memory-mapped, and the result still maps the labels
    with tempfile.TemporaryDirectory(dir=workdir, ignore_cleanup_errors=True) as tmp:
        h, w = video.shape[1:3]
        out, out_kind = _labels_on_disk(Path(tmp), (frames, h, w))
        rss_before = peak_rss_mb()
        resettable = reset_peak_rss()
        tic = time.perf_counter()
        result = run(frames, out)
        wall = time.perf_counter() - tic
        if cuda:
            torch.cuda.synchronize(gpu)
        peak = peak_rss_mb()
    if profile is not None:
        write_profile(lambda: run(min(frames, 30), None), profile, cuda)
    return {
        "method": method, "device": result.device, "precision": result.options.get("precision"),
        "channels_last": channels_last_on(result.device), "size": f"{w}x{h}", "objects": n_objects,
        "frames": frames, "annotated": annotate, "fps": result.fps, "start_seconds": round(result.start_seconds, 6),
        "peak_rss_mb": round(peak, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated(gpu) / 2**20, 1) if cuda else None,
        "checkpoint": result.checkpoint, "kind": kind if kind != "auto" else ("natural" if objects <= 10 else "cells"),
        "work_size": result.options.get("work_size"), "wall_seconds": round(wall, 3),
        "rss_before_mb": round(rss_before, 1), "peak_rss_reset": resettable,
        "warmup_frames": warmup, "threads": torch.get_num_threads(), "labels_out": out_kind,
        "date": now_with_zone(), "code": code_version(),
    }


def _labels_on_disk(folder: Path, shape: tuple[int, int, int]) -> tuple[Any, str]:
    """The measured run's labels array on disk: zarr (one chunk a frame), or a numpy memmap without zarr."""
    try:
        import zarr
    except ImportError:
        return np.lib.format.open_memmap(folder / "labels.npy", mode="w+", dtype=np.uint16, shape=shape), "memmap"
    return zarr.open_array(str(folder / "labels.zarr"), mode="w", shape=shape, chunks=(1, *shape[1:]),
                           dtype="uint16"), "zarr"


def write_profile(work: Any, path: str | Path, cuda: bool) -> None:
    """Run ``work()`` under torch.profiler; write where the time goes to ``path``.

    Two tables: by total time (the ``vos.*`` engine stages and the methods' own stages, e.g.
    ``frtm.backbone``, are ranges, so their totals show the split of a frame), then by self time
    (the operators that cost).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        work()
        if cuda:
            torch.cuda.synchronize()
    events = prof.key_averages()
    sections = []
    for title, keys in (("by total time", ("device_time_total", "cuda_time_total", "cpu_time_total")),
                        ("by self time", ("self_device_time_total", "self_cuda_time_total", "self_cpu_time_total"))):
        for key in keys if cuda else keys[-1:]:
            try:
                sections.append(f"== {title} ({key})\n" + events.table(sort_by=key, row_limit=30))
                break
            except (AttributeError, KeyError, ValueError):
                continue
    Path(path).write_text("\n\n".join(sections) + "\n", encoding="utf-8")


def check_timeout(timeout: float | None) -> None:
    """Refuse a sweep point's time limit that is no number of seconds above 0, before any point runs:
    inf crashed in subprocess, nan failed once a point had started, 0 or less timed every point out."""
    if timeout is not None and not 0 < timeout < math.inf:
        raise ValueError(f"--timeout is the seconds each sweep point may take, a number above 0 (leave it out "
                         f"for no limit); got {timeout}")


def bench_sweep(method: str, device: str, sizes: list[tuple[int, int]], objects: list[int],
                frames: list[int], json_path: str | Path | None = None, plot_path: str | Path | None = None,
                timeout: float | None = None, extra: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every size x objects x frames point in a fresh process; write the JSON list as it grows."""
    check_timeout(timeout)
    rows: list[dict[str, Any]] = []
    for w, h in sizes:
        for k in objects:
            for t in frames:
                with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
                    tmp_json = f.name
                cmd = [sys.executable, "-m", "napari_vos.evaluation.bench", "--method", method, "--device", device,
                       "--size", f"{w}x{h}", "--objects", str(k), "--frames", str(t), "--json", tmp_json,
                       *(extra or [])]
                print(f"bench: {w}x{h}, {k} objects, {t} frames ...", file=sys.stderr, flush=True)
                point = {"method": method, "device": device, "size": f"{w}x{h}", "objects": k, "frames": t}
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
                except subprocess.TimeoutExpired:  # recorded like a failed point, and the file still written
                    rows.append({**point, "error": f"timed out after {timeout} s"})
                else:
                    if proc.returncode != 0:
                        last = proc.stderr.strip().splitlines()[-1:]
                        rows.append({**point, "error": last[0] if last else "failed"})
                    else:
                        rows.append(json.loads(Path(tmp_json).read_text()))
                finally:
                    os.unlink(tmp_json)
                if json_path:
                    Path(json_path).write_text(json.dumps(rows, indent=2) + "\n")
    if plot_path:
        from napari_vos.evaluation.plots import plot_bench

        ok = [r for r in rows if "error" not in r]
        if ok:
            plot_bench(ok, plot_path, title=f"{method} on {ok[0]['device']}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python -m napari_vos.evaluation.bench`: one point (used by the sweep's child processes)."""
    import argparse

    from napari_vos.evaluation.cli_measure import add_bench_arguments, run_bench

    parser = argparse.ArgumentParser(prog="napari-vos bench")
    add_bench_arguments(parser)
    return run_bench(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
