"""Blend two checkpoints of one network: (1 - alpha) x A + alpha x B, tensor by tensor.

A fine-tuned checkpoint B that gained on one evaluation and lost on another can keep most of both
when averaged with its start A (weight-space ensembling, as in Wortsman et al., "Robust fine-tuning
of zero-shot models", 2022): both must be the same architecture, and batch-norm statistics must be
the same or comparable (RGMP's video stage keeps them fixed). The metadata is B's, with the blend
recorded; integer tensors (batch-norm counters) are taken from B.

    python scripts/interpolate_weights.py A.safetensors B.safetensors 0.5 OUT.safetensors
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="the start checkpoint (a registered name or a file)")
    p.add_argument("b", help="the fine-tuned checkpoint (a file)")
    p.add_argument("alpha", type=float, help="B's share, 0..1")
    p.add_argument("out")
    args = p.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        p.error("alpha is B's share, in [0, 1]")
    from safetensors import safe_open
    from safetensors.torch import load_file

    from napari_vos import weights

    path_a, _ = weights.resolve(args.a)
    a, b = load_file(str(path_a)), load_file(args.b)
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        p.error("the two checkpoints do not hold the same tensors")
    with safe_open(args.b, framework="pt") as f:
        meta = dict(f.metadata() or {})
    blended = {}
    for k, tb in b.items():
        ta = a[k]
        if tb.is_floating_point():
            blended[k] = ((1 - args.alpha) * ta.float() + args.alpha * tb.float()).to(tb.dtype)
        else:
            blended[k] = tb
    meta["blend"] = (f"{1 - args.alpha:g} x {args.a} (sha256 {weights.sha256_of(path_a)[:12]}) + {args.alpha:g} x "
                     f"{Path(args.b).name} (sha256 {weights.sha256_of(args.b)[:12]})")
    digest = weights.save_checkpoint(args.out, blended, meta)
    print(f"wrote {args.out} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
