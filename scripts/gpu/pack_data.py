"""Pack training videos small enough to travel to a lent GPU machine with the working tree.

The device tool sends only the repository (64 MiB in all, the shipped checkpoints included), not
../shared beside it, so the DAVIS 2016 train set (117 MB of 854x480 JPEGs) cannot go as it is.
This writes a copy in the same DAVIS layout (JPEGImages/<seq>/NNNNN.jpg, Annotations/<seq>/NNNNN.png)
with the frames' longer side at most --long-side and JPEG quality --quality, leaving out the
project's hold-out sequences (training never uses them), into .gpu/data/<name>, which git
ignores and the device call carries (``carry=[".gpu"]``). The defaults (480x270, quality 70)
give 30.8 MiB for the 22 training sequences (measured 2026-11-21; 640 px at quality 80 is
61.6 MiB, too much; --long-side 384 gives 21.1 MiB). The tracked tree is 124 MiB, so the shipped
checkpoints a run does not need are parked first (scripts/gpu/park.py): FRTM's alone leaves 55.8 MiB. Training reads it
with ``--data .gpu/data/<name>``; SequenceBank holds frames at 1.25x the crop size, so crops of
432x240 are drawn from frames enlarged 1.125x.

    .venv/bin/python scripts/gpu/pack_data.py ../shared/data/videos/davis2016-train   # -> .gpu/data/davis2016-train
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

from napari_vos.training.clips import HOLDOUT_DAVIS, held_out  # the project's validation split, never trained on


def _shrink(img: Image.Image, long_side: int, resample: int) -> Image.Image:
    scale = long_side / max(img.size)
    if scale >= 1:
        return img
    return img.resize((round(img.width * scale), round(img.height * scale)), resample)


def pack_davis(source: Path, out: Path, long_side: int = 480, quality: int = 70,
               exclude: tuple[str, ...] = HOLDOUT_DAVIS) -> int:
    """Copy a DAVIS-layout folder shrunk and re-encoded; returns the bytes written."""
    images, annotations = source / "JPEGImages", source / "Annotations"
    for sub in ("480p", "Full-Resolution"):  # DAVIS releases nest the frames one level deeper
        if (images / sub).is_dir():
            images, annotations = images / sub, annotations / sub
    if not images.is_dir() or not annotations.is_dir():
        raise ValueError(f"{source} is not a DAVIS folder (JPEGImages/ and Annotations/ expected)")
    written = 0
    for seq in sorted(p for p in images.iterdir() if p.is_dir()):
        if held_out(seq.name, exclude):
            continue
        for kind, folder, pattern in (("JPEGImages", seq, "*.jpg"), ("Annotations", annotations / seq.name, "*.png")):
            target = out / kind / seq.name
            target.mkdir(parents=True, exist_ok=True)
            for f in sorted(folder.glob(pattern)):
                img = Image.open(f)
                if kind == "JPEGImages":
                    _shrink(img.convert("RGB"), long_side, Image.Resampling.BILINEAR).save(
                        target / f.name, quality=quality)
                else:  # labels: nearest neighbour, the palette (object ids) kept
                    _shrink(img, long_side, Image.Resampling.NEAREST).save(target / f.name, optimize=True)
                written += (target / f.name).stat().st_size
    if (source / "SOURCE.md").exists():  # the data's origin and terms travel with it
        shutil.copy(source / "SOURCE.md", out / "SOURCE.md")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="a DAVIS-layout folder, e.g. ../shared/data/videos/davis2016-train")
    p.add_argument("--out", type=Path, default=None, help="default .gpu/data/<source folder name>")
    p.add_argument("--long-side", type=int, default=480)
    p.add_argument("--quality", type=int, default=70)
    p.add_argument("--keep-holdout", action="store_true", help="also pack the hold-out sequences")
    args = p.parse_args(argv)
    out = args.out or Path(".gpu/data") / args.source.resolve().name
    if out.exists():
        shutil.rmtree(out)
    size = pack_davis(args.source, out, args.long_side, args.quality, () if args.keep_holdout else HOLDOUT_DAVIS)
    print(f"packed {args.source} into {out}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
