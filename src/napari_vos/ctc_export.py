"""A propagated labels stack as a Cell Tracking Challenge (CTC) result folder: ``mask000.tif``, ...
and ``res_track.txt``, which the CTC evaluation software (SEG, TRA, DET) and the tools that read
the CTC format take.

Why a module: a propagation keeps each object's id on every frame, but the CTC format asks more of
a track than an id. What this module relies on, and where it was found:

- ``res_track.txt`` has one line per track, ``L B E P``: the track's label, the first and last
  frame it is on (zero-based) and its parent track's label, 0 for none; labels are 16-bit positive
  values (TrackMate's CTC exporter page, imagej.net/plugins/trackmate/actions/trackmate-ctc-exporter,
  which restates CTC's "Naming and file content conventions").
- A track is on every frame from B to E and on no other; a parent ends before its daughters begin;
  labels are unique; every label in a mask is listed (the format checks of CTC's own Python
  metrics, github.com/CellTrackingChallenge/py-ctcmetrics, ctc_metrics/metrics/validation/valid.py:
  ``valid_parent_links``, ``inspect_masks``, ``unique_labels``).
- An object that vanishes for some frames and comes back is a new track whose parent is its track
  before the gap: CTC's annotation procedure, "If it is clear that the same object reappears in the
  field of interest, link its track to its predecessor using a parent link" (CTC's "Annotation
  procedure", page 2, as quoted in py-ctcmetrics issue #22); Trackastra's CTC writer does the same
  (weigertlab/trackastra, trackastra/tracking/utils.py, ``ctc_tracklets``: a gap-closing link
  starts a tracklet whose parent is the tracklet before it).
- Masks are named ``mask`` + the frame number on 3 digits, 4 for some data sets
  (py-ctcmetrics' ctc_metrics/utils/num_digits.py: 4 for BF-C2DL-HSC and BF-C2DL-MuSC, 3 for the
  others); here 4 from 1001 frames on (5 from 10001), the width the last frame's number needs.
- py-ctcmetrics reads a result folder as every file whose name ends in ``.tif``, sorted by name, one
  frame each (ctc_metrics/utils/filesystem.py, ``parse_masks``), and res_track.txt with every line
  split at the first line's separator, a space or else a tab (``read_tracking_file``): another .tif
  in the folder is read as one frame more (the result is invalid, or its masks and the ground
  truth's do not pair up), and a blank line or a line separated otherwise stops the evaluation
  with an error. Found by scoring this module's folders with py-ctcmetrics 1.3.3
  (scripts/ctc_metrics_check.py); so a forced write into a folder holding another .tif is refused,
  and `check_ctc` reports these.

So an id here becomes one track per run of consecutive frames it is on, numbered 1..N by first
frame and then by id; a division lineage (daughter id -> parent id, as `napari-vos divisions`
records it) links each daughter's first track to the parent's track that ended last before the
daughter began. The stack is read a frame at a time, once: what is held is one frame and the
table of tracks. A (T, Z, Y, X) stack (a 3D segmentation over time) gives CTC's 3D result: each mask a
(Z, Y, X) multi-page TIFF, the tracks the same. No torch, napari or Qt.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CtcExport", "ctc_tracks", "write_ctc", "check_ctc", "check_target", "mask_name", "is_ctc_file",
           "MAX_TRACKS"]

#: CTC masks are 16-bit: labels 1..65535
MAX_TRACKS = 65535

_MASK = re.compile(r"mask(\d+)\.tif")
_TABLE = "res_track.txt"
_READS_EVERY_TIF = ("CTC's evaluation (py-ctcmetrics) reads every .tif in a result folder as a frame's mask, in "
                    "name order")


def mask_name(t: int, frames: int) -> str:
    """The CTC name of frame ``t``'s mask: mask000.tif, or mask0000.tif in a stack of more than 1000 frames."""
    return f"mask{t:0{max(3, len(str(frames - 1)))}d}.tif"


def is_ctc_file(name: str) -> bool:
    """Whether a file name is one a CTC result folder is made of (mask<digits>.tif, res_track.txt): the
    only files ``force`` replaces or removes."""
    return name == _TABLE or _MASK.fullmatch(name) is not None


def _other_tifs(names: list[str]) -> list[str]:
    """The names ending in .tif that are no mask<digits>.tif: py-ctcmetrics would read each as a frame's mask."""
    return [name for name in names if name.endswith(".tif") and _MASK.fullmatch(name) is None]


