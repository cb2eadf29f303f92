"""Scoring predictions against ground truth, and the files every measurement writes.

`score_dataset` (the `napari-vos score` command) reads existing predictions (a DAVIS-style
results folder `<seq>/00000.png`, palette or 0/255, or TIFF stacks `<seq>.tif`) and scores them
against any dataset `open_dataset` reads. `Report` is shared with `eval`: it appends one row per
sequence and per object to CSV files and rewrites the JSON summary after every sequence, so an
interrupted run (Ctrl-C) keeps everything finished so far.

JSON summary: {"method", "checkpoint", "dataset", "J_mean", "F_mean", "JF_mean", "fps",
"sequences": {name: {"J_mean", "F_mean", "JF_mean", "frames", ...}}} with scores as fractions
in [0, 1] (dataset means over all objects, DAVIS convention), "SEG" for sequences with many
objects, and "complete": false while (or if) the run did not finish. An eval's per-sequence entries
also keep ``frames_done`` and ``seconds`` (the propagation fps counts), so `read_earlier_run` can
rebuild a stopped run's scored sequences from these files and ``eval --resume`` go on from there, and
``files_sha256`` (`evaluation.fingerprints`: the sequence's frame and truth files), so a resume can tell
a changed dataset from the same one elsewhere. A run writes its summary (no sequences yet) as soon as
it starts its CSVs, so started CSVs always have a summary beside them.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from napari_vos.checks import frame_ranges, painted_ids
from napari_vos.data.readers import _LABEL_WORDS, _files, name_key, open_dataset
from napari_vos.data.sequence import TIFF_SUFFIXES, ColourTable, Sequence, read_mask
from napari_vos.evaluation.metrics import (ObjectResult, SequenceResult, evaluate_sequence, evaluated_frames,
                                           summarise)
from napari_vos.evaluation.unsupervised import evaluate_foreground
from napari_vos.data.writers import png_record

__all__ = ["Report", "EarlierRun", "KeptSequence", "read_earlier_run", "read_summary", "PredictionFolder",
           "first_annotation", "score_dataset", "format_table", "code_version",
           "MANY_OBJECTS", "FOREGROUND_SCORING", "warn_unscored_truth"]

FOREGROUND_SCORING = ("foreground vs union of GT objects (DAVIS 2016 unsupervised), every GT frame but the "
                      "first and the last")
MANY_OBJECTS = 5  # sequences with at least this many objects also get the CTC SEG measure
_SEQ_FIELDS = ["sequence", "objects", "frames", "evaluated_frames", "annotated_frame", "J_mean", "J_recall",
               "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean", "SEG", "fps", "start_seconds", "wall_seconds"]
_OBJ_FIELDS = ["sequence", "object", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean"]
_FRAME_FIELDS = ["sequence", "object", "frame", "J", "F"]
_SCORE_FIELDS = _SEQ_FIELDS[1:12]  # objects ... JF_mean: a summary entry holds them as per_sequence.csv does
_TIME_FIELDS = ("fps", "start_seconds", "wall_seconds")  # in a summary entry where known


def _clean(x: Any) -> Any:
    """JSON-safe floats: NaN -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def checkout_root(module_file: Path) -> Path | None:
    """The git checkout holding this package's source (src/napari_vos beside pyproject.toml), or None
    for an installed package: site-packages may lie inside some other git repository, whose commit
    says nothing about this code."""
    package = module_file.resolve().parents[1]
    root = package.parents[1]
    if package.name != "napari_vos" or package.parent.name != "src" or not (root / "pyproject.toml").is_file():
        return None
    return root


def code_version() -> str:
    """napari-vos version, plus the git commit (and "+dirty" for uncommitted changes under src/)
    when running from a checkout: every result file says which code produced it."""
    import subprocess

    from napari_vos import __version__

    root = checkout_root(Path(__file__))
    if root is None:
        return __version__
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        if not top or Path(top).resolve() != root.resolve():  # no repository, or an enclosing one
            return __version__
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    if not commit:
        return __version__
    return f"{__version__} ({commit}{'+dirty' if dirty else ''})"


