"""bench: streamed ping-pong video, one measured point in-process, a tiny sweep in child processes."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from napari_vos.cli import main  # noqa: E402
from napari_vos.evaluation.bench import PingPongVideo, bench_once, parse_size, peak_rss_mb  # noqa: E402


def test_ping_pong_order_and_bounds():
    pool = np.arange(4)[:, None, None] * np.ones((4, 2, 2), np.uint8)
    v = PingPongVideo(pool, 11)
    assert [int(v[t][0, 0]) for t in range(11)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert v.shape == (11, 2, 2) and len(v) == 11 and int(v[-1][0, 0]) == 2
    with pytest.raises(IndexError):
        v[11]


def test_parse_size():
    assert parse_size("640x360") == (640, 360)
    with pytest.raises(ValueError):
        parse_size("640")


def test_bench_once_record(tmp_path):
    r = bench_once("flow", "cpu", (64, 48), objects=2, frames=6, warmup=1, workdir=tmp_path)
    for key in ("method", "device", "precision", "size", "objects", "frames", "fps", "peak_rss_mb", "peak_gpu_mb"):
        assert key in r
    assert r["size"] == "64x48" and r["frames"] == 6 and r["objects"] == 2 and r["device"] == "cpu"
    assert r["fps"] > 0 and r["peak_rss_mb"] > 0 and r["peak_gpu_mb"] is None
    assert peak_rss_mb() >= r["peak_rss_mb"] * 0.5
    assert r["labels_out"] == "zarr" and r["channels_last"] is True
    assert 0 < r["start_seconds"] < r["wall_seconds"]


def test_bench_needs_a_frame_to_time(tmp_path):
    for frames in (0, 1):
        with pytest.raises(ValueError, match="--frames must be at least 2"):
            bench_once("flow", "cpu", (64, 48), frames=frames, workdir=tmp_path)


def test_bench_runs_without_zarr_on_a_memmap(tmp_path, monkeypatch):
    """The lent GPU machines' Python has no zarr: the labels go to a numpy memmap instead."""
    monkeypatch.setitem(sys.modules, "zarr", None)  # `import zarr` now raises ImportError
    r = bench_once("flow", "cpu", (64, 48), objects=1, frames=5, warmup=1, workdir=tmp_path)
    assert r["labels_out"] == "memmap" and r["frames"] == 5 and r["fps"] > 0


def test_bench_sweep_cli_writes_json_list_and_plot(tmp_path, capsys):
    js, png = tmp_path / "sweep.json", tmp_path / "sweep.png"
    assert main(["bench", "--method", "flow", "--device", "cpu", "--sweep", "--sweep-sizes", "48x32",
                 "--sweep-objects", "1", "--sweep-frames", "4,8", "--warmup", "1",
                 "--json", str(js), "--plot", str(png)]) == 0
    rows = json.loads(js.read_text())
    assert [r["frames"] for r in rows] == [4, 8]
    assert all(r["fps"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert png.stat().st_size > 1000
    assert "48x32" in capsys.readouterr().out


@pytest.mark.parametrize("flags, says", [
    (["--sweep", "--plot", "{tmp}/sweep.txt"], "--plot {tmp}/sweep.txt: the sweep's plot is a PNG"),
    (["--sweep", "--plot", "{tmp}/sweep"], "--plot {tmp}/sweep: the sweep's plot is a PNG"),
    (["--profile", "{tmp}"], "cannot write the profile to {tmp}: it is a folder"),
])
def test_a_plot_or_profile_that_cannot_be_written_is_refused_before_the_benchmark(tmp_path, capsys, monkeypatch,
                                                                                 flags, says):
    """They failed (or became NAME.png unsaid) only once the sweep or the profiled run had ended."""
    import napari_vos.evaluation.bench as bench

    monkeypatch.setattr(bench, "bench_once", lambda *a, **k: pytest.fail("the benchmark ran"))
    monkeypatch.setattr(bench, "bench_sweep", lambda *a, **k: pytest.fail("the sweep ran"))
    assert main(["bench", "--method", "flow", "--device", "cpu", *(f.format(tmp=tmp_path) for f in flags)]) == 2
    assert says.format(tmp=tmp_path) in capsys.readouterr().err


def test_bench_profile_names_the_engine_stages(tmp_path):
    report = tmp_path / "profile.txt"
    r = bench_once("flow", "cpu", (64, 48), objects=2, frames=4, warmup=0, workdir=tmp_path, profile=report)
    assert r["frames"] == 4 and r["fps"] > 0
    text = report.read_text()
    for stage in ("vos.read_frame", "vos.method_step", "vos.aggregate", "vos.labels_out"):
        assert stage in text, stage
    assert "by self time" in text


def test_peak_memory_is_read_without_proc_and_without_the_resource_module(monkeypatch):
    # Windows has neither /proc nor `resource`: psutil's peak working set (its current RSS elsewhere)
    import builtins
    import sys

    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/self/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    monkeypatch.setitem(sys.modules, "resource", None)  # `import resource` raises ImportError
    peak = peak_rss_mb()
    import psutil

    assert 0.5 * psutil.Process().memory_info().rss / 2**20 < peak < 1e6


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmRSS is read from Linux's /proc")
def test_the_resident_set_grows_by_what_is_written_into_memory():
    """resident_mib (the benchmark scripts' memory column) counts pages as they are written, not as allocated."""
    from napari_vos.evaluation.bench import resident_mib

    before = resident_mib()
    block = np.empty(64 * 2**20, np.uint8)  # allocated, not yet touched
    untouched = resident_mib()
    block.fill(1)
    assert before > 0 and untouched - before < 32 and resident_mib() - untouched >= 48
