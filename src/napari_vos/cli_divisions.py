"""`napari-vos divisions`: a labels stack with each divided object's daughters under new ids, and its lineage.

`register(subparsers)` adds the command to the main CLI (cli.py). The labels are read as `measure`
reads them (a labels TIFF or a folder of palette PNGs); the splitting is `napari_vos.divisions`'.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from napari_vos.cli_inputs import check_not_an_input, check_writable
from napari_vos.cli_terminal import progress_bar
from napari_vos.data.hidden_files import hidden_beside

__all__ = ["register", "cmd_divisions", "lineage_path"]


def lineage_path(labels: Path) -> Path:
    """Where the lineage table goes beside the labels: divided.tif -> divided.lineage.csv."""
    return labels.with_name(f"{labels.stem}.lineage.csv")


def cmd_divisions(args: argparse.Namespace) -> int:
    """`napari-vos divisions`: split divided objects, write the relabelled TIFF and the lineage CSV."""
    import os
    import sys
    from contextlib import ExitStack

    from napari_vos.cli_objects import labels_or_volumes, labels_record
    from napari_vos.data.writers import write_tiff_labels
    from napari_vos.divisions import parents_from_record, split_divisions
    from napari_vos.stopped_runs import stopped_run_note

    out = Path(args.output)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"-o {out}: the relabelled stack is a labels TIFF; name it {out.stem}.tif")
    lineage = lineage_path(out)
    for path in (out, lineage):
        check_not_an_input(path, {"labels": args.labels}, what="labels")
        if path.exists() and not args.force:
            raise ValueError(f"{path} exists; give another name or --force to replace it")
    # a TIFF's file closed however it ends; the result is held in memory, so it can close after the split;
    # (T, Z, Y, X) labels without --z are split in 3D, a volume a frame
    with ExitStack() as opened:
        labels = labels_or_volumes(args.labels, args.z, opened)
        calibration, record = labels_record(args.labels)
        for path in (out, lineage):
            check_writable(path, folder=False)
        note = stopped_run_note(record, args.labels, "so in the lineage every id ends where the run stopped")
        if note:
            print(f"note: {note}", file=sys.stderr)
        with progress_bar("divisions", len(labels)) as progress:
            result = split_divisions(labels, min_fraction=args.min_fraction, min_pixels=args.min_pixels,
                                     persist=args.persist, necks=args.necks, neck_ratio=args.neck_ratio,
                                     follow=args.follow, back=args.back, loose_ratio=args.loose_ratio,
                                     max_hidden=args.max_hidden, progress=progress)
    earlier = ((record or {}).get("divisions_split") or {}).get("divisions", [])  # labels split before
    result.inherit(parents_from_record(record) or {})
    settings = {"min_fraction": args.min_fraction, "min_pixels": args.min_pixels, "persist": args.persist,
                "necks": args.necks, "neck_ratio": args.neck_ratio, "follow": args.follow, "back": args.back,
                "loose_ratio": args.loose_ratio, "max_hidden": args.max_hidden,
                "source": str(Path(args.labels).resolve()),
                "divisions": [*earlier, *([d.parent, d.frame, list(d.daughters)] for d in result.divisions)]}
    provenance: dict[str, Any] = {**(record or {}), "divisions_split": settings}
    hidden = hidden_beside(out, "whole")
    try:  # the TIFF whole under a hidden name, the lineage beside it, then the TIFF renamed
        write_tiff_labels(hidden, result.labels, calibration=calibration, provenance=provenance)
        result.lineage_table().write_csv(lineage)
        os.replace(hidden, out)
    finally:
        hidden.unlink(missing_ok=True)
    n = len(result.divisions)
    planes = f" of {result.labels.shape[1]} Z planes (split in 3D)" if result.labels.ndim == 4 else ""
    print(f"wrote {out}: {n} division{'' if n == 1 else 's'} found, {len(result.lineage)} ids over {len(labels)} "
          f"frames{planes}, and its lineage {lineage}")
    return 0


def register(subparsers: Any) -> None:
    """Add `divisions` to the CLI's subcommands."""
    p = subparsers.add_parser("divisions", help="give the daughters of each divided cell their own ids (a heuristic "
                                                "on the labels: an id whose mask stays in two parts) and write "
                                                "the lineage")
    p.add_argument("labels", help="the (T, Y, X) labels: a labels TIFF or a folder of palette PNGs (a propagate "
                                  "output); (T, Z, Y, X) labels TIFFs are split in 3D, a volume a frame")
    p.add_argument("-o", "--output", required=True,
                   help="OUT.tif: the relabelled stack (calibration and record kept); its lineage goes beside it as "
                        "OUT.lineage.csv (label, first_frame, last_frame, parent)")
    p.add_argument("--min-fraction", type=float, default=0.2,
                   help="a daughter is at least this fraction of its id's pixels on the frame (default 0.2)")
    p.add_argument("--min-pixels", type=int, default=10,
                   help="and at least this many pixels, voxels in 3D (default 10)")
    p.add_argument("--persist", type=int, default=2,
                   help="frames running the id must stay in parts to count as divided (default 2)")
    p.add_argument("--necks", action=argparse.BooleanOptionalAction, default=True,
                   help="also cut a blob where it has a neck (two lobes of its distance transform), so daughters "
                        "that still touch count as parts (default; --no-necks: 8-connected parts only)")
    p.add_argument("--neck-ratio", type=float, default=0.8,
                   help="a neck is at most this fraction of the narrower lobe's inscribed radius, and each lobe's "
                        "at least this fraction of the widest (default 0.8)")
    p.add_argument("--follow", action=argparse.BooleanOptionalAction, default=True,
                   help="cut a part that two daughters share between them, from where each was on the frame before "
                        "(default; --no-follow: it goes whole to the one it overlaps most, the rule before 0.1.0's "
                        "session 43)")
    p.add_argument("--back", type=int, default=2,
                   help="date a division back up to this many frames, to where the daughters first show (a neck as "
                        "shallow as --loose-ratio, or the frame the mask changed shape most); 0: the first frame in "
                        "parts (default 2)")
    p.add_argument("--loose-ratio", type=float, default=0.9,
                   help="the shallower neck that --back looks for on the frames before (default 0.9)")
    p.add_argument("--max-hidden", type=float, default=0.7,
                   help="no division where other objects fill more than this share of the mask's notches (a cell "
                        "wrapped around or under a neighbour); 1: any (default 0.7)")
    p.add_argument("--z", type=int, default=None, help="split this one plane of a (T, Z, Y, X) TIFF stack in 2-D "
                                                       "(without it such a stack is split in 3D)")
    p.add_argument("--force", action="store_true", help="replace OUT.tif and its lineage if they exist")
    p.set_defaults(func=cmd_divisions)
