"""How far labels move with what should not matter: the CPU kernel set, the networks' memory layout,
the precision, the video's integer type. The numbers of docs/benchmarks.md "Reproducibility".

    python scripts/reproducibility.py run OUT_DIR [--frames 10]     # labels of each method/precision
    NAPARI_VOS_CHANNELS_LAST=0 python scripts/reproducibility.py run OUT_NCHW
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python scripts/reproducibility.py run OUT_AVX2
    python scripts/reproducibility.py compare OUT_DIR OUT_NCHW      # pixels changed and per-frame J
    python scripts/reproducibility.py dtypes [--frames 10]          # uint8 against the same video x 257 (uint16)

On the built-in natural sample's first frames at a 384-pixel working size, annotation on frame 0.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

METHODS = ("frtm", "agame", "rgmp", "osvos_at")
PRECISIONS = ("fp32", "bf16")
OPTIONS = {"max_side": 384, "min_side": None}


def _sample(frames: int) -> tuple[np.ndarray, np.ndarray]:
    from napari_vos.data.samples import natural_sample

    sample = natural_sample()
    return np.asarray(sample.frames)[:frames], np.asarray(sample.labels)[:frames]


def _frame_jaccard(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Per frame, the mean over objects of the IoU between two label stacks."""
    out = []
    for x, y in zip(a, b):
        ids = [i for i in np.union1d(np.unique(x), np.unique(y)) if i]
        out.append(float(np.mean([((x == i) & (y == i)).sum() / max(((x == i) | (y == i)).sum(), 1) for i in ids]))
                   if ids else 1.0)
    return out


def run(out: Path, frames: int) -> None:
    from napari_vos import propagate

    video, truth = _sample(frames)
    out.mkdir(parents=True, exist_ok=True)
    for method in METHODS:
        for precision in PRECISIONS:
            labels = propagate(video, truth[0], method=method, device="cpu", precision=precision, **OPTIONS).labels
            np.save(out / f"{method}_{precision}.npy", np.asarray(labels))
            print(f"{method} {precision} saved", flush=True)


def compare(a: Path, b: Path) -> None:
    for method in METHODS:
        for precision in PRECISIONS:
            x, y = np.load(a / f"{method}_{precision}.npy"), np.load(b / f"{method}_{precision}.npy")
            j = _frame_jaccard(x, y)
            print(f"{method:9s} {precision}: {int((x != y).sum())} of {x.size} pixels differ, "
                  f"J mean {np.mean(j):.4f}, lowest frame {min(j):.4f}")


def dtypes(frames: int) -> None:
    from napari_vos import propagate
    from napari_vos.evaluation.metrics import score_stack

    video, truth = _sample(frames)
    for method in (*METHODS, "cosnet"):
        first = None if method == "cosnet" else truth[0]
        runs = {name: np.asarray(propagate(v, first, method=method, device="cpu", precision="fp32", **OPTIONS).labels)
                for name, v in (("uint8", video), ("uint16", video.astype(np.uint16) * 257))}
        j = _frame_jaccard(runs["uint8"], runs["uint16"])
        truth_jf = {k: score_stack(v, truth)["JF_mean"] for k, v in runs.items()} if first is not None else {}
        scores = ", ".join(f"{k} J&F {v:.3f}" for k, v in truth_jf.items())
        print(f"{method:9s} uint8 vs uint16 x257: J mean {np.mean(j):.4f}, lowest frame {min(j):.4f}"
              + (f"; against the truth: {scores}" if scores else ""), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--frames", type=int, default=10)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    d = sub.add_parser("dtypes")
    d.add_argument("--frames", type=int, default=10)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        run(args.out, args.frames)
    elif args.cmd == "compare":
        compare(args.a, args.b)
    else:
        dtypes(args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
