"""`napari-vos ctc`: a labels stack as a Cell Tracking Challenge result folder (mask000.tif ..., res_track.txt).

`register(subparsers)` adds the command to the main CLI (cli.py). The labels are read as `measure`
and `divisions` read them (a labels TIFF or a folder of palette PNGs; a (T, Z, Y, X) labels TIFF without
--z a volume a frame, as `measure` reads it, for CTC's 3D masks); the lineage comes from a
`napari-vos divisions` TIFF's record or from its lineage CSV (--lineage); the writing and the
check of the written folder are `napari_vos.ctc_export`'s.
"""
from __future__ import annotations

import argparse
import csv
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from napari_vos.cli_terminal import progress_bar

__all__ = ["register", "cmd_ctc", "read_lineage_csv"]


def read_lineage_csv(path: str | Path) -> dict[int, int]:
    """Each daughter's parent in a lineage CSV as `napari-vos divisions` writes it (label, first_frame,
    last_frame, parent; 0 or empty: no parent). ValueError for a file without those columns or with
    a value that is no whole number, naming the line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--lineage {path} does not exist; give the NAME.lineage.csv napari-vos divisions wrote")
    parents: dict[int, int] = {}
    # -sig: a table saved again by a spreadsheet; replace: one saved in its local encoding (a note with an
    # accent, cp1252), whose label and parent columns are digits all the same (was a UnicodeDecodeError)
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.DictReader(f)
        names = [n.strip() for n in reader.fieldnames or []]
        if not {"label", "parent"} <= set(names):
            raise ValueError(f"--lineage {path} has the columns {', '.join(names) or 'none'}; a lineage has label and "
                             "parent columns (the NAME.lineage.csv napari-vos divisions writes)")
        for row in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            try:
                label, parent = int(row["label"]), int(row["parent"] or 0)
            except ValueError:
                raise ValueError(f"--lineage {path} line {reader.line_num}: label {row['label']!r} and parent "
                                 f"{row['parent']!r} must be whole numbers") from None
            if parent:
                parents[label] = parent
    return parents


def _check_output(out: Path, labels: str, force: bool) -> None:
    """The folder, before anything is read: not a file, empty unless --force, and not the labels' own folder
    where --force would replace the labels themselves (a labels TIFF named mask000.tif)."""
    from napari_vos.ctc_export import check_target, is_ctc_file

    check_target(out, force)
    source = Path(labels)
    if out.is_dir() and source.exists() and source.resolve().parent == out.resolve() and is_ctc_file(source.name):
        raise ValueError(f"the labels {labels} lie in {out} under a name the CTC result takes: writing there would "
                         "replace them; give another folder")


def cmd_ctc(args: argparse.Namespace) -> int:
    """`napari-vos ctc`: write the labels as a CTC result folder, then check it as CTC's software would."""
    import sys

    from napari_vos.cli_objects import labels_or_volumes, labels_record
    from napari_vos.ctc_export import check_ctc, mask_name, write_ctc
    from napari_vos.divisions import parents_from_record
    from napari_vos.stopped_runs import stopped_run_note

    out = Path(args.output)
    _check_output(out, args.labels, args.force)
    parents = read_lineage_csv(args.lineage) if args.lineage is not None else None
    with ExitStack() as opened:  # a TIFF's file closed however it ends
        labels = labels_or_volumes(args.labels, args.z, opened)  # (T, Z, Y, X) without --z: CTC's 3D masks
        planes = f" of {labels.shape[1]} Z planes" if len(labels.shape) == 4 else ""
        _, record = labels_record(args.labels)
        if parents is None:
            parents = parents_from_record(record)
        note = stopped_run_note(record, args.labels, "in the CTC result as well")
        if note:
            print(f"note: {note}", file=sys.stderr)
        with progress_bar("ctc", len(labels)) as progress:
            result = write_ctc(out, labels, parents, force=args.force, progress=progress)
    for daughter, parent, why in result.left_out[:5]:
        print(f"note: id {daughter}'s parent {parent} left out of the lineage: {why}", file=sys.stderr)
    if len(result.left_out) > 5:
        print(f"note: {len(result.left_out) - 5} more lineage links left out", file=sys.stderr)
    n, frames = len(result.table), result.frames
    lineage = ("no lineage" if parents is None else
               f"{result.divisions} division{'' if result.divisions == 1 else 's'} kept "
               f"({result.daughters} daughter track{'' if result.daughters == 1 else 's'})")
    print(f"wrote {out}: {n} track{'' if n == 1 else 's'} over {frames} frame{'' if frames == 1 else 's'}{planes} "
          f"({mask_name(0, frames)} ... {mask_name(frames - 1, frames)}, res_track.txt); {result.gaps} "
          f"gap{'' if result.gaps == 1 else 's'} split into new tracks, {lineage}")
    problems = check_ctc(out)
    if problems:
        print(f"napari-vos ctc: {out} does not pass CTC's checks (please report this):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add `ctc` to the CLI's subcommands."""
    p = subparsers.add_parser("ctc", help="write a labels stack as a Cell Tracking Challenge result folder "
                                          "(mask000.tif ... and res_track.txt), for CTC's SEG/TRA/DET measures")
    p.add_argument("labels", help="the (T, Y, X) labels: a labels TIFF or a folder of palette PNGs (a propagate or "
                                  "divisions output); a (T, Z, Y, X) labels TIFF gives CTC's 3D masks")
    p.add_argument("-o", "--output", required=True,
                   help="FOLDER: a new or empty folder (e.g. 01_RES) for mask000.tif ... (16-bit) and res_track.txt")
    p.add_argument("--lineage", default=None,
                   help="NAME.lineage.csv (napari-vos divisions): the divisions' parents (default: the labels TIFF's "
                        "record, where napari-vos divisions wrote it)")
    p.add_argument("--z", type=int, default=None, help="only this plane of a (T, Z, Y, X) TIFF stack, as 2-D masks")
    p.add_argument("--force", action="store_true",
                   help="write into a folder that holds files: its mask*.tif and res_track.txt are replaced, every "
                        "other file is kept")
    p.set_defaults(func=cmd_ctc)