@dataclass
class CtcExport:
    """What `write_ctc` wrote: the folder, the tracks (rows L B E P), and how the ids became tracks.

    gaps: tracks that start after their id was missing for some frames (their parent: the id's
    track before the gap). divisions: parent tracks a lineage daughter was linked to; daughters: the
    tracks linked. left_out: lineage links not kept, (daughter id, parent id, why).
    """

    folder: Path
    table: np.ndarray
    frames: int
    gaps: int = 0
    divisions: int = 0
    daughters: int = 0
    left_out: list[tuple[int, int, str]] = field(default_factory=list)


def _stack_shape(labels: Any) -> tuple[int, ...]:
    shape = getattr(labels, "shape", None)
    return tuple(int(n) for n in (shape if shape is not None else np.shape(labels)))


def _check_stack(labels: Any) -> tuple[int, tuple[int, ...]]:
    """(frames, (Y, X) or (Z, Y, X)) of a (T, Y, X) or (T, Z, Y, X) labels stack, or a ValueError saying what
    is wrong."""
    shape = _stack_shape(labels)
    if len(shape) not in (3, 4):
        raise ValueError(f"labels of shape {shape}: a CTC result is a (T, Y, X) labels stack, or a (T, Z, Y, X) one "
                         "for a 3D data set")
    if 0 in shape:
        raise ValueError(f"labels of shape {shape} hold no frames{' (or frames of no pixels)' if shape[0] else ''}: "
                         "give the labels a propagation wrote")
    return shape[0], shape[1:]


def _frame(labels: Any, t: int, size: tuple[int, ...]) -> np.ndarray:
    frame = np.asarray(labels[t])
    if frame.shape != size:
        raise ValueError(f"frame {t} of the labels is {frame.shape}, frame 0 {size}: every frame must have one size")
    if frame.dtype == np.bool_:
        return frame.view(np.uint8)
    if frame.dtype.kind not in "iu":
        raise ValueError(f"labels of type {frame.dtype}: object ids are integers (a labels layer or a napari-vos "
                         "output), not an image")
    return frame


def _ids(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frame with ids a lookup table can index (`napari_vos.object_table.compact_ids`: itself where
    its ids are small and not negative, else 1, 2... in id order), the compact ids on it (0, the
    background, left out; sorted), and the object ids they stand for (sorted alike)."""
    from napari_vos.object_table import compact_ids

    compact, originals = compact_ids(frame)
    present = np.flatnonzero(np.bincount(compact.ravel().astype(np.intp, copy=False))[1:]) + 1
    return compact, present, (originals[present - 1] if originals is not None else present)


def _parent_ids(parents: dict[Any, Any] | None) -> dict[int, int]:
    """daughter id -> parent id from a lineage given as such, or as `DivisionResult.lineage` and a divided
    layer's metadata give it (id -> (parent, first frame, last frame)); ValueError for anything else."""
    out: dict[int, int] = {}
    for daughter, parent in (parents or {}).items():
        value = parent[0] if isinstance(parent, (tuple, list, np.ndarray)) and len(parent) else parent
        try:
            out[int(daughter)] = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"lineage entry {daughter!r}: {parent!r}: give daughter id -> parent id (whole "
                             "numbers, 0 for none)") from None
    return out


