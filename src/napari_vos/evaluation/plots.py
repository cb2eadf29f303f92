"""Figures for the measurement commands (matplotlib's object API with the Agg canvas: no GUI).

- `plot_jf_over_time`: one small panel per sequence, J&F (mean over objects) against the frame
  index, with each object's J&F faint behind it: where a method loses an object shows at once.
- `plot_bench`: frames/s and peak memory against stack length, one line per size x objects.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.evaluation.metrics import SequenceResult

__all__ = ["plot_jf_over_time", "plot_bench"]


def _figure(w: float, h: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path, title: str) -> Path:
    """Title, lay out and write a figure as PNG, creating its folder; returns the path."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_jf_over_time(results: list[SequenceResult], path: str | Path, title: str = "") -> Path:
    """Write a PNG with J&F over time for each sequence."""
    n = len(results)
    cols = min(5, max(1, n))
    rows = math.ceil(n / cols)
    fig = _figure(3.2 * cols, 2.2 * rows + 0.4)
    for i, r in enumerate(results):
        ax = fig.add_subplot(rows, cols, i + 1)
        if len(r.objects) <= 20:
            for o in r.objects:
                ax.plot(o.frames, (o.J + o.F) / 2, color="0.75", lw=0.8)
        ax.plot(r.frames, r.jf_over_time(), color="C0", lw=1.5)
        jf = r.stats()["JF_mean"]
        ax.set_title(f"{r.name}  J&F {100 * jf:.1f}" if not np.isnan(jf) else r.name, fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("J&F", fontsize=8)
        if i >= n - cols:
            ax.set_xlabel("frame", fontsize=8)
    return _save(fig, path, title)


def plot_bench(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Write a PNG of fps and peak host (and GPU, when measured) memory against the stack length."""
    from matplotlib.ticker import NullLocator, ScalarFormatter

    has_gpu = any(r.get("peak_gpu_mb") is not None for r in rows)
    n_panels = 3 if has_gpu else 2
    fig = _figure(3.7 * n_panels, 3.6)
    axes = [fig.add_subplot(1, n_panels, k + 1) for k in range(n_panels)]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((str(r["size"]), int(r["objects"])), []).append(r)
    for (size, objects), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["frames"])
        x = [r["frames"] for r in rs]
        label = f"{size}, {objects} obj"
        axes[0].plot(x, [r["fps"] for r in rs], marker="o", label=label)
        axes[1].plot(x, [r["peak_rss_mb"] for r in rs], marker="o", label=label)
        if has_gpu:
            gpu = [r.get("peak_gpu_mb") for r in rs]
            axes[2].plot(x, [g if g is not None else np.nan for g in gpu], marker="o", label=label)
    ticks = sorted({int(r["frames"]) for r in rows})
    for ax, ylabel in zip(axes, ["frames / s", "peak host RSS (MB)", "peak GPU memory (MB)"]):
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("frames in the stack")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _save(fig, path, title)