def now_with_zone() -> str:
    """The local time with its UTC offset (2026-11-24T13:40:09+01:00), as the widget's provenance
    writes it: runs of machines in other zones, or in the hour a DST change repeats, can be ordered."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def first_annotation(seq: Sequence) -> int:
    """The frame whose GT is given to the method: the first annotated frame holding an object."""
    for t in seq.annotated:
        m = seq.masks[t]
        if m is not None and m.any():
            return t
    if not seq.annotated:  # no truth was found at all, not truth that is empty
        words = ", ".join(map(repr, _LABEL_WORDS[:-1])) + f" or {_LABEL_WORDS[-1]!r}"
        where = (f": a dataset of TIFF stacks holds the video and, beside it, its truth in a TIFF whose name holds "
                 f"{words} ({seq.name}_labels.tif); a TIFF named otherwise is read as the video, as this one "
                 "was") if seq.layout == "tiff" else ""
        raise ValueError(f"sequence {seq.name!r} has no ground-truth masks{where}")
    raise ValueError(f"sequence {seq.name!r} has no ground-truth frame with an object to start from")


def warn_unscored_truth(result: SequenceResult, annotated: int, ctc: bool = False) -> None:
    """Say (a warning) which objects of the truth's scored frames are none of the annotated frame's:
    J and F score only those, by id, so a cell entering later, or truth numbered afresh on each frame
    (the Cell Tracking Challenge's SEG), would otherwise go unscored with nothing said."""
    import warnings

    found = result.unscored_truth
    if not found:
        return
    ids = sorted(found)
    shown = ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")
    first = min(found.values())
    why = ("; Cell Tracking Challenge SEG truth numbers its cells afresh on each frame, so read SEG, which "
           "pairs objects by overlap" if ctc else
           "; SEG, which pairs objects by overlap, counts them" if result.seg is not None else "")
    warnings.warn(f"{result.name}: the truth holds {'object' if len(ids) == 1 else 'objects'} {shown} (the first "
                  f"on frame {first}) that the annotated frame {annotated} does not: J and F score that frame's "
                  f"objects by id, and {'it is' if len(ids) == 1 else 'they are'} not scored{why}", stacklevel=3)


class Report:
    """Incremental CSV + JSON output of one eval/score run (all files optional)."""

    def __init__(self, header: dict[str, Any], out_dir: str | Path | None = None,
                 json_path: str | Path | None = None) -> None:
        self.header = dict(header)
        self.header.setdefault("code", code_version())
        self.out_dir = Path(out_dir) if out_dir else None
        self.json_path = Path(json_path) if json_path else (self.out_dir / "summary.json" if self.out_dir else None)
        self.results: list[SequenceResult] = []
        self.rows: dict[str, dict[str, Any]] = {}
        self.timing: dict[str, tuple[int, float]] = {}  # sequence -> (frames_done, seconds) of its propagation
        self.fingerprints: dict[str, str] = {}  # sequence -> sha256 of the files it was read from, where known
        self.started = now_with_zone()
        self._started_files = False  # an earlier run's files in --out stay until this one scores a sequence
        self._kept: set[str] | None = None  # the sequences kept from an earlier run (`keep`), whose rows stay

    def _start_files(self) -> None:
        """Start every CSV afresh (a reused --out held another run's rows; per_frame.csv kept them),
        at the first sequence scored, so a run refused or stopped before it leaves them as they were.
        A resumed run keeps the earlier run's rows (`keep`) and drops only those of other sequences.
        The summary is written at once: a run stopped in its first sequence's rows has one (listing
        no sequence), which --resume takes for a run with nothing kept, not for rows of another run."""
        self._started_files = True
        if self.out_dir and self._kept is not None:
            for name in ("per_sequence.csv", "per_object.csv", "per_frame.csv"):
                _drop_rows_but(self.out_dir / name, self._kept)
        elif self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for name, fields in (("per_sequence.csv", _SEQ_FIELDS), ("per_object.csv", _OBJ_FIELDS),
                                 ("per_frame.csv", _FRAME_FIELDS)):
                with open(self.out_dir / name, "w", newline="", encoding="utf-8") as f:
                    csv.DictWriter(f, fieldnames=fields).writeheader()
        self.write_json(complete=False)

    def add(self, result: SequenceResult, n_frames: int, annotated: int | None,
            frames_done: int = 0, seconds: float = 0.0, start_seconds: float | None = None,
            wall_seconds: float | None = None, files_sha256: str | None = None) -> dict[str, Any]:
        """Record one finished sequence and flush every output file. ``seconds``: the propagation
        (what fps counts); ``start_seconds``: the method's start before it (OSVOS-AT's fine-tuning,
        FRTM's first fit); ``wall_seconds``: the whole call, reading and set-up included;
        ``files_sha256``: the fingerprint of the files it was read from (`evaluation.fingerprints`).
        The sequence is counted only once its rows are written: a Ctrl-C while they are leaves a
        summary without it (its rows are dropped and it is run again by --resume), not one listing
        a sequence whose per_frame.csv rows stop halfway, which could only be started afresh."""
        if not self._started_files:
            self._start_files()
        stats = result.stats()
        row: dict[str, Any] = {
            "sequence": result.name, "objects": len(result.objects), "frames": n_frames,
            "evaluated_frames": len(result.frames), "annotated_frame": annotated, **stats,
            "SEG": result.seg if result.seg is not None else "",
            "fps": (frames_done / seconds) if seconds > 0 else "",
            "start_seconds": "" if start_seconds is None else start_seconds,
            "wall_seconds": "" if wall_seconds is None else wall_seconds,
        }
        if self.out_dir:
            with open(self.out_dir / "per_sequence.csv", "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, fieldnames=_SEQ_FIELDS).writerow(_clean(row))
            with open(self.out_dir / "per_object.csv", "a", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=_OBJ_FIELDS)
                for o in result.objects:
                    w.writerow(_clean({"sequence": result.name, "object": o.id, **o.stats()}))
            with open(self.out_dir / "per_frame.csv", "a", newline="", encoding="utf-8") as f:
                w2 = csv.writer(f)
                for o in result.objects:
                    for t, j, fv in zip(o.frames, o.J, o.F):
                        w2.writerow([result.name, o.id, t, f"{j:.6f}", f"{fv:.6f}"])
        self.rows[result.name] = row  # before results: summary() looks each result's row up
        self.results.append(result)
        self.timing[result.name] = (frames_done, seconds)
        if files_sha256 is not None:
            self.fingerprints[result.name] = files_sha256
        self.write_json(complete=False)
        return row

    def keep(self, earlier: EarlierRun) -> None:
        """Take an earlier run's scored sequences as this run's first (eval --resume): its files are
        appended to, not started afresh, less the rows of sequences its summary does not list (a run
        killed between a sequence's CSV rows and its summary), which are run again."""
        self._kept = {kept.result.name for kept in earlier.sequences}
        self.started = str(earlier.summary.get("started") or self.started)
        for kept in earlier.sequences:
            self.results.append(kept.result)
            self.rows[kept.result.name] = kept.row
            self.timing[kept.result.name] = (kept.frames_done, kept.seconds)
            if kept.files_sha256 is not None:
                self.fingerprints[kept.result.name] = kept.files_sha256

    @property
    def frames_done(self) -> int:
        """Frames propagated over every sequence so far (what the overall fps counts)."""
        return sum(frames for frames, _ in self.timing.values())

    @property
    def seconds(self) -> float:
        """Seconds spent propagating over every sequence so far."""
        return sum(seconds for _, seconds in self.timing.values())

    def summary(self, complete: bool = True) -> dict[str, Any]:
        """Overall and per-sequence scores so far; ``complete`` False marks a run that stopped early."""
        overall = summarise(self.results) if self.results else {
            k: float("nan") for k in ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean")}
        out: dict[str, Any] = dict(self.header)
        out.update({k: overall[k] for k in ("J_mean", "F_mean", "JF_mean")})
        if "fps" in self.header or self.seconds > 0:
            out["fps"] = self.frames_done / self.seconds if self.seconds > 0 else None
        out.update({k: overall[k] for k in ("J_recall", "J_decay", "F_recall", "F_decay")})
        segs = [r.seg for r in self.results if r.seg is not None and not math.isnan(r.seg)]
        if segs:
            out["SEG_mean"] = float(np.mean(segs))
        out["objects"] = sum(len(r.objects) for r in self.results)
        out["sequences"] = {}
        for r in self.results:
            row = self.rows[r.name]
            entry = {"J_mean": row["J_mean"], "F_mean": row["F_mean"], "JF_mean": row["JF_mean"],
                     "frames": row["frames"], "evaluated_frames": row["evaluated_frames"],
                     "objects": row["objects"], "annotated_frame": row["annotated_frame"],
                     "J_recall": row["J_recall"], "J_decay": row["J_decay"],
                     "F_recall": row["F_recall"], "F_decay": row["F_decay"]}
            if r.seg is not None:
                entry["SEG"] = r.seg
            for key in _TIME_FIELDS:
                if row[key] != "":
                    entry[key] = row[key]
            frames_done, seconds = self.timing.get(r.name, (0, 0.0))
            if seconds > 0:  # what fps counts, kept so a resumed run's overall fps is the whole run's
                entry["frames_done"], entry["seconds"] = frames_done, seconds
            if r.name in self.fingerprints:  # what --resume compares with the dataset's files then
                entry["files_sha256"] = self.fingerprints[r.name]
            out["sequences"][r.name] = entry
        out["started"] = self.started
        out["complete"] = complete
        return _clean(out)

    def write_json(self, complete: bool) -> None:
        """Write the summary to the JSON path, if any, atomically (a reader never sees half a file);
        not for a run stopped before it started its files, which leaves an earlier run's summary."""
        if self.json_path and (self.results or complete or self._started_files):
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.json_path.with_suffix(self.json_path.suffix + ".tmp")
            tmp.write_text(json.dumps(self.summary(complete), indent=2) + "\n")
            tmp.replace(self.json_path)

    def finish(self, complete: bool = True) -> dict[str, Any]:
        """Write the JSON one last time and return the summary."""
        self.write_json(complete)
        return self.summary(complete)


@dataclass
class KeptSequence:
    """One sequence an earlier run scored, as read back from its files (eval --resume)."""

    result: SequenceResult
    row: dict[str, Any]
    frames_done: int
    seconds: float
    files_sha256: str | None = None  # the fingerprint of its files then; None in a summary that records none


@dataclass
class EarlierRun:
    """An earlier run's summary and its scored sequences, read back from its --out folder."""

    summary: dict[str, Any]
    sequences: list[KeptSequence]


def read_earlier_run(out_dir: str | Path, json_path: str | Path | None = None) -> EarlierRun | None:
    """The run whose files are in ``out_dir`` (its summary at ``json_path``, default OUT/summary.json),
    for eval --resume; None where there is no summary. A ValueError names a file that is missing or
    does not hold a sequence the summary lists: the run cannot be resumed, only started afresh."""
    out = Path(out_dir)
    path = Path(json_path) if json_path else out / "summary.json"
    summary = read_summary(path)
    if summary is None:
        _refuse_rows_without_summary(out, path)
        return None
    entries = summary.get("sequences")
    if not isinstance(entries, dict):
        raise _damaged(path, "it lists no sequences", path)
    for name, entry in entries.items():
        _check_entry(name, entry, path)
    objects = _object_ids(out / "per_object.csv", list(entries), path)
    scores = _frame_scores(out / "per_frame.csv", set(entries), path)
    _listed(out / "per_sequence.csv", list(entries), path)
    kept = [_kept_sequence(name, entry, objects[name], scores, out / "per_frame.csv", path)
            for name, entry in entries.items()]
    return EarlierRun(summary, kept)


def _refuse_rows_without_summary(out: Path, path: Path) -> None:
    """Refuse an --out whose per_sequence.csv holds scored sequences while there is no summary at
    ``path``: the earlier run wrote it elsewhere (another --json, or OUT/summary.json where --json
    is given now). Taken for no run, its sequences were run again and its files started afresh."""
    rows = out / "per_sequence.csv"
    try:
        with open(rows, newline="", encoding="utf-8") as f:
            scored = sum(1 for _ in csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return
    if scored:
        there = out / "summary.json"
        where = (f"leave out --json to resume from {there}" if there.is_file() and there != path else
                 "give the --json the earlier run wrote its summary to")
        raise ValueError(f"{rows} holds {scored} scored sequence(s) but there is no summary at {path}: {where}; "
                         "or run without --resume to start afresh (as when a run of napari-vos before it wrote its "
                         "summary with its files was stopped in its first sequence)")


def _check_entry(name: str, entry: Any, summary_path: Path) -> None:
    """Refuse a summary entry that is not as `Report.summary` writes it (a hand edit): counts that are
    not whole numbers, scores or times that are not numbers would fail later without naming the file."""
    if not isinstance(entry, dict):
        raise _damaged(summary_path, f"its entry of sequence {name!r} holds no scores", summary_path)
    for key in ("objects", "evaluated_frames", "frames", "frames_done"):
        value = entry.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _damaged(summary_path, f"its entry of sequence {name!r} holds {key} {value!r}, not a count",
                           summary_path)
    for key in ("J_mean", "F_mean", "SEG", "fps", "seconds"):
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise _damaged(summary_path, f"its entry of sequence {name!r} holds {key} {value!r}, not a number",
                           summary_path)
    digest = entry.get("files_sha256")
    if digest is not None and not _is_sha256(digest):
        raise _damaged(summary_path, f"its entry of sequence {name!r} holds files_sha256 {digest!r}, not a sha256",
                       summary_path)


def _is_sha256(value: Any) -> bool:
    """Whether ``value`` is a sha256 as hex digits (64 of them), as `sequence_fingerprint` gives it."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def read_summary(path: str | Path) -> dict[str, Any] | None:
    """A run's summary.json, or None where there is none; a ValueError for one that cannot be read."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _damaged(path, f"it cannot be read ({err})", path) from None
    if not isinstance(summary, dict):
        raise _damaged(path, "it holds no summary", path)
    return summary


def _damaged(path: Path, why: str, summary_path: Path) -> ValueError:
    """The error for an earlier run's file that cannot be resumed from."""
    return ValueError(f"{path}: {why}, so the earlier run whose summary is {summary_path} cannot be resumed; "
                      "run again without --resume to start it afresh")


def _csv_rows(path: Path, fields: list[str], summary_path: Path) -> list[dict[str, str]]:
    """The rows of one of a run's CSV files, which must exist with its header."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != fields:
                raise _damaged(path, f"its header is not {','.join(fields)}", summary_path)
            return list(reader)
    except FileNotFoundError:
        raise _damaged(path, "it is missing", summary_path) from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise _damaged(path, f"it cannot be read ({err})", summary_path) from None


def _listed(path: Path, names: list[str], summary_path: Path) -> None:
    """Refuse a per_sequence.csv without a row for each sequence the summary lists."""
    found = {row["sequence"] for row in _csv_rows(path, _SEQ_FIELDS, summary_path)}
    missing = [name for name in names if name not in found]
    if missing:
        raise _damaged(path, f"it has no row of sequence {missing[0]!r}", summary_path)


def _object_ids(path: Path, names: list[str], summary_path: Path) -> dict[str, list[int]]:
    """Each listed sequence's object ids, in per_object.csv's order."""
    ids: dict[str, list[int]] = {name: [] for name in names}
    for row in _csv_rows(path, _OBJ_FIELDS, summary_path):
        if row["sequence"] in ids:
            try:
                ids[row["sequence"]].append(int(row["object"]))
            except (TypeError, ValueError):
                raise _damaged(path, f"a row of {row['sequence']!r} holds no object id", summary_path) from None
    return ids


#: per_frame.csv read back: (frame, J, F) rows by (sequence, object)
_FrameScores = dict[tuple[str, int], list[tuple[int, float, float]]]


def _frame_scores(path: Path, names: set[str], summary_path: Path) -> _FrameScores:
    """(frame, J, F) rows of per_frame.csv by (sequence, object), for the listed sequences."""
    scores: _FrameScores = {}
    for row in _csv_rows(path, _FRAME_FIELDS, summary_path):
        if row["sequence"] not in names:
            continue  # a sequence the summary does not list: run again
        try:
            key = (row["sequence"], int(row["object"]))
            j, f = float(row["J"]), float(row["F"])
            if None in row or not (0 <= j <= 1 and 0 <= f <= 1):  # more fields than the header, or no score
                raise ValueError
            scores.setdefault(key, []).append((int(row["frame"]), j, f))
        except (TypeError, ValueError):
            raise _damaged(path, f"a row of sequence {row['sequence']!r} cannot be read", summary_path) from None
    return scores


def _agrees(result: SequenceResult, entry: dict[str, Any]) -> bool:
    """Whether scores read back from per_frame.csv (6 decimals) give the summary's J and F means."""
    stats = result.stats()
    for key in ("J_mean", "F_mean"):
        listed = float("nan") if entry.get(key) is None else float(entry[key])
        if not (math.isnan(listed) and math.isnan(stats[key])) and not abs(listed - stats[key]) <= 1e-5:
            return False
    return True


def _kept_sequence(name: str, entry: dict[str, Any], ids: list[int], scores: _FrameScores, frame_csv: Path,
                   summary_path: Path) -> KeptSequence:
    """One listed sequence rebuilt from its per-frame scores and summary entry, as `Report.add` had it."""
    if len(ids) != entry.get("objects"):
        raise _damaged(frame_csv.with_name("per_object.csv"), f"it holds {len(ids)} objects of sequence {name!r}, "
                       f"the summary {entry.get('objects')}", summary_path)
    objects = []
    for k in ids:
        rows = scores.get((name, k), [])
        if len(rows) != entry.get("evaluated_frames"):
            raise _damaged(frame_csv, f"it holds {len(rows)} frames of object {k} of sequence {name!r}, the summary "
                           f"{entry.get('evaluated_frames')}", summary_path)
        objects.append(ObjectResult(k, [t for t, _, _ in rows], np.array([j for _, j, _ in rows]),
                                    np.array([f for _, _, f in rows])))
    seg = None if "SEG" not in entry else float("nan") if entry["SEG"] is None else float(entry["SEG"])
    result = SequenceResult(name, list(objects[0].frames) if objects else [], objects, seg)
    if not _agrees(result, entry):
        raise _damaged(frame_csv, f"its scores of sequence {name!r} do not give the summary's", summary_path)
    row = {"sequence": name, **{key: entry.get(key) for key in _SCORE_FIELDS},
           "SEG": "" if seg is None else seg, **{key: entry.get(key, "") for key in _TIME_FIELDS}}
    frames_done, seconds = _timing(entry)
    return KeptSequence(result, row, frames_done, seconds, entry.get("files_sha256"))


def _timing(entry: dict[str, Any]) -> tuple[int, float]:
    """A kept sequence's (frames_done, seconds); for a summary written before they were kept, from its
    fps and frames (a run both ways from its annotated frame steps to every frame but that one)."""
    if "seconds" in entry:
        return int(entry.get("frames_done") or 0), float(entry["seconds"] or 0.0)
    fps, frames = entry.get("fps"), entry.get("frames")
    if not fps or not frames or frames < 2:
        return 0, 0.0
    return frames - 1, (frames - 1) / fps


def _drop_rows_but(path: Path, names: set[str]) -> None:
    """Rewrite a CSV without the rows of sequences outside ``names`` (first column); untouched when none."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0] in names]
    if len(kept) == len(rows):
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(kept)
    tmp.replace(path)


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table of per-sequence and overall scores (percent, as papers print them)."""
    seqs = summary.get("sequences", {})
    has_seg = any("SEG" in v for v in seqs.values())
    width = max([len("sequence"), len("overall")] + [len(s) for s in seqs]) + 2
    head = f"{'sequence':<{width}}{'objects':>8}{'frames':>8}{'J':>8}{'F':>8}{'J&F':>8}" + (f"{'SEG':>8}" if has_seg else "")

    def pct(x: Any) -> str:
        return f"{100 * x:8.1f}" if isinstance(x, (int, float)) else f"{'-':>8}"

    lines = [head, "-" * len(head)]
    stopped = summary.get("stopped_runs") or {}
    for name, v in seqs.items():
        frames = f"{v['frames']}*" if name in stopped else v["frames"]  # not every frame was scored
        line = f"{name:<{width}}{v.get('objects', ''):>8}{frames:>8}{pct(v['J_mean'])}{pct(v['F_mean'])}{pct(v['JF_mean'])}"
        if has_seg:
            line += pct(v.get("SEG"))
        lines.append(line)
    lines.append("-" * len(head))
    total = f"{'overall':<{width}}{summary.get('objects', ''):>8}{'':>8}{pct(summary.get('J_mean'))}{pct(summary.get('F_mean'))}{pct(summary.get('JF_mean'))}"
    if has_seg:
        total += pct(summary.get("SEG_mean"))
    lines.append(total)
    if summary.get("fps"):
        lines.append(f"{summary['fps']:.2f} frames/s (propagation only)")
    if any(name in stopped for name in seqs):
        lines.append("* a stopped run's prediction: scored on the frames it holds only (the summary's stopped_runs)")
    return "\n".join(lines)


class PredictionFolder:
    """Frame-indexable predicted labels of one sequence: a folder of PNG/TIFF frames or a TIFF stack.

    Frames are matched to the GT frames by file stem (00012.png <-> GT 00012.jpg); when the names
    differ but the counts agree, in natural order (frame2 before frame10, as the dataset reader
    orders the GT). A frame with no prediction file is empty (0). ``objects``: the truth's object
    ids; when it holds one object, a binary frame (0 and 255, ImageJ's convention, or 0 and 1, of any
    integer type) is that object whatever its value. ``ids_seen`` collects the ids read, for `unscored_ids`.
    """

    def __init__(self, path: Path, seq: Sequence, objects: list[int] | None = None) -> None:
        self.path = path
        self.n = len(seq)
        self.shape = seq.frames.shape[1:3]
        self.objects = list(objects or [])
        self.ids_seen: set[int] = set()
        self._stack: Any = None
        self._files: dict[int, Path] = {}
        self.missing = 0  # frames with no prediction file: scored as empty
        if path.is_file():
            import tifffile

            self._stack = tifffile.memmap(path) if _memmappable(path) else tifffile.imread(path)
            if len(self._stack) != self.n:
                raise ValueError(f"{path}: {len(self._stack)} predicted frames for {self.n} frames of {seq.name!r}")
            return
        files = _files(path, (".png", *TIFF_SUFFIXES))  # in the reader's (natural) order
        stems = _frame_stems(seq)
        by_stem = {name_key(p.stem): p for p in files}  # a Mac's decomposed names pair with composed ones
        self._files = {i: by_stem[name_key(s)] for i, s in enumerate(stems) if name_key(s) in by_stem}
        if not self._files and len(files) == self.n:
            self._files = dict(enumerate(files))
        if not self._files:
            raise ValueError(f"{path}: no prediction file matches the frames of {seq.name!r}")
        self.missing = self.n - len(self._files)
        self._colours = ColourTable(list(self._files.values()))  # colour PNGs: ids over the whole folder

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, t: int) -> np.ndarray:
        if self._stack is not None:
            from napari_vos.data.sequence import decode_mask

            labels = decode_mask(np.asarray(self._stack[t]), void_255=False)  # a TIFF stack: 255 is a cell
        else:
            p = self._files.get(int(t))
            if p is None:
                return np.zeros(self.shape, np.int32)
            # a prediction has no void: 255 beside other ids is an object
            labels = read_mask(p, void_255=False, table=self._colours)
        labels, values = self._binary_as_the_object(labels, np.unique(labels))
        self.ids_seen.update(int(i) for i in values)
        return labels

    def _binary_as_the_object(self, labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A binary frame (one value besides 0, and that value 1 or 255) scored against one object is
        that object: a 0/255 TIFF or PNG prediction against truth read as id 1 or 2 (or the reverse).
        ``values``: the frame's ids (np.unique); returned with the frame as scored."""
        found = values[values != 0]
        if len(self.objects) == 1 and found.size == 1 and int(found[0]) in (1, 255) and int(found[0]) != self.objects[0]:
            return np.where(labels != 0, self.objects[0], 0).astype(np.int32), np.where(values != 0, self.objects[0], 0)
        return labels, values

    def colour_numbering(self) -> str | None:
        """For colour PNGs outside the DAVIS palette, numbered 1, 2, ... in colour order: that
        numbering (``#00ff00 -> 1, #ff0000 -> 2``), which need not be the truth's; else None."""
        table = getattr(self, "_colours", None)
        colours = getattr(table, "_colours", None)
        ids = getattr(table, "_ids", None)
        if colours is None or ids is None or not len(colours):
            return None
        from napari_vos.data.sequence import _packed_colours
        from napari_vos.data.writers import davis_palette

        if np.isin(colours, _packed_colours(davis_palette())).all():
            return None  # palette colours: their palette indices, as the DAVIS results are numbered
        pairs = [f"#{int(c):06x} -> {int(i)}" for c, i in zip(colours, ids) if int(i)]
        return ", ".join(pairs[:8]) + (", ..." if len(pairs) > 8 else "")

    def unscored_ids(self, scored: list[int]) -> list[int]:
        """Ids read from the prediction that are none of the scored objects (nor background)."""
        return sorted(self.ids_seen - set(scored) - {0})


def _memmappable(path: Path) -> bool:
    import tifffile

    try:
        tifffile.memmap(path, mode="r")
        return True
    except (ValueError, OSError):
        return False


def _frame_stems(seq: Sequence) -> list[str]:
    image_dir = seq.path
    if image_dir is not None and image_dir.is_dir():
        from napari_vos.data.sequence import IMAGE_SUFFIXES

        files = _files(image_dir, IMAGE_SUFFIXES)
        if len(files) == len(seq):
            return [p.stem for p in files]
    return [f"{t:05d}" for t in range(len(seq))]


def _recorded_run(pred: Path) -> dict[str, Any]:
    """The record of a `napari-vos propagate` output (a labels TIFF's, or a PNG folder's
    .napari_vos.json); {} for a prediction without one."""
    try:
        record_file = png_record(pred) if pred.is_dir() else None
        if record_file is not None:
            record = json.loads(record_file.read_text())
        elif pred.is_file():
            from napari_vos.data.writers import read_tiff_provenance

            record = read_tiff_provenance(pred) or {}
        else:
            return {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _recorded_video(pred: Path) -> str | None:
    """The video a `napari-vos propagate` output says it came from (its record's inputs), if it says."""
    video = (_recorded_run(pred).get("inputs") or {}).get("video")
    return str(video) if video else None


def _stopped_run_frames(pred: Path, n_frames: int) -> tuple[list[int] | None, str] | None:
    """For a prediction a stopped run wrote (its record says ``complete: false``): the frames that
    hold its labels (segmented, or kept from its labels stack; None where the record cannot tell, a
    killed run's) and a sentence saying so. None for a complete run's prediction or one without a record."""
    from napari_vos.stopped_runs import held_frames, is_stopped

    record = _recorded_run(pred)
    if not is_stopped(record):
        return None
    how = f", stopped by {record['stopped_by']}" if record.get("stopped_by") else ""
    held = held_frames(record)
    if held is None:
        return None, (f"{pred} is the output of a run that did not finish{how} (its record does not say which "
                      "frames it holds): its empty frames count as empty predictions")
    held = [t for t in held if 0 <= t < n_frames]
    return held, (f"{pred} is the output of a stopped run (frames {frame_ranges(held) or 'none'} of {n_frames} hold "
                  f"its labels{how}): only those frames are scored; continue the run to score the whole sequence")


def _holds_prediction(path: Path) -> bool:
    """A labels file, or a folder holding label images."""
    if path.is_dir():
        return any(p.suffix.lower() in (".png", *TIFF_SUFFIXES) for p in path.iterdir())
    return path.is_file()


def _inside(path: str, root: Path) -> bool:
    """Whether ``path`` lies under ``root``."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, ValueError):
        return False


def _on_disk(folder: Path, name: str) -> Path:
    """``folder / name``, each part spelled as on disk where only its Unicode form differs (a
    prediction folder written on a Mac, whose names are decomposed); as given where none matches."""
    path = folder
    for part in Path(name).parts:
        exact = path / part
        if not exact.exists() and path.is_dir():
            exact = next((p for p in path.iterdir() if name_key(p.name) == name_key(part)), exact)
        path = exact
    return path


def _find_prediction(pred_root: Path, seq: Sequence, single: bool, gt_root: Path | None = None) -> Path:
    candidates = [_on_disk(pred_root, seq.name)]
    candidates += [_on_disk(pred_root, f"{seq.name}{s}") for s in (".tif", ".tiff", ".ome.tif")]
    found = next((c for c in candidates if _holds_prediction(c)), None)
    if found is not None:
        return found
    if single:
        # one sequence: --pred may be its prediction itself, unless its record names another video
        # (a lone folder of natural-0000's labels was scored as natural-0001's); a file or folder named
        # after the sequence says which it is, whatever video (a stack of its frames) the record names
        from napari_vos.data.readers import tiff_stem

        video = _recorded_video(pred_root)
        own = name_key(seq.name)
        named = name_key(tiff_stem(pred_root) if pred_root.is_file() else pred_root.name) == own
        # (unless the record names a video inside the truth's dataset: another sequence's labels under this name)
        if named and _holds_prediction(pred_root) and (video is None or gt_root is None or not _inside(video, gt_root)):
            return pred_root
        if video is not None and own not in {name_key(p) for p in (*Path(video).parts, Path(video).stem)}:
            raise ValueError(f"{pred_root} holds the labels of {video}, not of sequence {seq.name!r}; give the "
                             f"prediction of {seq.name!r} (or a folder holding {seq.name}/ or {seq.name}.tif)")
        if _holds_prediction(pred_root):
            return pred_root
    raise ValueError(f"no prediction for sequence {seq.name!r} under {pred_root} "
                     f"(looked for {seq.name}/00000.png ... or {seq.name}.tif)")


def score_dataset(pred: str | Path, gt: str | Path, sequences: list[str] | None = None,
                  json_path: str | Path | None = None, out_dir: str | Path | None = None,
                  progress: bool = True, annotation: str = "first") -> dict[str, Any]:
    """Score a folder of predictions against a ground-truth dataset (the `score` command).

    annotation: "first" scores each GT object by its id (semi-supervised, as `eval` scores a method
    given the first annotated frame); "none" scores the predicted foreground against the union of
    the GT objects (as `eval` scores a zero-shot method such as COSNet).
    """
    import warnings

    if annotation not in ("first", "none"):
        raise ValueError(f"annotation must be 'first' or 'none', got {annotation!r}")
    pred_root = Path(pred)
    seqs = open_dataset(gt, sequences)
    header: dict[str, Any] = {"dataset": str(gt), "predictions": str(pred_root), "annotation": annotation}
    if annotation == "none":
        header["scoring"] = FOREGROUND_SCORING
    report = Report(header, out_dir, json_path)
    iterator: Any = seqs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(seqs, desc="scoring", unit="seq")
    for seq in iterator:
        with seq:  # a TIFF stack's files close once it is scored
            if annotation == "none":
                p = PredictionFolder(_find_prediction(pred_root, seq, single=len(seqs) == 1, gt_root=Path(gt)), seq)
                _warn_missing(seq, p)
                held = _held_frames(seq, p, report)
                report.add(evaluate_foreground(seq.name, seq.masks, p, only=held), len(seq), None)
                continue
            annotated = first_annotation(seq)
            ids = painted_ids(seq.masks[annotated])
            p = PredictionFolder(_find_prediction(pred_root, seq, single=len(seqs) == 1, gt_root=Path(gt)), seq, objects=ids)
            _warn_missing(seq, p)
            held = _held_frames(seq, p, report)
            result = evaluate_sequence(seq.name, seq.masks, p, annotated,
                                       seg=len(ids) >= MANY_OBJECTS or seq.layout == "ctc",
                                       frames=None if held is None else _scored_frames(seq, annotated, held))
            warn_unscored_truth(result, annotated, ctc=seq.layout == "ctc")
            numbering = p.colour_numbering() if len(ids) > 1 else None
            if numbering:  # said, not silent: a colour scored as another object's id scores 0
                warnings.warn(f"{seq.name}: the prediction's colour PNGs hold colours outside the DAVIS palette, "
                              f"so they were numbered in colour order ({numbering}) and each is scored as the "
                              f"truth's object of that id, which need not be the one it shows; save a prediction "
                              "as palette PNGs (as napari-vos propagate writes them) or a labels TIFF", stacklevel=2)
            extra = p.unscored_ids(ids)
            if extra:  # said, not silent: the official DAVIS code stops on such ids
                shown = ", ".join(map(str, extra[:8])) + (", ..." if len(extra) > 8 else "")
                warnings.warn(f"{seq.name}: the prediction holds ids {shown} that are none of the truth's objects "
                              f"{ids[:8]}{' ...' if len(ids) > 8 else ''}; they are not scored (a prediction keeps "
                              "the annotation's ids; for a zero-shot prediction use annotation 'none')", stacklevel=2)
            report.add(result, len(seq), annotated)
    return report.finish(True)


def _held_frames(seq: Sequence, p: PredictionFolder, report: Report) -> set[int] | None:
    """The frames of a stopped run's prediction that hold its labels, said as a warning and kept in
    the summary (``stopped_runs``); None for a whole prediction (every frame scored)."""
    import warnings

    stopped = _stopped_run_frames(p.path, len(seq))
    if stopped is None:
        return None
    held, said = stopped
    warnings.warn(f"{seq.name}: {said}", stacklevel=3)  # said, not silent: not scored as a complete run
    report.header.setdefault("stopped_runs", {})[seq.name] = said
    return None if held is None else set(held)


def _scored_frames(seq: Sequence, annotated: int, held: set[int]) -> list[int]:
    """The frames `evaluate_sequence` scores by default, less those a stopped run never reached."""
    gt_frames = [t for t in range(len(seq)) if seq.masks[t] is not None]
    return [t for t in evaluated_frames(len(seq), gt_frames, annotated) if t in held]


def _warn_missing(seq: Sequence, p: PredictionFolder) -> None:
    if p.missing:  # said, not silent: a missing frame scores as an empty prediction
        import warnings

        warnings.warn(f"{seq.name}: {p.missing} of {len(seq)} frames have no prediction file in {p.path}; "
                      "they are scored as empty", stacklevel=3)