class _Tracks:
    """The single pass: each frame's ids become tracks, the frame relabelled with them."""

    def __init__(self, parents: dict[int, int] | None, frames: int) -> None:
        self.parents = {d: p for d, p in _parent_ids(parents).items() if p != 0}
        self.frames = frames
        self.rows: list[list[int]] = []  # [L, B, E, P]; E -1 while the track goes on
        self.open: dict[int, int] = {}  # id -> its track on the frame before
        self.latest: dict[int, int] = {}  # id -> its most recent track
        self.gaps = 0
        self.linked: list[tuple[int, int]] = []  # (daughter track, parent track) from the lineage
        self.dropped: list[tuple[int, int]] = []  # (daughter id, parent id) not linked

    def frame(self, t: int, frame: np.ndarray) -> np.ndarray:
        """Frame ``t`` (frames come in order) as uint16 track labels."""
        compact, on_frame, ids = _ids(frame)
        present = set(ids.tolist())
        for i in [i for i in self.open if i not in present]:
            self.rows[self.open.pop(i) - 1][2] = t - 1
        labels = np.empty(len(ids), np.uint16)
        for k, i in enumerate(ids.tolist()):
            if i not in self.open:
                self.open[i] = self._start(i, t, present)
            labels[k] = self.open[i]
        return self._relabel(compact, on_frame, labels)

    def _start(self, i: int, t: int, present: set[int]) -> int:
        label = len(self.rows) + 1
        if label > MAX_TRACKS:
            raise ValueError(f"more than {MAX_TRACKS} tracks (the {label}th starts on frame {t}): CTC masks are "
                             "16-bit, so a result folder holds at most 65535 tracks, and each gap in an object's "
                             "frames starts a new one; export fewer frames or objects")
        parent = 0
        if i in self.latest:  # back after a gap: the same object's earlier track is its parent
            parent = self.latest[i]
            self.gaps += 1
        elif i in self.parents:
            p = self.parents[i]
            if p in self.latest and p not in present:  # the parent's track ended before this one begins
                parent = self.latest[p]
                self.linked.append((label, parent))
            else:
                self.dropped.append((i, p))
        self.rows.append([label, t, -1, parent])
        self.latest[i] = label
        return label

    @staticmethod
    def _relabel(compact: np.ndarray, present: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Each pixel's id replaced by its track, through a lookup table over the compact ids."""
        if not len(present):
            return np.zeros(compact.shape, np.uint16)
        table = np.zeros(int(present[-1]) + 1, np.uint16)
        table[present] = labels
        return table[compact]

    def finish(self) -> np.ndarray:
        """The tracks as rows L B E P (int64), or a ValueError where there are none."""
        for label in self.open.values():
            self.rows[label - 1][2] = self.frames - 1
        self.open.clear()
        if not self.rows:
            raise ValueError(f"the labels hold no object on any of their {self.frames} frames: a CTC result needs at "
                             "least one track")
        return np.asarray(self.rows, np.int64)

    def left_out(self) -> list[tuple[int, int, str]]:
        """The lineage links not kept, with why: those of daughters in the labels, then of daughters not in them
        (a lineage given with other labels than the ones it was made for, such as the undivided ones)."""
        return [(d, p, "the parent is not in the labels" if p not in self.latest else
                 "the parent does not end before the daughter begins") for d, p in self.dropped] + [
            (d, p, "the daughter is not in the labels") for d, p in sorted(self.parents.items()) if d not in self.latest]


def ctc_tracks(labels: Any, parents: dict[int, int] | None = None, *,
               progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The labels as CTC tracks: the relabelled uint16 stack (of the labels' shape) and the table, rows L B E P.

    labels: (T, Y, X) integer object ids, or (T, Z, Y, X) ones (a volume a frame) (numpy, a memmap, any array read a frame at a time; bool
    is one object). parents: a division lineage, daughter id -> parent id (0: none), as
    `napari_vos.divisions.parents_from_record` gives it; `DivisionResult.lineage` (id -> (parent,
    first, last)) is taken too.

    Each run of consecutive frames an id is on is one track; an id back after missing frames starts
    a new track whose parent is its earlier one. Tracks are numbered 1..N by first frame, then by id.
    A daughter's first track gets as parent the parent id's track that ended last before the
    daughter began; a parent not in the labels, or still on the daughter's first frame, gives 0 (the
    write's ``left_out`` names these links, and those of daughters not in the labels).
    ValueError: not (T, Y, X) or (T, Z, Y, X) integers, no object at all, or more than 65535 tracks (16-bit masks).
    The stack returned is held whole; `write_ctc` writes each frame as it goes instead.
    """
    frames, size = _check_stack(labels)
    out = np.zeros((frames, *size), np.uint16)
    tracks = _Tracks(parents, frames)
    for t in range(frames):
        out[t] = tracks.frame(t, _frame(labels, t, size))
        if progress is not None:
            progress(t + 1, frames)
    return out, tracks.finish()


def check_target(folder: str | Path, force: bool = False) -> list[Path]:
    """The result folder's CTC files that a write replaces, or a ValueError: a file there, a folder
    holding files without ``force``, or one holding a .tif that is no mask<digits>.tif (py-ctcmetrics
    reads every .tif in the folder as a frame's mask, so the result could not be scored). With
    ``force`` only mask<digits>.tif and res_track.txt are replaced or removed; any other file in the
    folder is kept."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; a CTC result is a folder (mask000.tif ... and res_track.txt): give a "
                         "folder name")
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    if entries and not force:
        shown = ", ".join(p.name for p in entries[:3]) + (" ..." if len(entries) > 3 else "")
        raise ValueError(f"{folder} is not empty ({shown}); give a new or empty folder, or force (--force) to replace "
                         "its mask*.tif and res_track.txt (any other file in it is kept)")
    others = _other_tifs([p.name for p in entries])
    if others:
        shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
        raise ValueError(f"{folder} holds {shown}, which {'is' if len(others) == 1 else 'are'} no CTC mask: "
                         f"{_READS_EVERY_TIF}, so the result could not be scored; move "
                         f"{'it' if len(others) == 1 else 'them'} out of the folder or give another folder")
    return [p for p in entries if p.is_file() and is_ctc_file(p.name)]


def write_ctc(folder: str | Path, labels: Any, parents: dict[int, int] | None = None, *, force: bool = False,
              progress: Callable[[int, int], None] | None = None) -> CtcExport:
    """Write the labels as a CTC result folder: mask000.tif ... (uint16, one per frame; of (T, Z, Y, X)
    labels a (Z, Y, X) stack of pages each) and res_track.txt ("L B E P" lines), the tracks as
    `ctc_tracks` makes them. Returns what was written (`CtcExport`).

    The stack is read one frame at a time and each frame written as it is relabelled, into a hidden
    folder beside ``folder`` that is renamed to it when whole: a failed or stopped write leaves the
    folder as it was. An existing folder must be empty unless ``force``; with ``force`` its earlier
    mask*.tif and res_track.txt are replaced (earlier masks beyond the new frames removed), once
    every new file is written, and every other file in it is kept, but a folder holding a .tif that
    is no mask<digits>.tif is refused (`check_target`). progress(done, total) after each frame.
    """
    import tifffile

    folder = Path(os.path.abspath(folder))
    frames, size = _check_stack(labels)
    earlier = check_target(folder, force)
    # a link (01_RES on a larger disk) is written through: the hidden folders lie beside the folder it names,
    # on its disk (beside the link, moving the files in crossed disks), and the link itself stays
    real = Path(os.path.realpath(folder))
    real.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".partial", dir=real.parent))
    try:
        tracks = _Tracks(parents, frames)
        for t in range(frames):
            # minisblack: a volume of 3 or 4 planes is no RGB image
            tifffile.imwrite(partial / mask_name(t, frames), tracks.frame(t, _frame(labels, t, size)),
                             photometric="minisblack")
            if progress is not None:
                progress(t + 1, frames)
        table = tracks.finish()
        (partial / _TABLE).write_text("".join(" ".join(map(str, row)) + "\n" for row in table.tolist()),
                                      encoding="ascii")
        _move_in(partial, real, [real / path.name for path in earlier])
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return CtcExport(folder, table, frames, tracks.gaps, len({p for _, p in tracks.linked}), len(tracks.linked),
                     tracks.left_out())


def _move_in(partial: Path, folder: Path, earlier: list[Path]) -> None:
    """The whole result into ``folder``: renamed there where it is new or empty; file by file into one that
    holds other files, its earlier CTC files set aside first and put back if a move fails."""
    if not folder.exists() or not any(folder.iterdir()):
        if folder.exists():
            folder.rmdir()
        os.rename(partial, folder)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".earlier", dir=folder.parent))
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        for path in earlier:
            os.replace(path, aside / path.name)
            moved_aside.append(path.name)
        for path in sorted(partial.iterdir(), key=lambda p: p.name == _TABLE):  # the track table last
            os.replace(path, folder / path.name)
            moved_in.append(path.name)
    except BaseException as err:
        try:
            for name in moved_in:
                os.replace(folder / name, partial / name)
            for name in moved_aside:
                os.replace(aside / name, folder / name)
        except OSError:
            raise OSError(f"writing {folder} failed ({err}) and its earlier CTC files could not all be put back: they "
                          f"are in {aside}") from err
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _read_table(path: Path, problems: list[str]) -> np.ndarray | None:
    """res_track.txt's rows (L B E P), or None with the problems said. Read as py-ctcmetrics reads it
    (``read_tracking_file``): every line a track, split at line 1's separator (a space where line 1
    has one, else a tab), empty values between two separators skipped."""
    if not path.is_file():
        problems.append(f"no {_TABLE} in {path.parent}")
        return None
    rows = []
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    separator = " " if lines and " " in lines[0] else "\t"
    for n, line in enumerate(lines, 1):
        if not line.strip():
            problems.append(f"{_TABLE} line {n} is blank: CTC's evaluation (py-ctcmetrics) reads every line as a "
                            "track and stops on it; remove the line")
            continue
        try:
            row = [int(v) for v in line.split()]
        except ValueError:
            row = []
        if len(row) != 4:
            problems.append(f"{_TABLE} line {n} is {line.strip()!r}, not four integers L B E P")
            continue
        if [v for v in line.strip().split(separator) if v] != line.split():
            problems.append(f"{_TABLE} line {n} separates its values otherwise than line 1 (with "
                            f"{'a space' if separator == ' ' else 'a tab'}): CTC's evaluation (py-ctcmetrics) "
                            "splits every line at line 1's separator")
        rows.append(row)
    return np.asarray(rows, np.int64).reshape(-1, 4)


def _table_problems(table: np.ndarray, frames: int) -> list[str]:
    """CTC's rules on the track table itself."""
    problems = []
    labels, counts = np.unique(table[:, 0], return_counts=True)
    problems += [f"track {label} is listed {count} times in {_TABLE}" for label, count in zip(labels, counts)
                 if count > 1]
    rows = {int(r[0]): r for r in table}
    for label, begin, end, parent in table.tolist():
        if not 1 <= label <= MAX_TRACKS:
            problems.append(f"track {label}: labels are 1..{MAX_TRACKS} (16-bit masks)")
        if begin < 0 or end < begin:
            problems.append(f"track {label}: frames {begin}-{end} are no range of frames")
        elif end >= frames:
            problems.append(f"track {label} ends on frame {end}, past the last mask (frame {frames - 1})")
        if parent < 0 or parent == label:
            problems.append(f"track {label}: parent {parent} is no other track")
        elif parent and parent not in rows:
            problems.append(f"track {label}: its parent {parent} is not in {_TABLE}")
        elif parent and rows[parent][2] >= begin:
            problems.append(f"track {label} begins on frame {begin} but its parent {parent} ends on frame "
                            f"{rows[parent][2]}: a parent ends before its daughters begin")
    return problems


def check_ctc(folder: str | Path, *, limit: int = 100) -> list[str]:
    """Read a CTC result folder back and check CTC's rules: masks mask000.tif... for frames 0..T-1 (one
    name width, one size, 16-bit) and no other .tif, res_track.txt's rows L B E P with unique labels
    (no blank line, one separator), each parent a listed track that ends before its daughter begins,
    and each track on exactly its frames B..E of the masks, every label on a mask listed. Returns
    the problems found (at most ``limit``, then a line counting the rest); [] for a valid folder."""
    import tifffile

    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    problems: list[str] = []
    masks: dict[int, list[str]] = {}
    names = sorted(path.name for path in folder.iterdir())
    for name in names:
        match = _MASK.fullmatch(name)
        if match:
            masks.setdefault(int(match.group(1)), []).append(name)
    problems += [f"{name} is no mask (mask000.tif ...) but {_READS_EVERY_TIF}: move it out of the folder"
                 for name in _other_tifs(names)]
    if not masks:
        problems.append(f"no mask files (mask000.tif ...) in {folder}")
    frames = max(masks) + 1 if masks else 0
    missing = [t for t in range(frames) if t not in masks]
    if missing:
        problems.append(f"no mask for frame{'s' if len(missing) > 1 else ''} {_ranges(missing)}")
    problems += [f"frame {t} has {len(names)} masks ({', '.join(sorted(names))})" for t, names in sorted(masks.items())
                 if len(names) > 1]
    problems += [f"{name} should be named {mask_name(t, frames)} (one name width for a sequence)"
                 for t, names in sorted(masks.items()) for name in names if len(names) == 1 and
                 name != mask_name(t, frames)]
    table = _read_table(folder / _TABLE, problems)
    if table is not None:
        if not len(table):
            problems.append(f"{_TABLE} lists no track")
        problems += _table_problems(table, frames)
    expected: dict[int, set[int]] = {}
    for label, begin, end, _ in (table.tolist() if table is not None else []):
        for t in range(max(begin, 0), min(end, frames - 1) + 1):
            expected.setdefault(t, set()).add(label)
    size = None
    for t in sorted(masks):
        if len(problems) > limit:
            break
        name = sorted(masks[t])[0]
        image = tifffile.imread(folder / name)
        if image.dtype != np.uint16:
            problems.append(f"{name} is {image.dtype}: CTC masks are 16-bit (uint16)")
        if image.ndim not in (2, 3) or image.dtype.kind not in "iu":
            problems.append(f"{name} is a {image.shape} {image.dtype} image, not a labels mask")
            continue
        if size is None:
            size = image.shape
        elif image.shape != size:
            problems.append(f"{name} is {image.shape}, {sorted(masks[min(masks)])[0]} {size}: masks share one size")
        on = set(_ids(image)[2].tolist())
        wanted = expected.get(t, set()) if table is not None else on
        problems += [f"label {label} is on {name} but {_TABLE} has no track {label} on frame {t}"
                     for label in sorted(on - wanted)]
        problems += [f"track {label} is missing from {name} (frame {t})" for label in sorted(wanted - on)]
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and more problems (the first {limit} shown)"]
    return problems


def _ranges(values: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    parts, start = [], values[0]
    for a, b in zip(values, values[1:] + [None]):
        if b != a + 1:
            parts.append(f"{start}-{a}" if a != start else str(a))
            start = b
    return ", ".join(parts)
